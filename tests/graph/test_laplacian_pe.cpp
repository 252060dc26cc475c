// LapPE and RWSE: eigen residuals and orthonormality, dense vs sparse solvers, permutation
// equivariance on simple spectra, determinism, padding, isolated nodes / disconnected graphs,
// hand-computed RWSE, and the CUDA Lanczos (skips without a GPU).
#include <Eigen/Dense>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "graph/laplacian_pe.h"
#include "graph/random_walk_se.h"
#include "tests/common/test_util.h"

using namespace lapis;
using namespace lapis::graph;

namespace {

struct Edges {
  int64_t n = 0;
  std::vector<int32_t> s, d;
  void add(int a, int b) { s.push_back(a); d.push_back(b); }
};

// Dense normalised Laplacian of the simple undirected graph.
Eigen::MatrixXd dense_laplacian(const Edges& e) {
  Eigen::MatrixXd A = Eigen::MatrixXd::Zero(e.n, e.n);
  for (size_t i = 0; i < e.s.size(); ++i) {
    if (e.s[i] != e.d[i]) A(e.s[i], e.d[i]) = A(e.d[i], e.s[i]) = 1.0;
  }
  Eigen::VectorXd deg = A.rowwise().sum();
  Eigen::MatrixXd L = Eigen::MatrixXd::Identity(e.n, e.n);
  for (int i = 0; i < e.n; ++i)
    for (int j = 0; j < e.n; ++j)
      if (A(i, j) != 0) L(i, j) -= 1.0 / std::sqrt(deg(i) * deg(j));
  return L;
}

Eigen::MatrixXd to_eigen(const Tensor& t) {
  Eigen::MatrixXd m(t.size(0), t.size(1));
  const float* p = t.data<float>();
  for (int i = 0; i < m.rows(); ++i)
    for (int j = 0; j < m.cols(); ++j) m(i, j) = p[i * m.cols() + j];
  return m;
}

// A random tree on n nodes plus `chords` extra random edges (seeded).
Edges random_graph(int n, int chords, uint64_t seed) {
  Edges e;
  e.n = n;
  for (int i = 1; i < n; ++i) e.add(static_cast<int>(random_bits(seed, i) % i), i);
  for (int c = 0; c < chords; ++c) {
    e.add(static_cast<int>(random_bits(seed + 1, 2 * c) % n),
          static_cast<int>(random_bits(seed + 1, 2 * c + 1) % n));
  }
  return e;
}

// Minimum gap between consecutive eigenvalues 0..k+1 (simple spectrum check).
double min_gap(const Edges& e, int k) {
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> es(dense_laplacian(e));
  double g = 1e9;
  for (int j = 0; j <= k && j + 1 < e.n; ++j)
    g = std::min(g, es.eigenvalues()[j + 1] - es.eigenvalues()[j]);
  return g;
}

void expect_eigen(const Edges& e, const LapPE& pe, double tol) {
  Eigen::MatrixXd L = dense_laplacian(e);
  Eigen::MatrixXd U = to_eigen(pe.vectors).leftCols(pe.num_valid);
  Eigen::VectorXd lam = Eigen::Map<const Eigen::VectorXd>(pe.eigenvalues.data(), pe.num_valid);
  const double res = (L * U - U * lam.asDiagonal()).norm();
  EXPECT_LT(res, tol) << "residual ||LU - U Lambda||";
  const double orth = (U.transpose() * U - Eigen::MatrixXd::Identity(U.cols(), U.cols())).norm();
  EXPECT_LT(orth, tol) << "orthonormality";
  for (int j = 1; j < pe.num_valid; ++j) EXPECT_LE(pe.eigenvalues[j - 1], pe.eigenvalues[j] + 1e-9);
}

}  // namespace

