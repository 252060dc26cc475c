// Fused graph attention (kernels/graph_attention.h): hand values, naive reference vs the
// multi-threaded CPU path, F64 gradient checks of every input and of the edge-output path,
// normalised rows summing to one, empty graphs, errors, and CPU vs CUDA (+ determinism).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "kernels/cpu/graph_attention_cpu.h"
#include "kernels/graph_attention.h"
#include "tests/common/test_util.h"
#include "tests/kernels/random_graph.h"

namespace lapis {
namespace {

using testing::all_close;
using testing::bitwise_equal;
using testing::dot;
using testing::gradient_matches;

struct Problem {
  CsrGraphView g;
  Tensor q, k, v, e;  // e undefined for the variant without edge features
  Tensor go, gt;      // upstream gradients of out and edge_out (gt may be undefined)
  int64_t h = 0, d = 0;
};

Problem make_problem(const CsrGraphView& g, int64_t h, int64_t d, bool with_e, bool with_gt,
                     Dtype dtype, uint64_t seed, double stddev = 1.0) {
  Generator gen(seed);
  Problem p;
  p.g = g;
  p.h = h;
  p.d = d;
  const int64_t n = g.num_nodes, e = g.num_edges;
  p.q = Tensor::randn({n, h, d}, gen, dtype, Device::cpu(), 0.0, stddev);
  p.k = Tensor::randn({n, h, d}, gen, dtype, Device::cpu(), 0.0, stddev);
  p.v = Tensor::randn({n, h, d}, gen, dtype);
  if (with_e) p.e = Tensor::randn({e, h, d}, gen, dtype, Device::cpu(), 0.0, stddev);
  p.go = Tensor::randn({n, h, d}, gen, dtype);
  if (with_gt) p.gt = Tensor::randn({e, h, d}, gen, dtype);
  return p;
}

struct Result {
  Tensor out, edge_out, score, z, dq, dk, dv, de;
};

enum class Path { Naive, Parallel, Dispatch };

// The degree bounds a view hands the CUDA kernels (-1: unknown, rows may be split).
struct DegreeBounds {
  int64_t in = -1, out = -1;
};

// Runs forward + backward on `device` (Dispatch) or through a CPU path; results on the CPU.
Result run(const Problem& p, Path path, Device device = Device::cpu(), DegreeBounds bounds = {}) {
  CsrGraphView g = testing::graph_to(p.g, device);
  g.max_in_degree = bounds.in;
  g.max_out_degree = bounds.out;
  const int64_t n = g.num_nodes, e = g.num_edges;
  const Dtype dt = p.q.dtype();
  auto to = [&](const Tensor& t) { return t.defined() ? t.to(device) : Tensor(); };
  const Tensor q = to(p.q), k = to(p.k), v = to(p.v), ep = to(p.e), go = to(p.go), gt = to(p.gt);
  Tensor out = Tensor::full({n, p.h, p.d}, 77.0, dt, device);
  Tensor edge_out = Tensor::full({e, p.h, p.d}, 77.0, dt, device);
  GraphAttentionContext ctx = make_graph_attention_context(n, e, p.h, dt, device);
  Tensor dq = Tensor::full({n, p.h, p.d}, 77.0, dt, device), dk = dq.clone(), dv = dq.clone();
  Tensor de = ep.defined() ? Tensor::full({e, p.h, p.d}, 77.0, dt, device) : Tensor();
  switch (path) {
    case Path::Naive:
      cpu::graph_attention_forward(out, edge_out, ctx, g, q, k, v, ep);
      cpu::graph_attention_backward(dq, dk, dv, de, go, gt, g, q, k, v, ep, out, ctx);
      break;
    case Path::Parallel:
      cpu::graph_attention_forward_parallel(out, edge_out, ctx, g, q, k, v, ep);
      cpu::graph_attention_backward_parallel(dq, dk, dv, de, go, gt, g, q, k, v, ep, out, ctx);
      break;
    case Path::Dispatch:
      graph_attention_forward(out, edge_out, ctx, g, q, k, v, ep);
      graph_attention_backward(dq, dk, dv, de, go, gt, g, q, k, v, ep, out, ctx);
      break;
  }
  const Device c = Device::cpu();
  return {out.to(c),      edge_out.to(c), ctx.score.to(c), ctx.z.to(c),
          dq.to(c),       dk.to(c),       dv.to(c),        de.defined() ? de.to(c) : Tensor()};
}

::testing::AssertionResult results_close(const Result& a, const Result& b, double atol,
                                         double rtol) {
  const std::vector<std::pair<const char*, std::pair<Tensor, Tensor>>> pairs = {
      {"out", {a.out, b.out}}, {"edge_out", {a.edge_out, b.edge_out}}, {"z", {a.z, b.z}},
      {"dq", {a.dq, b.dq}},    {"dk", {a.dk, b.dk}},                   {"dv", {a.dv, b.dv}},
      {"de", {a.de, b.de}}};
  for (const auto& [name, t] : pairs) {
    if (!t.first.defined() && !t.second.defined()) continue;
    auto r = all_close(t.first, t.second, atol, rtol);
    if (!r) return ::testing::AssertionFailure() << name << ": " << r.message();
  }
  return ::testing::AssertionSuccess();
}

// ---------------------------------------------------------------- hand values

TEST(GraphAttention, HandComputedTwoNodes) {
  // Edges 0->1 and 1->1, H = 1, D = 1: c = 1; node 0 has no incoming edge.
  CsrGraphView g = testing::graph_from_edges(2, {{0, 1}, {1, 1}});
  auto f = [](std::vector<double> v, Shape s) { return Tensor::from_vector<double>(v, s); };
  Problem p;
  p.g = g;
  p.h = 1;
  p.d = 1;
  p.q = f({0.5, 2.0}, {2, 1, 1});
  p.k = f({1.0, 3.0}, {2, 1, 1});
  p.v = f({10.0, -4.0}, {2, 1, 1});
  p.e = f({0.5, 1.0}, {2, 1, 1});  // edge 0 = (0->1), edge 1 = (1->1)
  p.go = f({1.0, 1.0}, {2, 1, 1});
  Result r = run(p, Path::Naive);
  const double s0 = 1.0 * 2.0 * 0.5, s1 = 3.0 * 2.0 * 1.0;  // s1 = 6 is clamped to 5
  const double w0 = std::exp(s0), w1 = std::exp(5.0), z = w0 + w1;
  const double out1 = (w0 * 10.0 + w1 * -4.0) / (z + 1e-6);
  EXPECT_TRUE(all_close(r.out, f({0.0, out1}, {2, 1, 1}), 1e-12, 1e-12));
  EXPECT_TRUE(all_close(r.edge_out, f({s0, s1}, {2, 1, 1}), 1e-12, 1e-12));
  EXPECT_TRUE(all_close(r.score, f({s0, s1}, {2, 1}), 1e-12, 1e-12));
  EXPECT_TRUE(all_close(r.z, f({0.0, z}, {2, 1}), 1e-12, 1e-12));
  // Edge 1 is clamped: its score gets no gradient, so dQ only comes through edge 0.
  const double dw0 = (10.0 - out1) / (z + 1e-6);
  const double ds0 = dw0 * w0;
  EXPECT_TRUE(all_close(r.dq, f({0.0, ds0 * 1.0 * 0.5}, {2, 1, 1}), 1e-12, 1e-9));
  EXPECT_TRUE(all_close(r.dv, f({w0 / (z + 1e-6), w1 / (z + 1e-6)}, {2, 1, 1}), 1e-12, 1e-9));
}

// ---------------------------------------------------------------- invariants

TEST(GraphAttention, NormalisedRowsSumToOne) {
  Problem p = make_problem(testing::random_graph(257, 4.0, 3, 1000), 8, 8, true, false,
                           Dtype::F64, 4);
  Result r = run(p, Path::Dispatch);
  const auto ptr = p.g.in_ptr.to_vector<int32_t>();
  const auto score = r.score.to_vector<double>();
  const auto z = r.z.to_vector<double>();
  int64_t rows_with_edges = 0;
  for (int64_t i = 0; i < p.g.num_nodes; ++i) {
    if (ptr[i] == ptr[i + 1]) continue;
    ++rows_with_edges;
    for (int64_t h = 0; h < p.h; ++h) {
      double sum = 0;
      for (int32_t e = ptr[i]; e < ptr[i + 1]; ++e) {
        sum += std::exp(std::min(5.0, std::max(-5.0, score[e * p.h + h]))) / (z[i * p.h + h] + 1e-6);
      }
      EXPECT_NEAR(sum, 1.0, 1e-5) << "node " << i << " head " << h;
    }
  }
  EXPECT_GT(rows_with_edges, 0);
}

TEST(GraphAttention, IsolatedNodesGetZero) {
  Problem p = make_problem(testing::random_graph(33, 2.0, 5), 2, 3, true, true, Dtype::F64, 6);
  Result r = run(p, Path::Dispatch);
  const auto ptr = p.g.in_ptr.to_vector<int32_t>();
  const auto out = r.out.to_vector<double>(), dq = r.dq.to_vector<double>();
  for (int64_t i = 0; i < p.g.num_nodes; ++i) {
    if (ptr[i] != ptr[i + 1]) continue;
    for (int64_t x = 0; x < p.h * p.d; ++x) {
      EXPECT_EQ(out[i * p.h * p.d + x], 0.0);
      EXPECT_EQ(dq[i * p.h * p.d + x], 0.0);
    }
  }
}

TEST(GraphAttention, EmptyGraphs) {
  for (int64_t n : {0, 5}) {  // no nodes; nodes but no edges
    Problem p = make_problem(testing::graph_from_edges(n, {}), 2, 4, true, true, Dtype::F32, 1);
    Result r = run(p, Path::Dispatch);
    EXPECT_TRUE(all_close(r.out, Tensor::zeros({n, 2, 4}), 0, 0));
    EXPECT_TRUE(all_close(r.dk, Tensor::zeros({n, 2, 4}), 0, 0));
  }
}

// ---------------------------------------------------------------- naive vs parallel

TEST(GraphAttention, ParallelMatchesNaive) {
  for (int64_t n : testing::odd_sizes()) {
    for (bool with_e : {true, false}) {
      const int64_t hub = n == 257 ? 1000 : 0;
      Problem p = make_problem(testing::random_graph(n, 3.0, n, hub), 3, 5, with_e, with_e,
                               Dtype::F64, 10 + n);
      EXPECT_TRUE(results_close(run(p, Path::Parallel), run(p, Path::Naive), 1e-12, 1e-10))
          << "n = " << n << " with_e = " << with_e;
    }
  }
}

// ---------------------------------------------------------------- gradient checks (F64 CPU)

// loss = <G, out> + <Gt, edge_out> through the naive reference.
void check_gradients(bool with_e, bool with_gt) {
  // These stddevs put a share of the scores outside [-5, 5] (with and without the edge factor),
  // so the clamp's zero gradient is covered as well as the pass-through.
  Problem p = make_problem(testing::random_graph(9, 2.5, 77), 2, 4, with_e, with_gt, Dtype::F64,
                           78, with_e ? 1.6 : 2.5);
  Result r = run(p, Path::Naive);
  const auto scores = r.score.to_vector<double>();
  const int64_t clamped = std::count_if(scores.begin(), scores.end(),
                                        [](double s) { return std::abs(s) > 5.0; });
  const int64_t inside = static_cast<int64_t>(scores.size()) - clamped;
  EXPECT_GT(clamped, 0);
  EXPECT_GT(inside, 0);
  auto loss = [&]() {
    const int64_t n = p.g.num_nodes, e = p.g.num_edges;
    Tensor out = Tensor::empty({n, p.h, p.d}, Dtype::F64);
    Tensor edge_out = Tensor::empty({e, p.h, p.d}, Dtype::F64);
    GraphAttentionContext ctx = make_graph_attention_context(n, e, p.h, Dtype::F64, Device::cpu());
    cpu::graph_attention_forward(out, edge_out, ctx, p.g, p.q, p.k, p.v, p.e);
    return dot(p.go, out) + (p.gt.defined() ? dot(p.gt, edge_out) : 0.0);
  };
  EXPECT_TRUE(gradient_matches(loss, p.q, r.dq)) << "dL_dq";
  EXPECT_TRUE(gradient_matches(loss, p.k, r.dk)) << "dL_dk";
  EXPECT_TRUE(gradient_matches(loss, p.v, r.dv)) << "dL_dv";
  if (with_e) EXPECT_TRUE(gradient_matches(loss, p.e, r.de)) << "dL_de";
}

TEST(GraphAttention, GradientsWithEdgeFeatures) { check_gradients(true, false); }
TEST(GraphAttention, GradientsWithEdgeOutputPath) { check_gradients(true, true); }
TEST(GraphAttention, GradientsWithoutEdgeFeatures) { check_gradients(false, false); }
TEST(GraphAttention, GradientsWithoutEdgeFeaturesEdgeOutputPath) { check_gradients(false, true); }

// ---------------------------------------------------------------- errors

TEST(GraphAttention, Errors) {
  Problem p = make_problem(testing::random_graph(7, 2.0, 1), 2, 4, true, false, Dtype::F32, 2);
  const int64_t n = 7, e = p.g.num_edges;
  Tensor out = Tensor::empty({n, 2, 4}), edge_out = Tensor::empty({e, 2, 4});
  GraphAttentionContext ctx = make_graph_attention_context(n, e, 2, Dtype::F32, Device::cpu());
  testing::expect_error_mentions(
      [&] {
        Tensor bad = Tensor::empty({n, 2, 3});
        graph_attention_forward(out, edge_out, ctx, p.g, p.q, bad, p.v, p.e);
      },
      {"graph_attention_forward", "k", "[7, 2, 3]"});
  testing::expect_error_mentions(
      [&] {
        Tensor bad = p.v.to(Dtype::F64);
        graph_attention_forward(out, edge_out, ctx, p.g, p.q, p.k, bad, p.e);
      },
      {"graph_attention_forward", "v", "f64"});
  testing::expect_error_mentions(
      [&] {
        CsrGraphView g = p.g;
        g.src = g.src.clone();
        g.src.data<int32_t>()[0] = 99;
        graph_attention_forward(out, edge_out, ctx, g, p.q, p.k, p.v, p.e);
      },
      {"graph_attention_forward", "src", "99"});
  testing::expect_error_mentions(
      [&] {
        CsrGraphView g = p.g;
        g.in_ptr = g.in_ptr.to(Dtype::F32);
        graph_attention_forward(out, edge_out, ctx, g, p.q, p.k, p.v, p.e);
      },
      {"graph_attention_forward", "in_ptr"});
  testing::expect_error_mentions(
      [&] {
        Tensor dq = Tensor::empty({n, 2, 4}), dk = dq.clone(), dv = dq.clone(), de;
        graph_attention_backward(dq, dk, dv, de, p.go, Tensor(), p.g, p.q, p.k, p.v, p.e, out,
                                 ctx);
      },
      {"graph_attention_backward", "dL_de"});
}

// The views of CPU graphs carry their largest in-/out-degree (the CUDA kernels' load-balancing
// hint); views of device tensors do not, until set_degree_bounds reads host copies.
TEST(GraphView, DegreeBounds) {
  const CsrGraphView g = testing::graph_from_edges(6, {{0, 1}, {2, 1}, {3, 1}, {0, 4}, {0, 5}});
  EXPECT_EQ(g.max_in_degree, 3);
  EXPECT_EQ(g.max_out_degree, 3);
  EXPECT_EQ(max_segment_length(g.in_ptr), 3);
  EXPECT_EQ(max_segment_length(Tensor::zeros({1}, Dtype::I32)), 0);  // no nodes
  EXPECT_EQ(max_segment_length(Tensor()), -1);
  testing::expect_error_mentions([] { max_segment_length(Tensor::zeros({3}, Dtype::F32)); },
                                 {"max_segment_length", "i32"});
  const CsrGraphView empty = testing::graph_from_edges(4, {});
  EXPECT_EQ(empty.max_in_degree, 0);
  // A malformed pointer array leaves the bound unknown (the op's checks report it, by name).
  const CsrGraphView bad = make_graph_view(g.in_ptr.to(Dtype::F32), g.src, Tensor(), Tensor(),
                                           Tensor());
  EXPECT_EQ(bad.max_in_degree, -1);
  EXPECT_EQ(bad.max_out_degree, -1);
  CsrGraphView h;
  set_degree_bounds(h, g.in_ptr, g.out_ptr);
  EXPECT_EQ(h.max_in_degree, 3);
  EXPECT_EQ(h.max_out_degree, 3);
}

// ---------------------------------------------------------------- CUDA

// f32 tolerance: sums of up to ~1000 terms of O(1) products in a different order (lane partial
// sums + shuffles vs a sequential loop), exp of the scores: atol 1e-4, rtol 1e-4.
TEST(GraphAttentionCuda, MatchesCpu) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  const std::vector<std::pair<int64_t, int64_t>> heads_dims = {{8, 8}, {8, 16}, {3, 5}, {1, 33},
                                                               {2, 128}};
  for (int64_t n : testing::odd_sizes()) {
    for (auto [h, d] : heads_dims) {
      for (bool with_e : {true, false}) {
        const int64_t hub = n == 257 ? 1000 : 0;
        Problem p = make_problem(testing::random_graph(n, 3.0, n + d, hub), h, d, with_e,
                                 with_e, Dtype::F32, 100 + n);
        EXPECT_TRUE(results_close(run(p, Path::Dispatch, Device::cuda()),
                                  run(p, Path::Naive), 1e-4, 1e-4))
            << "n = " << n << " H = " << h << " D = " << d << " with_e = " << with_e;
      }
    }
  }
}

TEST(GraphAttentionCuda, MatchesCpuF64) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  for (int64_t n : {7, 257}) {
    for (int64_t d : {8, 6}) {  // vectorised (D % 4 == 0) and scalar loads
      Problem p = make_problem(testing::random_graph(n, 4.0, n, n == 257 ? 1000 : 0), 4, d, true,
                               true, Dtype::F64, 5);
      EXPECT_TRUE(results_close(run(p, Path::Dispatch, Device::cuda()), run(p, Path::Naive),
                                1e-11, 1e-10))
          << "n = " << n << " D = " << d;
    }
  }
}

