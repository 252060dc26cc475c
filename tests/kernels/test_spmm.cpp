// Multi-head SpMM (kernels/spmm.h): hand values, naive vs parallel, F64 gradient checks, empty
// graphs, errors, CPU vs CUDA (native and cuSPARSE for one head) and determinism.
#include <gtest/gtest.h>

#include "core/tensor.h"
#include "kernels/cpu/graph_ops_cpu.h"
#include "kernels/spmm.h"
#include "tests/common/test_util.h"
#include "tests/kernels/random_graph.h"

namespace lapis {
namespace {

using testing::all_close;

struct Out {
  Tensor out, dalpha, dx;
};

// path: 0 naive, 1 parallel, 2 dispatch.
// bounds: the device view's degree bounds (in, out; -1 unknown).
Out run(const CsrGraphView& g0, const Tensor& alpha0, const Tensor& x0, const Tensor& go0,
        int path, Device dev = Device::cpu(), SpmmAlgo algo = SpmmAlgo::Auto,
        std::pair<int64_t, int64_t> bounds = {-1, -1}) {
  const CsrGraphView g = testing::graph_to(g0, dev, bounds.first, bounds.second);
  const Tensor alpha = alpha0.to(dev), x = x0.to(dev), go = go0.to(dev);
  Tensor out = Tensor::full(x.shape(), 7.0, x.dtype(), dev), dx = out.clone();
  Tensor dalpha = Tensor::full(alpha.shape(), 7.0, x.dtype(), dev);
  if (path == 2) {
    spmm_forward(out, g, alpha, x, algo);
    spmm_backward(dalpha, dx, go, g, alpha, x);
  } else {
    cpu::spmm_forward(out, g, alpha, x, path == 1);
    cpu::spmm_backward(dalpha, dx, go, g, alpha, x, path == 1);
  }
  return {out.to(Device::cpu()), dalpha.to(Device::cpu()), dx.to(Device::cpu())};
}

void expect_close(const Out& a, const Out& b, double atol, double rtol) {
  EXPECT_TRUE(all_close(a.out, b.out, atol, rtol)) << "out";
  EXPECT_TRUE(all_close(a.dalpha, b.dalpha, atol, rtol)) << "dL_dalpha";
  EXPECT_TRUE(all_close(a.dx, b.dx, atol, rtol)) << "dL_dx";
}

TEST(Spmm, HandComputed) {
  CsrGraphView g = testing::graph_from_edges(2, {{1, 0}, {0, 0}});  // edge 0 = 1->0, 1 = 0->0
  Tensor x = Tensor::from_vector<double>({1, 2, 3, 4}, {2, 1, 2});
  Tensor alpha = Tensor::from_vector<double>({2, 10}, {2, 1});
  Tensor go = Tensor::from_vector<double>({1, -1, 5, 5}, {2, 1, 2});
  Out o = run(g, alpha, x, go, 0);
  EXPECT_TRUE(all_close(o.out, Tensor::from_vector<double>({16, 28, 0, 0}, {2, 1, 2}), 0, 0));
  EXPECT_TRUE(all_close(o.dalpha, Tensor::from_vector<double>({-1, -1}, {2, 1}), 0, 0));
  EXPECT_TRUE(all_close(o.dx, Tensor::from_vector<double>({10, -10, 2, -2}, {2, 1, 2}), 0, 0));
}

TEST(Spmm, ParallelMatchesNaiveAndGradients) {
  for (int64_t n : testing::odd_sizes()) {
    Generator gen(n);
    CsrGraphView g = testing::random_graph(n, 3.0, n, n == 257 ? 1000 : 0);
    Tensor x = Tensor::randn({n, 3, 5}, gen, Dtype::F64);
    Tensor alpha = Tensor::randn({g.num_edges, 3}, gen, Dtype::F64);
    Tensor go = Tensor::randn({n, 3, 5}, gen, Dtype::F64);
    expect_close(run(g, alpha, x, go, 2), run(g, alpha, x, go, 0), 1e-12, 1e-10);
  }
  Generator gen(5);
  CsrGraphView g = testing::random_graph(9, 2.5, 5);
  Tensor x = Tensor::randn({9, 2, 3}, gen, Dtype::F64);
  Tensor alpha = Tensor::randn({g.num_edges, 2}, gen, Dtype::F64);
  Tensor go = Tensor::randn({9, 2, 3}, gen, Dtype::F64);
  Out o = run(g, alpha, x, go, 0);
  auto loss = [&] {
    Tensor out = Tensor::empty({9, 2, 3}, Dtype::F64);
    cpu::spmm_forward(out, g, alpha, x);
    return testing::dot(go, out);
  };
  EXPECT_TRUE(testing::gradient_matches(loss, alpha, o.dalpha)) << "dL_dalpha";
  EXPECT_TRUE(testing::gradient_matches(loss, x, o.dx)) << "dL_dx";
}

TEST(Spmm, EmptyGraphsAndErrors) {
  for (int64_t n : {0, 4}) {
    CsrGraphView g = testing::graph_from_edges(n, {});
    Tensor x = Tensor::full({n, 2, 4}, 1.0);
    Out o = run(g, Tensor::zeros({0, 2}), x, x, 2);
    EXPECT_TRUE(all_close(o.out, Tensor::zeros({n, 2, 4}), 0, 0));
    EXPECT_TRUE(all_close(o.dx, Tensor::zeros({n, 2, 4}), 0, 0));
  }
  CsrGraphView g = testing::random_graph(7, 2.0, 1);
  Tensor x = Tensor::zeros({7, 2, 4}), out = Tensor::zeros({7, 2, 4});
  testing::expect_error_mentions(
      [&] {
        Tensor alpha = Tensor::zeros({g.num_edges, 3});
        spmm_forward(out, g, alpha, x);
      },
      {"spmm_forward", "alpha"});
  testing::expect_error_mentions(
      [&] {
        Tensor alpha = Tensor::zeros({g.num_edges, 2});
        spmm_forward(out, g, alpha, x, SpmmAlgo::CuSparse);
      },
      {"spmm_forward", "CuSparse"});
  testing::expect_error_mentions(
      [&] {
        CsrGraphView bad = g;
        bad.out_edge = Tensor();
        Tensor alpha = Tensor::zeros({g.num_edges, 2}), da = alpha.clone(), dx = x.clone();
        spmm_backward(da, dx, x, bad, alpha, x);
      },
      {"spmm_backward", "out_edge"});
}

// f32 tolerance: sums over up to ~1000 edges in a different order: atol 1e-4, rtol 1e-4.
TEST(SpmmCuda, MatchesCpuAndDeterministic) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  const std::vector<std::pair<int64_t, int64_t>> heads_dims = {{8, 8}, {8, 16}, {1, 8}, {3, 5},
                                                               {1, 33}};
  for (int64_t n : testing::odd_sizes()) {
    for (auto [h, d] : heads_dims) {
      Generator gen(n + d);
      CsrGraphView g = testing::random_graph(n, 3.0, n, n == 257 ? 1000 : 0);
      Tensor x = Tensor::randn({n, h, d}, gen), go = Tensor::randn({n, h, d}, gen);
      Tensor alpha = Tensor::randn({g.num_edges, h}, gen);
      Out ref = run(g, alpha, x, go, 0);
      Out c1 = run(g, alpha, x, go, 2, Device::cuda());
      expect_close(c1, ref, 1e-4, 1e-4);
      Out c2 = run(g, alpha, x, go, 2, Device::cuda());
      EXPECT_TRUE(testing::bitwise_equal(c1.out, c2.out));
      EXPECT_TRUE(testing::bitwise_equal(c1.dalpha, c2.dalpha));
      EXPECT_TRUE(testing::bitwise_equal(c1.dx, c2.dx));
      if (h == 1) {
        Out cs = run(g, alpha, x, go, 2, Device::cuda(), SpmmAlgo::CuSparse);
        EXPECT_TRUE(all_close(cs.out, ref.out, 1e-4, 1e-4)) << "cuSPARSE n = " << n;
      }
    }
  }
  CsrGraphView g = testing::graph_from_edges(4, {});
  Tensor x = Tensor::full({4, 1, 8}, 1.0);
  Out o = run(g, Tensor::zeros({0, 1}), x, x, 2, Device::cuda(), SpmmAlgo::CuSparse);
  EXPECT_TRUE(all_close(o.out, Tensor::zeros({4, 1, 8}), 0, 0));
}

// Unknown and exact degree bounds (both split the hub rows) match the CPU reference and give the
// same bits. Returns the reference.
Out expect_split_matches_cpu(const CsrGraphView& g, const Tensor& alpha, const Tensor& x,
                             const Tensor& go, std::pair<int64_t, int64_t> exact, double tol) {
  Out ref = run(g, alpha, x, go, 0);
  const Out unknown = run(g, alpha, x, go, 2, Device::cuda());
  const Out known = run(g, alpha, x, go, 2, Device::cuda(), SpmmAlgo::Native, exact);
  expect_close(unknown, ref, tol, tol);
  EXPECT_TRUE(testing::bitwise_equal(unknown.out, known.out));
  EXPECT_TRUE(testing::bitwise_equal(unknown.dalpha, known.dalpha));
  EXPECT_TRUE(testing::bitwise_equal(unknown.dx, known.dx));
  return ref;
}

// Hub rows split across thread groups (testing::heavy_row_graph): unknown and exact degree bounds
// take the split path (same bits), a bound claiming no row is long the unsplit one; all match the
// CPU reference.
TEST(SpmmCuda, HeavyRowsSplitAcrossGroups) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  const CsrGraphView g = testing::heavy_row_graph(5);
  const std::pair<int64_t, int64_t> exact{g.max_in_degree, g.max_out_degree};
  ASSERT_GE(exact.first, 1000);
  const std::vector<std::pair<int64_t, int64_t>> heads_dims = {{8, 8}, {3, 5}, {1, 64}};
  for (Dtype dt : {Dtype::F32, Dtype::F64}) {
    const double tol = dt == Dtype::F32 ? 1e-4 : 1e-10;
    for (auto [h, d] : heads_dims) {
      Generator gen(h + d);
      const int64_t n = g.num_nodes;
      Tensor x = Tensor::randn({n, h, d}, gen, dt), go = Tensor::randn({n, h, d}, gen, dt);
      Tensor alpha = Tensor::randn({g.num_edges, h}, gen, dt);
      SCOPED_TRACE(std::string(dtype_name(dt)) + " H = " + std::to_string(h) + " D = " +
                   std::to_string(d));
      const Out ref = expect_split_matches_cpu(g, alpha, x, go, exact, tol);
      const Out unsplit = run(g, alpha, x, go, 2, Device::cuda(), SpmmAlgo::Native, {0, 0});
      expect_close(unsplit, ref, tol, tol);
    }
  }
}

