// Thick-restart (Krylov-Schur) Lanczos for the largest eigenvalues of a symmetric operator, with
// full reorthogonalisation, written once over an abstract "basis backend" so that the same
// algorithm runs on the CPU (graph/laplacian_pe.cpp, threaded) and on CUDA
// (graph/cuda/lanczos_cuda.cu, cuSPARSE + cuBLAS). Host-only: no Eigen, no CUDA types.
//
// Backend interface (V is an n x (m+1) column basis owned by the backend, w one work vector):
//   void start(int col, const std::vector<double>& x)  V[:, col] = x (host vector of length n)
//   void matvec(int col)                 w = A V[:, col]
//   void load(int col)                   w = V[:, col]
//   void project(int cols, double* h)    h[0..cols) = V[:, 0..cols)^T w        (host h)
//   void subtract(int cols, const double* h)  w -= V[:, 0..cols) h
//   double norm()                        ||w||_2
//   void store(int col, double scale)    V[:, col] = w * scale
//   void rotate(int m, const double* Y, int p)  V[:, 0..p) = V[:, 0..m) Y  (Y m x p col-major)
//   void copy(int from, int to)          V[:, to] = V[:, from]
//
// Convergence: Ritz pair i of the projected matrix has residual |beta_m Y[m-1, i]|; it is
// converged when that is <= tol * max(|theta_i|, tiny). The projected matrix (<= m x m) is
// diagonalised on the host with cyclic Jacobi (m is small: tens), which is accurate and simple.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <vector>

#include "core/check.h"
#include "core/random.h"