TEST(GraphAttentionCuda, EmptyGraphs) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  for (int64_t n : {0, 5}) {
    Problem p = make_problem(testing::graph_from_edges(n, {}), 2, 4, true, true, Dtype::F32, 1);
    Result r = run(p, Path::Dispatch, Device::cuda());
    EXPECT_TRUE(all_close(r.out, Tensor::zeros({n, 2, 4}), 0, 0));
    EXPECT_TRUE(all_close(r.dv, Tensor::zeros({n, 2, 4}), 0, 0));
  }
}

TEST(GraphAttentionCuda, Deterministic) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  Problem p = make_problem(testing::random_graph(4000, 8.0, 9, 1000), 8, 8, true, true,
                           Dtype::F32, 9);
  Result a = run(p, Path::Dispatch, Device::cuda());
  Result b = run(p, Path::Dispatch, Device::cuda());
  EXPECT_TRUE(bitwise_equal(a.out, b.out));
  EXPECT_TRUE(bitwise_equal(a.edge_out, b.edge_out));
  EXPECT_TRUE(bitwise_equal(a.dq, b.dq));
  EXPECT_TRUE(bitwise_equal(a.dk, b.dk));
  EXPECT_TRUE(bitwise_equal(a.dv, b.dv));
  EXPECT_TRUE(bitwise_equal(a.de, b.de));
}

