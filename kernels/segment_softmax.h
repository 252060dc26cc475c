// Segment (edge) softmax: for each destination i and head h, a softmax of score[e,h] over the
// incoming edges e in in_ptr[i] .. in_ptr[i+1]-1, numerically stable (the segment max is
// subtracted). score, alpha [E,H]; in_ptr i32 [N+1]. Empty segments produce nothing.
// CUDA: one lane per (segment, head), segments longer than 128 edges split across lanes and
// combined in a fixed order: deterministic. max_segment_length (optional, the longest segment if
// the caller knows it, e.g. CsrGraphView::max_in_degree) lets CUDA skip the splitting launches
// when no segment is that long; a wrong value costs speed only.
#pragma once

#include "core/tensor.h"

namespace lapis {

// alpha [E,H] (overwritten).
void segment_softmax_forward(Tensor& alpha, const Tensor& score, const Tensor& in_ptr,
                             int64_t max_segment_length = -1);
// dL_dscore [E,H] (overwritten) = alpha * (dL_dalpha - sum_{segment} alpha * dL_dalpha).
void segment_softmax_backward(Tensor& dL_dscore, const Tensor& dL_dalpha, const Tensor& alpha,
                              const Tensor& in_ptr, int64_t max_segment_length = -1);

}  // namespace lapis