namespace lapis {
namespace graph {
namespace detail {

struct KrylovSchurOptions {
  int nev = 1;              // wanted eigenpairs (largest algebraic)
  int ncv = 20;             // basis size m, nev < m <= n
  double tol = 1e-8;        // relative residual tolerance
  int max_restarts = 1000;  // outer iterations
  uint64_t seed = 0x1a915e5ull;  // start vector seed (fixed: results repeat)
};

struct KrylovSchurResult {
  std::vector<double> values;     // nev Ritz values, descending
  std::vector<double> residuals;  // their residual norms (estimates |beta_m Y[m-1, i]|)
  int restarts = 0;
  int64_t matvecs = 0;
  bool converged = false;
};

// Symmetric eigen-decomposition of the m x m column-major matrix A by cyclic Jacobi rotations.
// On return `values` are sorted descending and Y (m x m column-major) holds the eigenvectors.
inline void jacobi_eigen_descending(int m, std::vector<double> a, std::vector<double>& values,
                                    std::vector<double>& Y) {
  std::vector<double> v(static_cast<size_t>(m) * m, 0.0);
  for (int i = 0; i < m; ++i) v[i + static_cast<size_t>(i) * m] = 1.0;
  auto A = [&](int i, int j) -> double& { return a[i + static_cast<size_t>(j) * m]; };
  for (int sweep = 0; sweep < 100; ++sweep) {
    double off = 0.0, diag = 0.0;
    for (int j = 0; j < m; ++j) {
      diag += A(j, j) * A(j, j);
      for (int i = 0; i < j; ++i) off += A(i, j) * A(i, j);
    }
    if (off <= 1e-32 * diag || off == 0.0) break;
    for (int p = 0; p < m; ++p) {
      for (int q = p + 1; q < m; ++q) {
        const double apq = A(p, q);
        if (std::abs(apq) < 1e-300) continue;
        const double theta = (A(q, q) - A(p, p)) / (2.0 * apq);
        const double t = (theta >= 0 ? 1.0 : -1.0) /
                         (std::abs(theta) + std::sqrt(theta * theta + 1.0));
        const double c = 1.0 / std::sqrt(t * t + 1.0), s = t * c;
        for (int k = 0; k < m; ++k) {  // columns p, q
          const double akp = A(k, p), akq = A(k, q);
          A(k, p) = c * akp - s * akq;
          A(k, q) = s * akp + c * akq;
        }
        for (int k = 0; k < m; ++k) {  // rows p, q
          const double apk = A(p, k), aqk = A(q, k);
          A(p, k) = c * apk - s * aqk;
          A(q, k) = s * apk + c * aqk;
        }
        for (int k = 0; k < m; ++k) {
          double& vkp = v[k + static_cast<size_t>(p) * m];
          double& vkq = v[k + static_cast<size_t>(q) * m];
          const double x = vkp, y = vkq;
          vkp = c * x - s * y;
          vkq = s * x + c * y;
        }
      }
    }
  }
  std::vector<int> order(m);
  std::iota(order.begin(), order.end(), 0);
  // Descending by value, ties by index: deterministic.
  std::stable_sort(order.begin(), order.end(), [&](int x, int y) { return A(x, x) > A(y, y); });
  values.assign(m, 0.0);
  Y.assign(static_cast<size_t>(m) * m, 0.0);
  for (int c = 0; c < m; ++c) {
    values[c] = A(order[c], order[c]);
    for (int k = 0; k < m; ++k) {
      Y[k + static_cast<size_t>(c) * m] = v[k + static_cast<size_t>(order[c]) * m];
    }
  }
}

// Runs Krylov-Schur; on return V[:, 0..nev) holds the Ritz vectors of result.values.
template <class Backend>
KrylovSchurResult krylov_schur_largest(Backend& be, int64_t n, const KrylovSchurOptions& o) {
  const char* op = "krylov_schur_largest";
  const int m = o.ncv, nev = o.nev;
  LAPIS_CHECK(nev >= 1 && nev < m && m <= n, op, "need 1 <= nev < ncv <= n, got nev=", nev,
              " ncv=", m, " n=", n);
  KrylovSchurResult res;
  auto random_vector = [&](uint64_t stream) {
    std::vector<double> x(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
      x[i] = static_cast<double>(uniform01(o.seed + stream, static_cast<uint64_t>(i))) - 0.5;
    }
    double s = 0.0;
    for (double xi : x) s += xi * xi;
    s = 1.0 / std::sqrt(s);
    for (double& xi : x) xi *= s;
    return x;
  };
  be.start(0, random_vector(0));
  std::vector<double> H(static_cast<size_t>(m) * m, 0.0), h(m + 1), h2(m + 1), theta, Y;
  int p = 0;
  uint64_t streams = 1;
  double beta = 0.0;
  for (int restart = 0;; ++restart) {
    for (int j = p; j < m; ++j) {
      be.matvec(j);
      ++res.matvecs;
      // Classical Gram-Schmidt twice (DGKS): enough for full orthogonality in practice.
      be.project(j + 1, h.data());
      be.subtract(j + 1, h.data());
      be.project(j + 1, h2.data());
      be.subtract(j + 1, h2.data());
      for (int i = 0; i <= j; ++i) {
        const double hij = h[i] + h2[i];
        H[i + static_cast<size_t>(j) * m] = hij;
        H[j + static_cast<size_t>(i) * m] = hij;
      }
      beta = be.norm();
      double scale_ref = std::abs(H[j + static_cast<size_t>(j) * m]) + 1e-300;
      if (beta <= 1e-12 * scale_ref) {
        // Invariant subspace found: continue with a fresh random direction orthogonal to V;
        // the coupling H[j+1, j] is then zero.
        be.start(j + 1, random_vector(streams++));
        be.load(j + 1);
        for (int pass = 0; pass < 2; ++pass) {
          be.project(j + 1, h.data());
          be.subtract(j + 1, h.data());
        }
        be.store(j + 1, 1.0 / be.norm());
        beta = 0.0;
        continue;
      }
      be.store(j + 1, 1.0 / beta);
    }
    jacobi_eigen_descending(m, H, theta, Y);
    int nconv = 0;
    res.residuals.assign(nev, 0.0);
    for (int i = 0; i < nev; ++i) {
      const double r = std::abs(beta * Y[(m - 1) + static_cast<size_t>(i) * m]);
      res.residuals[i] = r;
      if (r <= o.tol * std::max(std::abs(theta[i]), 1e-12)) ++nconv;
    }
    res.restarts = restart;
    if (nconv == nev || restart >= o.max_restarts) {
      res.converged = (nconv == nev);
      be.rotate(m, Y.data(), nev);
      res.values.assign(theta.begin(), theta.begin() + nev);
      return res;
    }
    // Keep nev + half of the rest (plus the converged count, as ARPACK does, to push on).
    p = std::min(m - 1, std::max(nev + (m - nev) / 2, nev + 1));
    be.rotate(m, Y.data(), p);
    be.copy(m, p);  // the residual direction continues the basis
    std::fill(H.begin(), H.end(), 0.0);
    for (int i = 0; i < p; ++i) H[i + static_cast<size_t>(i) * m] = theta[i];
  }
}

}  // namespace detail
}  // namespace graph
}  // namespace lapis
