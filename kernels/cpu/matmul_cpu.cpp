#include "kernels/cpu/matmul_cpu.h"

#include <Eigen/Core>

#include <algorithm>

#include "core/parallel.h"
#include "kernels/cpu/graph_parallel.h"

namespace lapis {
namespace cpu {
namespace {

template <typename scalar_t>
using RowMatrix = Eigen::Matrix<scalar_t, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// Writes alpha * lhs @ rhs + beta * out into out; lhs/rhs are Eigen expressions (maps or their
// transposes), so all four transpose combinations share this body.
template <typename Out, typename Lhs, typename Rhs, typename scalar_t>
void gemm_serial(Out&& out, const Lhs& lhs, const Rhs& rhs, scalar_t alpha, scalar_t beta) {
  if (beta == scalar_t(0)) {
    // Assigning (not scaling) so NaN/Inf in the old contents cannot leak through 0 * NaN.
    out.noalias() = alpha * (lhs * rhs);
  } else {
    out *= beta;
    out.noalias() += alpha * (lhs * rhs);
  }
}

// Products of at least kParallelFlops multiply-adds are cut into output tiles, shared among
// graph_num_threads() threads in contiguous chunks (parallel_chunks): blocks of kTileRows full
// rows when the output is tall (activations: N rows), else blocks of kTileCols full columns
// (weight gradients: few rows, a long inner dimension). The tiling depends only on the shapes,
// never on the thread count, so the results do not either (each tile is the same Eigen product
// whichever thread computes it).
constexpr int64_t kParallelFlops = int64_t{1} << 20;
constexpr int64_t kTileRows = 256, kTileCols = 32;

template <typename Out, typename Lhs, typename Rhs, typename scalar_t>
void gemm(Out& out, const Lhs& lhs, const Rhs& rhs, scalar_t alpha, scalar_t beta) {
  const int64_t M = out.rows(), N = out.cols(), K = lhs.cols();
  if (M * N * K < kParallelFlops) {
    gemm_serial(out, lhs, rhs, alpha, beta);
    return;
  }
  const bool by_rows = M >= 2 * kTileRows;
  const int64_t tiles = by_rows ? (M + kTileRows - 1) / kTileRows : (N + kTileCols - 1) / kTileCols;
  auto run_tiles = [&](int64_t first, int64_t last) {
    for (int64_t t = first; t < last; ++t) {
      if (by_rows) {
        const int64_t r0 = t * kTileRows, rows = std::min(kTileRows, M - r0);
        gemm_serial(out.middleRows(r0, rows), lhs.middleRows(r0, rows), rhs, alpha, beta);
      } else {
        const int64_t c0 = t * kTileCols, cols = std::min(kTileCols, N - c0);
        gemm_serial(out.middleCols(c0, cols), lhs, rhs.middleCols(c0, cols), alpha, beta);
      }
    }
  };
  parallel_chunks(tiles, graph_num_threads(), run_tiles, /*min_chunk=*/1);
}

template <typename scalar_t>
void matmul_impl(Tensor& out, const Tensor& a, const Tensor& b, bool trans_a, bool trans_b,
                 double alpha, double beta) {
  using Map = Eigen::Map<RowMatrix<scalar_t>>;
  using ConstMap = Eigen::Map<const RowMatrix<scalar_t>>;
  const ConstMap A(a.data<scalar_t>(), a.size(0), a.size(1));
  const ConstMap B(b.data<scalar_t>(), b.size(0), b.size(1));
  Map O(out.data<scalar_t>(), out.size(0), out.size(1));
  const scalar_t al = static_cast<scalar_t>(alpha), be = static_cast<scalar_t>(beta);
  if (!trans_a && !trans_b) gemm(O, A, B, al, be);
  else if (!trans_a && trans_b) gemm(O, A, B.transpose(), al, be);
  else if (trans_a && !trans_b) gemm(O, A.transpose(), B, al, be);
  else gemm(O, A.transpose(), B.transpose(), al, be);
}

}  // namespace

namespace {
// relu(v) as a select the compiler vectorises (v > 0 is false for NaN: relu(NaN) = 0, as the
// reference activation).
template <typename scalar_t>
inline scalar_t relu_of(scalar_t v) {
  return v > scalar_t(0) ? v : scalar_t(0);
}
}  // namespace

void linear_forward_epilogue(Tensor& out, const Tensor& bias, bool relu, const Tensor& residual) {
  const int64_t N = out.size(0), C = out.size(1);
  LAPIS_DISPATCH_FLOAT(out.dtype(), "linear_forward", [&] {
    scalar_t* po = out.data<scalar_t>();
    const scalar_t* pb = bias.defined() ? bias.data<scalar_t>() : nullptr;
    const scalar_t* pr = residual.defined() ? residual.data<scalar_t>() : nullptr;
    // One loop per combination, so each inner loop is a straight vectorisable expression.
    for (int64_t i = 0; i < N; ++i) {
      scalar_t* row = po + i * C;
      const scalar_t* res = pr ? pr + i * C : nullptr;
      if (pb && relu && res) {
        for (int64_t c = 0; c < C; ++c) row[c] = relu_of(row[c] + pb[c]) + res[c];
      } else if (pb && relu) {
        for (int64_t c = 0; c < C; ++c) row[c] = relu_of(row[c] + pb[c]);
      } else if (pb && res) {
        for (int64_t c = 0; c < C; ++c) row[c] = (row[c] + pb[c]) + res[c];
      } else if (pb) {
        for (int64_t c = 0; c < C; ++c) row[c] = row[c] + pb[c];
      } else if (relu && res) {
        for (int64_t c = 0; c < C; ++c) row[c] = relu_of(row[c]) + res[c];
      } else if (relu) {
        for (int64_t c = 0; c < C; ++c) row[c] = relu_of(row[c]);
      } else if (res) {
        for (int64_t c = 0; c < C; ++c) row[c] = row[c] + res[c];
      }
    }
  });
}

void linear_input_grad_epilogue(Tensor& dx, const Tensor& product, const Tensor& mask,
                                const Tensor& plus) {
  const int64_t n = dx.numel();
  LAPIS_DISPATCH_FLOAT(dx.dtype(), "linear_backward", [&] {
    scalar_t* pd = dx.data<scalar_t>();
    const scalar_t* pp = product.data<scalar_t>();
    const scalar_t* pm = mask.defined() ? mask.data<scalar_t>() : nullptr;
    const scalar_t* pl = plus.defined() ? plus.data<scalar_t>() : nullptr;
    // v * (mask > 0 ? 1 : 0), as activation_backward (NaN * 0 stays NaN).
    if (pm && pl) {
      for (int64_t i = 0; i < n; ++i) {
        pd[i] = pp[i] * (pm[i] > scalar_t(0) ? scalar_t(1) : scalar_t(0)) + pl[i];
      }
    } else if (pm) {
      for (int64_t i = 0; i < n; ++i) pd[i] = pp[i] * (pm[i] > scalar_t(0) ? scalar_t(1) : scalar_t(0));
    } else if (pl) {
      for (int64_t i = 0; i < n; ++i) pd[i] = pp[i] + pl[i];
    } else {
      for (int64_t i = 0; i < n; ++i) pd[i] = pp[i];
    }
  });
}

void matmul(Tensor& out, const Tensor& a, const Tensor& b, bool trans_a, bool trans_b,
            double alpha, double beta) {
  LAPIS_DISPATCH_FLOAT(out.dtype(), "matmul", [&] {
    matmul_impl<scalar_t>(out, a, b, trans_a, trans_b, alpha, beta);
  });
}

}  // namespace cpu
}  // namespace lapis
