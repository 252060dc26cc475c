#include "kernels/cuda/matmul_cuda.h"

#include <climits>

#include "core/cuda/cuda_check.h"
#include "kernels/cuda/device_utils.cuh"
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

// ---- weight (and bias) gradient of a Linear in one launch ----
//
// dW [O, I] += dY^T @ X and db [O] += column sums of dY, for dY [N, O], X [N, I]. cuBLAS runs the
// small weight gradients of a graph network (O, I = 64..256, N = thousands of rows) as a split-K
// GEMM plus a separate reduction kernel, and the bias gradient is a third launch; each costs a
// fixed ~5 us on a GPU that is otherwise idle. Here one launch does all: block (x, y, s) owns the
// 64 x 64 output tile (y, x) for the rows of slice s, 256 threads each accumulate a 4 x 4
// sub-tile from shared-memory chunks of 32 rows (row order fixed), then the last block of the
// tile adds the slices' partials in slice order. Deterministic; no float atomics.
constexpr int kWgTile = 64;   // output tile edge
constexpr int kWgRows = 32;   // rows per shared-memory chunk
constexpr int kWgThreads = 256;

template <typename T>
__global__ void __launch_bounds__(kWgThreads)
    linear_weight_grad_kernel(T* __restrict__ dw, T* __restrict__ db, T* __restrict__ part_w,
                              T* __restrict__ part_b, unsigned int* __restrict__ counters,
                              const T* __restrict__ dy, const T* __restrict__ x, int64_t N,
                              int O, int I, int64_t slice_rows) {
  __shared__ T sy[kWgRows][kWgTile + 1];
  __shared__ T sx[kWgRows][kWgTile + 1];
  const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
  const int o0 = blockIdx.y * kWgTile, i0 = blockIdx.x * kWgTile;
  const bool bias_tile = db != nullptr && blockIdx.x == 0;
  const int64_t r0 = static_cast<int64_t>(blockIdx.z) * slice_rows;
  const int64_t r1 = r0 + slice_rows < N ? r0 + slice_rows : N;
  T acc[4][4];
#pragma unroll
  for (int a = 0; a < 4; ++a)
#pragma unroll
    for (int b = 0; b < 4; ++b) acc[a][b] = T(0);
  T bsum = T(0);  // thread tid < 64 of a bias tile: column o0 + tid of dY
  for (int64_t n0 = r0; n0 < r1; n0 += kWgRows) {
    // Each thread loads 8 values of each 32 x 64 chunk (zeros outside the matrices).
    for (int e = tid; e < kWgRows * kWgTile; e += kWgThreads) {
      const int r = e / kWgTile, c = e % kWgTile;
      const int64_t n = n0 + r;
      const bool row_ok = n < r1;
      sy[r][c] = row_ok && o0 + c < O ? dy[n * O + o0 + c] : T(0);
      sx[r][c] = row_ok && i0 + c < I ? x[n * I + i0 + c] : T(0);
    }
    __syncthreads();
#pragma unroll 8
    for (int r = 0; r < kWgRows; ++r) {
      T ya[4], xb[4];
#pragma unroll
      for (int a = 0; a < 4; ++a) ya[a] = sy[r][ty * 4 + a];
#pragma unroll
      for (int b = 0; b < 4; ++b) xb[b] = sx[r][tx * 4 + b];
#pragma unroll
      for (int a = 0; a < 4; ++a)
#pragma unroll
        for (int b = 0; b < 4; ++b) acc[a][b] += ya[a] * xb[b];
    }
    if (bias_tile && tid < kWgTile) {
      for (int r = 0; r < kWgRows; ++r) bsum += sy[r][tid];
    }
    __syncthreads();
  }
  if (gridDim.z == 1) {  // the block saw every row
#pragma unroll
    for (int a = 0; a < 4; ++a) {
      const int o = o0 + ty * 4 + a;
#pragma unroll
      for (int b = 0; b < 4; ++b) {
        const int i = i0 + tx * 4 + b;
        if (o < O && i < I) dw[static_cast<int64_t>(o) * I + i] += acc[a][b];
      }
    }
    if (bias_tile && tid < kWgTile && o0 + tid < O) db[o0 + tid] += bsum;
    return;
  }
  // Partials of slice s: part_w [S, O, I], part_b [S, O].
  const int64_t ow = static_cast<int64_t>(O) * I;
  T* pw = part_w + static_cast<int64_t>(blockIdx.z) * ow;
#pragma unroll
  for (int a = 0; a < 4; ++a) {
    const int o = o0 + ty * 4 + a;
#pragma unroll
    for (int b = 0; b < 4; ++b) {
      const int i = i0 + tx * 4 + b;
      if (o < O && i < I) pw[static_cast<int64_t>(o) * I + i] = acc[a][b];
    }
  }
  if (bias_tile && tid < kWgTile && o0 + tid < O) {
    part_b[static_cast<int64_t>(blockIdx.z) * O + o0 + tid] = bsum;
  }
  if (!last_block_arrives(counters + blockIdx.y * gridDim.x + blockIdx.x, gridDim.z)) return;
  // Last block of the tile: add the slices in order.
#pragma unroll
  for (int a = 0; a < 4; ++a) {
    const int o = o0 + ty * 4 + a;
#pragma unroll
    for (int b = 0; b < 4; ++b) {
      const int i = i0 + tx * 4 + b;
      if (o < O && i < I) {
        T sum = T(0);
        for (unsigned s = 0; s < gridDim.z; ++s) sum += __ldcg(part_w + s * ow + o * I + i);
        dw[static_cast<int64_t>(o) * I + i] += sum;
      }
    }
  }
  if (bias_tile && tid < kWgTile && o0 + tid < O) {
    T sum = T(0);
    for (unsigned s = 0; s < gridDim.z; ++s) sum += __ldcg(part_b + s * O + o0 + tid);
    db[o0 + tid] += sum;
  }
}

