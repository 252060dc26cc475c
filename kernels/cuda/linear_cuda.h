// Fused CUDA kernels for the linear layers of small-row-count inputs (graph transformer
// batches: N ~ 3k nodes / 6k edges, C = 64..256), where cuBLAS plus separate epilogue kernels
// cost several launches of a few microseconds each. Host-only declarations; arguments are
// checked by the dispatch in kernels/matmul.cpp.
#pragma once

#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace lapis {
namespace cuda {

// out = relu?(x [N, IN] @ weight [OUT, IN]^T + bias) + residual in one launch; out is [N, OUT]
// or grouped [G, N, OUT / G] (see linear_forward in kernels/matmul.h).
void linear_forward_fused(Tensor& out, const Tensor& x, const Tensor& weight, const Tensor& bias,
                          const Tensor& residual, bool relu, int64_t groups);

// dL_dx [N, IN] = (dL_dout @ weight) * (relu_mask > 0 ? 1 : 0) + plus, the mask and plus
// optional (undefined: none; plus may be dL_dx itself); dL_dout [N, OUT] or grouped
// [G, N, OUT / G]. One launch.
void input_grad_fused(Tensor& dL_dx, const Tensor& dL_dout, const Tensor& weight,
                      const Tensor& relu_mask, const Tensor& plus, int64_t groups);

// The same for several independent calls (none reads another's output), up to 4 per launch:
// the blocks of all calls form one grid, so two small products cost about one launch.
struct LinearForwardCall {
  Tensor out, x, weight, bias, residual;
  bool relu;
  int64_t groups;
};
void linear_forward_fused_batch(const std::vector<LinearForwardCall>& calls);
struct InputGradCall {
  Tensor dL_dx, dL_dout, weight, relu_mask, plus;
  int64_t groups;
};
void input_grad_fused_batch(const std::vector<InputGradCall>& calls);

// dL_dweight [OUT, IN] += dL_dout^T @ x and dL_dbias [OUT] += column sums of dL_dout (when
// defined) in one launch: row slices accumulate 32 x 32 output tiles in registers, and the last
// slice block of each tile adds the slices' partials in slice order (deterministic).
void weight_grad_fused(Tensor& dL_dweight, Tensor& dL_dbias, const Tensor& dL_dout,
                       const Tensor& x, int64_t groups);

// weight_grad_fused for several independent inputs (one dtype, distinct dL_dweight / dL_dbias
// tensors) in one launch: the blocks of all items form one grid, each block finds its item in a
// table of block offsets.
struct WeightGradItem {
  Tensor dL_dweight, dL_dbias, dL_dout, x;
  int64_t groups;
};
void weight_grad_fused_batch(const std::vector<WeightGradItem>& items);

}  // namespace cuda
}  // namespace lapis