TEST(LapPE, DenseResidualAndOrthonormality) {
  Edges e = random_graph(40, 15, 7);
  LapPEOptions o;
  o.k = 8;
  LapPE pe = laplacian_pe(e.n, e.s, e.d, o);
  ASSERT_EQ(pe.vectors.shape(), (Shape{40, 8}));
  EXPECT_EQ(pe.num_valid, 8);
  expect_eigen(e, pe, 1e-5);  // f32 storage of the vectors
  // Skips the trivial eigenvalue 0: the first returned is the second smallest of L.
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> es(dense_laplacian(e));
  for (int j = 0; j < 8; ++j) EXPECT_NEAR(pe.eigenvalues[j], es.eigenvalues()[j + 1], 1e-10);
}

TEST(LapPE, SparseMatchesDenseOnSimpleSpectra) {
  // Paths with chords and random trees: check the gaps first so "up to sign" is meaningful.
  int compared = 0;
  for (uint64_t seed = 1; seed <= 6; ++seed) {
    Edges e = random_graph(300 + 37 * static_cast<int>(seed), static_cast<int>(seed) * 20, seed);
    if (min_gap(e, 6) < 1e-3) continue;
    ++compared;
    LapPEOptions dense, sparse, spectra;
    dense.k = sparse.k = spectra.k = 6;
    dense.method = EigenMethod::Dense;
    sparse.method = EigenMethod::Lanczos;
    spectra.method = EigenMethod::Spectra;
    sparse.tol = spectra.tol = 1e-10;
    LapPE a = laplacian_pe(e.n, e.s, e.d, dense);
    for (const LapPEOptions& o : {sparse, spectra}) {
      LapPE b = laplacian_pe(e.n, e.s, e.d, o);
      EXPECT_GT(b.matvecs, 0);
      expect_eigen(e, b, 1e-4);
      for (int j = 0; j < 6; ++j) EXPECT_NEAR(a.eigenvalues[j], b.eigenvalues[j], 1e-8);
      // Same sign convention, simple spectrum: the vectors agree (f32 storage, tol 1e-4).
      EXPECT_TRUE(lapis::testing::all_close(b.vectors, a.vectors, 1e-4, 0.0)) << "seed " << seed;
    }
  }
  EXPECT_GE(compared, 2);
}

TEST(LapPE, PermutationPermutesEncoding) {
  Edges e = random_graph(60, 10, 3);
  ASSERT_GT(min_gap(e, 5), 1e-3);
  std::vector<int32_t> perm(e.n);
  std::iota(perm.begin(), perm.end(), 0);
  for (int i = static_cast<int>(e.n) - 1; i > 0; --i)
    std::swap(perm[i], perm[random_bits(99, i) % (i + 1)]);
  Edges f = e;
  for (size_t i = 0; i < e.s.size(); ++i) { f.s[i] = perm[e.s[i]]; f.d[i] = perm[e.d[i]]; }
  LapPEOptions o;
  o.k = 5;
  auto a = laplacian_pe(e.n, e.s, e.d, o), b = laplacian_pe(f.n, f.s, f.d, o);
  const float* pa = a.vectors.data<float>();
  const float* pb = b.vectors.data<float>();
  for (int i = 0; i < e.n; ++i)
    for (int j = 0; j < 5; ++j) EXPECT_NEAR(pa[i * 5 + j], pb[perm[i] * 5 + j], 1e-5);
}

TEST(LapPE, DeterministicAcrossRuns) {
  Edges e = random_graph(2000, 3000, 11);
  LapPEOptions o;
  o.k = 4;
  o.method = EigenMethod::Lanczos;
  auto a = laplacian_pe(e.n, e.s, e.d, o), b = laplacian_pe(e.n, e.s, e.d, o);
  EXPECT_TRUE(lapis::testing::bitwise_equal(a.vectors, b.vectors));
  o.num_threads = 1;  // fixed row blocks: the thread count does not change the numbers
  auto c = laplacian_pe(e.n, e.s, e.d, o);
  EXPECT_TRUE(lapis::testing::bitwise_equal(a.vectors, c.vectors));
  expect_eigen(e, a, 1e-4);
}

