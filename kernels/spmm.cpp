#include "kernels/spmm.h"

#include "core/cuda_api.h"
#include "kernels/cpu/graph_ops_cpu.h"
#include "kernels/cuda/graph_ops_cuda.h"

namespace lapis {

namespace {

constexpr int64_t kMaxCudaHeadDim = 128;

void check_inputs(const char* op, const CsrGraphView& g, const Tensor& alpha, const Tensor& x,
                  bool need_csc) {
  check_defined(op, "x", x);
  check_floating(op, "x", x);
  check_dim(op, "x", x, 3);
  check_graph_view(op, g, x.device(), need_csc);
  LAPIS_CHECK(x.size(0) == g.num_nodes, op, "x has ", x.size(0), " rows but the graph has ",
              g.num_nodes, " nodes (x ", x.describe(), ")");
  LAPIS_CHECK(!x.is_cuda() || x.size(2) <= kMaxCudaHeadDim, op, "CUDA supports D <= ",
              kMaxCudaHeadDim, ", got ", x.describe());
  check_like(op, "alpha", alpha, {g.num_edges, x.size(1)}, "x", x);
}

}  // namespace

void spmm_forward(Tensor& out, const CsrGraphView& g, const Tensor& alpha, const Tensor& x,
                  SpmmAlgo algo) {
  const char* op = "spmm_forward";
  check_inputs(op, g, alpha, x, false);
  check_like(op, "out", out, x.shape(), "x", x);
  if (algo == SpmmAlgo::CuSparse) {
    LAPIS_CHECK(x.is_cuda() && x.size(1) == 1 && x.dtype() == Dtype::F32, op,
                "SpmmAlgo::CuSparse needs one head, f32 and CUDA, got x ", x.describe());
  }
  if (g.num_nodes == 0) return;
  switch (x.device().type) {
    case DeviceType::CPU: cpu::spmm_forward(out, g, alpha, x, /*parallel=*/true); break;
    case DeviceType::CUDA: LAPIS_CUDA_CALL(cuda::spmm_forward, out, g, alpha, x, algo); break;
  }
}

void spmm_backward(Tensor& dL_dalpha, Tensor& dL_dx, const Tensor& dL_dout, const CsrGraphView& g,
                   const Tensor& alpha, const Tensor& x) {
  const char* op = "spmm_backward";
  check_inputs(op, g, alpha, x, true);
  check_like(op, "dL_dout", dL_dout, x.shape(), "x", x);
  if (dL_dalpha.defined()) {
    check_like(op, "dL_dalpha", dL_dalpha, alpha.shape(), "x", x);
  }
  if (dL_dx.defined()) check_like(op, "dL_dx", dL_dx, x.shape(), "x", x);
  if (g.num_nodes == 0) return;
  switch (x.device().type) {
    case DeviceType::CPU:
      cpu::spmm_backward(dL_dalpha, dL_dx, dL_dout, g, alpha, x, /*parallel=*/true);
      break;
    case DeviceType::CUDA:
      LAPIS_CUDA_CALL(cuda::spmm_backward, dL_dalpha, dL_dx, dL_dout, g, alpha, x);
      break;
  }
}

}  // namespace lapis
