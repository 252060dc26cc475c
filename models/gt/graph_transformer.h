// The Dwivedi & Bresson graph transformer (graphdeeplearning/graphtransformer): input embeddings,
// optional Laplacian / random-walk positional encodings added at the input, L sparse attention
// layers (models/gt/graph_transformer_layer.h), a readout (mean, sum, or none for node tasks)
// and an MLP head C -> C/2 -> C/4 -> out (ReLU).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "kernels/graph_view.h"
#include "models/gt/graph_transformer_layer.h"

namespace lapis {
namespace gt {

enum class Readout { Mean, Sum, None };
Readout parse_readout(const std::string& name);  // "mean", "sum", "none"
const char* readout_name(Readout readout);

struct GraphTransformerConfig {
  int64_t layers = 10;
  int64_t hidden = 64;  // C
  int64_t heads = 8;    // H, C % H == 0
  NormKind norm = NormKind::Batch;
  double dropout = 0.0;
  double in_feat_dropout = 0.0;
  // Node input: categorical (num_node_types > 0, Embedding) or dense attributes (node_in_dim > 0,
  // Linear with bias). Exactly one of the two.
  int64_t num_node_types = 0;
  int64_t node_in_dim = 0;
  // Edge features: categorical (num_edge_types > 0) or dense (edge_in_dim > 0); both 0 selects
  // the layer variant without edge features.
  int64_t num_edge_types = 0;
  int64_t edge_in_dim = 0;
  int64_t pe_dim = 0;    // LapPE columns k, projected by Linear(k, C) and added (0 = none)
  int64_t rwse_dim = 0;  // RWSE steps K, projected by Linear(K, C) and added (0 = none)
  Readout readout = Readout::Mean;
  int64_t out_dim = 1;
  uint64_t seed = 41;  // initialisation and dropout masks

  bool edge_features() const { return num_edge_types > 0 || edge_in_dim > 0; }
  void validate() const;  // throws lapis::Error naming the bad field and value
};

// One batch as the model sees it; every tensor on the model's device.
struct GraphTransformerInput {
  CsrGraphView graph;  // N nodes, E edges (block-diagonal batch)
  Tensor node_x;       // i32 [N] types, or float [N, node_in_dim]
  Tensor edge_x;       // i32 [E] types, or float [E, edge_in_dim]; undefined without edges
  Tensor pe;           // float [N, pe_dim] or undefined when pe_dim == 0
  Tensor rwse;         // float [N, rwse_dim] or undefined when rwse_dim == 0
  Tensor node_ptr;     // i32 [B + 1]: nodes of graph b (graph readout only)
};

struct GraphTransformerCtx {
  nn::EmbeddingCtx node_emb, edge_emb;
  nn::LinearCtx node_lin, edge_lin, pe_lin, rwse_lin;
  nn::DropoutCtx in_drop;
  std::vector<GraphTransformerLayerCtx> layers;
  Tensor h_last;  // [N, C] before the readout
  nn::MLPCtx head;
  CsrGraphView graph;
  Tensor node_ptr;
  int64_t num_nodes = 0;
};

class GraphTransformer : public nn::Module {
 public:
  explicit GraphTransformer(const GraphTransformerConfig& config);
  // Returns [B, out_dim] (graph readout) or [N, out_dim] (Readout::None).
  Tensor forward(const GraphTransformerInput& input, GraphTransformerCtx& ctx);
  // Accumulates every parameter's gradient from dL_dout (shape of forward's output).
  void backward(const Tensor& dL_dout, const GraphTransformerCtx& ctx);
  const GraphTransformerConfig& config() const { return config_; }
  // Every Dropout with p > 0 (input features, and per layer), so that a trainer can make each
  // mask a function of (seed, epoch, batch) by setting their counter offsets.
  std::vector<nn::Dropout*> dropouts();

 private:
  GraphTransformerConfig config_;
  std::unique_ptr<nn::Embedding> node_emb_, edge_emb_;
  std::unique_ptr<nn::Linear> node_lin_, edge_lin_, pe_lin_, rwse_lin_;
  std::unique_ptr<nn::Dropout> in_drop_;
  std::vector<std::unique_ptr<GraphTransformerLayer>> layers_;
  std::unique_ptr<nn::MLP> head_;
};

}  // namespace gt
}  // namespace lapis
