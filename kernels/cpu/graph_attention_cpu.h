// CPU graph attention (kernels/graph_attention.h). The plain names are the naive single-threaded
// reference (the specification; the backward scatters into dL_dK/dL_dV edge by edge); the
// *_parallel versions are the multi-threaded path over rows that the dispatch runs (backward:
// CSR pass for dQ/dE/dscore, CSC pass for dK/dV, no shared writes). Arguments are checked.
#pragma once

#include "core/tensor.h"
#include "kernels/graph_attention.h"

namespace lapis {
namespace cpu {

void graph_attention_forward(Tensor& out, Tensor& edge_out, GraphAttentionContext& ctx,
                             const CsrGraphView& g, const Tensor& q, const Tensor& k,
                             const Tensor& v, const Tensor& e_proj);
void graph_attention_backward(Tensor& dL_dq, Tensor& dL_dk, Tensor& dL_dv, Tensor& dL_de,
                              const Tensor& dL_dout, const Tensor& dL_dedge_out,
                              const CsrGraphView& g, const Tensor& q, const Tensor& k,
                              const Tensor& v, const Tensor& e_proj, const Tensor& out,
                              const GraphAttentionContext& ctx);

void graph_attention_forward_parallel(Tensor& out, Tensor& edge_out, GraphAttentionContext& ctx,
                                      const CsrGraphView& g, const Tensor& q, const Tensor& k,
                                      const Tensor& v, const Tensor& e_proj);
void graph_attention_backward_parallel(Tensor& dL_dq, Tensor& dL_dk, Tensor& dL_dv,
                                       Tensor& dL_de, const Tensor& dL_dout,
                                       const Tensor& dL_dedge_out, const CsrGraphView& g,
                                       const Tensor& q, const Tensor& k, const Tensor& v,
                                       const Tensor& e_proj, const Tensor& out,
                                       const GraphAttentionContext& ctx);

}  // namespace cpu
}  // namespace lapis