// Unknown and exact degree bounds (both split the hub rows) match the CPU reference and give the
// same bits. Returns the reference.
Result expect_split_matches_cpu(const Problem& p, DegreeBounds exact, double tol,
                                const std::string& where) {
  Result ref = run(p, Path::Naive);
  const Result unknown = run(p, Path::Dispatch, Device::cuda());
  const Result known = run(p, Path::Dispatch, Device::cuda(), exact);
  EXPECT_TRUE(results_close(unknown, ref, tol, tol)) << where;
  for (auto [a, b] : {std::pair{unknown.out, known.out}, {unknown.dq, known.dq},
                      {unknown.dk, known.dk}, {unknown.dv, known.dv}, {unknown.z, known.z}}) {
    EXPECT_TRUE(bitwise_equal(a, b)) << where;
  }
  return ref;
}

// testing::heavy_row_graph: hubs next to each other, in and out.
TEST(GraphAttentionCuda, HeavyRowsSplitAcrossGroups) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  const CsrGraphView g = testing::heavy_row_graph(3);
  const DegreeBounds exact{g.max_in_degree, g.max_out_degree};
  ASSERT_GE(exact.in, 1000);
  ASSERT_GE(exact.out, 500);
  const std::vector<std::pair<int64_t, int64_t>> heads_dims = {{8, 8}, {3, 5}, {2, 128}};
  for (Dtype dt : {Dtype::F32, Dtype::F64}) {
    const double tol = dt == Dtype::F32 ? 1e-4 : 1e-10;
    for (auto [h, d] : heads_dims) {
      for (bool with_e : {true, false}) {
        Problem p = make_problem(g, h, d, with_e, with_e, dt, 40 + d);
        const std::string where = std::string(dtype_name(dt)) + " H = " + std::to_string(h) +
                                  " D = " + std::to_string(d) + " with_e = " +
                                  std::to_string(with_e);
        const Result ref = expect_split_matches_cpu(p, exact, tol, where);
        const Result claimed_short = run(p, Path::Dispatch, Device::cuda(), {0, 0});
        EXPECT_TRUE(results_close(claimed_short, ref, tol, tol)) << where << " (unsplit)";
      }
    }
  }
}

