#include "graph/laplacian_pe.h"

#include <Eigen/Dense>
#include <Spectra/SymEigsSolver.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <numeric>
#include <thread>

#include "core/cuda_api.h"
#include "graph/cuda/lanczos_core.h"
#include "graph/cuda/lanczos_cuda.h"

namespace lapis {
namespace graph {
namespace {

constexpr int64_t kBlock = 8192;  // fixed row blocks: reductions do not depend on thread count

// Runs fn(block) for blocks 0..nblocks-1 on up to `threads` threads (inline when 1).
template <class F>
void for_blocks(int64_t nblocks, int threads, const F& fn) {
  if (threads <= 1 || nblocks <= 1) {
    for (int64_t b = 0; b < nblocks; ++b) fn(b);
    return;
  }
  std::atomic<int64_t> next{0};
  auto worker = [&]() {
    for (int64_t b = next++; b < nblocks; b = next++) fn(b);
  };
  const int t = static_cast<int>(std::min<int64_t>(threads, nblocks));
  std::vector<std::thread> pool;
  for (int i = 1; i < t; ++i) pool.emplace_back(worker);
  worker();
  for (auto& th : pool) th.join();
}

int resolve_threads(int requested) {
  if (requested > 0) return requested;
  const unsigned hc = std::thread::hardware_concurrency();
  return hc == 0 ? 1 : static_cast<int>(hc);
}

// One connected component as a local CSR of S = D^-1/2 A D^-1/2 (L = I - S).
struct Component {
  std::vector<int32_t> nodes;  // global ids, ascending
  std::vector<int64_t> ptr;
  std::vector<int32_t> col;
  std::vector<double> val;
  std::vector<double> sqrt_deg;
};

// An eigenpair of one component, vector in local numbering.
struct Pair {
  double lambda;
  int comp;
  int index;
  std::vector<double> vec;
};

// ---- threaded CPU backend of Krylov-Schur on B = T_d(t(L)) (d = 0: B = 2I - L) ----
class CpuBackend {
 public:
  CpuBackend(const Component& c, int m, int threads, int degree, double a, double b)
      : c_(c), n_(static_cast<int64_t>(c.nodes.size())), m_(m), threads_(threads),
        degree_(degree), a_(a), b_(b) {
    V_.assign(static_cast<size_t>(n_) * (m + 1), 0.0);
    w_.assign(n_, 0.0);
    if (degree_ > 0) { t0_.assign(n_, 0.0); t1_.assign(n_, 0.0); }
    nblocks_ = (n_ + kBlock - 1) / kBlock;
    scaled_.assign(n_, 0.0);
    inv_sqrt_deg_.resize(n_);
    for (int64_t i = 0; i < n_; ++i) inv_sqrt_deg_[i] = 1.0 / c.sqrt_deg[i];
    if (n_ < 50000) threads_ = 1;  // thread start-up would dominate
  }
  double* col(int j) { return V_.data() + static_cast<size_t>(j) * n_; }
  int64_t spmvs = 0;

