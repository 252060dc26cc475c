// The graph transformer layer and model (models/gt): parameter counts of the published configs,
// F64 central-difference gradient checks of the layer (edge / no-edge, BatchNorm / LayerNorm) and
// of the whole model, invariance of graph-level outputs to node renumbering, CPU vs CUDA, and
// config validation errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <numeric>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "graph/batch.h"
#include "graph/graph.h"
#include "models/gt/graph_transformer.h"
#include "models/gt/graph_transformer_layer.h"
#include "models/gt/trainer.h"
#include "tests/common/test_util.h"

namespace lapis {
namespace gt {
namespace {

using testing::all_close;
using testing::dot;
using testing::expect_error_mentions;
using testing::gradient_matches;

// A random directed graph on n nodes with about `edges` distinct edges and no self loops.
graph::Graph random_graph(int64_t n, int64_t edges, uint64_t seed, int64_t edge_types = 0,
                          int64_t node_types = 0) {
  Generator gen(seed);
  std::set<std::pair<int32_t, int32_t>> seen;
  std::vector<int32_t> src, dst;
  for (int64_t tries = 0; static_cast<int64_t>(src.size()) < edges && tries < 100 * edges;
       ++tries) {
    const int32_t a = static_cast<int32_t>(random_bits(seed, gen.advance(1)) % n);
    const int32_t b = static_cast<int32_t>(random_bits(seed, gen.advance(1)) % n);
    if (a == b || !seen.insert({a, b}).second) continue;
    src.push_back(a);
    dst.push_back(b);
  }
  const int64_t E = static_cast<int64_t>(src.size());
  Tensor ef, nf;
  if (edge_types > 0) ef = Tensor::randint({E, 1}, gen, 0, edge_types, Dtype::I32);
  if (node_types > 0) nf = Tensor::randint({n, 1}, gen, 0, node_types, Dtype::I32);
  return graph::graph_from_coo(n, src, dst, {}, ef, nf);
}

CsrGraphView view_of(const graph::Graph& g) {
  return make_graph_view(g.in_ptr, g.src, g.out_ptr, g.out_edge, g.out_dst);
}

// Moves BatchNorm / LayerNorm affine parameters (initialised to ones / zeros) away from their
// trivial values so that the gradient checks exercise every term.
void perturb_norms(nn::Module& m, uint64_t seed) {
  Generator gen(seed);
  for (nn::Parameter* p : m.parameters()) {
    if (p->name.find("norm") == std::string::npos) continue;
    Tensor noise = Tensor::randn(p->value.shape(), gen, p->value.dtype(), Device::cpu(), 0.0, 0.3);
    std::vector<double> v = p->value.to_vector<double>();
    const std::vector<double> n = noise.to_vector<double>();
    for (size_t i = 0; i < v.size(); ++i) v[i] += n[i];
    p->value.copy_from(Tensor::from_vector<double>(v, p->value.shape()));
  }
}

// ---- parameter counts ----

TEST(GraphTransformer, ZincParameterCountMatchesReference) {
  GraphTransformerConfig m = builtin_config("zinc").model;
  m.num_node_types = 28;
  m.num_edge_types = 4;
  m.out_dim = 1;
  GraphTransformer model(m);
  // graphdeeplearning/graphtransformer, ZINC, L=10, C=64, LapPE k=8, edge features: 588,929.
  EXPECT_EQ(model.num_parameters(), 588929);
}

TEST(GraphTransformer, PatternParameterCountMatchesReference) {
  GraphTransformerConfig m = builtin_config("pattern").model;
  ASSERT_EQ(m.hidden, 80);
  ASSERT_EQ(m.pe_dim, 2);
  ASSERT_EQ(m.readout, Readout::None);
  m.num_node_types = 3;
  m.num_edge_types = 0;
  m.out_dim = 2;
  GraphTransformer model(m);
  // The reference reports 522,742 for PATTERN without LapPE; the LapPE Linear(2, 80) adds
  // 2 * 80 + 80 = 240.
  EXPECT_EQ(model.num_parameters(), 522742 + 240);
}

// ---- layer gradients (F64, central differences) ----

// edge_out = false: the edge variant without its edge output (a model's last layer): the loss
// sees h only, and the skipped edge branch's parameters must come out with zero gradient.
void check_layer_gradients(bool edges, NormKind norm, bool edge_out = true) {
  SCOPED_TRACE(std::string(edges ? "edge" : "no-edge") + " variant, " + norm_kind_name(norm) +
               (edges && !edge_out ? ", no edge output" : ""));
  const bool with_e_out = edges && edge_out;
  Generator gen(5);
  GraphTransformerLayerOptions o;
  o.channels = 8;  // C
  o.heads = 2;     // H, D = 4
  o.edge_features = edges;
  o.norm = norm;
  GraphTransformerLayer layer(o, gen);
  layer.to(Dtype::F64);
  perturb_norms(layer, 6);
  const graph::Graph g = random_graph(7, 15, 11);
  const CsrGraphView view = view_of(g);
  const int64_t N = g.num_nodes, E = g.num_edges;
  ASSERT_GE(E, 12);
  Generator data(21);
  Tensor h = Tensor::randn({N, 8}, data, Dtype::F64);
  Tensor e = edges ? Tensor::randn({E, 8}, data, Dtype::F64) : Tensor();
  const Tensor G_h = Tensor::randn({N, 8}, data, Dtype::F64);
  const Tensor G_e = edges ? Tensor::randn({E, 8}, data, Dtype::F64) : Tensor();

  auto loss = [&] {
    GraphTransformerLayerCtx ctx;
    Tensor e_out;
    const Tensor h_out = layer.forward(h, e, view, ctx, with_e_out ? &e_out : nullptr);
    return dot(G_h, h_out) + (with_e_out ? dot(G_e, e_out) : 0.0);
  };

  layer.zero_grad();
  GraphTransformerLayerCtx ctx;
  Tensor e_out, de;
  layer.forward(h, e, view, ctx, with_e_out ? &e_out : nullptr);
  const Tensor dh =
      layer.backward(G_h, with_e_out ? G_e : Tensor(), view, ctx, edges ? &de : nullptr);
  std::vector<std::pair<std::string, Tensor>> grads;
  for (nn::Parameter* p : layer.parameters()) grads.push_back({p->name, p->grad.clone()});

  EXPECT_TRUE(gradient_matches(loss, h, dh)) << "dL/dh";
  if (edges) EXPECT_TRUE(gradient_matches(loss, e, de)) << "dL/de";
  // Every parameter (the layer is small: a few thousand forwards of a 7-node graph).
  const std::vector<nn::Parameter*> params = layer.parameters();
  for (size_t i = 0; i < params.size(); ++i) {
    EXPECT_TRUE(gradient_matches(loss, params[i]->value, grads[i].second))
        << "parameter " << grads[i].first;
  }
}

TEST(GraphTransformerLayer, GradientsEdgeBatchNorm) { check_layer_gradients(true, NormKind::Batch); }
TEST(GraphTransformerLayer, GradientsEdgeLayerNorm) { check_layer_gradients(true, NormKind::Layer); }
TEST(GraphTransformerLayer, GradientsEdgeWithoutEdgeOutput) {
  check_layer_gradients(true, NormKind::Batch, /*edge_out=*/false);
}
TEST(GraphTransformerLayer, GradientsNoEdgeBatchNorm) {
  check_layer_gradients(false, NormKind::Batch);
}
TEST(GraphTransformerLayer, GradientsNoEdgeLayerNorm) {
  check_layer_gradients(false, NormKind::Layer);
}

TEST(GraphTransformerLayer, RejectsBadShapes) {
  Generator gen(1);
  GraphTransformerLayerOptions o;
  o.channels = 8;
  o.heads = 2;
  GraphTransformerLayer layer(o, gen);
  const graph::Graph g = random_graph(5, 8, 3);
  GraphTransformerLayerCtx ctx;
  Tensor e_out;
  expect_error_mentions(
      [&] {
        layer.forward(Tensor::zeros({5, 6}), Tensor::zeros({g.num_edges, 8}), view_of(g), ctx,
                      &e_out);
      },
      {"GraphTransformerLayer::forward", "h"});
  expect_error_mentions(
      [&] { layer.forward(Tensor::zeros({5, 8}), Tensor(), view_of(g), ctx, &e_out); },
      {"GraphTransformerLayer::forward", "e"});
  expect_error_mentions(
      [&] {
        GraphTransformerLayerOptions bad = o;
        bad.channels = 9;
        GraphTransformerLayer l(bad, gen);
      },
      {"channels", "9", "heads"});
}

// ---- the whole model ----

GraphTransformerConfig tiny_config(NormKind norm = NormKind::Batch) {
  GraphTransformerConfig c;
  c.layers = 2;
  c.hidden = 8;
  c.heads = 2;
  c.norm = norm;
  c.num_node_types = 5;
  c.num_edge_types = 3;
  c.pe_dim = 3;
  c.readout = Readout::Mean;
  c.out_dim = 2;
  c.seed = 3;
  return c;
}

// A batch of small graphs with node types, edge types and a LapPE-like [N, 3] extra, plus the
// model input built from it (as the trainer builds it). The batch keeps the tensors alive.
struct TinyBatch {
  graph::GraphBatch batch;
  GraphTransformerInput input;
};

TinyBatch make_batch(const std::vector<graph::Graph>& graphs, const std::vector<Tensor>& pes,
                     Dtype pe_dtype, Device device) {
  std::vector<graph::GraphSample> samples(graphs.size());
  for (size_t i = 0; i < graphs.size(); ++i) {
    samples[i].graph = graphs[i];
    samples[i].node_extras.push_back(pes[i].to(pe_dtype));
  }
  std::vector<const graph::GraphSample*> ptrs;
  for (const auto& s : samples) ptrs.push_back(&s);
  TinyBatch t;
  t.batch = graph::batch_samples(ptrs).to(device);
  const graph::Graph& g = t.batch.graph;
  t.input.graph = view_of(g);
  t.input.node_x = g.node_features.reshape({g.num_nodes});
  t.input.edge_x = g.edge_features.reshape({g.num_edges});
  t.input.pe = t.batch.node_extras[0];
  t.input.node_ptr = t.batch.node_ptr;
  return t;
}

std::vector<graph::Graph> tiny_graphs() {
  return {random_graph(7, 15, 31, 3, 5), random_graph(5, 9, 32, 3, 5),
          random_graph(6, 11, 33, 3, 5)};
}

std::vector<Tensor> tiny_pes(const std::vector<graph::Graph>& graphs, uint64_t seed) {
  Generator gen(seed);
  std::vector<Tensor> pes;
  for (const auto& g : graphs) pes.push_back(Tensor::randn({g.num_nodes, 3}, gen, Dtype::F64));
  return pes;
}

void check_model_gradients(NormKind norm) {
  SCOPED_TRACE(norm_kind_name(norm));
  GraphTransformer model(tiny_config(norm));
  model.to(Dtype::F64);
  perturb_norms(model, 8);
  const auto graphs = tiny_graphs();
  const TinyBatch b = make_batch(graphs, tiny_pes(graphs, 4), Dtype::F64, Device::cpu());
  Generator gen(9);
  const Tensor G = Tensor::randn({3, 2}, gen, Dtype::F64);  // [B, out_dim]
  auto loss = [&] {
    GraphTransformerCtx ctx;
    return dot(G, model.forward(b.input, ctx));
  };
  model.zero_grad();
  GraphTransformerCtx ctx;
  const Tensor out = model.forward(b.input, ctx);
  ASSERT_EQ(out.shape(), (Shape{3, 2}));
  model.backward(G, ctx);
  const std::vector<nn::Parameter*> params = model.parameters();
  std::vector<Tensor> grads;
  for (nn::Parameter* p : params) grads.push_back(p->grad.clone());
  // The parameters the brief names (embedding rows, a Q weight, the head) and in fact all.
  std::set<std::string> names;
  for (size_t i = 0; i < params.size(); ++i) {
    names.insert(params[i]->name);
    EXPECT_TRUE(gradient_matches(loss, params[i]->value, grads[i], 1e-6, 1e-6, 200))
        << "parameter " << params[i]->name;
  }
  for (const char* n : {"node_embedding.weight", "edge_embedding.weight", "lap_pe.weight",
                        "layers.0.Q.weight", "layers.1.E.weight", "head.layers.2.weight"}) {
    EXPECT_TRUE(names.count(n)) << "no parameter named " << n;
  }
}

TEST(GraphTransformer, GradientsBatchNorm) { check_model_gradients(NormKind::Batch); }
TEST(GraphTransformer, GradientsLayerNorm) { check_model_gradients(NormKind::Layer); }

// Renumbers the nodes of g by perm (old id i -> perm[i]); edges and features follow.
graph::Graph permute_graph(const graph::Graph& g, const std::vector<int32_t>& perm) {
  const std::vector<int32_t> src = g.src.to_vector<int32_t>(), dst = g.dst.to_vector<int32_t>();
  std::vector<int32_t> ps(src.size()), pd(dst.size());
  for (size_t k = 0; k < src.size(); ++k) {
    ps[k] = perm[static_cast<size_t>(src[k])];
    pd[k] = perm[static_cast<size_t>(dst[k])];
  }
  const std::vector<int32_t> nf = g.node_features.to_vector<int32_t>();
  std::vector<int32_t> pnf(nf.size());
  for (size_t i = 0; i < nf.size(); ++i) pnf[static_cast<size_t>(perm[i])] = nf[i];
  return graph::graph_from_coo(g.num_nodes, ps, pd, {}, g.edge_features.clone(),
                               Tensor::from_vector<int32_t>(pnf, {g.num_nodes, 1}));
}

Tensor permute_rows(const Tensor& x, const std::vector<int32_t>& perm) {
  const int64_t n = x.size(0), c = x.size(1);
  const std::vector<double> v = x.to_vector<double>();
  std::vector<double> out(v.size());
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < c; ++j)
      out[static_cast<size_t>(perm[static_cast<size_t>(i)] * c + j)] = v[static_cast<size_t>(i * c + j)];
  return Tensor::from_vector<double>(out, {n, c});
}

TEST(GraphTransformer, GraphOutputInvariantToNodePermutation) {
  const auto graphs = tiny_graphs();
  const auto pes = tiny_pes(graphs, 4);
  std::vector<graph::Graph> pgraphs;
  std::vector<Tensor> ppes;
  for (size_t b = 0; b < graphs.size(); ++b) {
    std::vector<int32_t> perm(static_cast<size_t>(graphs[b].num_nodes));
    std::iota(perm.begin(), perm.end(), 0);
    std::reverse(perm.begin(), perm.end());
    std::rotate(perm.begin(), perm.begin() + 2, perm.end());  // not an involution
    pgraphs.push_back(permute_graph(graphs[b], perm));
    ppes.push_back(permute_rows(pes[b], perm));
  }
  const TinyBatch a = make_batch(graphs, pes, Dtype::F32, Device::cpu());
  const TinyBatch p = make_batch(pgraphs, ppes, Dtype::F32, Device::cpu());
  // The renumbered batch really is different (else the test proves nothing).
  EXPECT_FALSE(testing::bitwise_equal(a.batch.graph.src, p.batch.graph.src));
  for (NormKind norm : {NormKind::Batch, NormKind::Layer}) {
    GraphTransformer model(tiny_config(norm));
    for (bool training : {false, true}) {
      SCOPED_TRACE(std::string(norm_kind_name(norm)) + (training ? " training" : " eval"));
      model.train(training);
      GraphTransformerCtx ca, cp;
      const Tensor out_a = model.forward(a.input, ca);
      const Tensor out_p = model.forward(p.input, cp);
      ASSERT_EQ(out_a.shape(), (Shape{3, 2}));
      // f32; only the summation order differs.
      EXPECT_TRUE(all_close(out_p, out_a, 1e-5, 1e-5));
    }
  }
}

TEST(GraphTransformer, RejectsBadInputs) {
  GraphTransformer model(tiny_config());
  const auto graphs = tiny_graphs();
  TinyBatch b = make_batch(graphs, tiny_pes(graphs, 4), Dtype::F32, Device::cpu());
  GraphTransformerCtx ctx;
  GraphTransformerInput in = b.input;
  in.pe = Tensor();
  expect_error_mentions([&] { model.forward(in, ctx); }, {"GraphTransformer::forward", "pe"});
  in = b.input;
  in.edge_x = Tensor::zeros({3}, Dtype::I32);
  expect_error_mentions([&] { model.forward(in, ctx); }, {"GraphTransformer::forward", "edge_x"});
}

// ---- config validation ----

TEST(GraphTransformerConfig, BadValuesNameTheField) {
  auto with = [](const std::function<void(GraphTransformerConfig&)>& edit) {
    GraphTransformerConfig c = tiny_config();
    edit(c);
    return c;
  };
  expect_error_mentions(
      [&] { GraphTransformer m(with([](GraphTransformerConfig& c) { c.hidden = 30, c.heads = 8; })); },
      {"hidden", "30", "heads", "8"});
  expect_error_mentions(
      [&] { with([](GraphTransformerConfig& c) { c.layers = 0; }).validate(); },
      {"layers", "0"});
  expect_error_mentions(
      [&] { with([](GraphTransformerConfig& c) { c.dropout = 1.5; }).validate(); },
      {"dropout", "1.5"});
  expect_error_mentions(
      [&] { with([](GraphTransformerConfig& c) { c.in_feat_dropout = -0.5; }).validate(); },
      {"in_feat_dropout", "-0.5"});
  expect_error_mentions(
      [&] { with([](GraphTransformerConfig& c) { c.node_in_dim = 4; }).validate(); },
      {"num_node_types", "node_in_dim"});
  expect_error_mentions(
      [&] {
        with([](GraphTransformerConfig& c) {
          c.num_node_types = 0;
          c.node_in_dim = 0;
        }).validate();
      },
      {"num_node_types", "node_in_dim"});
  expect_error_mentions(
      [&] { with([](GraphTransformerConfig& c) { c.edge_in_dim = 2; }).validate(); },
      {"num_edge_types", "edge_in_dim"});
  expect_error_mentions(
      [&] { with([](GraphTransformerConfig& c) { c.out_dim = 0; }).validate(); },
      {"out_dim", "0"});
  expect_error_mentions([] { parse_readout("max"); }, {"readout", "max"});
  expect_error_mentions([] { parse_norm_kind("group"); }, {"norm", "group"});
}

// ---- CPU vs CUDA ----

TEST(GraphTransformerCuda, ForwardBackwardMatchesCpu) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  const auto graphs = tiny_graphs();
  const auto pes = tiny_pes(graphs, 4);
  for (NormKind norm : {NormKind::Batch, NormKind::Layer}) {
    SCOPED_TRACE(norm_kind_name(norm));
    GraphTransformer cpu(tiny_config(norm)), gpu(tiny_config(norm));
    gpu.to(Device::cuda());
    const TinyBatch bc = make_batch(graphs, pes, Dtype::F32, Device::cpu());
    const TinyBatch bg = make_batch(graphs, pes, Dtype::F32, Device::cuda());
    for (bool training : {true, false}) {
      cpu.train(training);
      gpu.train(training);
      cpu.zero_grad();
      gpu.zero_grad();
      GraphTransformerCtx cc, cg;
      const Tensor oc = cpu.forward(bc.input, cc);
      const Tensor og = gpu.forward(bg.input, cg);
      // f32: different summation orders and fused kernels; atol 1e-5, rtol 1e-3.
      EXPECT_TRUE(all_close(og.to(Device::cpu()), oc, 1e-5, 1e-3)) << "output";
      Generator gen(2);
      const Tensor G = Tensor::randn(oc.shape(), gen);
      cpu.backward(G, cc);
      gpu.backward(G.to(Device::cuda()), cg);
      const auto pc = cpu.parameters(), pg = gpu.parameters();
      ASSERT_EQ(pc.size(), pg.size());
      for (size_t i = 0; i < pc.size(); ++i) {
        EXPECT_TRUE(all_close(pg[i]->grad.to(Device::cpu()), pc[i]->grad, 1e-5, 1e-3))
            << "grad of " << pc[i]->name << (training ? " (training)" : " (eval)");
      }
    }
  }
}

}  // namespace
}  // namespace gt
}  // namespace lapis
