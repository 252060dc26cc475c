// Dense matrix products. CPU: Eigen. CUDA: cuBLAS (F32 exact by default; TF32 tensor cores only
// after cuda::set_allow_tf32(true)).
#pragma once

#include "core/tensor.h"

namespace lapis {

// out [M, N] = alpha * op(a) @ op(b) + beta * out, where op(a) is a or a^T (trans_a), so
// op(a) is [M, K] and op(b) is [K, N]. With beta == 0 the old contents of out are ignored
// (may be NaN). All three on one device, one floating dtype.
void matmul(Tensor& out, const Tensor& a, const Tensor& b, bool trans_a = false,
            bool trans_b = false, double alpha = 1.0, double beta = 0.0);

// Linear layer in PyTorch's layout: out [N, OUT] = x [N, IN] @ weight[OUT, IN]^T + bias [OUT],
// then + residual [N, OUT] when given (fused into the bias add: one launch fewer per residual
// block, same rounding as a separate add). bias and residual may be undefined.
void linear_forward(Tensor& out, const Tensor& x, const Tensor& weight, const Tensor& bias,
                    const Tensor& residual = Tensor());
// dL_dx [N, IN] = dL_dout @ weight (overwritten; pass an undefined tensor to skip it),
// dL_dweight [OUT, IN] += dL_dout^T @ x, dL_dbias [OUT] += column sums of dL_dout (skipped when
// undefined).
void linear_backward(Tensor& dL_dx, Tensor& dL_dweight, Tensor& dL_dbias, const Tensor& dL_dout,
                     const Tensor& x, const Tensor& weight);

}  // namespace lapis
