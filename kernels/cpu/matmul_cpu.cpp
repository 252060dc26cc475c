#include "kernels/cpu/matmul_cpu.h"

#include <Eigen/Core>

namespace lapis {
namespace cpu {
namespace {

template <typename scalar_t>
using RowMatrix = Eigen::Matrix<scalar_t, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// Writes alpha * lhs @ rhs + beta * out into out; lhs/rhs are Eigen expressions (maps or their
// transposes), so all four transpose combinations share this body.
template <typename Out, typename Lhs, typename Rhs, typename scalar_t>
void gemm(Out& out, const Lhs& lhs, const Rhs& rhs, scalar_t alpha, scalar_t beta) {
  if (beta == scalar_t(0)) {
    // Assigning (not scaling) so NaN/Inf in the old contents cannot leak through 0 * NaN.
    out.noalias() = alpha * (lhs * rhs);
  } else {
    out *= beta;
    out.noalias() += alpha * (lhs * rhs);
  }
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

void matmul(Tensor& out, const Tensor& a, const Tensor& b, bool trans_a, bool trans_b,
            double alpha, double beta) {
  LAPIS_DISPATCH_FLOAT(out.dtype(), "matmul", [&] {
    matmul_impl<scalar_t>(out, a, b, trans_a, trans_b, alpha, beta);
  });
}

}  // namespace cpu
}  // namespace lapis
