// One layer of the Dwivedi & Bresson graph transformer, sparse, post-norm, with or without edge
// features (N nodes, E edges, C channels, H heads, D = C / H):
//
//   q, k, v = h W_Q, h W_K, h W_V            [N, C] viewed as [N, H, D] (no bias)
//   p       = e W_E                          [E, C]                     (no bias; edge variant)
//   a, t    = graph_attention(q, k, v, p)    node output [N, C], edge output [E, C]
//   h1 = Norm(h + O_h(dropout(a)));   h2 = Norm(h1 + FFN_h(h1))       FFN: C -> 2C -> C, ReLU
//   e1 = Norm(e + O_e(dropout(t)));   e2 = Norm(e1 + FFN_e(e1))       (edge variant only)
//
// Norm is BatchNorm1d over all nodes (edges) of the batch, or LayerNorm. Backward runs the same
// steps in reverse; parameter gradients accumulate, input gradients are returned.
#pragma once

#include <memory>

#include "kernels/graph_attention.h"
#include "models/nn/layers.h"

namespace lapis {
namespace gt {

enum class NormKind { Batch, Layer };
NormKind parse_norm_kind(const std::string& name);  // "batch" or "layer"
const char* norm_kind_name(NormKind kind);

// BatchNorm1d or LayerNorm behind one interface.
struct NormCtx {
  nn::BatchNormCtx batch;
  nn::LayerNormCtx layer;
};
class Norm : public nn::Module {
 public:
  Norm(NormKind kind, int64_t channels);
  Tensor forward(const Tensor& x, NormCtx& ctx);
  Tensor backward(const Tensor& dL_dout, const NormCtx& ctx);

 private:
  NormKind kind_;
  std::unique_ptr<nn::BatchNorm1d> batch_;
  std::unique_ptr<nn::LayerNorm> layer_;
};

struct GraphTransformerLayerOptions {
  int64_t channels = 64;
  int64_t heads = 8;
  bool edge_features = true;
  NormKind norm = NormKind::Batch;
  double dropout = 0.0;
};

// What backward needs from one forward (tensors are handles: nothing is copied).
struct GraphTransformerLayerCtx {
  nn::LinearCtx e_ctx, o_h_ctx, o_e_ctx;
  Tensor h;                    // [N, C], the layer input (Q/K/V projections' input)
  Tensor q, k, v, p;           // [N, H, D] x3 (slices of one [3, N, C] buffer), [E, H, D]
  Tensor attn, edge_attn;      // [N, H, D], [E, H, D]
  GraphAttentionContext attention;
  nn::DropoutCtx drop_h, drop_e;
  NormCtx norm1_h, norm2_h, norm1_e, norm2_e;
  nn::MLPCtx ffn_h, ffn_e;
  bool edge_branch = false;  // the forward ran the edge branch (edge variant with e_out)
};

class GraphTransformerLayer : public nn::Module {
 public:
  GraphTransformerLayer(const GraphTransformerLayerOptions& options, Generator& gen);

  // h [N, C]; e [E, C] (edge variant) or undefined. Returns the new h; *e_out receives the new e
  // in the edge variant. e_out == nullptr in the edge variant means nobody reads the new e (the
  // last layer of a graph-level model): the edge branch after the attention (O_e, norms, FFN) is
  // skipped, and its parameters get no gradient contribution (they would get exactly zero).
  Tensor forward(const Tensor& h, const Tensor& e, const CsrGraphView& graph,
                 GraphTransformerLayerCtx& ctx, Tensor* e_out);
  // dL_dh_out [N, C]; dL_de_out [E, C] (edge variant; ignored, and may be undefined, when the
  // forward skipped the edge branch). Writes *dL_de_in (edge variant) and returns dL_dh_in.
  Tensor backward(const Tensor& dL_dh_out, const Tensor& dL_de_out, const CsrGraphView& graph,
                  const GraphTransformerLayerCtx& ctx, Tensor* dL_de_in);

  const GraphTransformerLayerOptions& options() const { return options_; }
  // The layer's Dropouts (attention outputs, FFN hidden layers); empty when dropout == 0.
  std::vector<nn::Dropout*> dropouts();

 private:
  // Q, K and V stay three parameters ("Q.weight", "K.weight", "V.weight"), but their values
  // and grads live as row slices of one [3C, C] tensor each, so one launch computes the three
  // projections (a grouped linear output [3, N, C]) and one their weight gradients. Module::to()
  // and dtype conversions replace the tensors; pack_qkv() restores the shared storage (copying
  // values and grads) whenever it finds them apart, before each forward and backward.
  void pack_qkv();
  // Whether the node and edge branches' ops can share launches (LaunchBatch): every step is
  // exactly one queued op, a product or a BatchNorm (no dropout, ReLU inside the FFN's
  // products).
  bool branches_batchable() const;

  GraphTransformerLayerOptions options_;
  std::unique_ptr<nn::Linear> q_, k_, v_, e_, o_h_, o_e_;
  Tensor qkv_weight_, qkv_grad_;  // [3C, C]
  std::unique_ptr<nn::Dropout> drop_h_, drop_e_;
  std::unique_ptr<Norm> norm1_h_, norm2_h_, norm1_e_, norm2_e_;
  std::unique_ptr<nn::MLP> ffn_h_, ffn_e_;
};

}  // namespace gt
}  // namespace lapis
