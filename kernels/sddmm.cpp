#include "kernels/sddmm.h"

#include "core/cuda_api.h"
#include "kernels/cpu/graph_ops_cpu.h"
#include "kernels/cuda/graph_ops_cuda.h"

namespace lapis {

namespace {

constexpr int64_t kMaxCudaHeadDim = 128;

void check_inputs(const char* op, const CsrGraphView& g, const Tensor& a, const Tensor& b,
                  bool need_csc) {
  check_defined(op, "a", a);
  check_floating(op, "a", a);
  check_dim(op, "a", a, 3);
  check_graph_view(op, g, a.device(), need_csc);
  LAPIS_CHECK(a.size(0) == g.num_nodes, op, "a has ", a.size(0), " rows but the graph has ",
              g.num_nodes, " nodes (a ", a.describe(), ")");
  LAPIS_CHECK(!a.is_cuda() || a.size(2) <= kMaxCudaHeadDim, op, "CUDA supports D <= ",
              kMaxCudaHeadDim, ", got ", a.describe());
  check_like(op, "b", b, a.shape(), "a", a);
}

}  // namespace

void sddmm_forward(Tensor& score, const CsrGraphView& g, const Tensor& a, const Tensor& b,
                   double scale, SddmmAlgo algo) {
  const char* op = "sddmm_forward";
  check_inputs(op, g, a, b, false);
  check_like(op, "score", score, {g.num_edges, a.size(1)}, "a", a);
  if (algo == SddmmAlgo::CuSparse) {
    LAPIS_CHECK(a.is_cuda() && a.size(1) == 1 && a.dtype() == Dtype::F32, op,
                "SddmmAlgo::CuSparse needs one head, f32 and CUDA, got a ", a.describe());
  }
  if (g.num_edges == 0) return;
  switch (a.device().type) {
    case DeviceType::CPU: cpu::sddmm_forward(score, g, a, b, scale, /*parallel=*/true); break;
    case DeviceType::CUDA:
      LAPIS_CUDA_CALL(cuda::sddmm_forward, score, g, a, b, scale, algo);
      break;
  }
}

void sddmm_backward(Tensor& dL_da, Tensor& dL_db, const Tensor& dL_dscore, const CsrGraphView& g,
                    const Tensor& a, const Tensor& b, double scale) {
  const char* op = "sddmm_backward";
  check_inputs(op, g, a, b, true);
  check_like(op, "dL_dscore", dL_dscore, {g.num_edges, a.size(1)}, "a", a);
  if (dL_da.defined()) check_like(op, "dL_da", dL_da, a.shape(), "a", a);
  if (dL_db.defined()) check_like(op, "dL_db", dL_db, a.shape(), "a", a);
  if (g.num_nodes == 0) return;
  switch (a.device().type) {
    case DeviceType::CPU:
      cpu::sddmm_backward(dL_da, dL_db, dL_dscore, g, a, b, scale, /*parallel=*/true);
      break;
    case DeviceType::CUDA:
      LAPIS_CUDA_CALL(cuda::sddmm_backward, dL_da, dL_db, dL_dscore, g, a, b, scale);
      break;
  }
}

}  // namespace lapis
