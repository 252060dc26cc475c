// CUDA dense matrix products through cuBLAS (host-only declarations, no CUDA types).
#pragma once

#include "core/tensor.h"

namespace lapis {
namespace cuda {

// out [M, N] = alpha * op(a) @ op(b) + beta * out on the library stream; beta == 0 ignores
// out's old contents. F32 uses TF32 tensor cores only when allow_tf32() is on.
void matmul(Tensor& out, const Tensor& a, const Tensor& b, bool trans_a, bool trans_b,
            double alpha, double beta);

// dL_dweight [O, I] += dL_dout^T @ x and, when dL_dbias is not null, dL_dbias [O] += column
// sums of dL_dout, in one deterministic launch (exact F32/F64 arithmetic, TF32 never used).
// dL_dout [N, O], x [N, I]. Meant for the small weights of graph networks (see
// kernels/matmul.cpp for when it is used instead of cuBLAS).
void linear_weight_grad(Tensor& dL_dweight, Tensor* dL_dbias, const Tensor& dL_dout,
                        const Tensor& x);

}  // namespace cuda
}  // namespace lapis
