// Mesh sampling (uniform by area, exact face normals, seeded; noise; density variants; the
// evaluation subset) and the normal metrics on hand-computed angles.
#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "core/check.h"
#include "geometry/normal_metrics.h"
#include "geometry/sampling.h"

namespace lapis {
namespace geometry {
namespace {

// Two triangles: a unit square in z = 0 (area 1, normal +z) and a 2 x 1 rectangle in x = 5
// (area 2, normal +x), so 2/3 of the points must land on the second.
TriangleMesh two_patches() {
  TriangleMesh m;
  m.vertices.resize(8, 3);
  m.vertices << 0, 0, 0, 1, 0, 0, 1, 1, 0, 0, 1, 0,   // square, z = 0
      5, 0, 0, 5, 2, 0, 5, 2, 1, 5, 0, 1;             // rectangle, x = 5
  m.faces.resize(4, 3);
  m.faces << 0, 1, 2, 0, 2, 3, 4, 5, 6, 4, 6, 7;
  return m;
}

TEST(GeometrySampling, UniformByAreaWithExactFaceNormals) {
  const TriangleMesh m = two_patches();
  Indices faces;
  const PointCloud c = sample_mesh_uniform(m, 30000, 7, &faces);
  ASSERT_EQ(c.size(), 30000);
  ASSERT_TRUE(c.has_normals());
  int64_t on_rect = 0;
  for (int64_t i = 0; i < c.size(); ++i) {
    const bool rect = faces[static_cast<size_t>(i)] >= 2;
    on_rect += rect;
    if (rect) {
      EXPECT_EQ(c.positions(i, 0), 5.0f);
      EXPECT_EQ(c.normals.row(i), Eigen::RowVector3f(1, 0, 0));
    } else {
      EXPECT_EQ(c.positions(i, 2), 0.0f);
      EXPECT_EQ(c.normals.row(i), Eigen::RowVector3f(0, 0, 1));
      EXPECT_GE(c.positions(i, 0), 0.0f);
      EXPECT_LE(c.positions(i, 0), 1.0f);
    }
  }
  // 2/3 expected; binomial sd = sqrt(30000 * 2/9) ~ 82 points, allow 5 sd.
  EXPECT_NEAR(static_cast<double>(on_rect), 20000.0, 410.0);
  // Uniform within the square: mean x ~ 0.5 (sd of the mean ~ 0.005).
  double sum_x = 0;
  int64_t n_sq = 0;
  for (int64_t i = 0; i < c.size(); ++i) {
    if (faces[static_cast<size_t>(i)] < 2) { sum_x += c.positions(i, 0); ++n_sq; }
  }
  EXPECT_NEAR(sum_x / n_sq, 0.5, 0.03);
  // Seeded: same seed, same points; another seed, other points.
  EXPECT_TRUE(sample_mesh_uniform(m, 30000, 7).positions == c.positions);
  EXPECT_FALSE(sample_mesh_uniform(m, 30000, 8).positions == c.positions);
}

TEST(GeometrySampling, NoiseHasTheRequestedSigma) {
  const TriangleMesh m = two_patches();
  const PointCloud c = sample_mesh_uniform(m, 20000, 1);
  const double diag = bounding_box_diagonal(c.positions);
  const PointCloud noisy = add_gaussian_noise(c, 0.01, 3);
  EXPECT_TRUE(noisy.normals == c.normals);
  double ss = 0;
  for (int64_t i = 0; i < c.size(); ++i) {
    ss += (noisy.positions.row(i) - c.positions.row(i)).cast<double>().squaredNorm();
  }
  const double sigma = std::sqrt(ss / (3.0 * c.size()));
  EXPECT_NEAR(sigma / (0.01 * diag), 1.0, 0.02);
  EXPECT_TRUE(add_gaussian_noise(c, 0.0, 3).positions == c.positions);
  EXPECT_THROW(add_gaussian_noise(c, -1.0, 3), Error);
}

TEST(GeometrySampling, GradientAndStripedDensity) {
  // A long strip along x (the longest axis): 10 x 1.
  TriangleMesh m;
  m.vertices.resize(4, 3);
  m.vertices << 0, 0, 0, 10, 0, 0, 10, 1, 0, 0, 1, 0;
  m.faces.resize(2, 3);
  m.faces << 0, 1, 2, 0, 2, 3;
  SampleOptions o;
  o.num_points = 40000;
  o.seed = 5;
  o.density = DensityVariant::gradient;
  const PointCloud g = sample_mesh(m, o);
  ASSERT_EQ(g.size(), 40000);
  // w(t) = 1 - 0.9 t, integral 0.55: the first tenth holds (0.1 - 0.45 * 0.01) / 0.55 = 17.4 %,
  // the last tenth (0.1 - 0.45 * 0.19) / 0.55 = 2.64 %.
  int64_t first = 0, last = 0;
  for (int64_t i = 0; i < g.size(); ++i) {
    first += g.positions(i, 0) < 1.0f;
    last += g.positions(i, 0) >= 9.0f;
  }
  EXPECT_NEAR(first / 40000.0, 0.955 / 5.5, 0.01);
  EXPECT_NEAR(last / 40000.0, 0.0145 / 0.55, 0.005);

  o.density = DensityVariant::striped;
  const PointCloud s = sample_mesh(m, o);
  // 10 bands of width 1, dense (1) and sparse (0.2) alternating: a dense band holds
  // 1 / (5 * 1.2) = 16.7 %, a sparse band 3.3 %.
  int64_t band0 = 0, band1 = 0;
  for (int64_t i = 0; i < s.size(); ++i) {
    band0 += s.positions(i, 0) < 1.0f;
    band1 += s.positions(i, 0) >= 1.0f && s.positions(i, 0) < 2.0f;
  }
  EXPECT_NEAR(band0 / 40000.0, 1.0 / 6.0, 0.01);
  EXPECT_NEAR(band1 / 40000.0, 0.2 / 6.0, 0.005);
}

TEST(GeometrySampling, EvaluationSubsetAndErrors) {
  const Indices a = choose_evaluation_subset(100000, 5000, 42);
  ASSERT_EQ(a.size(), 5000u);
  EXPECT_EQ(std::set<int64_t>(a.begin(), a.end()).size(), 5000u);
  EXPECT_TRUE(std::is_sorted(a.begin(), a.end()));
  EXPECT_GE(a.front(), 0);
  EXPECT_LT(a.back(), 100000);
  EXPECT_EQ(choose_evaluation_subset(100000, 5000, 42), a);
  EXPECT_NE(choose_evaluation_subset(100000, 5000, 43), a);
  EXPECT_EQ(choose_evaluation_subset(3, 5000, 1), (Indices{0, 1, 2}));

  TriangleMesh flat;
  flat.vertices.resize(3, 3);
  flat.vertices << 0, 0, 0, 1, 0, 0, 2, 0, 0;  // zero area
  flat.faces.resize(1, 3);
  flat.faces << 0, 1, 2;
  EXPECT_THROW(sample_mesh_uniform(flat, 10, 0), Error);
  flat.faces << 0, 1, 3;
  EXPECT_THROW(sample_mesh_uniform(flat, 10, 0), Error);
}

Points rows(std::initializer_list<Eigen::RowVector3f> r) {
  Points p(static_cast<Eigen::Index>(r.size()), 3);
  Eigen::Index i = 0;
  for (const auto& v : r) p.row(i++) = v;
  return p;
}

TEST(GeometryMetrics, HandComputedAngles) {
  const float s = std::sqrt(0.5f);
  // GT all +z. Predictions: exact; 45 deg; 90 deg; flipped (180 oriented, 0 unoriented);
  // unnormalised 3 deg-ish vector (atan(0.05) = 2.8624 deg) scaled by 4.
  const Points gt = rows({{0, 0, 1}, {0, 0, 1}, {0, 0, 1}, {0, 0, 1}, {0, 0, 1}});
  const Points pred = rows({{0, 0, 2}, {s, 0, s}, {1, 0, 0}, {0, 0, -1}, {0.2f, 0, 4}});
  const std::vector<double> un = unoriented_angles_deg(pred, gt);
  const std::vector<double> ori = oriented_angles_deg(pred, gt);
  const double a4 = std::atan(0.05) * 180.0 / M_PI;
  const double expect_un[5] = {0, 45, 90, 0, a4};
  const double expect_or[5] = {0, 45, 90, 180, a4};
  for (int i = 0; i < 5; ++i) {
    EXPECT_NEAR(un[i], expect_un[i], 1e-4) << i;
    EXPECT_NEAR(ori[i], expect_or[i], 1e-4) << i;
  }
  const NormalMetrics m = normal_metrics(pred, gt);
  EXPECT_EQ(m.count, 5);
  EXPECT_NEAR(m.unoriented_rmse_deg, std::sqrt((45.0 * 45 + 90.0 * 90 + a4 * a4) / 5), 1e-4);
  EXPECT_FALSE(m.flipped);  // 1 of 5 beyond 90 degrees
  EXPECT_NEAR(m.oriented_rmse_deg,
              std::sqrt((45.0 * 45 + 90.0 * 90 + 180.0 * 180 + a4 * a4) / 5), 1e-4);
  EXPECT_NEAR(m.pgp5, 60.0, 1e-9);   // 0, 0, 2.86 are < 5
  EXPECT_NEAR(m.pgp10, 60.0, 1e-9);

  // Subset {1, 3}: unoriented 45, 0; oriented 45, 180 -> not more than half flipped (1 of 2).
  const NormalMetrics sub = normal_metrics(pred, gt, {1, 3});
  EXPECT_EQ(sub.count, 2);
  EXPECT_NEAR(sub.unoriented_rmse_deg, std::sqrt(45.0 * 45 / 2), 1e-4);
  EXPECT_FALSE(sub.flipped);
  EXPECT_NEAR(sub.pgp5, 50.0, 1e-9);
}

TEST(GeometryMetrics, WholeShapeFlip) {
  // 3 of 4 predictions point away (170, 180, 100 deg) and one agrees (10 deg): flipped -> 10, 0,
  // 80, 170.
  auto at = [](double deg) {
    const double r = deg * M_PI / 180.0;
    return Eigen::RowVector3f(static_cast<float>(std::sin(r)), 0, static_cast<float>(std::cos(r)));
  };
  const Points gt = rows({{0, 0, 1}, {0, 0, 1}, {0, 0, 1}, {0, 0, 1}});
  const Points pred = rows({at(170), at(180), at(100), at(10)});
  const NormalMetrics m = normal_metrics(pred, gt);
  EXPECT_TRUE(m.flipped);
  EXPECT_NEAR(m.oriented_rmse_deg, std::sqrt((100.0 + 0 + 6400 + 28900) / 4), 1e-3);
  EXPECT_NEAR(m.unoriented_rmse_deg, std::sqrt((100.0 + 0 + 6400 + 100) / 4), 1e-3);
  EXPECT_NEAR(m.pgp10, 25.0, 1e-9);  // only the 180 one (0 deg unoriented) is < 10 strictly
  // Exactly half flipped: no flip.
  const Points pred2 = rows({at(170), at(180), at(10), at(0)});
  EXPECT_FALSE(normal_metrics(pred2, gt).flipped);
}

TEST(GeometryMetrics, Errors) {
  const Points a = rows({{0, 0, 1}, {0, 0, 1}});
  const Points b = rows({{0, 0, 1}});
  EXPECT_THROW(normal_metrics(a, b), Error);
  EXPECT_THROW(normal_metrics(a, a, {2}), Error);
  Points c = a;
  c(1, 0) = NAN;
  EXPECT_THROW(normal_metrics(c, a), Error);
  EXPECT_THROW(normal_metrics(Points(0, 3), Points(0, 3)), Error);
  // A zero prediction counts as 90 degrees.
  const Points z = rows({{0, 0, 0}, {0, 0, 1}});
  EXPECT_NEAR(normal_metrics(z, a).unoriented_rmse_deg, std::sqrt(90.0 * 90 / 2), 1e-9);
}

TEST(GeometryMetrics, NearestFaceNormalsRecoverTheSampledFace) {
  // A closed octahedron (8 faces, outward winding): points sampled on it get their own face,
  // also when pushed slightly outward along the face normal.
  TriangleMesh m;
  m.vertices.resize(6, 3);
  m.vertices << 1, 0, 0, -1, 0, 0, 0, 1, 0, 0, -1, 0, 0, 0, 1, 0, 0, -1;
  m.faces.resize(8, 3);
  m.faces << 0, 2, 4, 2, 1, 4, 1, 3, 4, 3, 0, 4, 2, 0, 5, 1, 2, 5, 3, 1, 5, 0, 3, 5;
  Indices faces;
  PointCloud c = sample_mesh_uniform(m, 3000, 11, &faces);
  c.positions += 0.01f * c.normals;
  Indices found;
  const Points n = nearest_face_normals(m, c.positions, &found);
  for (int64_t i = 0; i < c.size(); ++i) {
    ASSERT_EQ(found[static_cast<size_t>(i)], faces[static_cast<size_t>(i)]) << i;
    ASSERT_TRUE(n.row(i).isApprox(c.normals.row(i))) << i;
    // Outward: the normal points away from the centre.
    ASSERT_GT(n.row(i).dot(c.positions.row(i)), 0.0f);
  }
  // A far point: the nearest face is the one facing it, though many centroids are near.
  Points far(1, 3);
  far << 10, 10, 10;
  EXPECT_TRUE(nearest_face_normals(m, far).row(0).isApprox(
      Eigen::RowVector3f(1, 1, 1).normalized()));
  EXPECT_THROW(nearest_face_normals(TriangleMesh{}, far), Error);
}

}  // namespace
}  // namespace geometry
}  // namespace lapis