// Every kernel variant against the CPU: with and without edge features and with and without the
// edge-output gradient (MatchesCpu pairs them; the backward folds the dL_dK terms only when both
// exist), on odd sizes, a hub and split heavy rows; each deterministic.
TEST(GraphAttentionCuda, EdgeFeatureAndGradientVariantsMatchCpu) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  std::vector<CsrGraphView> graphs;
  for (int64_t n : {1, 33, 257}) {
    graphs.push_back(testing::random_graph(n, 3.0, n, n == 257 ? 600 : 0));
  }
  graphs.push_back(testing::heavy_row_graph(5));
  const std::vector<std::pair<int64_t, int64_t>> heads_dims = {{8, 8}, {3, 5}, {1, 33}};
  for (Dtype dt : {Dtype::F32, Dtype::F64}) {
    const double tol = dt == Dtype::F32 ? 1e-4 : 1e-10;
    for (const CsrGraphView& g : graphs) {
      for (auto [h, d] : heads_dims) {
        for (int variant = 0; variant < 4; ++variant) {
          const bool with_e = variant & 1, with_gt = variant & 2;
          Problem p = make_problem(g, h, d, with_e, with_gt, dt, 70 + variant);
          const std::string where = std::string(dtype_name(dt)) + " N = " +
                                    std::to_string(g.num_nodes) + " H = " + std::to_string(h) +
                                    " D = " + std::to_string(d) + " with_e = " +
                                    std::to_string(with_e) + " with_gt = " +
                                    std::to_string(with_gt);
          const Result a = run(p, Path::Dispatch, Device::cuda());
          const Result b = run(p, Path::Dispatch, Device::cuda());
          EXPECT_TRUE(results_close(a, run(p, Path::Naive), tol, tol)) << where;
          for (auto [x, y] : {std::pair{a.out, b.out}, {a.dq, b.dq}, {a.dk, b.dk}, {a.dv, b.dv}}) {
            EXPECT_TRUE(bitwise_equal(x, y)) << where << " (determinism)";
          }
          if (with_e) EXPECT_TRUE(bitwise_equal(a.de, b.de)) << where << " (determinism)";
        }
      }
    }
  }
}

