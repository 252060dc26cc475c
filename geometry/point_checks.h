// Internal argument checks shared by the kNN implementations (KD-tree, grid, brute force).
#pragma once

#include <cmath>
#include <cstdint>

#include "core/check.h"
#include "geometry/point_cloud.h"

namespace lapis {
namespace geometry {
namespace detail {

// Every coordinate finite; the error names the first bad point.
inline void check_points(const Points& points, const char* op) {
  for (int64_t r = 0; r < points.rows(); ++r) {
    const float x = points(r, 0), y = points(r, 1), z = points(r, 2);
    LAPIS_CHECK(std::isfinite(x) && std::isfinite(y) && std::isfinite(z), op, "point ", r,
                " has a non-finite coordinate (", x, ", ", y, ", ", z, ")");
  }
}

// 1 <= k <= available (`what` names what is counted, e.g. "points of the cloud").
inline void check_k(int k, int64_t available, const char* op, const char* what) {
  LAPIS_CHECK(k >= 1, op, "k must be at least 1, got ", k);
  LAPIS_CHECK(k <= available, op, "k = ", k, " exceeds the ", available, " ", what);
}

}  // namespace detail
}  // namespace geometry
}  // namespace lapis
