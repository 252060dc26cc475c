#include "models/gt/graph_transformer.h"

#include "kernels/elementwise.h"
#include "kernels/index.h"
#include "kernels/matmul.h"

namespace lapis {
namespace gt {

Readout parse_readout(const std::string& name) {
  if (name == "mean") return Readout::Mean;
  if (name == "sum") return Readout::Sum;
  if (name == "none") return Readout::None;
  LAPIS_FAIL("parse_readout", "unknown readout '", name, "' (expected mean, sum or none)");
}

const char* readout_name(Readout readout) {
  switch (readout) {
    case Readout::Mean: return "mean";
    case Readout::Sum: return "sum";
    case Readout::None: return "none";
  }
  return "?";
}

void GraphTransformerConfig::validate() const {
  const char* op = "GraphTransformerConfig";
  LAPIS_CHECK(layers >= 1, op, "layers must be >= 1, got ", layers);
  LAPIS_CHECK(hidden >= 4 && heads >= 1 && hidden % heads == 0, op,
              "hidden (", hidden, ") must be >= 4 and a multiple of heads (", heads, ")");
  LAPIS_CHECK(hidden / heads <= 128, op, "head dim hidden/heads = ", hidden / heads,
              " exceeds the attention kernel's limit of 128");
  LAPIS_CHECK(dropout >= 0.0 && dropout < 1.0, op, "dropout must be in [0, 1), got ", dropout);
  LAPIS_CHECK(in_feat_dropout >= 0.0 && in_feat_dropout < 1.0, op,
              "in_feat_dropout must be in [0, 1), got ", in_feat_dropout);
  LAPIS_CHECK((num_node_types > 0) != (node_in_dim > 0), op,
              "exactly one of num_node_types (", num_node_types, ") and node_in_dim (",
              node_in_dim, ") must be positive");
  LAPIS_CHECK(num_edge_types >= 0 && edge_in_dim >= 0 && !(num_edge_types > 0 && edge_in_dim > 0),
              op, "at most one of num_edge_types (", num_edge_types, ") and edge_in_dim (",
              edge_in_dim, ") may be positive");
  LAPIS_CHECK(pe_dim >= 0 && rwse_dim >= 0, op, "pe_dim (", pe_dim, ") and rwse_dim (", rwse_dim,
              ") must be >= 0");
  LAPIS_CHECK(out_dim >= 1, op, "out_dim must be >= 1, got ", out_dim);
}

GraphTransformer::GraphTransformer(const GraphTransformerConfig& config) : config_(config) {
  config.validate();
  Generator gen(config.seed);
  const int64_t C = config.hidden;
  if (config.num_node_types > 0) {
    node_emb_ = std::make_unique<nn::Embedding>(config.num_node_types, C, gen);
    register_child("node_embedding", node_emb_.get());
  } else {
    node_lin_ = std::make_unique<nn::Linear>(config.node_in_dim, C, true, gen);
    register_child("node_linear", node_lin_.get());
  }
  if (config.num_edge_types > 0) {
    edge_emb_ = std::make_unique<nn::Embedding>(config.num_edge_types, C, gen);
    register_child("edge_embedding", edge_emb_.get());
  } else if (config.edge_in_dim > 0) {
    edge_lin_ = std::make_unique<nn::Linear>(config.edge_in_dim, C, true, gen);
    register_child("edge_linear", edge_lin_.get());
  }
  if (config.pe_dim > 0) {
    pe_lin_ = std::make_unique<nn::Linear>(config.pe_dim, C, true, gen);
    register_child("lap_pe", pe_lin_.get());
  }
  if (config.rwse_dim > 0) {
    rwse_lin_ = std::make_unique<nn::Linear>(config.rwse_dim, C, true, gen);
    register_child("rwse", rwse_lin_.get());
  }
  in_drop_ = std::make_unique<nn::Dropout>(config.in_feat_dropout,
                                           random_bits(gen.seed(), gen.advance(1)));
  register_child("in_feat_dropout", in_drop_.get());
  GraphTransformerLayerOptions layer_options;
  layer_options.channels = C;
  layer_options.heads = config.heads;
  layer_options.edge_features = config.edge_features();
  layer_options.norm = config.norm;
  layer_options.dropout = config.dropout;
  for (int64_t l = 0; l < config.layers; ++l) {
    layers_.push_back(std::make_unique<GraphTransformerLayer>(layer_options, gen));
    register_child("layers." + std::to_string(l), layers_.back().get());
  }
  head_ = std::make_unique<nn::MLP>(std::vector<int64_t>{C, C / 2, C / 4, config.out_dim},
                                    Activation::ReLU, 0.0, gen);
  register_child("head", head_.get());
}

std::vector<nn::Dropout*> GraphTransformer::dropouts() {
  std::vector<nn::Dropout*> out;
  if (config_.in_feat_dropout > 0.0) out.push_back(in_drop_.get());
  for (auto& layer : layers_)
    for (nn::Dropout* d : layer->dropouts()) out.push_back(d);
  return out;
}

Tensor GraphTransformer::forward(const GraphTransformerInput& input, GraphTransformerCtx& ctx) {
  const char* op = "GraphTransformer::forward";
  const CsrGraphView& g = input.graph;
  const int64_t N = g.num_nodes, E = g.num_edges;
  ctx.graph = g;
  ctx.num_nodes = N;
  ctx.node_ptr = input.node_ptr;

  // Input embedding: h = node embedding (+ LapPE projection) (+ RWSE projection), dropout.
  Tensor h;
  if (node_emb_) {
    check_shape(op, "node_x", input.node_x, {N});
    h = node_emb_->forward(input.node_x, ctx.node_emb);
  } else {
    check_shape(op, "node_x", input.node_x, {N, config_.node_in_dim});
    h = node_lin_->forward(input.node_x, ctx.node_lin);
  }
  if (pe_lin_) {
    check_shape(op, "pe", input.pe, {N, config_.pe_dim});
    add(h, h, pe_lin_->forward(input.pe, ctx.pe_lin));
  }
  if (rwse_lin_) {
    check_shape(op, "rwse", input.rwse, {N, config_.rwse_dim});
    add(h, h, rwse_lin_->forward(input.rwse, ctx.rwse_lin));
  }
  h = in_drop_->forward(h, ctx.in_drop);

  Tensor e;
  if (edge_emb_) {
    check_shape(op, "edge_x", input.edge_x, {E});
    e = edge_emb_->forward(input.edge_x, ctx.edge_emb);
  } else if (edge_lin_) {
    check_shape(op, "edge_x", input.edge_x, {E, config_.edge_in_dim});
    e = edge_lin_->forward(input.edge_x, ctx.edge_lin);
  }

  ctx.layers.resize(layers_.size());
  for (size_t l = 0; l < layers_.size(); ++l) {
    // The last layer's new e feeds nothing (the readout and the head use nodes only), so it
    // skips its edge branch.
    const bool edge_out = config_.edge_features() && l + 1 < layers_.size();
    Tensor e_next;
    h = layers_[l]->forward(h, e, g, ctx.layers[l], edge_out ? &e_next : nullptr);
    e = e_next;
  }
  ctx.h_last = h;

  Tensor pooled = h;
  if (config_.readout != Readout::None) {
    check_dim(op, "node_ptr", input.node_ptr, 1);
    const int64_t B = input.node_ptr.numel() - 1;
    LAPIS_CHECK(B >= 0, op, "node_ptr must have B + 1 >= 1 entries");
    pooled = Tensor::empty({B, config_.hidden}, h.dtype(), h.device());
    Tensor no_argmax;
    segment_reduce_forward(pooled, no_argmax, h, input.node_ptr,
                           config_.readout == Readout::Mean ? SegmentReduce::Mean
                                                            : SegmentReduce::Sum);
  }
  return head_->forward(pooled, ctx.head);
}

void GraphTransformer::backward(const Tensor& dL_dout, const GraphTransformerCtx& ctx) {
  // Every Linear's weight and bias gradients are formed together at the end (one launch on
  // CUDA instead of one or more per Linear).
  DeferredWeightGrads deferred_weight_grads;
  const CsrGraphView& g = ctx.graph;
  Tensor dpooled = head_->backward(dL_dout, ctx.head);
  Tensor dh = dpooled;
  if (config_.readout != Readout::None) {
    dh = Tensor::empty({ctx.num_nodes, config_.hidden}, dpooled.dtype(), dpooled.device());
    Tensor no_argmax;
    segment_reduce_backward(dh, dpooled, ctx.node_ptr, no_argmax,
                            config_.readout == Readout::Mean ? SegmentReduce::Mean
                                                             : SegmentReduce::Sum);
  }
  // The last layer skipped its edge branch (see forward): no gradient flows into it.
  Tensor de;
  for (size_t l = layers_.size(); l-- > 0;) {
    Tensor de_in;
    dh = layers_[l]->backward(dh, de, g, ctx.layers[l],
                              config_.edge_features() ? &de_in : nullptr);
    de = de_in;
  }
  if (edge_emb_) edge_emb_->backward(de, ctx.edge_emb);
  if (edge_lin_) edge_lin_->backward_params(de, ctx.edge_lin);
  dh = in_drop_->backward(dh, ctx.in_drop);
  if (pe_lin_) pe_lin_->backward_params(dh, ctx.pe_lin);
  if (rwse_lin_) rwse_lin_->backward_params(dh, ctx.rwse_lin);
  if (node_emb_) node_emb_->backward(dh, ctx.node_emb);
  if (node_lin_) node_lin_->backward_params(dh, ctx.node_lin);
  deferred_weight_grads.run();
}

}  // namespace gt
}  // namespace lapis