TEST(LapPE, SignConvention) {
  Edges e = random_graph(30, 5, 5);
  auto pe = laplacian_pe(e.n, e.s, e.d, {});
  Eigen::MatrixXd U = to_eigen(pe.vectors);
  for (int j = 0; j < pe.num_valid; ++j) {
    Eigen::Index i;
    U.col(j).cwiseAbs().maxCoeff(&i);
    EXPECT_GT(U(i, j), 0.0);
  }
}

TEST(LapPE, PadsTinyGraphs) {
  Edges e;
  e.n = 3;
  e.add(0, 1);
  e.add(1, 2);
  LapPEOptions o;
  o.k = 8;
  auto pe = laplacian_pe(e.n, e.s, e.d, o);
  ASSERT_EQ(pe.vectors.shape(), (Shape{3, 8}));
  EXPECT_EQ(pe.num_valid, 2);  // path P3: eigenvalues 0, 1, 2
  EXPECT_NEAR(pe.eigenvalues[0], 1.0, 1e-12);
  EXPECT_NEAR(pe.eigenvalues[1], 2.0, 1e-12);
  const float* p = pe.vectors.data<float>();
  for (int i = 0; i < 3; ++i)
    for (int j = 2; j < 8; ++j) EXPECT_EQ(p[i * 8 + j], 0.0f);
  Edges empty;
  auto pe0 = laplacian_pe(0, empty.s, empty.d, o);
  EXPECT_EQ(pe0.vectors.shape(), (Shape{0, 8}));
}

TEST(LapPE, IsolatedNodesAndDisconnectedGraphs) {
  // Two triangles, an isolated node 6, a self loop and a duplicate edge (ignored).
  Edges e;
  e.n = 7;
  for (int base : {0, 3}) { e.add(base, base + 1); e.add(base + 1, base + 2); e.add(base + 2, base); }
  e.add(0, 1);
  e.add(4, 4);
  LapPEOptions o;
  o.k = 4;
  auto pe = laplacian_pe(e.n, e.s, e.d, o);
  const float* p = pe.vectors.data<float>();
  for (int64_t i = 0; i < pe.vectors.numel(); ++i) EXPECT_TRUE(std::isfinite(p[i]));
  EXPECT_EQ(pe.num_valid, 4);
  // Eigenvalue 0 twice (two triangles): the user gets the second component's trivial vector.
  EXPECT_EQ(pe.eigenvalues[0], 0.0);
  EXPECT_NEAR(pe.eigenvalues[1], 1.0, 1e-9);  // isolated node (and degenerate triangle 1.5s after)
  for (int i = 0; i < 3; ++i) EXPECT_EQ(p[i * 4 + 0], 0.0f);
  for (int i = 3; i < 6; ++i) EXPECT_NEAR(p[i * 4 + 0], 1.0 / std::sqrt(3.0), 1e-6);
  expect_eigen(e, pe, 1e-5);
  // Sparse path on a disconnected large graph: two random components.
  Edges a = random_graph(500, 50, 21), b = random_graph(400, 30, 22);
  Edges big;
  big.n = 900;
  big.s = a.s;
  big.d = a.d;
  for (size_t i = 0; i < b.s.size(); ++i) big.add(b.s[i] + 500, b.d[i] + 500);
  o.method = EigenMethod::Lanczos;
  auto pb = laplacian_pe(big.n, big.s, big.d, o);
  EXPECT_EQ(pb.eigenvalues[0], 0.0);
  expect_eigen(big, pb, 1e-4);
}

TEST(LapPE, FlipSignsRandom) {
  Tensor pe = Tensor::full({5, 16}, 1.0);
  Generator gen(3);
  flip_signs_random(pe, gen);
  const float* p = pe.data<float>();
  int neg = 0;
  for (int j = 0; j < 16; ++j) {
    for (int i = 1; i < 5; ++i) EXPECT_EQ(p[i * 16 + j], p[j]);  // one sign per column
    EXPECT_EQ(std::abs(p[j]), 1.0f);
    neg += p[j] < 0;
  }
  EXPECT_GT(neg, 0);
  EXPECT_LT(neg, 16);
  Tensor bad = Tensor::zeros({2, 2, 2});
  lapis::testing::expect_error_mentions([&] { flip_signs_random(bad, gen); }, {"flip_signs_random"});
}