  void start(int j, const std::vector<double>& x) { std::copy(x.begin(), x.end(), col(j)); }
  void load(int j) { std::copy(col(j), col(j) + n_, w_.begin()); }
  void matvec(int j) {
    const double* x = col(j);
    if (degree_ == 0) {  // w = (2I - L) x = x + S x
      apply(x, w_.data(), nullptr, 1.0, 1.0, 0.0);
      return;
    }
    // Chebyshev recurrence on t(L) = ((a+b) I - 2L)/(b-a) = c0 I + c1 S, mapping [a, b] to
    // [-1, 1] reversed: y_{j+1} = 2 t(L) y_j - y_{j-1}.
    const double c0 = (a_ + b_ - 2.0) / (b_ - a_), c1 = 2.0 / (b_ - a_);
    std::vector<double>* prev = &t0_;
    std::vector<double>* cur = &t1_;
    std::copy(x, x + n_, prev->begin());
    apply(x, cur->data(), nullptr, c0, c1, 0.0);
    for (int k = 2; k <= degree_; ++k) {
      // next = 2 (c0 cur + c1 S cur) - prev, written over prev.
      apply(cur->data(), prev->data(), prev->data(), 2.0 * c0, 2.0 * c1, -1.0);
      std::swap(prev, cur);
    }
    std::copy(cur->begin(), cur->end(), w_.begin());
  }
  void project(int cols, double* h) {
    std::vector<double> part(static_cast<size_t>(nblocks_) * cols, 0.0);
    for_blocks(nblocks_, threads_, [&](int64_t blk) {
      const int64_t r0 = blk * kBlock, r1 = std::min(n_, r0 + kBlock);
      for (int c = 0; c < cols; ++c) {
        const double* v = col(c);
        double s = 0.0;
        for (int64_t i = r0; i < r1; ++i) s += v[i] * w_[i];
        part[blk * cols + c] = s;
      }
    });
    for (int c = 0; c < cols; ++c) h[c] = 0.0;
    for (int64_t blk = 0; blk < nblocks_; ++blk) {
      for (int c = 0; c < cols; ++c) h[c] += part[blk * cols + c];
    }
  }
  void subtract(int cols, const double* h) {
    for_blocks(nblocks_, threads_, [&](int64_t blk) {
      const int64_t r0 = blk * kBlock, r1 = std::min(n_, r0 + kBlock);
      for (int c = 0; c < cols; ++c) {
        const double* v = col(c);
        const double hc = h[c];
        for (int64_t i = r0; i < r1; ++i) w_[i] -= hc * v[i];
      }
    });
  }
  double norm() {
    std::vector<double> part(nblocks_, 0.0);
    for_blocks(nblocks_, threads_, [&](int64_t blk) {
      const int64_t r0 = blk * kBlock, r1 = std::min(n_, r0 + kBlock);
      double s = 0.0;
      for (int64_t i = r0; i < r1; ++i) s += w_[i] * w_[i];
      part[blk] = s;
    });
    double s = 0.0;
    for (double x : part) s += x;
    return std::sqrt(s);
  }
  void store(int j, double scale) {
    double* v = col(j);
    for (int64_t i = 0; i < n_; ++i) v[i] = w_[i] * scale;
  }
  void copy(int from, int to) { std::copy(col(from), col(from) + n_, col(to)); }
  void rotate(int m, const double* Y, int p) {
    using Mat = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic>;
    Eigen::Map<const Mat> y(Y, m, p);
    for_blocks(nblocks_, threads_, [&](int64_t blk) {
      const int64_t r0 = blk * kBlock, r1 = std::min(n_, r0 + kBlock);
      Eigen::Map<Mat, 0, Eigen::OuterStride<>> vb(V_.data() + r0, r1 - r0, m,
                                                  Eigen::OuterStride<>(n_));
      Mat tmp = vb * y;  // (rows x m) (m x p)
      vb.leftCols(p) = tmp;
    });
  }

 private:
  // out = alpha x + beta S x + gamma z (z may alias out; x never does), threaded by rows.
  void apply(const double* x, double* out, const double* z, double alpha, double beta,
             double gamma) {
    ++spmvs;
    // S x = D^-1/2 A (D^-1/2 x): scaling x first leaves only the column indices to stream
    // (4 bytes per nonzero instead of 12), since the SpMV is memory bound.
    for_blocks(nblocks_, threads_, [&](int64_t blk) {
      const int64_t r0 = blk * kBlock, r1 = std::min(n_, r0 + kBlock);
      for (int64_t i = r0; i < r1; ++i) scaled_[i] = x[i] * inv_sqrt_deg_[i];
    });
    const double* y = scaled_.data();
    const int32_t* colp = c_.col.data();
    for_blocks(nblocks_, threads_, [&](int64_t blk) {
      const int64_t r0 = blk * kBlock, r1 = std::min(n_, r0 + kBlock);
      for (int64_t i = r0; i < r1; ++i) {
        double s = 0.0;
        for (int64_t p = c_.ptr[i]; p < c_.ptr[i + 1]; ++p) s += y[colp[p]];
        s *= inv_sqrt_deg_[i];
        double r = alpha * x[i] + beta * s;
        if (z) r += gamma * z[i];
        out[i] = r;
      }
    });
  }