// Hubs of 34-71 pieces (testing::long_hub_graph): their partials are combined in several runs.
// F64, so that a piece missed or counted twice stands out from rounding; exact bounds give the
// same bits as unknown ones.
TEST(SpmmCuda, HubsOfManyPiecesCombineInRuns) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  const CsrGraphView g = testing::long_hub_graph(8);
  ASSERT_GE(g.max_in_degree, 9000);
  ASSERT_GE(g.max_out_degree, 4500);
  const std::pair<int64_t, int64_t> exact{g.max_in_degree, g.max_out_degree};
  for (auto [h, d] : std::vector<std::pair<int64_t, int64_t>>{{8, 8}, {1, 64}, {3, 5}}) {
    Generator gen(h * 100 + d);
    const int64_t n = g.num_nodes;
    Tensor x = Tensor::randn({n, h, d}, gen, Dtype::F64);
    Tensor go = Tensor::randn({n, h, d}, gen, Dtype::F64);
    Tensor alpha = Tensor::randn({g.num_edges, h}, gen, Dtype::F64);
    SCOPED_TRACE("H = " + std::to_string(h) + " D = " + std::to_string(d));
    expect_split_matches_cpu(g, alpha, x, go, exact, 1e-10);
  }
}

// Out-of-range sources, CSC destinations and CSC edge ids of a device graph, in a light row and
// inside a split hub row, through the split and unsplit kernels (forward by destination,
// dL_dalpha per edge, dL_dx by source): a lapis::Error; the next call on a good graph is unaffected.
TEST(SpmmCuda, CorruptIndicesAreReported) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  const CsrGraphView g = testing::heavy_row_graph(7);
  ASSERT_GE(g.in_ptr.data<int32_t>()[10] - g.in_ptr.data<int32_t>()[9], 1000);
  ASSERT_GE(g.out_ptr.data<int32_t>()[22] - g.out_ptr.data<int32_t>()[21], 500);
  Generator gen(5);
  const int64_t n = g.num_nodes;
  const Tensor x = Tensor::randn({n, 2, 8}, gen), go = Tensor::randn({n, 2, 8}, gen);
  const Tensor alpha = Tensor::randn({g.num_edges, 2}, gen);
  for (const testing::CorruptGraph& c : testing::corrupt_index_graphs(g)) {
    for (std::pair<int64_t, int64_t> bounds : {std::pair<int64_t, int64_t>{-1, -1}, {0, 0}}) {
      SCOPED_TRACE(c.what + (bounds.first == 0 ? " (unsplit)" : ""));
      testing::expect_error_mentions(
          [&] { run(c.graph, alpha, x, go, 2, Device::cuda(), SpmmAlgo::Native, bounds); },
          {"out of range"});
    }
  }
  expect_close(run(g, alpha, x, go, 2, Device::cuda()), run(g, alpha, x, go, 0), 1e-4, 1e-4);
}

}  // namespace
}  // namespace lapis
