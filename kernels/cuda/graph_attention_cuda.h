// CUDA fused graph attention (host-only declarations; kernels/graph_attention.h).
#pragma once

#include "core/tensor.h"
#include "kernels/graph_attention.h"

namespace lapis {
namespace cuda {

void graph_attention_forward(Tensor& out, Tensor& edge_out, GraphAttentionContext& ctx,
                             const CsrGraphView& g, const Tensor& q, const Tensor& k,
                             const Tensor& v, const Tensor& e_proj);
void graph_attention_backward(Tensor& dL_dq, Tensor& dL_dk, Tensor& dL_dv, Tensor& dL_de,
                              const Tensor& dL_dout, const Tensor& dL_dedge_out,
                              const CsrGraphView& g, const Tensor& q, const Tensor& k,
                              const Tensor& v, const Tensor& e_proj, const Tensor& out,
                              const GraphAttentionContext& ctx);

}  // namespace cuda
}  // namespace lapis