  const Component& c_;
  int64_t n_;
  int m_, threads_, degree_;
  double a_, b_;
  int64_t nblocks_;
  std::vector<double> V_, w_, t0_, t1_, scaled_, inv_sqrt_deg_;
};

// y = L x for a component.
void laplacian_apply(const Component& c, const double* x, double* y) {
  const int64_t n = static_cast<int64_t>(c.nodes.size());
  for (int64_t i = 0; i < n; ++i) {
    double s = 0.0;
    for (int64_t p = c.ptr[i]; p < c.ptr[i + 1]; ++p) s += c.val[p] * x[c.col[p]];
    y[i] = x[i] - s;
  }
}

std::vector<Pair> dense_pairs(const Component& c, int comp, int want) {
  const int64_t n = static_cast<int64_t>(c.nodes.size());
  Eigen::MatrixXd L = Eigen::MatrixXd::Identity(n, n);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t p = c.ptr[i]; p < c.ptr[i + 1]; ++p) L(i, c.col[p]) -= c.val[p];
  }
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> es(L);
  LAPIS_CHECK(es.info() == Eigen::Success, "laplacian_pe",
              "dense eigensolver failed on a component of ", n, " nodes");
  std::vector<Pair> out;
  for (int j = 0; j < std::min<int64_t>(want, n); ++j) {
    Pair p{es.eigenvalues()[j], comp, j, {}};
    p.vec.assign(es.eigenvectors().col(j).data(), es.eigenvectors().col(j).data() + n);
    out.push_back(std::move(p));
  }
  return out;
}

// Spectra's SymEigsSolver on 2I - L (threaded SpMV).
struct SpectraOp {
  using Scalar = double;
  const Component* c;
  int threads;
  mutable int64_t count = 0;
  int rows() const { return static_cast<int>(c->nodes.size()); }
  int cols() const { return rows(); }
  void perform_op(const double* x, double* y) const {
    ++count;
    const int64_t n = rows(), nb = (n + kBlock - 1) / kBlock;
    for_blocks(nb, n < 50000 ? 1 : threads, [&](int64_t blk) {
      const int64_t r0 = blk * kBlock, r1 = std::min(n, r0 + kBlock);
      for (int64_t i = r0; i < r1; ++i) {
        double s = x[i];
        for (int64_t p = c->ptr[i]; p < c->ptr[i + 1]; ++p) s += c->val[p] * x[c->col[p]];
        y[i] = s;
      }
    });
  }
};

std::vector<Pair> sparse_pairs(const Component& c, int comp, int want, const LapPEOptions& o,
                               int64_t* matvecs) {
  const int64_t n = static_cast<int64_t>(c.nodes.size());
  const int threads = resolve_threads(o.num_threads);
  const int nev = want;
  int ncv = o.ncv > 0 ? o.ncv : std::max(2 * nev + 1, nev + 12);
  ncv = static_cast<int>(std::min<int64_t>(ncv, n));
  std::vector<Pair> out;
  auto push = [&](double lambda, int j, const double* v) {
    Pair p{lambda, comp, j, std::vector<double>(v, v + n)};
    out.push_back(std::move(p));
  };
  if (o.method == EigenMethod::Spectra) {
    SpectraOp op{&c, threads};
    Spectra::SymEigsSolver<SpectraOp> solver(op, nev, ncv);
    solver.init();  // Spectra's fixed-seed start vector: deterministic
    solver.compute(Spectra::SortRule::LargestAlge, o.max_restarts, o.tol,
                   Spectra::SortRule::LargestAlge);
    LAPIS_CHECK(solver.info() == Spectra::CompInfo::Successful, "laplacian_pe",
                "Spectra did not converge on a component of ", n, " nodes (", nev,
                " eigenpairs, ncv ", ncv, ", tol ", o.tol, ")");
    *matvecs += op.count;
    Eigen::VectorXd ev = solver.eigenvalues();
    Eigen::MatrixXd U = solver.eigenvectors();
    for (int j = 0; j < nev; ++j) push(2.0 - ev[j], j, U.col(j).data());
    return out;
  }
  // Krylov-Schur. Stage 1: a short unfiltered pass gives Ritz values whose j-th smallest is an
  // upper bound of lambda_j (Cauchy interlacing), so a = that bound for j = nev has at least nev
  // eigenvalues below it. Stage 2: Krylov-Schur on the Chebyshev filter T_d(t(L)), which maps
  // [a, 2] into [-1, 1] and grows monotonically below a: its largest eigenvalues are exactly
  // L's smallest, and the filter amplifies the gap, so far fewer (expensive, memory-bound)
  // orthogonalisation steps are needed per SpMV.
  struct Run {
    std::vector<double> values, vecs;  // nev Ritz values of the operator; n x nev vectors
    bool converged = false;
  };
  int64_t spmvs = 0;
  auto run = [&](int m, int degree, double a, int max_restarts, double tol) {
    Run r;
    r.values.resize(nev);
    r.vecs.resize(static_cast<size_t>(n) * nev);
    if (o.cuda) {
#if defined(LAPIS_WITH_CUDA)
      int64_t count = 0;
      r.converged = cuda::lanczos_laplacian_largest(n, c.ptr.data(), c.col.data(), c.val.data(),
                                                    nev, m, degree, a, tol, max_restarts,
                                                    r.values.data(), r.vecs.data(), &count);
      spmvs += count;
#else
      throw_no_cuda("lanczos_laplacian_largest");
#endif
      return r;
    }
    detail::KrylovSchurOptions ko;
    ko.nev = nev;
    ko.ncv = m;
    ko.tol = tol;
    ko.max_restarts = max_restarts;
    CpuBackend be(c, m, threads, degree, a, 2.0);
    auto kr = detail::krylov_schur_largest(be, n, ko);
    spmvs += be.spmvs;
    r.values = kr.values;
    r.converged = kr.converged;
    std::copy(be.col(0), be.col(0) + static_cast<size_t>(n) * nev, r.vecs.begin());
    return r;
  };
  const int m0 = static_cast<int>(std::min<int64_t>(n, std::max(ncv, 2 * nev + 10)));
  Run r0 = run(m0, 0, 0.0, 0, 0.0);
  double a = 2.0 - r0.values[nev - 1];
  // A little above the bound so the wanted cluster is well inside the amplified region.
  a = std::min(1.0, a + 0.1 * std::max(a - (2.0 - r0.values[0]), 1e-3));
  const int degree = std::max(0, o.filter_degree);
  if (degree == 0) a = 0.0;
  Run r = run(ncv, degree, a, o.max_restarts, o.tol);
  *matvecs += spmvs;
  LAPIS_CHECK(r.converged, "laplacian_pe", "Krylov-Schur did not converge on a component of ", n,
              " nodes within ", o.max_restarts, " restarts (", nev, " eigenpairs, tol ", o.tol,
              ")");
  // Eigenvalues of L by Rayleigh quotients (the Ritz values are those of the filter).
  std::vector<double> Lx(n);
  for (int j = 0; j < nev; ++j) {
    const double* v = r.vecs.data() + static_cast<size_t>(j) * n;
    laplacian_apply(c, v, Lx.data());
    double q = 0.0;
    for (int64_t i = 0; i < n; ++i) q += v[i] * Lx[i];
    push(q, j, v);
  }
  std::stable_sort(out.begin(), out.end(),
                   [](const Pair& x, const Pair& y) { return x.lambda < y.lambda; });
  for (size_t j = 0; j < out.size(); ++j) out[j].index = static_cast<int>(j);
  return out;
}

// Largest-magnitude entry positive; ties within 1e-6 relative go to the lowest index.
void fix_sign(double* v, int64_t n) {
  double mx = 0.0;
  for (int64_t i = 0; i < n; ++i) mx = std::max(mx, std::abs(v[i]));
  if (mx == 0.0) return;
  for (int64_t i = 0; i < n; ++i) {
    if (std::abs(v[i]) >= mx * (1.0 - 1e-6)) {
      if (v[i] < 0) {
        for (int64_t j = 0; j < n; ++j) v[j] = -v[j];
      }
      return;
    }
  }
}

}  // namespace

