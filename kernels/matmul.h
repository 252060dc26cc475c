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

// Linear layer in PyTorch's layout: out = relu?(x [N, IN] @ weight [OUT, IN]^T + bias [OUT])
// + residual [N, OUT]. bias and residual may be undefined; relu applies before the residual.
//
// out is [N, OUT], or [G, N, OUT / G] for a grouped output: each block of OUT / G consecutive
// output columns stored as its own contiguous [N, OUT / G] matrix, so one weight [3C, C] gives
// Q, K and V as out.slice(0, 1), .slice(1, 2), .slice(2, 3). A grouped output takes no residual
// and no relu.
//
// On CUDA, up to kFusedLinearMaxRows rows run as one kernel (product, bias, relu, residual and
// the grouped layout in its epilogue, F32/F64 FMA, independent of allow_tf32: at these sizes a
// launch costs more than the arithmetic); larger inputs use cuBLAS and separate epilogue kernels.
void linear_forward(Tensor& out, const Tensor& x, const Tensor& weight, const Tensor& bias,
                    const Tensor& residual = Tensor(), bool relu = false);
// dL_dx [N, IN] = dL_dout @ weight, plus dx_plus [N, IN] when given (a residual branch's
// gradient, added in the same kernel; dx_plus may be dL_dx itself to accumulate). Pass an
// undefined dL_dx to skip it. With through_relu, x is the output of a ReLU and dL_dx is the
// gradient w.r.t. that ReLU's input: the product is multiplied by (x > 0) (relu(z) > 0 exactly
// when z > 0) before dx_plus is added. dL_dweight [OUT, IN] += dL_dout^T @ x, dL_dbias [OUT] +=
// column sums of dL_dout (skipped when undefined); while a DeferredWeightGrads is active on this
// thread these two are queued instead (see below). dL_dout is [N, OUT] or grouped
// [G, N, OUT / G] as in linear_forward.
//
// On CUDA, up to kFusedLinearMaxRows rows dL_dx is one kernel; up to kFusedWeightGradMaxRows
// the weight and bias gradients come from one deterministic kernel (no split-K, no float
// atomics); larger inputs use cuBLAS and the bias-gradient kernel.
void linear_backward(Tensor& dL_dx, Tensor& dL_dweight, Tensor& dL_dbias, const Tensor& dL_dout,
                     const Tensor& x, const Tensor& weight, const Tensor& dx_plus = Tensor(),
                     bool through_relu = false);

// Weight gradients feed nothing else in a backward pass, so a model can form all of them at the
// end, together. While an instance is active on its thread (from construction until run()),
// linear_backward queues its dL_dweight / dL_dbias work instead of doing it; run() does all of
// it: on CUDA one launch for every queued input of up to kFusedWeightGradMaxRows rows (per
// dtype; items that add into the same gradient tensor go in separate launches, in queue order).
// The queued dL_dout and x must keep their values until run(). An instance created while
// another is active queues into that one (its run() does nothing). The destructor drops work
// that was not run (after an exception the gradients are incomplete anyway).
class DeferredWeightGrads {
 public:
  DeferredWeightGrads();
  ~DeferredWeightGrads();
  DeferredWeightGrads(const DeferredWeightGrads&) = delete;
  DeferredWeightGrads& operator=(const DeferredWeightGrads&) = delete;
  void run();

 private:
  bool owner_;
};

constexpr int64_t kFusedLinearMaxRows = 65536;
constexpr int64_t kFusedWeightGradMaxRows = 16384;  // each slice block loops over <= 512 rows

}  // namespace lapis
