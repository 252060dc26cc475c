// Softmax over each row of x [N, C], numerically stable (max subtracted).
#pragma once

#include "core/tensor.h"

namespace lapis {

void softmax_forward(Tensor& out, const Tensor& x);
// dL_dx = out * (dL_dout - sum_c(dL_dout * out)) per row (overwritten); out is the forward output.
void softmax_backward(Tensor& dL_dx, const Tensor& dL_dout, const Tensor& out);

}  // namespace lapis
