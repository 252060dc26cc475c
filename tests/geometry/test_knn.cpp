// kNN / radius search: KD-tree and CUDA grid against the brute-force reference, including ties
// (duplicates and points on an integer lattice, where many distances are equal).
#include <gtest/gtest.h>

#include <Eigen/Geometry>
#include <random>

#include "core/check.h"
#include "core/cuda_api.h"
#include "geometry/cuda/knn_cuda.h"
#include "geometry/grid_cell_size.h"
#include "geometry/knn.h"
#include "tests/common/test_util.h"
#include "tests/geometry/knn_checks.h"

namespace lapis {
namespace geometry {
namespace {

using testknn::expect_same;
using testknn::lattice_cloud;

Points random_cloud(int64_t n, uint32_t seed, float scale = 1.f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-scale, scale);
  Points p(n, 3);
  for (int64_t i = 0; i < n; ++i) {
    for (int c = 0; c < 3; ++c) p(i, c) = u(rng);
  }
  return p;
}



TEST(Knn, HandComputedLine) {
  Points p(4, 3);
  p << 0, 0, 0, 1, 0, 0, 3, 0, 0, 6, 0, 0;
  KnnOptions o;
  o.k = 2;
  o.include_self = false;
  const KnnResult r = knn(p, o);
  EXPECT_EQ(r.indices(0, 0), 1);
  EXPECT_EQ(r.indices(0, 1), 2);
  EXPECT_EQ(r.indices(2, 0), 1);  // distance 2 beats 3
  EXPECT_EQ(r.indices(2, 1), 0);  // distance 3 to both 0 and 3: the smaller index
  EXPECT_FLOAT_EQ(r.sq_distances(3, 0), 9.f);
  o.include_self = true;
  const KnnResult s = knn(p, o);
  EXPECT_EQ(s.indices(2, 0), 2);
  EXPECT_EQ(s.sq_distances(2, 0), 0.f);
}

TEST(Knn, TiesBrokenBySmallerIndex) {
  // Query at the origin, four points at distance 1: the smallest indices win.
  Points p(5, 3);
  p << 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, -1, 0, -1, 0, 0;
  KnnOptions o;
  o.k = 3;
  o.include_self = false;
  const KnnResult r = knn(p, o);
  EXPECT_EQ(r.indices(0, 0), 1);
  EXPECT_EQ(r.indices(0, 1), 2);
  EXPECT_EQ(r.indices(0, 2), 3);
}

TEST(Knn, MatchesBruteForceOnRandomClouds) {
  for (const int64_t n : {1, 7, 33, 257, 5000}) {
    const Points p = random_cloud(n, 100 + static_cast<uint32_t>(n));
    for (const int k : {1, 3, 10, 16}) {
      for (const bool self : {true, false}) {
        const int64_t available = self ? n : n - 1;
        if (k > available) continue;
        KnnOptions o;
        o.k = k;
        o.include_self = self;
        o.num_threads = 3;
        expect_same(knn(p, o), knn_brute_force_self(p, k, self),
                    "n=" + std::to_string(n) + " k=" + std::to_string(k));
      }
    }
  }
}

TEST(Knn, MatchesBruteForceWithDuplicatesAndTies) {
  for (const int64_t n : {33, 257, 2000}) {
    const Points p = lattice_cloud(n, 7 + static_cast<uint32_t>(n));
    for (const int k : {1, 5, 20}) {
      for (const bool self : {true, false}) {
        KnnOptions o;
        o.k = k;
        o.include_self = self;
        expect_same(knn(p, o), knn_brute_force_self(p, k, self),
                    "lattice n=" + std::to_string(n) + " k=" + std::to_string(k));
      }
    }
  }
  // All points identical: neighbours are the smallest indices (self excluded when asked).
  Points same = Points::Constant(40, 3, 0.5f);
  KnnOptions o;
  o.k = 4;
  o.include_self = false;
  const KnnResult r = knn(same, o);
  EXPECT_EQ(r.indices(0, 0), 1);
  EXPECT_EQ(r.indices(2, 0), 0);
  EXPECT_EQ(r.indices(2, 2), 3);
  expect_same(r, knn_brute_force_self(same, 4, false), "identical points");
}

TEST(Knn, ExternalQueries) {
  const Points p = random_cloud(1000, 3);
  const Points q = random_cloud(300, 4, 1.5f);
  expect_same(knn(p, q, 8, 2), knn_brute_force(p, q, 8), "external queries");
  const Points none(0, 3);
  EXPECT_EQ(knn(p, none, 8).indices.rows(), 0);
}

TEST(Knn, EmptyCloud) {
  KnnOptions o;
  o.k = 3;
  const KnnResult r = knn(Points(0, 3), o);
  EXPECT_EQ(r.indices.rows(), 0);
  EXPECT_EQ(r.indices.cols(), 3);
}

TEST(Knn, Errors) {
  const Points p = random_cloud(5, 1);
  KnnOptions o;
  o.k = 6;
  testing::expect_error_mentions([&] { knn(p, o); }, {"knn", "k = 6", "5"});
  o.k = 5;
  o.include_self = false;
  testing::expect_error_mentions([&] { knn(p, o); }, {"knn", "k = 5", "4"});
  o.k = 0;
  testing::expect_error_mentions([&] { knn(p, o); }, {"knn", "at least 1"});
  Points bad = p;
  bad(2, 1) = std::numeric_limits<float>::quiet_NaN();
  o.k = 2;
  testing::expect_error_mentions([&] { knn(bad, o); }, {"point 2", "non-finite"});
}

TEST(RadiusSearch, MatchesBruteForce) {
  for (const int64_t n : {1, 7, 257, 3000}) {
    const Points p = random_cloud(n, 50 + static_cast<uint32_t>(n));
    const Points q = random_cloud(97, 9);
    for (const float radius : {0.f, 0.1f, 0.4f}) {
      for (const int cap : {0, 5}) {
        const RadiusResult a = radius_search(p, q, radius, cap, 2);
        const RadiusResult b = radius_search_brute_force(p, q, radius, cap);
        EXPECT_EQ(a.offsets, b.offsets);
        EXPECT_EQ(a.indices, b.indices);
        EXPECT_EQ(a.sq_distances, b.sq_distances);
      }
    }
  }
  const Points lat = lattice_cloud(500, 2);
  const RadiusResult a = radius_search(lat, lat, 1.0f, 7);
  const RadiusResult b = radius_search_brute_force(lat, lat, 1.0f, 7);
  EXPECT_EQ(a.indices, b.indices);
  testing::expect_error_mentions([&] { radius_search(lat, lat, -1.f); }, {"radius", "-1"});
}

TEST(KnnCuda, MatchesBruteForce) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  for (const int64_t n : {1, 7, 33, 257, 5000}) {
    const Points p = random_cloud(n, 300 + static_cast<uint32_t>(n));
    for (const int k : {1, 10, 17, 40}) {
      for (const bool self : {true, false}) {
        if (k > (self ? n : n - 1)) continue;
        KnnOptions o;
        o.k = k;
        o.include_self = self;
        o.device = SearchDevice::CUDA;
        expect_same(knn(p, o), knn_brute_force_self(p, k, self),
                    "cuda n=" + std::to_string(n) + " k=" + std::to_string(k));
      }
    }
  }
}

TEST(KnnCuda, TiesFlatCloudsAndExternalQueries) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  for (const int64_t n : {257, 3000}) {
    const Points p = lattice_cloud(n, 11);
    for (const bool self : {true, false}) {
      KnnOptions o;
      o.k = 20;
      o.include_self = self;
      o.device = SearchDevice::CUDA;
      expect_same(knn(p, o), knn_brute_force_self(p, 20, self), "cuda lattice");
    }
  }
  Points flat = random_cloud(4000, 12);
  flat.col(2).setZero();  // a plane: degenerate bounding box along z
  KnnOptions o;
  o.k = 128;
  o.device = SearchDevice::CUDA;
  expect_same(knn(flat, o), knn_brute_force_self(flat, 128, true), "cuda plane k=128");
  const Points same = Points::Constant(50, 3, -2.f);
  o.k = 5;
  o.include_self = false;
  expect_same(knn(same, o), knn_brute_force_self(same, 5, false), "cuda identical");
  const Points q = random_cloud(500, 13, 3.f);  // many queries outside the grid
  const Points p = random_cloud(2000, 14);
  expect_same(knn(p, q, 12, 0, SearchDevice::CUDA), knn_brute_force(p, q, 12), "cuda external");
  EXPECT_EQ(knn(Points(0, 3), Points(0, 3), 3, 0, SearchDevice::CUDA).indices.rows(), 0);
}

