// CPU uniform-grid kNN (geometry/knn_grid.h) against the brute-force reference, on the shapes
// that stress a uniform grid (surfaces, flat and degenerate boxes, ties, queries in empty space),
// and the cell-size search it uses (geometry/grid_cell_size.h).
#include <gtest/gtest.h>

#include <Eigen/Geometry>
#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "core/check.h"
#include "geometry/grid_cell_size.h"
#include "geometry/knn.h"
#include "geometry/knn_grid.h"
#include "geometry/normals.h"
#include "tests/common/test_util.h"
#include "tests/geometry/knn_checks.h"
#include "tests/geometry/shapes.h"

namespace lapis {
namespace geometry {
namespace {

using testknn::expect_same;
using testknn::lattice_cloud;

Points uniform_cloud(int64_t n, uint32_t seed, float lo = -1.f, float hi = 1.f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  Points p(n, 3);
  for (int64_t i = 0; i < n; ++i) {
    for (int c = 0; c < 3; ++c) p(i, c) = u(rng);
  }
  return p;
}

// Random points on the unit sphere (not a regular pattern: distances vary).
Points sphere_cloud(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> g(0.f, 1.f);
  Points p(n, 3);
  for (int64_t i = 0; i < n; ++i) {
    Eigen::Vector3f v(g(rng), g(rng), g(rng));
    v.normalize();
    p.row(i) = v.transpose();
  }
  return p;
}



// Self queries through knn_self and knn_self_visit, and the same points as external queries,
// all against brute force.
void check_grid(const Points& p, int k, const std::string& what, int k_hint = -1) {
  const KnnGrid grid(p, k_hint > 0 ? k_hint : k, 3);
  for (const bool self : {true, false}) {
    if (k > (self ? p.rows() : p.rows() - 1)) continue;
    const std::string name = what + " k=" + std::to_string(k) + (self ? " self" : " no-self");
    const KnnResult ref = knn_brute_force_self(p, k, self);
    expect_same(grid.knn_self(k, self, 3), ref, name);
    // The visitor sees every row once, with the same lists and the neighbours' coordinates.
    KnnResult visited;
    visited.indices = IndexMatrix::Constant(p.rows(), k, -1);
    visited.sq_distances = DistanceMatrix::Zero(p.rows(), k);
    std::vector<int> seen(static_cast<size_t>(p.rows()), 0);
    bool positions_ok = true;
    grid.knn_self_visit(k, self, 1,
                        [&](int64_t row, const int32_t* idx, const float* d, const float* xyz) {
                          ++seen[static_cast<size_t>(row)];
                          for (int c = 0; c < k; ++c) {
                            visited.indices(row, c) = idx[c];
                            visited.sq_distances(row, c) = d[c];
                            for (int a = 0; a < 3; ++a) {
                              if (xyz[3 * c + a] != p(idx[c], a)) positions_ok = false;
                            }
                          }
                        });
    EXPECT_TRUE(std::all_of(seen.begin(), seen.end(), [](int v) { return v == 1; })) << name;
    EXPECT_TRUE(positions_ok) << name;
    expect_same(visited, ref, name + " (visit)");
  }
  if (k <= p.rows()) {
    expect_same(grid.knn(p, k, 2), knn_brute_force(p, p, k), what + " external=self");
  }
}

TEST(KnnGrid, MatchesBruteForceOnRandomClouds) {
  for (const int64_t n : {2, 7, 33, 257, 3000}) {
    const Points p = uniform_cloud(n, 10 + static_cast<uint32_t>(n));
    for (const int k : {1, 3, 10, 16, 60}) {
      if (k > n) continue;
      check_grid(p, k, "uniform n=" + std::to_string(n));
    }
  }
  // The grid's cell size follows k_hint; any other k stays exact.
  const Points p = uniform_cloud(2000, 3);
  check_grid(p, 1, "k_hint 30", 30);
  check_grid(p, 40, "k_hint 2", 2);
}

TEST(KnnGrid, MatchesBruteForceOnSurfacesAndCurves) {
  check_grid(sphere_cloud(4000, 1), 10, "sphere");
  check_grid(testshapes::sphere(3000).positions, 12, "fibonacci sphere");
  // Cube surface: every point lies on one of six planes, often on a cell edge of the grid.
  check_grid(testshapes::cube(500, 2).positions, 10, "cube surface");
  check_grid(testshapes::plane(3000, Eigen::Vector3f(0.2f, -0.3f, 1.f), 3).positions, 10,
             "tilted plane");
  // A helix: a curve, local dimension 1.
  Points helix(2000, 3);
  for (int64_t i = 0; i < helix.rows(); ++i) {
    const double t = 0.01 * static_cast<double>(i);
    helix.row(i) << static_cast<float>(std::cos(t)), static_cast<float>(std::sin(t)),
        static_cast<float>(0.05 * t);
  }
  check_grid(helix, 8, "helix");
}

TEST(KnnGrid, FlatAndDegenerateBoxes) {
  Points flat = uniform_cloud(3000, 4);
  flat.col(2).setConstant(0.25f);  // z extent 0: one cell along z
  check_grid(flat, 10, "flat z");
  Points line = uniform_cloud(1500, 5);
  line.col(1).setZero();
  line.col(2).setConstant(-3.f);  // two degenerate axes
  check_grid(line, 6, "line along x");
  Points diagonal(1000, 3);  // a line not along an axis: a thin box
  std::mt19937 rng(6);
  std::uniform_real_distribution<float> u(0.f, 1.f);
  for (int64_t i = 0; i < diagonal.rows(); ++i) {
    const float t = u(rng);
    diagonal.row(i) << t, 2.f * t, -t;
  }
  check_grid(diagonal, 10, "diagonal line");
  const Points same = Points::Constant(40, 3, 0.5f);  // every axis degenerate
  check_grid(same, 5, "identical points");
  const KnnGrid g(same, 5, 1);
  EXPECT_EQ(g.dims()[0] * g.dims()[1] * g.dims()[2], 1);
  const KnnResult r = g.knn_self(4, false, 1);
  EXPECT_EQ(r.indices(0, 0), 1);  // all at distance 0: the smallest other indices
  EXPECT_EQ(r.indices(2, 0), 0);
  EXPECT_EQ(r.indices(2, 2), 3);
}

TEST(KnnGrid, NegativeZeroCoordinates) {
  // -0 and +0 are the same coordinate: same cell, distance 0 between them.
  Points p = lattice_cloud(300, 31, 3);
  for (int64_t i = 0; i < p.rows(); i += 2) {
    for (int c = 0; c < 3; ++c) {
      if (p(i, c) == 0.f) p(i, c) = -0.f;
    }
  }
  p.row(0) << -0.f, -0.f, -0.f;  // the box minimum is -0
  check_grid(p, 8, "negative zeros");
}

TEST(KnnGrid, TiesOnLatticesAndDuplicates) {
  for (const int64_t n : {33, 500, 3000}) {
    for (const int side : {2, 5, 12}) {
      const Points p = lattice_cloud(n, 7 + static_cast<uint32_t>(n), side);
      for (const int k : {1, 6, 27}) {
        if (k > n - 1) continue;
        check_grid(p, k, "lattice n=" + std::to_string(n) + " side=" + std::to_string(side));
      }
    }
  }
  // Four points at distance 1 from the origin: the smallest indices win.
  Points p(5, 3);
  p << 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, -1, 0, -1, 0, 0;
  const KnnResult r = KnnGrid(p, 3, 1).knn_self(3, false, 1);
  EXPECT_EQ(r.indices(0, 0), 1);
  EXPECT_EQ(r.indices(0, 1), 2);
  EXPECT_EQ(r.indices(0, 2), 3);
}

TEST(KnnGrid, SmallCloudsAndKEqualsN) {
  Points one(1, 3);
  one << 1.f, -2.f, 3.f;
  const KnnGrid g1(one, 1, 1);
  const KnnResult r1 = g1.knn_self(1, true, 1);
  EXPECT_EQ(r1.indices(0, 0), 0);
  EXPECT_EQ(r1.sq_distances(0, 0), 0.f);
  Points q(2, 3);
  q << 0, 0, 0, 10, 10, 10;
  expect_same(g1.knn(q, 1, 1), knn_brute_force(one, q, 1), "one point, external");
  testing::expect_error_mentions([&] { g1.knn_self(1, false, 1); }, {"knn", "k = 1", "0"});
  const Points p = uniform_cloud(50, 8);
  check_grid(p, 50, "k = n");  // k = n with self, and k = n - 1 is checked without
  check_grid(p, 49, "k = n - 1");
}

TEST(KnnGrid, EmptyCloudAndErrors) {
  const KnnGrid empty(Points(0, 3), 4, 1);
  EXPECT_EQ(empty.size(), 0);
  EXPECT_EQ(empty.knn_self(4, true, 1).indices.rows(), 0);
  EXPECT_EQ(empty.knn_self(4, true, 1).indices.cols(), 4);
  EXPECT_EQ(empty.knn(Points(0, 3), 4, 1).indices.rows(), 0);
  int visits = 0;
  empty.knn_self_visit(4, true, 1,
                       [&](int64_t, const int32_t*, const float*, const float*) { ++visits; });
  EXPECT_EQ(visits, 0);
  testing::expect_error_mentions([&] { empty.knn(uniform_cloud(3, 1), 1, 1); },
                                 {"knn", "k = 1", "0 points"});

  const Points p = uniform_cloud(5, 1);
  const KnnGrid g(p, 3, 1);
  testing::expect_error_mentions([&] { g.knn_self(6, true, 1); }, {"knn", "k = 6", "5"});
  testing::expect_error_mentions([&] { g.knn_self(5, false, 1); }, {"knn", "k = 5", "4"});
  testing::expect_error_mentions([&] { g.knn_self(0, true, 1); }, {"knn", "at least 1"});
  testing::expect_error_mentions([&] { g.knn(p, 6, 1); }, {"knn", "k = 6", "5"});

  // Non-finite coordinates: a clear error naming the point, as the KD-tree gives.
  Points bad = p;
  bad(2, 1) = std::numeric_limits<float>::quiet_NaN();
  testing::expect_error_mentions([&] { KnnGrid(bad, 3, 1); }, {"point 2", "non-finite"});
  bad(2, 1) = std::numeric_limits<float>::infinity();
  testing::expect_error_mentions([&] { KnnGrid(bad, 3, 1); }, {"point 2", "non-finite"});
  Points bad_q = uniform_cloud(3, 2);
  bad_q(1, 0) = std::numeric_limits<float>::quiet_NaN();
  testing::expect_error_mentions([&] { g.knn(bad_q, 2, 1); },
                                 {"knn (queries)", "point 1", "non-finite"});
  // The public dispatch keeps the KD-tree's messages.
  KnnOptions o;
  o.k = 2;
  testing::expect_error_mentions([&] { knn(bad, o); }, {"point 2", "non-finite"});
}

TEST(KnnGrid, QueriesOutsideTheBoxAndInEmptySpace) {
  const Points p = uniform_cloud(3000, 9);
  // Most queries outside the cloud's box, some far away.
  Points q = uniform_cloud(600, 10, -4.f, 4.f);
  q.row(0) << 1e4f, -1e4f, 3e3f;
  q.row(1) << -1.f, -1.f, -1.f;  // the box corner
  q.row(2) << 1.f, 1.f, 1.f;
  q.row(3) << 3e19f, 0.f, 0.f;  // squared distances overflow to +inf: ties broken by index
  const KnnGrid g(p, 10, 2);
  for (const int k : {1, 10, 33}) {
    expect_same(g.knn(q, k, 2), knn_brute_force(p, q, k), "outside k=" + std::to_string(k));
  }
  // Inside a hollow sphere: the nearest points are a radius away, far beyond two rings of
  // cells, so these queries go to the fallback KD-tree.
  const Points s = sphere_cloud(5000, 11);
  const Points inner = uniform_cloud(300, 12, -0.5f, 0.5f);
  const KnnGrid gs(s, 10, 2);
  expect_same(gs.knn(inner, 10, 2), knn_brute_force(s, inner, 10), "inside hollow sphere");
  expect_same(knn(s, inner, 10, 2), knn_brute_force(s, inner, 10), "dispatch, hollow sphere");
}

TEST(KnnGrid, IsolatedPointsUseTheFallback) {
  // A dense cluster and a few far, isolated points (self queries the rings cannot settle),
  // with and without self, through knn_self and the visitor.
  Points p = uniform_cloud(2000, 13, 0.f, 1.f);
  p.row(5) << 40.f, 0.f, 0.f;
  p.row(17) << 40.5f, 0.f, 0.f;
  p.row(900) << 0.f, -30.f, 25.f;
  p.row(1999) << 0.f, -30.f, 25.f;  // a duplicate far away
  for (const int k : {1, 4, 12}) check_grid(p, k, "cluster + isolated points");
}

TEST(KnnGrid, UnevenCloudsFallBackToTheTreeInTheDispatch) {
  // A tight cluster and one far outlier: the cap on cells leaves the whole cluster in a few
  // cells, so the grid reports itself inefficient and knn() takes the KD-tree.
  std::mt19937 rng(14);
  std::normal_distribution<float> g(0.f, 0.01f);
  Points p(20000, 3);
  for (int64_t i = 0; i < p.rows(); ++i) p.row(i) << g(rng), g(rng), g(rng);
  p.row(0) << 100.f, 100.f, 100.f;
  const KnnGrid grid(p, 10, 2);
  EXPECT_GT(grid.mean_block_points(), 5000.0);
  EXPECT_FALSE(grid.efficient_for(10));
  // A scan-like cloud is efficient.
  const KnnGrid sg(sphere_cloud(20000, 15), 10, 2);
  EXPECT_LT(sg.mean_block_points(), 300.0);
  EXPECT_TRUE(sg.efficient_for(10));
  // knn() on the uneven cloud: spot-check rows against brute force on a subset of queries.
  Points q(200, 3);
  for (int64_t i = 0; i < q.rows(); ++i) q.row(i) = p.row(i * 97);
  KnnOptions o;
  o.k = 10;
  o.num_threads = 2;
  const KnnResult all = knn(p, o);
  const KnnResult ref = knn_brute_force(p, q, 10);
  for (int64_t i = 0; i < q.rows(); ++i) {
    EXPECT_EQ(all.indices.row(i * 97), ref.indices.row(i)) << "row " << i * 97;
  }
}

TEST(KnnGrid, DispatchMatchesBruteForce) {
  const Points p = sphere_cloud(3000, 16);
  KnnOptions o;
  o.k = 10;
  o.num_threads = 3;
  for (const bool self : {true, false}) {
    o.include_self = self;
    expect_same(knn(p, o), knn_brute_force_self(p, 10, self), "knn() self");
  }
  const Points q = uniform_cloud(500, 17, -1.2f, 1.2f);
  expect_same(knn(p, q, 7, 2), knn_brute_force(p, q, 7), "knn() external");
}

// The fused grid + PCA path gives bit-identical normals to PCA over the brute-force
// neighbours (same neighbours, same floats, same arithmetic).
TEST(KnnGrid, FusedNormalsBitIdenticalToBruteForceNeighbours) {
  for (const Points& p :
       {sphere_cloud(3000, 18), testshapes::cube(400, 19).positions, lattice_cloud(800, 20, 6)}) {
    for (const bool self : {true, false}) {
      NormalOptions o;
      o.k = 10;
      o.include_self = self;
      o.num_threads = 2;
      const NormalEstimate fused = estimate_normals_pca(p, o);
      const NormalEstimate ref =
          normals_from_neighbors(p, knn_brute_force_self(p, 10, self).indices, 1);
      ASSERT_EQ(fused.valid, ref.valid);
      EXPECT_EQ(std::memcmp(fused.normals.data(), ref.normals.data(),
                            sizeof(float) * static_cast<size_t>(p.size())),
                0);
      EXPECT_EQ(std::memcmp(fused.curvature.data(), ref.curvature.data(),
                            sizeof(float) * static_cast<size_t>(p.rows())),
                0);
    }
  }
}

// Points exactly on the grid's cell edges and one float step either side. With a box of
// [0, 24]^3, 3840 points and k = 10 the cell-size search stops at its first edge,
// cbrt(24^3 * 7.5 / 3840) = 3, where 1/3 is inexact: (x - origin) / h lands on the wrong side
// of an edge for some multiples of 3, and distances to neighbours on the edges tie with the
// gaps used to stop the ring search.
TEST(KnnGrid, PointsOnCellEdges) {
  std::mt19937 rng(30);
  std::uniform_int_distribution<int> site(0, 8);
  std::uniform_int_distribution<int> nudge(-1, 1);
  Points p(3840, 3);
  for (int64_t i = 0; i < p.rows(); ++i) {
    for (int c = 0; c < 3; ++c) {
      float v = 3.f * static_cast<float>(site(rng));
      const int s = i % 3 == 0 ? nudge(rng) : 0;
      if (s != 0 && v > 0.f && v < 24.f) v = std::nextafter(v, s > 0 ? 100.f : -100.f);
      p(i, c) = v;
    }
  }
  p.row(0) << 0.f, 0.f, 0.f;
  p.row(1) << 24.f, 24.f, 24.f;
  const KnnGrid g(p, 10, 2);
  EXPECT_NEAR(g.cell(), 3.0, 1e-12);  // cbrt may round by an ulp
  for (const int k : {1, 10, 30}) check_grid(p, k, "cell edges", 10);
}

// ---- CellSizeSearch ----

// Occupied cells of a grid with edge h and `dims` cells from lo (the last cell takes the rest).
int64_t count_occupied(const Points& p, const double lo[3], double h, const int* dims) {
  std::set<int64_t> cells;
  for (int64_t i = 0; i < p.rows(); ++i) {
    int64_t key = 0;
    for (int c = 2; c >= 0; --c) {
      const double t = std::floor((static_cast<double>(p(i, c)) - lo[c]) / h);
      const int64_t cc =
          std::min<int64_t>(dims[c] - 1, std::max<int64_t>(0, static_cast<int64_t>(t)));
      key = key * dims[c] + cc;
    }
    cells.insert(key);
  }
  return static_cast<int64_t>(cells.size());
}

void bounds(const Points& p, double lo[3], double hi[3]) {
  for (int c = 0; c < 3; ++c) {
    lo[c] = p.col(c).minCoeff();
    hi[c] = p.col(c).maxCoeff();
  }
}

// Runs the search to the end; returns the number of reports.
int run_search(CellSizeSearch& s, const Points& p, const double lo[3]) {
  int reports = 0;
  while (!s.done()) {
    s.report(count_occupied(p, lo, s.cell(), s.dims()));
    ++reports;
  }
  return reports;
}

TEST(CellSizeSearch, VolumeDataStopsAtOnce) {
  const Points p = uniform_cloud(50000, 21);
  double lo[3], hi[3];
  bounds(p, lo, hi);
  CellSizeSearch s(lo, hi, p.rows(), 10);
  EXPECT_DOUBLE_EQ(s.target_per_cell(), 7.5);
  const double first = s.cell();
  EXPECT_EQ(run_search(s, p, lo), 1);
  EXPECT_EQ(s.cell(), first);
  const double occupancy = static_cast<double>(p.rows()) /
                           static_cast<double>(count_occupied(p, lo, s.cell(), s.dims()));
  EXPECT_GE(occupancy, 0.5 * s.target_per_cell());
  EXPECT_LE(occupancy, 2.0 * s.target_per_cell());
}

TEST(CellSizeSearch, SurfacesConvergeToTheTargetOccupancy) {
  struct Case {
    std::string name;
    Points p;
  };
  Points cylinder = testshapes::cylinder(400, 250).positions;
  const std::vector<Case> cases = {
      {"sphere 200k", sphere_cloud(200000, 22)},
      {"sphere 20k", sphere_cloud(20000, 23)},
      {"cube surface", testshapes::cube(20000, 24).positions},
      {"cylinder", cylinder},
      {"tilted plane", testshapes::plane(50000, Eigen::Vector3f(0.3f, 0.2f, 1.f), 25).positions},
  };
  for (const Case& c : cases) {
    for (const int k : {6, 10, 30}) {
      double lo[3], hi[3];
      bounds(c.p, lo, hi);
      CellSizeSearch s(lo, hi, c.p.rows(), k);
      const int reports = run_search(s, c.p, lo);
      EXPECT_LE(reports, 2) << c.name;
      const double occupancy = static_cast<double>(c.p.rows()) /
                               static_cast<double>(count_occupied(c.p, lo, s.cell(), s.dims()));
      EXPECT_GE(occupancy, 0.5 * s.target_per_cell()) << c.name << " k=" << k;
      EXPECT_LE(occupancy, 2.0 * s.target_per_cell()) << c.name << " k=" << k;
    }
  }
}

TEST(CellSizeSearch, SinglePointAndIdenticalPoints) {
  const double lo[3] = {1.0, 2.0, 3.0};
  CellSizeSearch one(lo, lo, 1, 10);
  EXPECT_TRUE(one.done());
  EXPECT_EQ(one.total_cells(), 1);
  EXPECT_GT(one.cell(), 0.0);
  CellSizeSearch same(lo, lo, 1000, 10);  // all points identical: an empty box
  EXPECT_TRUE(same.done());
  EXPECT_EQ(same.total_cells(), 1);
  const double hi[3] = {2.0, 2.0, 3.0};
  CellSizeSearch none(lo, hi, 0, 3);
  EXPECT_TRUE(none.done());
  EXPECT_EQ(none.total_cells(), 1);
}

TEST(CellSizeSearch, CapOnTotalCells) {
  // Boxes of every shape, with occupancies reported as if all points sat in one cell (the
  // search then shrinks the cell as far as it may): never more than max(4 n, 4096) cells nor
  // 1024 along an axis.
  const double lo[3] = {0.0, 0.0, 0.0};
  const std::vector<std::array<double, 3>> boxes = {{1, 1, 1},      {1, 1, 1e-3}, {1, 1e-3, 1e-3},
                                                    {1, 1, 0},      {1, 0, 0},    {100, 1, 0.01},
                                                    {1, 1, 0.0014}, {3, 2, 0.001}};
  for (const auto& b : boxes) {
    for (const int64_t n : {10, 1000, 100000, 3000000}) {
      const double hi[3] = {b[0], b[1], b[2]};
      CellSizeSearch s(lo, hi, n, 10);
      const double cap = std::max<double>(4.0 * static_cast<double>(n), 4096.0);
      while (!s.done()) {
        EXPECT_LE(static_cast<double>(s.total_cells()), cap)
            << b[0] << " x " << b[1] << " x " << b[2] << " n=" << n;
        s.report(1);
      }
      EXPECT_LE(static_cast<double>(s.total_cells()), cap)
          << b[0] << " x " << b[1] << " x " << b[2] << " n=" << n;
      for (int c = 0; c < 3; ++c) {
        EXPECT_GE(s.dims()[c], 1);
        EXPECT_LE(s.dims()[c], 1024);
      }
    }
  }
  const double hi[3] = {1.0, 1.0, 1.0};
  CellSizeSearch s(lo, hi, 100, 10);
  testing::expect_error_mentions([&] { s.report(0); }, {"CellSizeSearch::report", "0"});
  testing::expect_error_mentions([&] { s.report(101); }, {"CellSizeSearch::report", "101"});
  testing::expect_error_mentions([&] { CellSizeSearch(lo, hi, 10, 0); },
                                 {"CellSizeSearch", "k = 0"});
}

}  // namespace
}  // namespace geometry
}  // namespace lapis