SymmetricAdjacency symmetric_adjacency(int64_t num_nodes, const std::vector<int32_t>& src,
                                       const std::vector<int32_t>& dst) {
  const char* op = "symmetric_adjacency";
  LAPIS_CHECK(num_nodes >= 0, op, "num_nodes must be >= 0, got ", num_nodes);
  LAPIS_CHECK(src.size() == dst.size(), op, "src has ", src.size(), " entries but dst has ",
              dst.size());
  SymmetricAdjacency a;
  a.num_nodes = num_nodes;
  a.ptr.assign(num_nodes + 1, 0);
  for (size_t e = 0; e < src.size(); ++e) {
    const int32_t u = src[e], v = dst[e];
    LAPIS_CHECK(u >= 0 && u < num_nodes && v >= 0 && v < num_nodes, op, "edge ", e, " (", u,
                " -> ", v, ") has an id outside [0, ", num_nodes, ")");
    if (u == v) continue;
    ++a.ptr[u + 1];
    ++a.ptr[v + 1];
  }
  for (int64_t i = 0; i < num_nodes; ++i) a.ptr[i + 1] += a.ptr[i];
  std::vector<int32_t> col(a.ptr[num_nodes]);
  std::vector<int64_t> fill(a.ptr.begin(), a.ptr.end() - 1);
  for (size_t e = 0; e < src.size(); ++e) {
    const int32_t u = src[e], v = dst[e];
    if (u == v) continue;
    col[fill[u]++] = v;
    col[fill[v]++] = u;
  }
  // Sort and deduplicate each row, compacting in place.
  std::vector<int64_t> ptr(num_nodes + 1, 0);
  int64_t out = 0;
  for (int64_t i = 0; i < num_nodes; ++i) {
    auto b = col.begin() + a.ptr[i], e = col.begin() + a.ptr[i + 1];
    std::sort(b, e);
    auto last = std::unique(b, e);
    for (auto it = b; it != last; ++it) col[out++] = *it;
    ptr[i + 1] = out;
  }
  col.resize(out);
  a.ptr = std::move(ptr);
  a.col = std::move(col);
  return a;
}