TEST(KnnCuda, MatchesCpuOnLargeCloud) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  const Points p = random_cloud(200000, 21, 10.f);
  KnnOptions o;
  o.k = 10;
  const KnnResult cpu = knn(p, o);
  o.device = SearchDevice::CUDA;
  expect_same(knn(p, o), cpu, "cuda vs cpu 200k");
  o.k = 129;
  testing::expect_error_mentions([&] { knn(p, o); }, {"k = 129", "128"});
}

// ---- CUDA grid search on surfaces, curves and awkward clouds ----

// Uniform on the sphere of radius r around c (normalised Gaussian vectors).
Points sphere_surface(int64_t n, uint32_t seed, float r = 1.f, float c = 0.f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> g;
  Points p(n, 3);
  for (int64_t i = 0; i < n; ++i) {
    Eigen::Vector3f v(g(rng), g(rng), g(rng));
    while (v.norm() < 1e-3f) v = Eigen::Vector3f(g(rng), g(rng), g(rng));
    p.row(i) = (c + r * v.normalized().array()).matrix().transpose();
  }
  return p;
}

// Random points on the segment from a to b.
Points segment_cloud(int64_t n, uint32_t seed, Eigen::Vector3f a, Eigen::Vector3f b) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(0.f, 1.f);
  Points p(n, 3);
  for (int64_t i = 0; i < n; ++i) p.row(i) = (a + u(rng) * (b - a)).transpose();
  return p;
}

