// CUDA row softmax (host-only declarations; one warp per row on the library stream).
// Arguments are checked by kernels/softmax.cpp.
#pragma once

#include "core/tensor.h"

namespace lapis {
namespace cuda {

// out [N, C] = softmax of each row of x [N, C].
void softmax_forward(Tensor& out, const Tensor& x);
// dL_dx [N, C] = out * (dL_dout - sum_c(dL_dout * out)) per row.
void softmax_backward(Tensor& dL_dx, const Tensor& dL_dout, const Tensor& out);

}  // namespace cuda
}  // namespace lapis
