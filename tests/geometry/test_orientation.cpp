// Orientation: Hoppe MST on closed shapes (every normal outward), several components, NaN
// normals left alone, viewpoint orientation.
#include <gtest/gtest.h>

#include <random>

#include "core/check.h"
#include "geometry/normals.h"
#include "geometry/orientation.h"
#include "tests/common/test_util.h"
#include "tests/geometry/shapes.h"

namespace lapis {
namespace geometry {
namespace {

// Fraction of normals with n . (p - centre) > 0.
int64_t count_inward(const Points& p, const Points& n, const Eigen::Vector3f& centre) {
  int64_t inward = 0;
  for (int64_t i = 0; i < p.rows(); ++i) {
    if ((p.row(i) - centre.transpose()).dot(n.row(i)) <= 0.f) ++inward;
  }
  return inward;
}

void scramble_signs(Points& n, uint32_t seed) {
  std::mt19937 rng(seed);
  for (int64_t i = 0; i < n.rows(); ++i) {
    if (rng() & 1u) n.row(i) *= -1.f;
  }
}

TEST(OrientationMst, SphereAllOutward) {
  const PointCloud s = testshapes::sphere(5000, 1.5f, Eigen::Vector3f(0.2f, 0.1f, -3.f));
  NormalOptions o;
  o.k = 10;
  Points n = estimate_normals_pca(s.positions, o).normals;
  scramble_signs(n, 1);
  const OrientationStats stats = orient_normals_mst(s.positions, n, 10);
  EXPECT_EQ(stats.components, 1);
  EXPECT_GT(stats.edges, 5000 * 5);
  EXPECT_EQ(count_inward(s.positions, n, Eigen::Vector3f(0.2f, 0.1f, -3.f)), 0);
}

TEST(OrientationMst, CubeAllOutward) {
  const PointCloud c = testshapes::cube(1500, 4);
  NormalOptions o;
  o.k = 10;
  Points n = estimate_normals_pca(c.positions, o).normals;
  scramble_signs(n, 2);
  orient_normals_mst(c.positions, n, 10);
  EXPECT_EQ(count_inward(c.positions, n, Eigen::Vector3f::Zero()), 0);
  // Away from the edges the oriented normal is the face normal.
  for (int64_t i = 0; i < c.size(); ++i) {
    if (c.positions.row(i).cwiseAbs().minCoeff() > -1.f &&
        (c.positions.row(i).cwiseAbs().array() < 0.8f).count() == 2) {
      EXPECT_GT(n.row(i).dot(c.normals.row(i)), 0.99f) << "point " << i;
    }
  }
}

TEST(OrientationMst, SeveralComponentsAndNaN) {
  const PointCloud a = testshapes::sphere(2000, 1.f, Eigen::Vector3f(0, 0, 0));
  const PointCloud b = testshapes::sphere(1500, 0.5f, Eigen::Vector3f(10, 0, 5));
  Points p(3500, 3);
  p << a.positions, b.positions;
  NormalOptions o;
  o.k = 10;
  Points n = estimate_normals_pca(p, o).normals;
  scramble_signs(n, 3);
  n.row(17).setConstant(std::numeric_limits<float>::quiet_NaN());
  const OrientationStats stats = orient_normals_mst(p, n, 10);
  EXPECT_EQ(stats.components, 2);
  EXPECT_TRUE(std::isnan(n(17, 0)));
  n.row(17) = p.row(17);  // outward on the unit sphere, for the count below
  EXPECT_EQ(count_inward(p.topRows(2000), n.topRows(2000), Eigen::Vector3f(0, 0, 0)), 0);
  EXPECT_EQ(count_inward(p.bottomRows(1500), n.bottomRows(1500), Eigen::Vector3f(10, 0, 5)), 0);
}

TEST(OrientationMst, SmallAndEmptyInputs) {
  Points p(1, 3), n(1, 3);
  p << 0, 0, 0;
  n << 0, 0, -1;
  orient_normals_mst(p, n, 10);
  EXPECT_EQ(n(0, 2), 1.f);  // the root points +z
  Points e(0, 3), en(0, 3);
  EXPECT_EQ(orient_normals_mst(e, en, 5).components, 0);
  Points wrong(2, 3);
  testing::expect_error_mentions([&] { orient_normals_mst(p, wrong, 5); },
                                 {"orient_normals_mst", "2 rows"});
}

TEST(OrientationViewpoint, FacesTheViewpoint) {
  const PointCloud s = testshapes::sphere(1000);
  Points n = s.normals;
  scramble_signs(n, 4);
  orient_normals_toward_viewpoint(s.positions, n, Eigen::Vector3f::Zero());
  // Toward the centre = inward everywhere.
  EXPECT_EQ(count_inward(s.positions, n, Eigen::Vector3f::Zero()), 1000);
  const Eigen::Vector3f vp(0, 0, 100);
  orient_normals_toward_viewpoint(s.positions, n, vp);
  for (int64_t i = 0; i < 1000; ++i) {
    EXPECT_GE((vp.transpose() - s.positions.row(i)).dot(n.row(i)), 0.f);
  }
}

}  // namespace
}  // namespace geometry
}  // namespace lapis