// Random points on the tilted plane through the origin with normal (1, 2, 3), side 4.
Points tilted_plane(int64_t n, uint32_t seed) {
  const Eigen::Vector3f nrm = Eigen::Vector3f(1, 2, 3).normalized();
  const Eigen::Vector3f a = nrm.unitOrthogonal(), b = nrm.cross(a);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-2.f, 2.f);
  Points p(n, 3);
  for (int64_t i = 0; i < n; ++i) p.row(i) = (u(rng) * a + u(rng) * b).transpose();
  return p;
}

KnnResult cuda_self(const Points& p, int k, bool self) {
  KnnOptions o;
  o.k = k;
  o.include_self = self;
  o.device = SearchDevice::CUDA;
  return knn(p, o);
}

// CUDA self queries against the brute-force reference, with and without self.
void expect_cuda_matches_brute(const Points& p, const std::vector<int>& ks,
                               const std::string& what) {
  for (const int k : ks) {
    for (const bool self : {true, false}) {
      if (k > (self ? p.rows() : p.rows() - 1)) continue;
      expect_same(cuda_self(p, k, self), knn_brute_force_self(p, k, self),
                  what + " k=" + std::to_string(k) + (self ? " self" : " no self"));
    }
  }
}

TEST(KnnCuda, SphereSurface) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  // A surface: the cell edge comes from the occupancy, not the box volume.
  expect_cuda_matches_brute(sphere_surface(6000, 31), {1, 10, 16, 33}, "sphere 6k");
  expect_cuda_matches_brute(sphere_surface(3000, 32, 50.f, 1000.f), {10, 64}, "offset sphere");
  // Larger: against the CPU KD-tree (itself checked against brute force above).
  const Points big = sphere_surface(300000, 33);
  for (const int k : {10, 24}) {
    KnnOptions o;
    o.k = k;
    o.include_self = k == 10;
    const KnnResult cpu = knn(big, o);
    o.device = SearchDevice::CUDA;
    expect_same(knn(big, o), cpu, "sphere 300k k=" + std::to_string(k));
  }
}

