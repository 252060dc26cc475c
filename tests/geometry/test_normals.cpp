// PCA normals: the closed-form 3x3 eigen solve against Eigen, planes / spheres / cylinders with
// known normals, degenerate neighbourhoods, CPU vs CUDA.
#include <gtest/gtest.h>

#include <Eigen/Eigenvalues>
#include <random>

#include "core/check.h"
#include "geometry/normals.h"
#include "geometry/pca3.h"
#include "tests/common/test_util.h"
#include "tests/geometry/shapes.h"

namespace lapis {
namespace geometry {
namespace {

using testshapes::unoriented_angle_deg;

double max_angle_error(const Points& a, const Points& b) {
  double worst = 0.0;
  for (int64_t i = 0; i < a.rows(); ++i) {
    worst = std::max(worst, unoriented_angle_deg(a.row(i).transpose(), b.row(i).transpose()));
  }
  return worst;
}

// Checks pca3 against Eigen's iterative solver for A = R diag(l) R^T.
void check_eigen(const Eigen::Vector3d& l, const Eigen::Matrix3d& rot, double angle_tol_deg) {
  const Eigen::Matrix3d a = rot * l.asDiagonal() * rot.transpose();
  const double m[6] = {a(0, 0), a(0, 1), a(0, 2), a(1, 1), a(1, 2), a(2, 2)};
  double eval[3], evec[3];
  ASSERT_TRUE(pca3::smallest_eigenvector(m, eval, evec));
  Eigen::Vector3d sorted = l;
  std::sort(sorted.data(), sorted.data() + 3);
  const double scale = sorted.cwiseAbs().maxCoeff();
  for (int c = 0; c < 3; ++c) EXPECT_NEAR(eval[c], sorted[c], 1e-9 * scale);  // acos loses digits near double roots
  if (sorted[1] - sorted[0] > 1e-6 * scale) {
    Eigen::Index arg;
    l.minCoeff(&arg);
    const Eigen::Vector3d expected = rot.col(arg);
    const double c = std::fabs(expected.dot(Eigen::Vector3d(evec[0], evec[1], evec[2])));
    EXPECT_GT(c, std::cos(angle_tol_deg * M_PI / 180.0)) << "eigenvalues " << l.transpose();
  }
  // Always: A v = lambda0 v.
  const Eigen::Vector3d v(evec[0], evec[1], evec[2]);
  EXPECT_NEAR(v.norm(), 1.0, 1e-12);
  EXPECT_LT((a * v - eval[0] * v).norm(), 1e-9 * scale);
}

TEST(Pca3, ClosedFormEigenMatchesReference) {
  std::mt19937 rng(5);
  std::normal_distribution<double> g;
  for (int trial = 0; trial < 200; ++trial) {
    Eigen::Matrix3d m;
    for (int i = 0; i < 9; ++i) m.data()[i] = g(rng);
    const Eigen::Matrix3d rot = Eigen::HouseholderQR<Eigen::Matrix3d>(m).householderQ();
    check_eigen(Eigen::Vector3d(std::fabs(g(rng)), std::fabs(g(rng)), std::fabs(g(rng))), rot,
                1e-4);
    // Near-planar neighbourhoods (tiny smallest eigenvalue) and near-double small eigenvalues.
    check_eigen(Eigen::Vector3d(1.0, 0.5, 1e-9), rot, 1e-5);
    check_eigen(Eigen::Vector3d(1e-3, 1.0, 1.0 + 1e-7), rot, 1e-3);
    check_eigen(Eigen::Vector3d(2.0, 1e-4, 1.0), rot, 1e-5);
    check_eigen(Eigen::Vector3d(1e6, 2e6, 3e6), rot, 1e-5);
  }
  // Diagonal, isotropic and zero matrices.
  const double diag[6] = {3, 0, 0, 1, 0, 2};
  double eval[3], evec[3];
  ASSERT_TRUE(pca3::smallest_eigenvector(diag, eval, evec));
  EXPECT_EQ(evec[1], 1.0);
  EXPECT_EQ(eval[0], 1.0);
  EXPECT_EQ(eval[2], 3.0);
  const double zero[6] = {0, 0, 0, 0, 0, 0};
  EXPECT_FALSE(pca3::smallest_eigenvector(zero, eval, evec));
  const double nan_m[6] = {1, NAN, 0, 1, 0, 1};
  EXPECT_FALSE(pca3::smallest_eigenvector(nan_m, eval, evec));
}

TEST(Normals, PlanesAreExact) {
  for (const Eigen::Vector3f nrm :
       {Eigen::Vector3f(0, 0, 1), Eigen::Vector3f(1, 2, 3), Eigen::Vector3f(-0.3f, 1, 0.01f)}) {
    const PointCloud pc = testshapes::plane(3000, nrm, 17);
    NormalOptions o;
    o.k = 10;
    const NormalEstimate est = estimate_normals_pca(pc.positions, o);
    EXPECT_LT(max_angle_error(est.normals, pc.normals), 0.005);  // float positions: ~1e-4 deg
    for (int64_t i = 0; i < pc.size(); ++i) {
      ASSERT_TRUE(est.valid[static_cast<size_t>(i)]);
      EXPECT_LT(est.curvature[i], 1e-6);
      EXPECT_NEAR(est.normals.row(i).norm(), 1.f, 1e-6f);
    }
  }
}

TEST(Normals, SphereAndCylinder) {
  // PCA on a curved surface is biased by O(neighbourhood radius / surface radius) at most; on
  // these regular samplings the error stays well under a degree.
  const PointCloud s = testshapes::sphere(20000, 2.f, Eigen::Vector3f(1, -2, 0.5f));
  NormalOptions o;
  o.k = 12;
  o.num_threads = 2;
  const NormalEstimate es = estimate_normals_pca(s.positions, o);
  EXPECT_LT(max_angle_error(es.normals, s.normals), 1.0);
  // Curvature lambda0/sum on a sphere: positive, small, roughly uniform.
  for (int64_t i = 0; i < s.size(); ++i) {
    EXPECT_GT(es.curvature[i], 0.f);
    EXPECT_LT(es.curvature[i], 0.02f);
  }
  const PointCloud c = testshapes::cylinder(200, 60);
  const NormalEstimate ec = estimate_normals_pca(c.positions, o);
  EXPECT_LT(max_angle_error(ec.normals, c.normals), 1.0);
  // Same result from precomputed neighbours, any thread count.
  KnnOptions ko;
  ko.k = 12;
  const NormalEstimate again = normals_from_neighbors(c.positions, knn(c.positions, ko).indices, 1);
  EXPECT_TRUE(again.normals.isApprox(ec.normals, 0.f) || again.normals == ec.normals);
}

TEST(Normals, DegenerateNeighbourhoodsGiveNaN) {
  // Collinear points: no plane.
  Points line(20, 3);
  for (int i = 0; i < 20; ++i) line.row(i) << 0.1f * i, 0.2f * i, -0.05f * i;
  NormalOptions o;
  o.k = 5;
  NormalEstimate e = estimate_normals_pca(line, o);
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(e.valid[static_cast<size_t>(i)], 0);
    EXPECT_TRUE(std::isnan(e.normals(i, 0)) && std::isnan(e.curvature[i]));
  }
  // Coincident points.
  e = estimate_normals_pca(Points::Constant(8, 3, 1.5f), o);
  for (int i = 0; i < 8; ++i) EXPECT_EQ(e.valid[static_cast<size_t>(i)], 0);
  // Fewer than 3 neighbours (k = 2), and padding entries (-1) counted out.
  const PointCloud pl = testshapes::plane(50, Eigen::Vector3f(0, 0, 1), 3);
  o.k = 2;
  e = estimate_normals_pca(pl.positions, o);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(e.valid[static_cast<size_t>(i)], 0);
  IndexMatrix nb(4, 4);
  nb << 0, 1, 2, -1, 1, -1, -1, -1, 2, 0, 1, 3, 3, 3, 3, 3;
  e = normals_from_neighbors(pl.positions.topRows(4), nb);
  EXPECT_TRUE(e.valid[0]);
  EXPECT_FALSE(e.valid[1]);
  EXPECT_TRUE(e.valid[2]);
  EXPECT_FALSE(e.valid[3]);  // one point repeated
}

TEST(Normals, PointCloudWrapperAndErrors) {
  PointCloud pc = testshapes::sphere(500);
  const Points truth = pc.normals;
  pc.normals.resize(0, 3);
  const Eigen::VectorXf curv = estimate_normals(pc);
  EXPECT_EQ(curv.size(), 500);
  EXPECT_TRUE(pc.has_normals());
  EXPECT_LT(max_angle_error(pc.normals, truth), 5.0);
  EXPECT_EQ(pc.count_valid(), 500);
  pc.validate("estimate_normals");
  IndexMatrix bad(2, 3);
  bad << 0, 1, 7, 0, 1, 0;
  testing::expect_error_mentions(
      [&] { normals_from_neighbors(pc.positions.topRows(2), bad); },
      {"normals_from_neighbors", "7", "out of range"});
  testing::expect_error_mentions([&] { normals_from_neighbors(pc.positions, bad); },
                                 {"normals_from_neighbors", "2 rows", "500"});
  const NormalEstimate empty = estimate_normals_pca(Points(0, 3));
  EXPECT_EQ(empty.normals.rows(), 0);
}

TEST(NormalsCuda, MatchesCpu) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  std::mt19937 rng(8);
  std::normal_distribution<float> noise(0.f, 0.01f);
  for (const int64_t n : {3, 7, 33, 257, 20000}) {
    PointCloud s = testshapes::sphere(n);
    for (int64_t i = 0; i < n; ++i) {
      for (int c = 0; c < 3; ++c) s.positions(i, c) += noise(rng);
    }
    for (const int k : {3, 10, 30}) {
      if (k > n) continue;
      NormalOptions o;
      o.k = k;
      const NormalEstimate cpu = estimate_normals_pca(s.positions, o);
      o.device = SearchDevice::CUDA;
      const NormalEstimate gpu = estimate_normals_pca(s.positions, o);
      // Same kNN and the same double-precision arithmetic; only FMA contraction differs, so
      // normals agree to ~1e-10 except for sign (compare |dot|) and curvature to 1e-6.
      ASSERT_EQ(cpu.valid, gpu.valid);
      for (int64_t i = 0; i < n; ++i) {
        if (!cpu.valid[static_cast<size_t>(i)]) continue;
        const float d = std::fabs(cpu.normals.row(i).dot(gpu.normals.row(i)));
        EXPECT_GT(d, 1.f - 1e-5f) << "n=" << n << " k=" << k << " point " << i;
        EXPECT_NEAR(cpu.curvature[i], gpu.curvature[i], 1e-6f);
      }
      KnnOptions ko;
      ko.k = k;
      const IndexMatrix nb = knn(s.positions, ko).indices;
      const NormalEstimate from_nb = normals_from_neighbors(s.positions, nb, 0, SearchDevice::CUDA);
      ASSERT_EQ(from_nb.valid, cpu.valid);
    }
  }
  // Degenerate input on the device too.
  NormalOptions o;
  o.k = 4;
  o.device = SearchDevice::CUDA;
  const NormalEstimate e = estimate_normals_pca(Points::Constant(9, 3, 2.f), o);
  for (int i = 0; i < 9; ++i) EXPECT_EQ(e.valid[static_cast<size_t>(i)], 0);
  EXPECT_EQ(estimate_normals_pca(Points(0, 3), o).normals.rows(), 0);
}

// The CUDA normals from points alone run the kNN fused with the PCA (no neighbour matrix);
// from a neighbour matrix they run the PCA alone. Both must agree with the CPU: same
// neighbours, same double-precision formulas (only FMA contraction differs).
void expect_cuda_normals_match_cpu(const Points& p, int k, bool include_self,
                                   const std::string& what) {
  NormalOptions o;
  o.k = k;
  o.include_self = include_self;
  const NormalEstimate cpu = estimate_normals_pca(p, o);
  o.device = SearchDevice::CUDA;
  const NormalEstimate fused = estimate_normals_pca(p, o);
  KnnOptions ko;
  ko.k = k;
  ko.include_self = include_self;
  const NormalEstimate from_nb =
      normals_from_neighbors(p, knn(p, ko).indices, 0, SearchDevice::CUDA);
  ASSERT_EQ(fused.valid, cpu.valid) << what;
  ASSERT_EQ(from_nb.valid, cpu.valid) << what;
  for (int64_t i = 0; i < p.rows(); ++i) {
    if (!cpu.valid[static_cast<size_t>(i)]) {
      EXPECT_TRUE(std::isnan(fused.normals(i, 0)) && std::isnan(fused.curvature[i]))
          << what << " point " << i;
      continue;
    }
    EXPECT_GT(std::fabs(cpu.normals.row(i).dot(fused.normals.row(i))), 1.f - 1e-5f)
        << what << " point " << i;
    EXPECT_NEAR(cpu.curvature[i], fused.curvature[i], 1e-6f) << what << " point " << i;
    EXPECT_GT(std::fabs(from_nb.normals.row(i).dot(fused.normals.row(i))), 1.f - 1e-5f)
        << what << " point " << i;
    EXPECT_NEAR(from_nb.curvature[i], fused.curvature[i], 1e-6f) << what << " point " << i;
  }
}

TEST(NormalsCuda, FusedMatchesCpuOnShapes) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  const PointCloud s = testshapes::sphere(30000, 2.f, Eigen::Vector3f(1, -2, 0.5f));
  expect_cuda_normals_match_cpu(s.positions, 10, true, "sphere k=10");
  expect_cuda_normals_match_cpu(s.positions, 10, false, "sphere k=10 no self");
  expect_cuda_normals_match_cpu(s.positions, 20, true, "sphere k=20");
  const PointCloud pl = testshapes::plane(20000, Eigen::Vector3f(1, 2, 3), 9);
  expect_cuda_normals_match_cpu(pl.positions, 10, true, "tilted plane");
  const PointCloud c = testshapes::cylinder(300, 80);
  expect_cuda_normals_match_cpu(c.positions, 12, true, "cylinder");
  expect_cuda_normals_match_cpu(c.positions, 64, true, "cylinder k=64");
  expect_cuda_normals_match_cpu(testshapes::sphere(2000).positions, 128, true, "sphere k=128");
}

TEST(NormalsCuda, FusedDegenerateNeighbourhoods) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  // Collinear points (invalid), duplicates (each point repeated: valid from the other
  // copies' neighbours or coincident), k < 3 (invalid).
  Points line(300, 3);
  for (int i = 0; i < 300; ++i) line.row(i) << 0.1f * i, 0.2f * i, -0.05f * i;
  expect_cuda_normals_match_cpu(line, 5, true, "line");
  const PointCloud base = testshapes::sphere(500);
  Points dup(1500, 3);
  for (int c = 0; c < 3; ++c) dup.middleRows(c * 500, 500) = base.positions;
  expect_cuda_normals_match_cpu(dup, 3, true, "duplicates k=3");
  expect_cuda_normals_match_cpu(dup, 9, false, "duplicates k=9");
  expect_cuda_normals_match_cpu(base.positions, 2, true, "k=2");
  expect_cuda_normals_match_cpu(Points::Constant(5, 3, 1.f), 5, true, "coincident");
}

}  // namespace
}  // namespace geometry
}  // namespace lapis
