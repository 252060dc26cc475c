#include "kernels/graph_attention.h"

#include "core/cuda_api.h"
#include "kernels/cpu/graph_attention_cpu.h"
#include "kernels/cuda/graph_attention_cuda.h"

namespace lapis {

namespace {

constexpr int64_t kMaxCudaHeadDim = 128;  // 32 lanes x 4 values per (row, head) on CUDA

// Checks q, k, v [N,H,D], the optional e_proj [E,H,D], the graph, and the context; returns H, D.
void check_common(const char* op, const CsrGraphView& g, const Tensor& q, const Tensor& k,
                  const Tensor& v, const Tensor& e_proj, const GraphAttentionContext& ctx,
                  bool need_csc) {
  check_defined(op, "q", q);
  check_floating(op, "q", q);
  check_dim(op, "q", q, 3);
  const int64_t n = q.size(0), h = q.size(1), d = q.size(2);
  LAPIS_CHECK(h >= 1 && d >= 1, op, "q must have at least one head and one dimension, got ",
              q.describe());
  check_graph_view(op, g, q.device(), need_csc);
  LAPIS_CHECK(n == g.num_nodes, op, "q has ", n, " rows but the graph has ", g.num_nodes,
              " nodes (q ", q.describe(), ")");
  check_like(op, "k", k, {n, h, d}, "q", q);
  check_like(op, "v", v, {n, h, d}, "q", q);
  if (e_proj.defined()) check_like(op, "e_proj", e_proj, {g.num_edges, h, d}, "q", q);
  check_like(op, "ctx.score", ctx.score, {g.num_edges, h}, "q", q);
  check_like(op, "ctx.z", ctx.z, {n, h}, "q", q);
  LAPIS_CHECK(!q.is_cuda() || d <= kMaxCudaHeadDim, op, "CUDA supports head dim D <= ",
              kMaxCudaHeadDim, ", got D = ", d, " (q ", q.describe(), ")");
}

}  // namespace

GraphAttentionContext make_graph_attention_context(int64_t num_nodes, int64_t num_edges,
                                                   int64_t heads, Dtype dtype, Device device) {
  GraphAttentionContext ctx;
  ctx.score = Tensor::empty({num_edges, heads}, dtype, device);
  ctx.z = Tensor::empty({num_nodes, heads}, dtype, device);
  ctx.dscore = Tensor::empty({num_edges, heads}, dtype, device);
  return ctx;
}

void graph_attention_forward(Tensor& out, Tensor& edge_out, GraphAttentionContext& ctx,
                             const CsrGraphView& g, const Tensor& q, const Tensor& k,
                             const Tensor& v, const Tensor& e_proj) {
  const char* op = "graph_attention_forward";
  check_common(op, g, q, k, v, e_proj, ctx, /*need_csc=*/false);
  check_like(op, "out", out, q.shape(), "q", q);
  if (edge_out.defined()) {
    check_like(op, "edge_out", edge_out, {g.num_edges, q.size(1), q.size(2)}, "q", q);
  }
  if (g.num_nodes == 0) return;
  switch (q.device().type) {
    case DeviceType::CPU:
      cpu::graph_attention_forward_parallel(out, edge_out, ctx, g, q, k, v, e_proj);
      break;
    case DeviceType::CUDA:
      LAPIS_CUDA_CALL(cuda::graph_attention_forward, out, edge_out, ctx, g, q, k, v, e_proj);
      break;
  }
}

void graph_attention_backward(Tensor& dL_dq, Tensor& dL_dk, Tensor& dL_dv, Tensor& dL_de,
                              const Tensor& dL_dout, const Tensor& dL_dedge_out,
                              const CsrGraphView& g, const Tensor& q, const Tensor& k,
                              const Tensor& v, const Tensor& e_proj, const Tensor& out,
                              const GraphAttentionContext& ctx) {
  const char* op = "graph_attention_backward";
  check_common(op, g, q, k, v, e_proj, ctx, /*need_csc=*/true);
  const Shape node_shape = q.shape();
  const Shape edge_shape = {g.num_edges, q.size(1), q.size(2)};
  check_like(op, "ctx.dscore", ctx.dscore, {g.num_edges, q.size(1)}, "q", q);
  check_like(op, "out", out, node_shape, "q", q);
  check_like(op, "dL_dout", dL_dout, node_shape, "q", q);
  check_like(op, "dL_dq", dL_dq, node_shape, "q", q);
  check_like(op, "dL_dk", dL_dk, node_shape, "q", q);
  check_like(op, "dL_dv", dL_dv, node_shape, "q", q);
  if (dL_dedge_out.defined()) {
    check_like(op, "dL_dedge_out", dL_dedge_out, edge_shape, "q", q);
  }
  if (e_proj.defined()) {
    check_like(op, "dL_de", dL_de, edge_shape, "q", q);
  } else {
    LAPIS_CHECK(!dL_de.defined(), op, "dL_de must be undefined when e_proj is (got ",
                dL_de.describe(), ")");
  }
  if (g.num_nodes == 0) return;
  switch (q.device().type) {
    case DeviceType::CPU:
      cpu::graph_attention_backward_parallel(dL_dq, dL_dk, dL_dv, dL_de, dL_dout, dL_dedge_out,
                                             g, q, k, v, e_proj, out, ctx);
      break;
    case DeviceType::CUDA:
      LAPIS_CUDA_CALL(cuda::graph_attention_backward, dL_dq, dL_dk, dL_dv, dL_de, dL_dout,
                      dL_dedge_out, g, q, k, v, e_proj, out, ctx);
      break;
  }
}

}  // namespace lapis