TEST(KnnCuda, LinesAndPlanes) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  // A diagonal segment (a curve filling few cells of a 3-D box) and one along an axis (a box
  // that is flat in two axes).
  expect_cuda_matches_brute(
      segment_cloud(4000, 41, Eigen::Vector3f(-1, -2, 0.5f), Eigen::Vector3f(3, 1, 2)), {1, 10, 40},
      "diagonal line");
  expect_cuda_matches_brute(
      segment_cloud(3000, 42, Eigen::Vector3f(0, 5, 5), Eigen::Vector3f(7, 5, 5)), {10, 20},
      "axis line");
  // Evenly spaced points on a line: every interior query has two neighbours at each distance.
  Points ladder(500, 3);
  for (int i = 0; i < 500; ++i) ladder.row(i) << 0.25f * static_cast<float>(i), 1.f, -1.f;
  expect_cuda_matches_brute(ladder, {2, 5, 11}, "evenly spaced line");
  expect_cuda_matches_brute(tilted_plane(5000, 43), {10, 30}, "tilted plane");
  const Points big = tilted_plane(200000, 44);
  KnnOptions o;
  o.k = 10;
  const KnnResult cpu = knn(big, o);
  o.device = SearchDevice::CUDA;
  expect_same(knn(big, o), cpu, "tilted plane 200k");
}

TEST(KnnCuda, LargeK) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  expect_cuda_matches_brute(sphere_surface(3000, 51), {64, 100, 128}, "sphere large k");
  expect_cuda_matches_brute(random_cloud(2500, 52), {63, 64, 65, 128}, "cube large k");
  expect_cuda_matches_brute(lattice_cloud(1500, 53), {64, 128}, "lattice large k");
  // Register-list boundaries (8, 12, 16, 32) and just above.
  expect_cuda_matches_brute(random_cloud(1200, 54), {7, 8, 9, 12, 13, 16, 17, 31, 32, 33},
                            "list sizes");
}

TEST(KnnCuda, FarOutliers) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  // A dense cluster and a few points very far away: a coarse grid, outlier queries whose
  // neighbours are many rings away, and cluster queries next to empty cells.
  Points p = random_cloud(3000, 61);
  p.row(0) << 1e4f, 0.f, 0.f;
  p.row(1) << -1e4f, 2e4f, 3.f;
  p.row(2) << 1e4f, 1e4f + 1.f, -1e4f;
  p.row(3) << 0.f, 0.f, 1e6f;
  p.row(4) << 0.5f, 0.5f, 1e6f;
  expect_cuda_matches_brute(p, {1, 10, 20}, "far outliers");
  // External queries far from everything, on every side.
  const Points q = random_cloud(200, 62, 5e6f);
  expect_same(knn(p, q, 10, 0, SearchDevice::CUDA), knn_brute_force(p, q, 10),
              "far external queries");
}

TEST(KnnCuda, OnePointAndDuplicates) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  Points one(1, 3);
  one << 3.f, -4.f, 5.f;
  const KnnResult r = cuda_self(one, 1, true);
  EXPECT_EQ(r.indices(0, 0), 0);
  EXPECT_EQ(r.sq_distances(0, 0), 0.f);
  Points q(2, 3);
  q << 3.f, -4.f, 6.f, 0.f, 0.f, 0.f;
  expect_same(knn(one, q, 1, 0, SearchDevice::CUDA), knn_brute_force(one, q, 1),
              "one point, external");
  Points two(2, 3);
  two << 1.f, 1.f, 1.f, 1.f, 1.f, 1.f;
  expect_cuda_matches_brute(two, {1, 2}, "two equal points");
  // Each point repeated (5 copies, one point 60 copies), interleaved so copies are far apart
  // in index order.
  const Points base = sphere_surface(400, 71);
  Points dup(400 * 5 + 60, 3);
  for (int c = 0; c < 5; ++c) dup.middleRows(c * 400, 400) = base;
  for (int c = 0; c < 60; ++c) dup.row(2000 + c) = base.row(17);
  expect_cuda_matches_brute(dup, {1, 4, 5, 6, 12, 40, 70}, "duplicates");
}

