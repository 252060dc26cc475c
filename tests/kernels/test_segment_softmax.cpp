// Segment softmax (kernels/segment_softmax.h): hand values, rows sum to one, stability for large
// scores, naive vs parallel, F64 gradient check, empty segments/graphs, errors, CPU vs CUDA.
#include <gtest/gtest.h>

#include <cmath>

#include "core/tensor.h"
#include "kernels/cpu/graph_ops_cpu.h"
#include "kernels/segment_softmax.h"
#include "tests/common/test_util.h"
#include "tests/kernels/random_graph.h"

namespace lapis {
namespace {

using testing::all_close;

// path: 0 naive, 1 parallel, 2 dispatch (max_len: the longest segment, -1 unknown). Returns
// {alpha, dL_dscore} on the CPU.
std::pair<Tensor, Tensor> run(const Tensor& ptr0, const Tensor& score0, const Tensor& g0, int path,
                              Device dev = Device::cpu(), int64_t max_len = -1) {
  const Tensor ptr = ptr0.to(dev), score = score0.to(dev), g = g0.to(dev);
  Tensor alpha = Tensor::full(score.shape(), 7.0, score.dtype(), dev);
  Tensor ds = alpha.clone();
  if (path == 2) {
    segment_softmax_forward(alpha, score, ptr, max_len);
    segment_softmax_backward(ds, g, alpha, ptr, max_len);
  } else {
    cpu::segment_softmax_forward(alpha, score, ptr, path == 1);
    cpu::segment_softmax_backward(ds, g, alpha, ptr, path == 1);
  }
  return {alpha.to(Device::cpu()), ds.to(Device::cpu())};
}

// Every non-empty segment of alpha [E, H] (on the CPU) sums to one within tol, per head.
::testing::AssertionResult segments_sum_to_one(const Tensor& alpha, const Tensor& in_ptr,
                                               double tol) {
  const Tensor a = alpha.to(Dtype::F64);
  const double* pa = a.data<double>();
  const int32_t* ptr = in_ptr.data<int32_t>();
  const int64_t h = a.size(1);
  for (int64_t i = 0; i + 1 < in_ptr.numel(); ++i) {
    if (ptr[i] == ptr[i + 1]) continue;
    for (int64_t hh = 0; hh < h; ++hh) {
      double sum = 0;
      for (int64_t k = ptr[i]; k < ptr[i + 1]; ++k) sum += pa[k * h + hh];
      if (std::abs(sum - 1.0) > tol) {
        return ::testing::AssertionFailure()
               << "node " << i << " head " << hh << " sums to " << sum << " (tolerance " << tol
               << ")";
      }
    }
  }
  return ::testing::AssertionSuccess();
}

TEST(SegmentSoftmax, HandComputedAndStable) {
  // Segments {0, 1}, {} and {2}; head 1 has huge scores (a naive exp would overflow).
  Tensor ptr = Tensor::from_vector<int32_t>({0, 2, 2, 3}, {4});
  Tensor score = Tensor::from_vector<double>({0, 1000, std::log(3.0), 1001, 5, -7}, {3, 2});
  auto [alpha, ds] = run(ptr, score, Tensor::zeros({3, 2}, Dtype::F64), 2);
  const double e1 = std::exp(-1.0);
  EXPECT_TRUE(all_close(
      alpha, Tensor::from_vector<double>({0.25, e1 / (1 + e1), 0.75, 1 / (1 + e1), 1, 1}, {3, 2}),
      1e-15, 1e-14));
}

TEST(SegmentSoftmax, RowsSumToOneAndParallelMatchesNaive) {
  for (int64_t n : testing::odd_sizes()) {
    CsrGraphView g = testing::random_graph(n, 3.0, n, n == 257 ? 1000 : 0);
    Generator gen(n);
    Tensor score = Tensor::randn({g.num_edges, 4}, gen, Dtype::F64, Device::cpu(), 0, 5);
    Tensor up = Tensor::randn({g.num_edges, 4}, gen, Dtype::F64);
    auto naive = run(g.in_ptr, score, up, 0);
    auto par = run(g.in_ptr, score, up, 2);
    EXPECT_TRUE(all_close(par.first, naive.first, 1e-14, 1e-12));
    EXPECT_TRUE(all_close(par.second, naive.second, 1e-14, 1e-12));
    EXPECT_TRUE(segments_sum_to_one(naive.first, g.in_ptr, 1e-12)) << "n = " << n;
  }
}

TEST(SegmentSoftmax, Gradient) {
  CsrGraphView g = testing::random_graph(9, 2.5, 4);
  Generator gen(4);
  Tensor score = Tensor::randn({g.num_edges, 3}, gen, Dtype::F64);
  Tensor up = Tensor::randn({g.num_edges, 3}, gen, Dtype::F64);
  Tensor analytic = run(g.in_ptr, score, up, 0).second;
  auto loss = [&] {
    Tensor alpha = Tensor::empty(score.shape(), Dtype::F64);
    cpu::segment_softmax_forward(alpha, score, g.in_ptr);
    return testing::dot(up, alpha);
  };
  EXPECT_TRUE(testing::gradient_matches(loss, score, analytic));
}

TEST(SegmentSoftmax, EmptyAndErrors) {
  auto r = run(Tensor::from_vector<int32_t>({0}, {1}), Tensor::zeros({0, 2}, Dtype::F64),
               Tensor::zeros({0, 2}, Dtype::F64), 2);
  EXPECT_EQ(r.first.numel(), 0);
  Tensor score = Tensor::zeros({3, 2});
  Tensor alpha = Tensor::zeros({3, 2});
  testing::expect_error_mentions(
      [&] { segment_softmax_forward(alpha, score, Tensor::from_vector<int32_t>({0, 2, 1, 3}, {4})); },
      {"segment_softmax_forward", "in_ptr", "decreases"});
  testing::expect_error_mentions(
      [&] { segment_softmax_forward(alpha, score, Tensor::from_vector<int32_t>({0, 2}, {2})); },
      {"segment_softmax_forward", "in_ptr", "E = 3"});
  testing::expect_error_mentions(
      [&] {
        Tensor bad = Tensor::zeros({3, 3});
        segment_softmax_forward(bad, score, Tensor::from_vector<int32_t>({0, 3}, {2}));
      },
      {"segment_softmax_forward", "alpha"});
}

// f32 tolerance: exp and sums over up to ~1000 entries: atol 1e-6, rtol 1e-4.
TEST(SegmentSoftmaxCuda, MatchesCpuAndDeterministic) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  for (int64_t n : testing::odd_sizes()) {
    for (int64_t h : {1, 8}) {
      CsrGraphView g = testing::random_graph(n, 3.0, n, n == 257 ? 1000 : 0);
      Generator gen(n);
      Tensor score = Tensor::randn({g.num_edges, h}, gen, Dtype::F32, Device::cpu(), 0, 5);
      Tensor up = Tensor::randn({g.num_edges, h}, gen);
      auto c1 = run(g.in_ptr, score, up, 2, Device::cuda());
      auto ref = run(g.in_ptr, score, up, 0);
      EXPECT_TRUE(all_close(c1.first, ref.first, 1e-6, 1e-4)) << "n = " << n;
      EXPECT_TRUE(all_close(c1.second, ref.second, 1e-6, 1e-4)) << "n = " << n;
      auto c2 = run(g.in_ptr, score, up, 2, Device::cuda());
      EXPECT_TRUE(testing::bitwise_equal(c1.first, c2.first));
      EXPECT_TRUE(testing::bitwise_equal(c1.second, c2.second));
    }
  }
  auto r = run(Tensor::from_vector<int32_t>({0, 0, 0}, {3}), Tensor::zeros({0, 2}),
               Tensor::zeros({0, 2}), 2, Device::cuda());
  EXPECT_EQ(r.first.numel(), 0);
}

// Segments longer than 128 edges split across lanes (testing::heavy_row_graph: segments of
// 128, 129, 257, 300 and 1000 edges side by side), scores spread wide enough that each piece's
// max differs from the segment's: unknown and exact lengths take the split path (same bits), a
// length claiming short segments the unsplit one; all match the CPU, rows sum to one.
TEST(SegmentSoftmaxCuda, LongSegmentsSplitAcrossLanes) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  const CsrGraphView g = testing::heavy_row_graph(7);
  const int64_t e = g.num_edges;
  for (Dtype dt : {Dtype::F32, Dtype::F64}) {
    const double tol = dt == Dtype::F32 ? 1e-5 : 1e-12;
    for (int64_t h : {1, 3, 8}) {
      Generator gen(h);
      Tensor score = Tensor::randn({e, h}, gen, dt, Device::cpu(), 0, 20);
      Tensor up = Tensor::randn({e, h}, gen, dt);
      const auto ref = run(g.in_ptr, score, up, 0);
      const auto unknown = run(g.in_ptr, score, up, 2, Device::cuda());
      const auto known = run(g.in_ptr, score, up, 2, Device::cuda(), g.max_in_degree);
      const auto unsplit = run(g.in_ptr, score, up, 2, Device::cuda(), 0);
      SCOPED_TRACE(std::string(dtype_name(dt)) + " H = " + std::to_string(h));
      EXPECT_TRUE(all_close(unknown.first, ref.first, tol, tol));
      EXPECT_TRUE(all_close(unknown.second, ref.second, tol, tol));
      EXPECT_TRUE(all_close(unsplit.first, ref.first, tol, tol));
      EXPECT_TRUE(all_close(unsplit.second, ref.second, tol, tol));
      EXPECT_TRUE(testing::bitwise_equal(unknown.first, known.first));
      EXPECT_TRUE(testing::bitwise_equal(unknown.second, known.second));
      // Each destination's weights sum to one (every node of the graph has incoming edges or
      // none at all; the hubs' long segments included).
      ASSERT_TRUE(segments_sum_to_one(unknown.first, g.in_ptr, tol));
    }
  }
}

