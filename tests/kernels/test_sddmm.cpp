// Multi-head SDDMM (kernels/sddmm.h): hand values, naive vs parallel CPU, F64 gradient checks,
// empty graphs, errors, CPU vs CUDA and determinism.
#include <gtest/gtest.h>

#include "core/tensor.h"
#include "kernels/cpu/graph_ops_cpu.h"
#include "kernels/sddmm.h"
#include "tests/common/test_util.h"
#include "tests/kernels/random_graph.h"

namespace lapis {
namespace {

using testing::all_close;

struct Out {
  Tensor score, da, db;
};

// path: 0 naive, 1 parallel, 2 dispatch; bounds: the device view's degree bounds (in, out; -1
// unknown).
Out run(const CsrGraphView& g0, const Tensor& a0, const Tensor& b0, const Tensor& gs0,
        double scale, int path, Device dev = Device::cpu(),
        std::pair<int64_t, int64_t> bounds = {-1, -1}) {
  const CsrGraphView g = testing::graph_to(g0, dev, bounds.first, bounds.second);
  const Tensor a = a0.to(dev), b = b0.to(dev), gs = gs0.to(dev);
  Tensor score = Tensor::full({g.num_edges, a.size(1)}, 7.0, a.dtype(), dev);
  Tensor da = Tensor::full(a.shape(), 7.0, a.dtype(), dev), db = da.clone();
  if (path == 2) {
    sddmm_forward(score, g, a, b, scale);
    sddmm_backward(da, db, gs, g, a, b, scale);
  } else {
    cpu::sddmm_forward(score, g, a, b, scale, path == 1);
    cpu::sddmm_backward(da, db, gs, g, a, b, scale, path == 1);
  }
  return {score.to(Device::cpu()), da.to(Device::cpu()), db.to(Device::cpu())};
}

void expect_close(const Out& x, const Out& y, double atol, double rtol) {
  EXPECT_TRUE(all_close(x.score, y.score, atol, rtol)) << "score";
  EXPECT_TRUE(all_close(x.da, y.da, atol, rtol)) << "dL_da";
  EXPECT_TRUE(all_close(x.db, y.db, atol, rtol)) << "dL_db";
}

TEST(Sddmm, HandComputed) {
  CsrGraphView g = testing::graph_from_edges(2, {{1, 0}, {0, 0}});  // edges into node 0
  Tensor a = Tensor::from_vector<double>({1, 2, 3, 4}, {2, 1, 2});
  Tensor b = Tensor::from_vector<double>({5, 6, 7, 8}, {2, 1, 2});
  Out o = run(g, a, b, Tensor::from_vector<double>({1, 1}, {2, 1}), 0.5, 0);
  // Edge 0 = (1 -> 0): 0.5 * (1*7 + 2*8) = 11.5; edge 1 = (0 -> 0): 0.5 * (1*5 + 2*6) = 8.5.
  EXPECT_TRUE(all_close(o.score, Tensor::from_vector<double>({11.5, 8.5}, {2, 1}), 0, 0));
  EXPECT_TRUE(all_close(o.da, Tensor::from_vector<double>({6, 7, 0, 0}, {2, 1, 2}), 0, 0));
  EXPECT_TRUE(all_close(o.db, Tensor::from_vector<double>({0.5, 1, 0.5, 1}, {2, 1, 2}), 0, 0));
}

TEST(Sddmm, ParallelMatchesNaiveAndGradients) {
  for (int64_t n : testing::odd_sizes()) {
    Generator gen(n);
    CsrGraphView g = testing::random_graph(n, 3.0, n, n == 257 ? 1000 : 0);
    Tensor a = Tensor::randn({n, 3, 5}, gen, Dtype::F64), b = Tensor::randn({n, 3, 5}, gen, Dtype::F64);
    Tensor gs = Tensor::randn({g.num_edges, 3}, gen, Dtype::F64);
    expect_close(run(g, a, b, gs, 0.3, 1), run(g, a, b, gs, 0.3, 0), 1e-12, 1e-10);
  }
  Generator gen(3);
  CsrGraphView g = testing::random_graph(9, 2.5, 3);
  Tensor a = Tensor::randn({9, 2, 3}, gen, Dtype::F64), b = Tensor::randn({9, 2, 3}, gen, Dtype::F64);
  Tensor gs = Tensor::randn({g.num_edges, 2}, gen, Dtype::F64);
  Out o = run(g, a, b, gs, 0.7, 0);
  auto loss = [&] {
    Tensor s = Tensor::empty({g.num_edges, 2}, Dtype::F64);
    cpu::sddmm_forward(s, g, a, b, 0.7);
    return testing::dot(gs, s);
  };
  EXPECT_TRUE(testing::gradient_matches(loss, a, o.da)) << "dL_da";
  EXPECT_TRUE(testing::gradient_matches(loss, b, o.db)) << "dL_db";
}

TEST(Sddmm, EmptyGraphsAndErrors) {
  for (int64_t n : {0, 4}) {  // no nodes; nodes without edges
    CsrGraphView g = testing::graph_from_edges(n, {});
    Tensor a = Tensor::full({n, 2, 4}, 1.0);
    Out o = run(g, a, a, Tensor::zeros({0, 2}), 1.0, 2);
    EXPECT_EQ(o.score.numel(), 0);
    EXPECT_TRUE(all_close(o.da, Tensor::zeros({n, 2, 4}), 0, 0));
    EXPECT_TRUE(all_close(o.db, Tensor::zeros({n, 2, 4}), 0, 0));
  }
  CsrGraphView g = testing::random_graph(7, 2.0, 1);
  Tensor a = Tensor::zeros({7, 2, 4}), score = Tensor::zeros({g.num_edges, 2});
  testing::expect_error_mentions(
      [&] {
        Tensor b = Tensor::zeros({7, 2, 3});
        sddmm_forward(score, g, a, b, 1.0);
      },
      {"sddmm_forward", "b", "[7, 2, 3]"});
  testing::expect_error_mentions(
      [&] {
        Tensor bad = Tensor::zeros({g.num_edges + 1, 2});
        sddmm_forward(bad, g, a, a, 1.0);
      },
      {"sddmm_forward", "score"});
  testing::expect_error_mentions(
      [&] {
        Tensor a6 = Tensor::zeros({6, 2, 4});
        sddmm_forward(score, g, a6, a6, 1.0);
      },
      {"sddmm_forward", "7 nodes"});
  testing::expect_error_mentions(  // two heads, on the CPU
      [&] { sddmm_forward(score, g, a, a, 1.0, SddmmAlgo::CuSparse); },
      {"sddmm_forward", "CuSparse", "one head"});
}

// f32 tolerance: dot products of D <= 128 terms and sums over up to ~1000 edges, summed in a
// different order than the CPU: atol 1e-4, rtol 1e-4.
TEST(SddmmCuda, MatchesCpuAndDeterministic) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  const std::vector<std::pair<int64_t, int64_t>> heads_dims = {{8, 8}, {8, 16}, {3, 5}, {1, 8},
                                                               {1, 33}};
  for (int64_t n : testing::odd_sizes()) {
    for (auto [h, d] : heads_dims) {
      Generator gen(n + d);
      CsrGraphView g = testing::random_graph(n, 3.0, n, n == 257 ? 1000 : 0);
      Tensor a = Tensor::randn({n, h, d}, gen), b = Tensor::randn({n, h, d}, gen);
      Tensor gs = Tensor::randn({g.num_edges, h}, gen);
      Out c1 = run(g, a, b, gs, 0.25, 2, Device::cuda());
      const Out ref = run(g, a, b, gs, 0.25, 0);
      expect_close(c1, ref, 1e-4, 1e-4);
      if (h == 1 && g.num_edges > 0) {  // cuSPARSE's SDDMM for one head
        const CsrGraphView gd = testing::graph_to(g, Device::cuda());
        Tensor score = Tensor::full({g.num_edges, 1}, 7.0, Dtype::F32, Device::cuda());
        sddmm_forward(score, gd, a.to(Device::cuda()), b.to(Device::cuda()), 0.25,
                      SddmmAlgo::CuSparse);
        EXPECT_TRUE(all_close(score.to(Device::cpu()), ref.score, 1e-4, 1e-4))
            << "cuSPARSE n = " << n << " D = " << d;
      }
      Out c2 = run(g, a, b, gs, 0.25, 2, Device::cuda());
      EXPECT_TRUE(testing::bitwise_equal(c1.score, c2.score));
      EXPECT_TRUE(testing::bitwise_equal(c1.da, c2.da));
      EXPECT_TRUE(testing::bitwise_equal(c1.db, c2.db));
    }
  }
  for (int64_t n : {0, 4}) {
    CsrGraphView g = testing::graph_from_edges(n, {});
    Tensor a = Tensor::full({n, 2, 4}, 1.0);
    Out o = run(g, a, a, Tensor::zeros({0, 2}), 1.0, 2, Device::cuda());
    EXPECT_TRUE(all_close(o.da, Tensor::zeros({n, 2, 4}), 0, 0));
  }
}

// Hub rows split across thread groups (testing::heavy_row_graph): unknown and exact degree bounds
// take the split path (same bits), a bound claiming no row is long the unsplit one; all match the
// CPU reference.
TEST(SddmmCuda, HeavyRowsSplitAcrossGroups) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  const CsrGraphView g = testing::heavy_row_graph(6);
  const std::pair<int64_t, int64_t> exact{g.max_in_degree, g.max_out_degree};
  ASSERT_GE(exact.second, 500);
  const std::vector<std::pair<int64_t, int64_t>> heads_dims = {{8, 8}, {3, 5}, {2, 128}};
  for (Dtype dt : {Dtype::F32, Dtype::F64}) {
    const double tol = dt == Dtype::F32 ? 1e-4 : 1e-10;
    for (auto [h, d] : heads_dims) {
      Generator gen(h * d);
      const int64_t n = g.num_nodes;
      Tensor a = Tensor::randn({n, h, d}, gen, dt), b = Tensor::randn({n, h, d}, gen, dt);
      Tensor gs = Tensor::randn({g.num_edges, h}, gen, dt);
      const Out ref = run(g, a, b, gs, 0.5, 0);
      const Out unknown = run(g, a, b, gs, 0.5, 2, Device::cuda());
      const Out known = run(g, a, b, gs, 0.5, 2, Device::cuda(), exact);
      const Out unsplit = run(g, a, b, gs, 0.5, 2, Device::cuda(), {0, 0});
      SCOPED_TRACE(std::string(dtype_name(dt)) + " H = " + std::to_string(h) + " D = " +
                   std::to_string(d));
      expect_close(unknown, ref, tol, tol);
      expect_close(unsplit, ref, tol, tol);
      EXPECT_TRUE(testing::bitwise_equal(unknown.score, known.score));
      EXPECT_TRUE(testing::bitwise_equal(unknown.da, known.da));
      EXPECT_TRUE(testing::bitwise_equal(unknown.db, known.db));
    }
  }
}

}  // namespace
}  // namespace lapis