// Hubs of 34-71 pieces (testing::long_hub_graph): every reducing pass (forward, backward by
// destination, backward by source) combines their partials in several runs. F64, so that a piece
// missed or counted twice stands out from rounding; exact bounds give the same bits.
TEST(GraphAttentionCuda, HubsOfManyPiecesCombineInRuns) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  const CsrGraphView g = testing::long_hub_graph(4);
  const DegreeBounds exact{g.max_in_degree, g.max_out_degree};
  ASSERT_GE(exact.in, 9000);
  ASSERT_GE(exact.out, 4500);
  for (auto [h, d] : std::vector<std::pair<int64_t, int64_t>>{{8, 8}, {3, 5}}) {
    for (bool with_e : {true, false}) {
      const Problem p = make_problem(g, h, d, with_e, with_e, Dtype::F64, 60 + d);
      expect_split_matches_cpu(p, exact, 1e-10,
                               "H = " + std::to_string(h) + " D = " + std::to_string(d) +
                                   " with_e = " + std::to_string(with_e));
    }
  }
}

// The CUDA path leaves a graph's index values to the kernels (check_graph_view checks those of CPU
// views only): a source, CSC destination or CSC edge id out of range, in a light row and inside a
// split hub row, through the split and the unsplit kernels, is a lapis::Error, and the next call
// on a good graph is unaffected.
TEST(GraphAttentionCuda, CorruptIndicesAreReported) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  const CsrGraphView g = testing::heavy_row_graph(7);
  ASSERT_GE(g.in_ptr.data<int32_t>()[10] - g.in_ptr.data<int32_t>()[9], 1000);
  ASSERT_GE(g.out_ptr.data<int32_t>()[22] - g.out_ptr.data<int32_t>()[21], 500);
  for (const testing::CorruptGraph& c : testing::corrupt_index_graphs(g)) {
    const Problem p = make_problem(c.graph, 2, 8, true, true, Dtype::F32, 90);
    for (DegreeBounds bounds : {DegreeBounds{}, DegreeBounds{0, 0}}) {
      SCOPED_TRACE(c.what + (bounds.in == 0 ? " (unsplit)" : ""));
      testing::expect_error_mentions([&] { run(p, Path::Dispatch, Device::cuda(), bounds); },
                                     {"out of range"});
    }
  }
  const Problem good = make_problem(g, 2, 8, true, true, Dtype::F32, 90);
  EXPECT_TRUE(results_close(run(good, Path::Dispatch, Device::cuda()), run(good, Path::Naive),
                            1e-4, 1e-4));
}

TEST(GraphAttentionCuda, RejectsLargeHeadDim) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  Problem p = make_problem(testing::random_graph(7, 2.0, 1), 1, 129, false, false, Dtype::F32, 2);
  testing::expect_error_mentions([&] { run(p, Path::Dispatch, Device::cuda()); },
                                 {"graph_attention_forward", "D <= 128"});
}

}  // namespace
}  // namespace lapis