// Segments of 34-71 pieces (testing::long_hub_graph): the pieces' (max, sum) pairs are combined
// in several runs. F64 and scores spread wide, so each run's max differs from the segment's;
// rows sum to one.
TEST(SegmentSoftmaxCuda, SegmentsOfManyPiecesCombineInRuns) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  const CsrGraphView g = testing::long_hub_graph(9);
  ASSERT_GE(g.max_in_degree, 9000);
  const int64_t e = g.num_edges;
  for (int64_t h : {1, 3}) {
    Generator gen(h + 10);
    Tensor score = Tensor::randn({e, h}, gen, Dtype::F64, Device::cpu(), 0, 20);
    Tensor up = Tensor::randn({e, h}, gen, Dtype::F64);
    const auto ref = run(g.in_ptr, score, up, 0);
    const auto split = run(g.in_ptr, score, up, 2, Device::cuda());
    SCOPED_TRACE("H = " + std::to_string(h));
    EXPECT_TRUE(all_close(split.first, ref.first, 1e-12, 1e-12));
    EXPECT_TRUE(all_close(split.second, ref.second, 1e-12, 1e-12));
    ASSERT_TRUE(segments_sum_to_one(split.first, g.in_ptr, 1e-12));
  }
}

}  // namespace
}  // namespace lapis