TEST(KnnCuda, DeviceEntryChecksAndGridStats) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  // Non-finite points reach the device search only through the device entry points (the
  // dispatch checks first): the grid build reports them.
  Points bad = random_cloud(100, 81);
  bad(37, 2) = std::numeric_limits<float>::infinity();
  std::vector<int32_t> idx(100 * 4);
  std::vector<float> d2(100 * 4);
  testing::expect_error_mentions(
      [&] {
        LAPIS_CUDA_CALL(cuda::knn_cuda, bad.data(), 100, nullptr, 100, 4, true, idx.data(),
                        d2.data());
      },
      {"knn_cuda", "non-finite"});
  // On a sphere the cell edge follows the occupancy: near CellSizeSearch's target points per
  // occupied cell (the box-volume edge gives ~27 per cell at 2M points and ~34 at 4M), found
  // with at most three sorts.
  const int64_t n = 2000000;
  const Points s = sphere_surface(n, 82);
  void* d_points = lapis::cuda::device_alloc(static_cast<size_t>(n) * 12);
  void* d_idx = lapis::cuda::device_alloc(static_cast<size_t>(n) * 10 * 4);
  void* d_d2 = lapis::cuda::device_alloc(static_cast<size_t>(n) * 10 * 4);
  lapis::cuda::copy_host_to_device(d_points, s.data(), static_cast<size_t>(n) * 12);
  cuda::KnnGridStats stats;
  LAPIS_CUDA_CALL(cuda::knn_cuda_device, static_cast<const float*>(d_points), n, nullptr, n, 10,
                  true, static_cast<int32_t*>(d_idx), static_cast<float*>(d_d2), &stats);
  KnnResult dev;
  dev.indices.resize(n, 10);
  dev.sq_distances.resize(n, 10);
  lapis::cuda::copy_device_to_host(dev.indices.data(), d_idx, static_cast<size_t>(n) * 10 * 4);
  lapis::cuda::copy_device_to_host(dev.sq_distances.data(), d_d2, static_cast<size_t>(n) * 10 * 4);
  for (void* ptr : {d_points, d_idx, d_d2}) lapis::cuda::device_free(ptr);
  KnnOptions o;
  o.k = 10;
  expect_same(dev, knn(s, o), "device entry sphere 200k");
  EXPECT_GE(stats.sorts, 1);
  EXPECT_LE(stats.sorts, 3);
  ASSERT_GT(stats.occupied_cells, 0);
  const double occupancy = static_cast<double>(n) / static_cast<double>(stats.occupied_cells);
  const double lo[3] = {s.col(0).minCoeff(), s.col(1).minCoeff(), s.col(2).minCoeff()};
  const double hi[3] = {s.col(0).maxCoeff(), s.col(1).maxCoeff(), s.col(2).maxCoeff()};
  const double target = CellSizeSearch(lo, hi, n, 10).target_per_cell();
  EXPECT_GE(occupancy, 1.0);
  EXPECT_LE(occupancy, 2.5 * target) << "cell " << stats.cell << " dims " << stats.dims[0] << " x "
                                     << stats.dims[1] << " x " << stats.dims[2];
  EXPECT_GT(stats.cell, 0.0);
  EXPECT_GE(stats.search_ms, 0.f);
}

TEST(KnnCuda, NegativeZeroCoordinates) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  // -0.0 has the bit pattern of the smallest negative int: the device bounding box must still
  // see the true extremes (a plane z = -0 with negative x, and a line x = y = -0).
  Points plane = random_cloud(2000, 91);
  plane.col(2).setConstant(-0.f);
  for (int64_t i = 0; i < 100; ++i) plane(i, 0) = -0.f;
  expect_cuda_matches_brute(plane, {1, 10}, "plane z = -0");
  Points line = segment_cloud(1000, 92, Eigen::Vector3f(0, 0, -3), Eigen::Vector3f(0, 0, 2));
  line.col(0).setConstant(-0.f);
  line.col(1).setConstant(-0.f);
  expect_cuda_matches_brute(line, {1, 8}, "line x = y = -0");
}

}  // namespace
}  // namespace geometry
}  // namespace lapis
