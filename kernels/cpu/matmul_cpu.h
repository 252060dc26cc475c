// CPU reference for dense matrix products (Eigen on row-major maps). Arguments are checked by
// the dispatch in kernels/matmul.cpp.
#pragma once

#include "core/tensor.h"

namespace lapis {
namespace cpu {

// out [M, N] = alpha * op(a) @ op(b) + beta * out; beta == 0 ignores out's old contents.
void matmul(Tensor& out, const Tensor& a, const Tensor& b, bool trans_a, bool trans_b,
            double alpha, double beta);

// The linear layer's epilogues in one pass over [N, C] (with the rounding of the separate ops):
// forward: out = relu?(out + bias) + residual (bias, residual optional);
// input gradient: dx = product * (mask > 0 ? 1 : 0) + plus (mask, plus optional; dx may alias
// product or plus).
void linear_forward_epilogue(Tensor& out, const Tensor& bias, bool relu, const Tensor& residual);
void linear_input_grad_epilogue(Tensor& dx, const Tensor& product, const Tensor& mask,
                                const Tensor& plus);

}  // namespace cpu
}  // namespace lapis
