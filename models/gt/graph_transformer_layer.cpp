#include "models/gt/graph_transformer_layer.h"

#include "kernels/elementwise.h"
#include "kernels/launch_batch.h"
#include "kernels/matmul.h"

namespace lapis {
namespace gt {

NormKind parse_norm_kind(const std::string& name) {
  if (name == "batch") return NormKind::Batch;
  if (name == "layer") return NormKind::Layer;
  LAPIS_FAIL("parse_norm_kind", "unknown norm '", name, "' (expected batch or layer)");
}

const char* norm_kind_name(NormKind kind) { return kind == NormKind::Batch ? "batch" : "layer"; }

Norm::Norm(NormKind kind, int64_t channels) : kind_(kind) {
  if (kind == NormKind::Batch) {
    batch_ = std::make_unique<nn::BatchNorm1d>(channels);
    register_child("bn", batch_.get());
  } else {
    layer_ = std::make_unique<nn::LayerNorm>(channels);
    register_child("ln", layer_.get());
  }
}

Tensor Norm::forward(const Tensor& x, NormCtx& ctx) {
  return kind_ == NormKind::Batch ? batch_->forward(x, ctx.batch) : layer_->forward(x, ctx.layer);
}

Tensor Norm::backward(const Tensor& dL_dout, const NormCtx& ctx) {
  return kind_ == NormKind::Batch ? batch_->backward(dL_dout, ctx.batch)
                                  : layer_->backward(dL_dout, ctx.layer);
}

namespace {
uint64_t draw_seed(Generator& gen) { return random_bits(gen.seed(), gen.advance(1)); }
}  // namespace

GraphTransformerLayer::GraphTransformerLayer(const GraphTransformerLayerOptions& options,
                                             Generator& gen)
    : options_(options) {
  const int64_t C = options.channels;
  LAPIS_CHECK(C > 0 && options.heads > 0 && C % options.heads == 0, "GraphTransformerLayer",
              "channels (", C, ") must be a positive multiple of heads (", options.heads, ")");
  LAPIS_CHECK(options.dropout >= 0.0 && options.dropout < 1.0, "GraphTransformerLayer",
              "dropout must be in [0, 1), got ", options.dropout);
  q_ = std::make_unique<nn::Linear>(C, C, false, gen);
  k_ = std::make_unique<nn::Linear>(C, C, false, gen);
  v_ = std::make_unique<nn::Linear>(C, C, false, gen);
  o_h_ = std::make_unique<nn::Linear>(C, C, true, gen);
  drop_h_ = std::make_unique<nn::Dropout>(options.dropout, draw_seed(gen));
  norm1_h_ = std::make_unique<Norm>(options.norm, C);
  norm2_h_ = std::make_unique<Norm>(options.norm, C);
  ffn_h_ = std::make_unique<nn::MLP>(std::vector<int64_t>{C, 2 * C, C}, Activation::ReLU,
                                     options.dropout, gen);
  register_child("Q", q_.get());
  register_child("K", k_.get());
  register_child("V", v_.get());
  register_child("O_h", o_h_.get());
  register_child("drop_h", drop_h_.get());
  register_child("norm1_h", norm1_h_.get());
  register_child("ffn_h", ffn_h_.get());
  register_child("norm2_h", norm2_h_.get());
  if (options.edge_features) {
    e_ = std::make_unique<nn::Linear>(C, C, false, gen);
    o_e_ = std::make_unique<nn::Linear>(C, C, true, gen);
    drop_e_ = std::make_unique<nn::Dropout>(options.dropout, draw_seed(gen));
    norm1_e_ = std::make_unique<Norm>(options.norm, C);
    norm2_e_ = std::make_unique<Norm>(options.norm, C);
    ffn_e_ = std::make_unique<nn::MLP>(std::vector<int64_t>{C, 2 * C, C}, Activation::ReLU,
                                       options.dropout, gen);
    register_child("E", e_.get());
    register_child("O_e", o_e_.get());
    register_child("drop_e", drop_e_.get());
    register_child("norm1_e", norm1_e_.get());
    register_child("ffn_e", ffn_e_.get());
    register_child("norm2_e", norm2_e_.get());
  }
}

void GraphTransformerLayer::pack_qkv() {
  nn::Parameter* parts[3] = {&q_->weight(), &k_->weight(), &v_->weight()};
  const int64_t C = options_.channels;
  const Tensor& q = parts[0]->value;
  bool packed = qkv_weight_.defined() && qkv_weight_.device() == q.device() &&
                qkv_weight_.dtype() == q.dtype() && qkv_grad_.defined() &&
                qkv_grad_.device() == q.device() && qkv_grad_.dtype() == q.dtype();
  for (int i = 0; packed && i < 3; ++i) {
    packed = parts[i]->value.raw_data() == qkv_weight_.slice(i * C, (i + 1) * C).raw_data() &&
             parts[i]->grad.raw_data() == qkv_grad_.slice(i * C, (i + 1) * C).raw_data();
  }
  if (packed) return;
  qkv_weight_ = Tensor::empty({3 * C, C}, q.dtype(), q.device());
  qkv_grad_ = Tensor::empty({3 * C, C}, q.dtype(), q.device());
  for (int i = 0; i < 3; ++i) {
    Tensor value = qkv_weight_.slice(i * C, (i + 1) * C);
    Tensor grad = qkv_grad_.slice(i * C, (i + 1) * C);
    value.copy_from(parts[i]->value);
    grad.copy_from(parts[i]->grad);
    parts[i]->value = value;
    parts[i]->grad = grad;
  }
}

std::vector<nn::Dropout*> GraphTransformerLayer::dropouts() {
  std::vector<nn::Dropout*> out;
  if (options_.dropout <= 0.0) return out;
  out.push_back(drop_h_.get());
  if (ffn_h_->dropout(0)) out.push_back(ffn_h_->dropout(0));
  if (options_.edge_features) {
    out.push_back(drop_e_.get());
    if (ffn_e_->dropout(0)) out.push_back(ffn_e_->dropout(0));
  }
  return out;
}

namespace {
// Runs f inside a LaunchBatch when `batched` (the independent node and edge products or
// BatchNorms of one step share launches), else directly.
template <typename F>
void run_batched(bool batched, F&& f) {
  if (!batched) {
    f();
    return;
  }
  LaunchBatch batch;
  f();
  batch.run();
}
}  // namespace

bool GraphTransformerLayer::branches_batchable() const {
  // Each step of a batched pair must be exactly one queued op (a product or a BatchNorm): no
  // dropout launches in between, and the FFN's ReLU runs inside its products. (LayerNorm is not
  // queued; its two calls just run one after the other.)
  return options_.dropout == 0.0 && ffn_h_->single_op_layers() &&
         (!ffn_e_ || ffn_e_->single_op_layers());
}

Tensor GraphTransformerLayer::forward(const Tensor& h, const Tensor& e, const CsrGraphView& graph,
                                      GraphTransformerLayerCtx& ctx, Tensor* e_out) {
  const int64_t N = graph.num_nodes, E = graph.num_edges, C = options_.channels;
  const int64_t H = options_.heads, D = C / H;
  check_shape("GraphTransformerLayer::forward", "h", h, {N, C});
  if (options_.edge_features) {
    check_shape("GraphTransformerLayer::forward", "e", e, {E, C});
  }
  const bool edge = options_.edge_features && e_out != nullptr;
  const bool batched = branches_batchable();
  ctx.edge_branch = edge;
  pack_qkv();
  Tensor qkv = Tensor::empty({3, N, C}, h.dtype(), h.device());
  ctx.p = Tensor();
  run_batched(batched, [&] {
    linear_forward(qkv, h, qkv_weight_, Tensor());
    if (options_.edge_features) ctx.p = e_->forward(e, ctx.e_ctx).reshape({E, H, D});
  });
  ctx.h = h;
  ctx.q = qkv.slice(0, 1).reshape({N, H, D});
  ctx.k = qkv.slice(1, 2).reshape({N, H, D});
  ctx.v = qkv.slice(2, 3).reshape({N, H, D});
  // Without the edge branch the attention does not write its edge output.
  ctx.edge_attn = edge ? Tensor::empty({E, H, D}, h.dtype(), h.device()) : Tensor();
  ctx.attn = Tensor::empty({N, H, D}, h.dtype(), h.device());
  ctx.attention = make_graph_attention_context(N, E, H, h.dtype(), h.device());
  graph_attention_forward(ctx.attn, ctx.edge_attn, ctx.attention, graph, ctx.q, ctx.k, ctx.v,
                          ctx.p);

  // h1 = Norm(h + O_h(dropout(attn))), h2 = Norm(h1 + FFN(h1)); the edge branch (e1, e2) the
  // same, step by step next to the node branch.
  Tensor a = drop_h_->forward(ctx.attn.reshape({N, C}), ctx.drop_h);
  Tensor t = edge ? drop_e_->forward(ctx.edge_attn.reshape({E, C}), ctx.drop_e) : Tensor();
  Tensor h1, e1;
  run_batched(batched, [&] {
    h1 = o_h_->forward(a, ctx.o_h_ctx, /*residual=*/h);
    if (edge) e1 = o_e_->forward(t, ctx.o_e_ctx, /*residual=*/e);
  });
  run_batched(batched, [&] {
    h1 = norm1_h_->forward(h1, ctx.norm1_h);
    if (edge) e1 = norm1_e_->forward(e1, ctx.norm1_e);
  });
  ffn_h_->prepare_ctx(ctx.ffn_h);
  if (edge) ffn_e_->prepare_ctx(ctx.ffn_e);
  Tensor h2 = h1, e2 = e1;
  const size_t ffn_layers = static_cast<size_t>(ffn_h_->num_layers());
  for (size_t i = 0; i < ffn_layers; ++i) {
    const bool last = i + 1 == ffn_layers;
    run_batched(batched, [&] {
      h2 = ffn_h_->forward_layer(i, h2, ctx.ffn_h, last ? h1 : Tensor());
      if (edge) e2 = ffn_e_->forward_layer(i, e2, ctx.ffn_e, last ? e1 : Tensor());
    });
  }
  run_batched(batched, [&] {
    h2 = norm2_h_->forward(h2, ctx.norm2_h);
    if (edge) *e_out = norm2_e_->forward(e2, ctx.norm2_e);
  });
  return h2;
}

Tensor GraphTransformerLayer::backward(const Tensor& dL_dh_out, const Tensor& dL_de_out,
                                       const CsrGraphView& graph,
                                       const GraphTransformerLayerCtx& ctx, Tensor* dL_de_in) {
  const int64_t N = graph.num_nodes, E = graph.num_edges, C = options_.channels;
  const int64_t H = options_.heads, D = C / H;
  check_shape("GraphTransformerLayer::backward", "dL_dh_out", dL_dh_out, {N, C});
  const bool edge = ctx.edge_branch;
  const bool batched = branches_batchable();
  if (options_.edge_features) {
    LAPIS_CHECK(dL_de_in != nullptr, "GraphTransformerLayer::backward",
                "the edge variant needs dL_de_in");
  }
  if (edge) check_shape("GraphTransformerLayer::backward", "dL_de_out", dL_de_out, {E, C});

  // Both paths reversed, step by step. The residual gradient flows to both branches of each
  // sum; the second term is added inside the product that forms the first (into a new tensor:
  // the gradients that feed weight gradients stay intact, as DeferredWeightGrads needs).
  Tensor g2, ge2;  // d(h1 + FFN(h1)), d(e1 + FFN(e1))
  run_batched(batched, [&] {
    g2 = norm2_h_->backward(dL_dh_out, ctx.norm2_h);
    if (edge) ge2 = norm2_e_->backward(dL_de_out, ctx.norm2_e);
  });
  Tensor dh1 = g2, de1 = ge2;
  for (size_t i = static_cast<size_t>(ffn_h_->num_layers()); i-- > 0;) {
    run_batched(batched, [&] {
      dh1 = ffn_h_->backward_layer(i, dh1, ctx.ffn_h, /*plus=*/g2);
      if (edge) de1 = ffn_e_->backward_layer(i, de1, ctx.ffn_e, /*plus=*/ge2);
    });
  }
  Tensor g1, ge1;  // d(h + O_h(a)), d(e + O_e(t))
  run_batched(batched, [&] {
    g1 = norm1_h_->backward(dh1, ctx.norm1_h);
    if (edge) ge1 = norm1_e_->backward(de1, ctx.norm1_e);
  });
  Tensor da, dt;
  run_batched(batched, [&] {
    da = o_h_->backward(g1, ctx.o_h_ctx);
    if (edge) dt = o_e_->backward(ge1, ctx.o_e_ctx);
  });
  Tensor dattn = drop_h_->backward(da, ctx.drop_h).reshape({N, H, D});
  Tensor dedge_attn = edge ? drop_e_->backward(dt, ctx.drop_e).reshape({E, H, D}) : Tensor();

  Tensor dp = options_.edge_features
                  ? Tensor::empty({E, H, D}, dL_dh_out.dtype(), dL_dh_out.device())
                  : Tensor();
  Tensor dqkv = Tensor::empty({3, N, C}, dL_dh_out.dtype(), dL_dh_out.device());
  Tensor dq = dqkv.slice(0, 1).reshape({N, H, D});
  Tensor dk = dqkv.slice(1, 2).reshape({N, H, D});
  Tensor dv = dqkv.slice(2, 3).reshape({N, H, D});
  graph_attention_backward(dq, dk, dv, dp, dattn, dedge_attn, graph, ctx.q, ctx.k, ctx.v, ctx.p,
                           ctx.attn, ctx.attention);
  pack_qkv();
  Tensor no_bias;
  Tensor dh_in = Tensor::empty({N, C}, dL_dh_out.dtype(), dL_dh_out.device());
  run_batched(batched, [&] {
    linear_backward(dh_in, qkv_grad_, no_bias, dqkv, ctx.h, qkv_weight_, /*dx_plus=*/g1);
    // Without the edge branch e reaches the output only through the attention (ge1 undefined).
    if (options_.edge_features) {
      *dL_de_in = e_->backward(dp.reshape({E, C}), ctx.e_ctx, false, /*plus=*/ge1);
    }
  });
  return dh_in;
}

}  // namespace gt
}  // namespace lapis