SymmetricAdjacency symmetric_adjacency(const Graph& g) {
  LAPIS_CHECK(g.src.defined() && g.dst.defined(), "symmetric_adjacency",
              "graph has no edge index (", g.describe(), ")");
  return symmetric_adjacency(g.num_nodes, g.src.to_vector<int32_t>(), g.dst.to_vector<int32_t>());
}

namespace {

LapPE laplacian_pe_impl(const SymmetricAdjacency& adj, const LapPEOptions& o) {
  const char* op = "laplacian_pe";
  LAPIS_CHECK(o.k >= 1, op, "k must be >= 1, got ", o.k);
  LAPIS_CHECK(o.tol > 0 && o.tol < 1, op, "tol must be in (0, 1), got ", o.tol);
  const int64_t N = adj.num_nodes;
  const int k = o.k;
  // Connected components by BFS; numbered by smallest node id.
  std::vector<int32_t> comp_of(N, -1);
  std::vector<Component> comps;
  std::vector<int32_t> queue;
  for (int64_t s = 0; s < N; ++s) {
    if (comp_of[s] >= 0) continue;
    const int32_t id = static_cast<int32_t>(comps.size());
    comps.emplace_back();
    queue.assign(1, static_cast<int32_t>(s));
    comp_of[s] = id;
    for (size_t q = 0; q < queue.size(); ++q) {
      const int32_t u = queue[q];
      for (int64_t p = adj.ptr[u]; p < adj.ptr[u + 1]; ++p) {
        const int32_t v = adj.col[p];
        if (comp_of[v] < 0) { comp_of[v] = id; queue.push_back(v); }
      }
    }
    std::sort(queue.begin(), queue.end());
    comps.back().nodes = queue;
  }
  std::vector<int32_t> local(N, 0);
  for (auto& c : comps) {
    for (size_t i = 0; i < c.nodes.size(); ++i) local[c.nodes[i]] = static_cast<int32_t>(i);
  }
  LapPE result;
  std::vector<Pair> pairs;
  const int want = k + 1;
  for (size_t ci = 0; ci < comps.size(); ++ci) {
    Component& c = comps[ci];
    const int64_t n = static_cast<int64_t>(c.nodes.size());
    if (n == 1) {  // isolated node: identity row, eigenvalue 1
      pairs.push_back(Pair{1.0, static_cast<int>(ci), 0, {1.0}});
      continue;
    }
    c.ptr.assign(n + 1, 0);
    c.sqrt_deg.resize(n);
    for (int64_t i = 0; i < n; ++i) {
      const int32_t g = c.nodes[i];
      c.sqrt_deg[i] = std::sqrt(static_cast<double>(adj.ptr[g + 1] - adj.ptr[g]));
      c.ptr[i + 1] = c.ptr[i] + (adj.ptr[g + 1] - adj.ptr[g]);
    }
    c.col.resize(c.ptr[n]);
    c.val.resize(c.ptr[n]);
    for (int64_t i = 0; i < n; ++i) {
      const int32_t g = c.nodes[i];
      int64_t q = c.ptr[i];
      for (int64_t p = adj.ptr[g]; p < adj.ptr[g + 1]; ++p, ++q) {
        const int32_t j = local[adj.col[p]];
        c.col[q] = j;
        c.val[q] = 1.0 / (c.sqrt_deg[i] * c.sqrt_deg[j]);
      }
    }
    const bool dense = o.method == EigenMethod::Dense || n < o.min_sparse_nodes ||
                       n <= want + 1 ||
                       (o.method == EigenMethod::Auto && n <= o.dense_max_nodes);
    std::vector<Pair> cp = dense ? dense_pairs(c, static_cast<int>(ci), want)
                                 : sparse_pairs(c, static_cast<int>(ci), want, o,
                                                &result.matvecs);
    // The trivial pair is known exactly: lambda 0, D^1/2 1 / ||D^1/2 1||.
    if (!cp.empty()) {
      double s = 0.0;
      for (double d : c.sqrt_deg) s += d * d;
      s = 1.0 / std::sqrt(s);
      cp[0].lambda = 0.0;
      for (int64_t i = 0; i < n; ++i) cp[0].vec[i] = c.sqrt_deg[i] * s;
    }
    for (auto& p : cp) {
      if (std::abs(p.lambda) < 1e-9) p.lambda = 0.0;
      pairs.push_back(std::move(p));
    }
  }
  std::stable_sort(pairs.begin(), pairs.end(), [](const Pair& x, const Pair& y) {
    if (x.lambda != y.lambda) return x.lambda < y.lambda;
    if (x.comp != y.comp) return x.comp < y.comp;
    return x.index < y.index;
  });
  result.vectors = Tensor::zeros({N, k}, Dtype::F32);
  result.eigenvalues.assign(k, 0.0);
  float* out = result.vectors.data<float>();
  std::vector<double> full(N), inv_sqrt_deg(N, 0.0);
  for (int64_t i = 0; i < N; ++i) {
    const int64_t deg = adj.ptr[i + 1] - adj.ptr[i];
    if (deg > 0) inv_sqrt_deg[i] = 1.0 / std::sqrt(static_cast<double>(deg));
  }
  for (int j = 0; j < k && j + 1 < static_cast<int>(pairs.size()); ++j) {
    const Pair& p = pairs[j + 1];
    const Component& c = comps[p.comp];
    std::fill(full.begin(), full.end(), 0.0);
    for (size_t i = 0; i < c.nodes.size(); ++i) full[c.nodes[i]] = p.vec[i];
    fix_sign(full.data(), N);
    // Residual ||L u - lambda u|| on the full graph (f64), for diagnostics.
    double r2 = 0.0;
    for (int64_t i = 0; i < N; ++i) {
      double s = 0.0;
      for (int64_t q = adj.ptr[i]; q < adj.ptr[i + 1]; ++q) {
        s += full[adj.col[q]] * inv_sqrt_deg[adj.col[q]];
      }
      const double ri = full[i] - s * inv_sqrt_deg[i] - p.lambda * full[i];
      r2 += ri * ri;
    }
    result.max_residual = std::max(result.max_residual, std::sqrt(r2));
    for (int64_t i = 0; i < N; ++i) out[i * k + j] = static_cast<float>(full[i]);
    result.eigenvalues[j] = p.lambda;
    result.num_valid = j + 1;
  }
  return result;
}

}  // namespace

