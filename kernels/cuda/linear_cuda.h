// Fused CUDA kernels for the linear layers of small-row-count inputs (graph transformer
// batches: N ~ 3k nodes / 6k edges, C = 64..256), where cuBLAS plus separate epilogue kernels
// cost several launches of a few microseconds each. Host-only declarations; arguments are
// checked by the dispatch in kernels/matmul.cpp.
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace lapis {
namespace cuda {

// out = relu?(x [N, IN] @ weight [OUT, IN]^T + bias) + residual in one launch; out is [N, OUT]
// or grouped [G, N, OUT / G] (see linear_forward in kernels/matmul.h).
void linear_forward_fused(Tensor& out, const Tensor& x, const Tensor& weight, const Tensor& bias,
                          const Tensor& residual, bool relu, int64_t groups);

// dL_dx [N, IN] = (accumulate ? dL_dx : 0) + (dL_dout @ weight) * (relu_mask > 0 ? 1 : 0), the
// mask optional (undefined: none); dL_dout [N, OUT] or grouped [G, N, OUT / G]. One launch.
void input_grad_fused(Tensor& dL_dx, const Tensor& dL_dout, const Tensor& weight,
                      const Tensor& relu_mask, bool accumulate, int64_t groups);

// dL_dweight [OUT, IN] += dL_dout^T @ x and dL_dbias [OUT] += column sums of dL_dout (when
// defined) in one launch: row slices accumulate 32 x 32 output tiles in registers, and the last
// slice block of each tile adds the slices' partials in slice order (deterministic).
void weight_grad_fused(Tensor& dL_dweight, Tensor& dL_dbias, const Tensor& dL_dout,
                       const Tensor& x, int64_t groups);

}  // namespace cuda
}  // namespace lapis
