// Segment (edge) softmax: for each destination i and head h, a softmax of score[e,h] over the
// incoming edges e in in_ptr[i] .. in_ptr[i+1]-1, numerically stable (the segment max is
// subtracted). score, alpha [E,H]; in_ptr i32 [N+1]. Empty segments produce nothing.
// One thread per (segment, head) on CUDA: deterministic.
#pragma once

#include "core/tensor.h"

namespace lapis {

// alpha [E,H] (overwritten).
void segment_softmax_forward(Tensor& alpha, const Tensor& score, const Tensor& in_ptr);
// dL_dscore [E,H] (overwritten) = alpha * (dL_dalpha - sum_{segment} alpha * dL_dalpha).
void segment_softmax_backward(Tensor& dL_dscore, const Tensor& dL_dalpha, const Tensor& alpha,
                              const Tensor& in_ptr);

}  // namespace lapis
