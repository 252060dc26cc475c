// Shared by the kNN tests: clouds with many exactly equal distances, and the exact comparison of
// two kNN results (indices and squared distances bit for bit).
#pragma once

#include <gtest/gtest.h>

#include <random>
#include <string>

#include "geometry/knn.h"

namespace lapis {
namespace geometry {
namespace testknn {

// Points on a small integer lattice (side^3 sites) with repeats: many exactly equal distances,
// and points on grid-cell edges.
inline Points lattice_cloud(int64_t n, uint32_t seed, int side = 5) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> u(0, side - 1);
  Points p(n, 3);
  for (int64_t i = 0; i < n; ++i) {
    for (int c = 0; c < 3; ++c) p(i, c) = static_cast<float>(u(rng));
  }
  return p;
}

inline void expect_same(const KnnResult& a, const KnnResult& b, const std::string& what) {
  ASSERT_EQ(a.indices.rows(), b.indices.rows()) << what;
  ASSERT_EQ(a.indices.cols(), b.indices.cols()) << what;
  for (int64_t r = 0; r < a.indices.rows(); ++r) {
    for (int64_t c = 0; c < a.indices.cols(); ++c) {
      ASSERT_EQ(a.indices(r, c), b.indices(r, c)) << what << " row " << r << " col " << c;
      ASSERT_EQ(a.sq_distances(r, c), b.sq_distances(r, c)) << what << " row " << r;
    }
  }
}

}  // namespace testknn
}  // namespace geometry
}  // namespace lapis