TEST(LapPE, Errors) {
  Edges e;
  e.n = 2;
  e.add(0, 5);
  lapis::testing::expect_error_mentions([&] { laplacian_pe(e.n, e.s, e.d, {}); }, {"edge 0", "5"});
  LapPEOptions o;
  o.k = 0;
  Edges f;
  f.n = 2;
  lapis::testing::expect_error_mentions([&] { laplacian_pe(f.n, f.s, f.d, o); }, {"k must be"});
}

TEST(RWSE, HandComputedPathAndTriangle) {
  // Triangle: return probability p1 = 0, p2 = 1/2, p3 = 1/4 for every node.
  Tensor t = random_walk_se(3, {0, 1, 2}, {1, 2, 0}, 3);
  const float* p = t.data<float>();
  for (int i = 0; i < 3; ++i) {
    EXPECT_FLOAT_EQ(p[i * 3 + 0], 0.0f);
    EXPECT_FLOAT_EQ(p[i * 3 + 1], 0.5f);
    EXPECT_FLOAT_EQ(p[i * 3 + 2], 0.25f);
  }
  // Path 0-1-2: node 0: p2 = 1 * 1/2 = 1/2, p4 = 1/2; node 1: p2 = 1, p4 = 1. Odd t: 0.
  Tensor q = random_walk_se(3, {0, 1}, {1, 2}, 4);
  const float* r = q.data<float>();
  EXPECT_FLOAT_EQ(r[0 * 4 + 1], 0.5f);
  EXPECT_FLOAT_EQ(r[1 * 4 + 1], 1.0f);
  EXPECT_FLOAT_EQ(r[0 * 4 + 3], 0.5f);
  EXPECT_FLOAT_EQ(r[0 * 4 + 0], 0.0f);
  EXPECT_FLOAT_EQ(r[1 * 4 + 2], 0.0f);
}

TEST(RWSE, SparseWalkMatchesDensePower) {
  Edges e = random_graph(150, 60, 4);  // N > 64: the sparse per-node walk
  Tensor t = random_walk_se(e.n, e.s, e.d, 6);
  Eigen::MatrixXd A = Eigen::MatrixXd::Zero(e.n, e.n);
  for (size_t i = 0; i < e.s.size(); ++i)
    if (e.s[i] != e.d[i]) A(e.s[i], e.d[i]) = A(e.d[i], e.s[i]) = 1.0;
  Eigen::MatrixXd P = A;
  for (int i = 0; i < e.n; ++i) P.row(i) /= A.row(i).sum();
  Eigen::MatrixXd M = P;
  const float* p = t.data<float>();
  for (int s = 0; s < 6; ++s) {
    if (s > 0) M = M * P;
    for (int i = 0; i < e.n; ++i) EXPECT_NEAR(p[i * 6 + s], M(i, i), 1e-6);
  }
  // Isolated node: zeros.
  Tensor z = random_walk_se(2, {}, {}, 2);
  EXPECT_EQ(z.data<float>()[0], 0.0f);
}

TEST(LanczosCuda, MatchesCpu) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  Edges e = random_graph(3000, 2000, 31);
  LapPEOptions o;
  o.k = 6;
  o.method = EigenMethod::Lanczos;
  o.tol = 1e-10;
  auto cpu = laplacian_pe(e.n, e.s, e.d, o);
  o.cuda = true;
  auto gpu = laplacian_pe(e.n, e.s, e.d, o);
  expect_eigen(e, gpu, 1e-4);
  for (int j = 0; j < 6; ++j) EXPECT_NEAR(cpu.eigenvalues[j], gpu.eigenvalues[j], 1e-7);
  if (min_gap(e, 6) > 1e-3) EXPECT_TRUE(lapis::testing::all_close(gpu.vectors, cpu.vectors, 1e-3, 0.0));
}
