#include "kernels/cuda/matmul_cuda.h"

#include <climits>

#include "core/cuda/cuda_check.h"
#include "kernels/cuda/elementwise_cuda.h"

namespace lapis {
namespace cuda {
namespace {

cublasStatus_t gemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                    int k, const float* alpha, const float* a, int lda, const float* b, int ldb,
                    const float* beta, float* c, int ldc) {
  return cublasSgemm(h, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
cublasStatus_t gemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                    int k, const double* alpha, const double* a, int lda, const double* b,
                    int ldb, const double* beta, double* c, int ldc) {
  return cublasDgemm(h, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

template <typename scalar_t>
void matmul_impl(Tensor& out, const Tensor& a, const Tensor& b, bool trans_a, bool trans_b,
                 double alpha, double beta) {
  const int64_t M = out.size(0), N = out.size(1);
  const int64_t K = trans_a ? a.size(0) : a.size(1);
  if (M == 0 || N == 0) return;
  if (K == 0) {
    // op(a) @ op(b) is all zeros: out = beta * out (beta == 0 must not keep NaN).
    if (beta == 0.0) {
      LAPIS_CUDA_CHECK(cudaMemsetAsync(out.raw_data(), 0, out.nbytes(), stream()));
    } else {
      cuda::scale(out, out, beta);
    }
    return;
  }
  LAPIS_CHECK(M <= INT_MAX && N <= INT_MAX && K <= INT_MAX, "matmul",
              "sizes exceed cuBLAS's int range: M ", M, ", N ", N, ", K ", K);
  // cuBLAS is column-major; a row-major [R, C] buffer is its column-major [C, R] transpose.
  // So compute out^T [N, M] = op(b)^T [N, K] @ op(a)^T [K, M] in column-major terms: b's buffer
  // read as column-major is b^T, which is already op(b)^T when trans_b is false.
  const cublasOperation_t op_b = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_a = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  const int ldb = static_cast<int>(b.size(1));  // row length of b's buffer
  const int lda = static_cast<int>(a.size(1));
  const int ldc = static_cast<int>(N);
  const scalar_t al = static_cast<scalar_t>(alpha), be = static_cast<scalar_t>(beta);
  LAPIS_CUBLAS_CHECK(gemm(cublas_handle(), op_b, op_a, static_cast<int>(N), static_cast<int>(M),
                          static_cast<int>(K), &al, b.data<scalar_t>(), ldb,
                          a.data<scalar_t>(), lda, &be, out.data<scalar_t>(), ldc));
}

}  // namespace

void matmul(Tensor& out, const Tensor& a, const Tensor& b, bool trans_a, bool trans_b,
            double alpha, double beta) {
  LAPIS_DISPATCH_FLOAT(out.dtype(), "matmul", [&] {
    matmul_impl<scalar_t>(out, a, b, trans_a, trans_b, alpha, beta);
  });
}

}  // namespace cuda
}  // namespace lapis