template <typename T>
void linear_weight_grad_impl(Tensor& dw, Tensor* db, const Tensor& dy, const Tensor& x) {
  const int64_t N = dy.size(0);
  const int O = static_cast<int>(dy.size(1)), I = static_cast<int>(x.size(1));
  if (N == 0 || O == 0 || I == 0) return;  // adding zero
  const int tiles_x = (I + kWgTile - 1) / kWgTile, tiles_y = (O + kWgTile - 1) / kWgTile;
  const int64_t tiles = static_cast<int64_t>(tiles_x) * tiles_y;
  // About two blocks per multiprocessor in total, slices of at least 64 rows.
  constexpr int64_t kTargetBlocks = 264, kMinRows = 64;
  int64_t slices = (N + kMinRows - 1) / kMinRows;
  const int64_t cap = tiles >= kTargetBlocks ? 1 : kTargetBlocks / tiles;
  if (slices > cap) slices = cap;
  int64_t rows = (N + slices - 1) / slices;
  rows = (rows + kWgRows - 1) / kWgRows * kWgRows;  // whole chunks per slice
  slices = (N + rows - 1) / rows;                   // no empty slice
  Tensor part_w, part_b;  // scratch from the caching allocator; stream-ordered reuse is safe
  unsigned int* counters = nullptr;
  if (slices > 1) {
    part_w = Tensor::empty({slices, static_cast<int64_t>(O) * I}, dy.dtype(), dy.device());
    if (db) part_b = Tensor::empty({slices, O}, dy.dtype(), dy.device());
    counters = reduction_counters(tiles);
  }
  const dim3 grid(static_cast<unsigned>(tiles_x), static_cast<unsigned>(tiles_y),
                  static_cast<unsigned>(slices));
  linear_weight_grad_kernel<T><<<grid, kWgThreads, 0, stream()>>>(
      dw.data<T>(), db ? db->data<T>() : nullptr, slices > 1 ? part_w.data<T>() : nullptr,
      slices > 1 && db ? part_b.data<T>() : nullptr, counters, dy.data<T>(), x.data<T>(), N, O,
      I, rows);
  LAPIS_CUDA_CHECK(cudaGetLastError());
}

}  // namespace

void linear_weight_grad(Tensor& dL_dweight, Tensor* dL_dbias, const Tensor& dL_dout,
                        const Tensor& x) {
  LAPIS_DISPATCH_FLOAT(dL_dout.dtype(), "linear_weight_grad", [&] {
    linear_weight_grad_impl<scalar_t>(dL_dweight, dL_dbias, dL_dout, x);
  });
}

void matmul(Tensor& out, const Tensor& a, const Tensor& b, bool trans_a, bool trans_b,
            double alpha, double beta) {
  LAPIS_DISPATCH_FLOAT(out.dtype(), "matmul", [&] {
    matmul_impl<scalar_t>(out, a, b, trans_a, trans_b, alpha, beta);
  });
}

}  // namespace cuda
}  // namespace lapis