LapPE laplacian_pe(const Graph& g, const LapPEOptions& options) {
  return laplacian_pe_impl(symmetric_adjacency(g), options);
}

LapPE laplacian_pe(int64_t num_nodes, const std::vector<int32_t>& src,
                   const std::vector<int32_t>& dst, const LapPEOptions& options) {
  return laplacian_pe_impl(symmetric_adjacency(num_nodes, src, dst), options);
}

void flip_signs_random(Tensor& pe, Generator& gen) {
  const char* op = "flip_signs_random";
  check_defined(op, "pe", pe);
  LAPIS_CHECK(!pe.is_cuda(), op, "pe must be on the CPU, got ", pe.describe());
  LAPIS_CHECK(pe.dim() == 1 || pe.dim() == 2, op, "pe must be [N, k] or [k], got ",
              pe.describe());
  const int64_t k = pe.size(-1), rows = pe.dim() == 2 ? pe.size(0) : 1;
  std::vector<double> sign(k);
  for (int64_t j = 0; j < k; ++j) sign[j] = gen.uniform() < 0.5f ? -1.0 : 1.0;
  LAPIS_DISPATCH_FLOAT(pe.dtype(), op, [&] {
    scalar_t* d = pe.data<scalar_t>();
    for (int64_t i = 0; i < rows; ++i) {
      for (int64_t j = 0; j < k; ++j) d[i * k + j] *= static_cast<scalar_t>(sign[j]);
    }
  });
}

}  // namespace graph
}  // namespace lapis
