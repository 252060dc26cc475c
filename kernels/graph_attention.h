// Fused graph-transformer attention of Dwivedi & Bresson with edge features, over a sparse graph
// given as CSR by destination (+ CSC by source for the backward). Per destination i, incoming
// edge e = (j -> i), head h, dimension d (N nodes, E edges, H heads, D head dim, c = 1/sqrt(D)):
//
//   edge_out[e,h,d] = t_e[h,d] = K[j,h,d] * Q[i,h,d] * c * E[e,h,d]     (E == 1 without edges)
//   score[e,h]      = sum_d t_e[h,d]                  (saved in the context, before clamping)
//   w[e,h]          = exp(clamp(score[e,h], -5, 5))   (no max subtraction, as in the reference)
//   z[i,h]          = sum_{e into i} w[e,h]           (saved in the context)
//   out[i,h,:]      = sum_{e into i} w[e,h] V[j,h,:] / (z[i,h] + 1e-6)
//
// A node without incoming edges gets out = 0. The clamp's gradient follows torch.clamp: 1 where
// -5 <= score <= 5 (both ends included), 0 outside.
//
// Backward without float atomics (deterministic): pass 1 walks each destination's CSR row and
// writes dL_dQ, dL_dE and dL_dscore [E,H] (a workspace in the context); pass 2 walks each
// source's CSC row (out_edge maps to the CSR edge id) and writes dL_dK and dL_dV. On CUDA, with
// edge features and dL_dedge_out, pass 1 instead hands pass 2 each edge's dL_dK term (an [E,H,D]
// workspace from the device cache) and normalised weight (in ctx.dscore), which saves pass 2
// about a quarter of its memory traffic.
// CPU: a naive single-threaded reference (kernels/cpu/graph_attention_cpu.h) and a
// multi-threaded path over rows (the one dispatched). CUDA: f32 and f64, D <= 128; rows longer
// than 128 edges (hubs) are split across thread groups and combined in a fixed order, unless the
// view's degree bounds (CsrGraphView::max_in_degree / max_out_degree) say no row is that long.
#pragma once

#include "core/tensor.h"
#include "kernels/graph_view.h"

namespace lapis {

constexpr double kGraphAttentionClamp = 5.0;
constexpr double kGraphAttentionEps = 1e-6;

// What the backward needs; allocate with make_graph_attention_context.
struct GraphAttentionContext {
  Tensor score;   // [E, H] pre-clamp scores (forward writes)
  Tensor z;       // [N, H] normaliser sum_e w (forward writes)
  Tensor dscore;  // [E, H] workspace of the backward (dL_dscore after the clamp)
};
GraphAttentionContext make_graph_attention_context(int64_t num_nodes, int64_t num_edges,
                                                   int64_t heads, Dtype dtype, Device device);

// out [N,H,D] (overwritten); edge_out [E,H,D] (overwritten, or undefined: not written);
// q, k, v [N,H,D]; e_proj [E,H,D] or undefined (the variant without edge features).
void graph_attention_forward(Tensor& out, Tensor& edge_out, GraphAttentionContext& ctx,
                             const CsrGraphView& g, const Tensor& q, const Tensor& k,
                             const Tensor& v, const Tensor& e_proj);

// Input gradients are overwritten: dL_dq, dL_dk, dL_dv [N,H,D]; dL_de [E,H,D] (must be defined
// iff e_proj is). dL_dout [N,H,D]; dL_dedge_out [E,H,D] or undefined (treated as zero).
// out is the forward output; ctx.dscore is overwritten (workspace).
void graph_attention_backward(Tensor& dL_dq, Tensor& dL_dk, Tensor& dL_dv, Tensor& dL_de,
                              const Tensor& dL_dout, const Tensor& dL_dedge_out,
                              const CsrGraphView& g, const Tensor& q, const Tensor& k,
                              const Tensor& v, const Tensor& e_proj, const Tensor& out,
                              const GraphAttentionContext& ctx);

}  // namespace lapis
