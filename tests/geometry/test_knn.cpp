// kNN / radius search: KD-tree and CUDA grid against the brute-force reference, including ties
// (duplicates and points on an integer lattice, where many distances are equal).
#include <gtest/gtest.h>

#include <random>

#include "core/check.h"
#include "geometry/knn.h"
#include "tests/common/test_util.h"

namespace lapis {
namespace geometry {
namespace {

Points random_cloud(int64_t n, uint32_t seed, float scale = 1.f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-scale, scale);
  Points p(n, 3);
  for (int64_t i = 0; i < n; ++i) {
    for (int c = 0; c < 3; ++c) p(i, c) = u(rng);
  }
  return p;
}

// Points on a small integer lattice with repeats: lots of exactly equal distances.
Points lattice_cloud(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> u(0, 4);
  Points p(n, 3);
  for (int64_t i = 0; i < n; ++i) {
    for (int c = 0; c < 3; ++c) p(i, c) = static_cast<float>(u(rng));
  }
  return p;
}

void expect_same(const KnnResult& a, const KnnResult& b, const std::string& what) {
  ASSERT_EQ(a.indices.rows(), b.indices.rows()) << what;
  ASSERT_EQ(a.indices.cols(), b.indices.cols()) << what;
  for (int64_t r = 0; r < a.indices.rows(); ++r) {
    for (int64_t c = 0; c < a.indices.cols(); ++c) {
      ASSERT_EQ(a.indices(r, c), b.indices(r, c)) << what << " row " << r << " col " << c;
      ASSERT_EQ(a.sq_distances(r, c), b.sq_distances(r, c)) << what << " row " << r;
    }
  }
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

}  // namespace
}  // namespace geometry
}  // namespace lapis
