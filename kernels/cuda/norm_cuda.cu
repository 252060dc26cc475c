#include "kernels/cuda/norm_cuda.h"

#include "core/cuda/cuda_check.h"

namespace lapis {
namespace cuda {

namespace {

// ---- column reductions (BatchNorm statistics, parameter gradients) ----
// A block owns kTile consecutive channels (threadIdx.x, so loads are coalesced along a row) and
// all N rows, which its kRows row lanes (threadIdx.y) stride through. Partial sums meet in
// shared memory and are added in a fixed order: deterministic, no atomics.
constexpr int kTile = 32;
constexpr int kRows = 16;

// Every thread of the block must call this; each receives the total of its column's partials.
template <typename T>
__device__ T column_total(T v, T (*partial)[kTile + 1], T* total) {
  partial[threadIdx.y][threadIdx.x] = v;
  __syncthreads();
  if (threadIdx.y == 0) {
    T s = T(0);
    for (int i = 0; i < kRows; ++i) s += partial[i][threadIdx.x];
    total[threadIdx.x] = s;
  }
  __syncthreads();
  const T result = total[threadIdx.x];
  __syncthreads();  // partial and total are reused by the next call
  return result;
}

// ---- row reductions (LayerNorm, RMSNorm): one warp per row ----
constexpr int kRowBlock = 256;  // 8 warps, 8 rows in flight per block

template <typename T>
__device__ T warp_sum(T v) {
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

// x, out [N, C]; cache_mean, cache_rstd, running_* [C]. Two passes for a stable variance.
template <typename T>
__global__ void batchnorm_forward_train_kernel(T* __restrict__ out, T* __restrict__ cache_mean,
                                               T* __restrict__ cache_rstd,
                                               T* __restrict__ running_mean,
                                               T* __restrict__ running_var,
                                               const T* __restrict__ x, const T* __restrict__ w,
                                               const T* __restrict__ b, int64_t n,
                                               int64_t c_count, T momentum, T eps) {
  __shared__ T partial[kRows][kTile + 1];
  __shared__ T total[kTile];
  const int64_t c = static_cast<int64_t>(blockIdx.x) * kTile + threadIdx.x;
  const bool active = c < c_count;
  T sum = T(0);
  if (active) {
    for (int64_t r = threadIdx.y; r < n; r += kRows) sum += x[r * c_count + c];
  }
  const T mean = column_total(sum, partial, total) / static_cast<T>(n);
  T sq = T(0);
  if (active) {
    for (int64_t r = threadIdx.y; r < n; r += kRows) {
      const T d = x[r * c_count + c] - mean;
      sq += d * d;
    }
  }
  const T sq_total = column_total(sq, partial, total);
  const T rstd = T(1) / sqrt(sq_total / static_cast<T>(n) + eps);
  if (!active) return;  // no barrier follows
  if (threadIdx.y == 0) {
    cache_mean[c] = mean;
    cache_rstd[c] = rstd;
    const T unbiased = sq_total / static_cast<T>(n - 1);
    running_mean[c] = (T(1) - momentum) * running_mean[c] + momentum * mean;
    running_var[c] = (T(1) - momentum) * running_var[c] + momentum * unbiased;
  }
  const T wc = w[c], bc = b[c];
  for (int64_t r = threadIdx.y; r < n; r += kRows) {
    out[r * c_count + c] = (x[r * c_count + c] - mean) * rstd * wc + bc;
  }
}

// cache_mean = running_mean, cache_rstd = 1 / sqrt(running_var + eps); all [C].
template <typename T>
__global__ void batchnorm_eval_stats_kernel(T* __restrict__ cache_mean, T* __restrict__ cache_rstd,
                                            const T* __restrict__ running_mean,
                                            const T* __restrict__ running_var, int64_t c_count,
                                            T eps) {
  const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; c < c_count;
       c += stride) {
    cache_mean[c] = running_mean[c];
    cache_rstd[c] = T(1) / sqrt(running_var[c] + eps);
  }
}

// Element-wise over x [N, C] with the statistics of batchnorm_eval_stats_kernel.
template <typename T>
__global__ void batchnorm_forward_eval_kernel(T* __restrict__ out, const T* __restrict__ x,
                                              const T* __restrict__ w, const T* __restrict__ b,
                                              const T* __restrict__ mean,
                                              const T* __restrict__ rstd, int64_t total,
                                              int64_t c_count) {
  const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += stride) {
    const int64_t c = i % c_count;
    out[i] = (x[i] - mean[c]) * rstd[c] * w[c] + b[c];
  }
}

// Training: dx = rstd * w * (g - sum(g) / N - xhat * sum(g * xhat) / N); eval: dx = g * w * rstd.
// dw += sum_r g * xhat, db += sum_r g.
template <typename T>
__global__ void batchnorm_backward_kernel(T* __restrict__ dx, T* __restrict__ dw,
                                          T* __restrict__ db, const T* __restrict__ g,
                                          const T* __restrict__ x, const T* __restrict__ w,
                                          const T* __restrict__ mean_in,
                                          const T* __restrict__ rstd_in, int64_t n,
                                          int64_t c_count, bool training) {
  __shared__ T partial[kRows][kTile + 1];
  __shared__ T total[kTile];
  const int64_t c = static_cast<int64_t>(blockIdx.x) * kTile + threadIdx.x;
  const bool active = c < c_count;
  const T mean = active ? mean_in[c] : T(0);
  const T rstd = active ? rstd_in[c] : T(0);
  T sg = T(0), sgx = T(0);
  if (active) {
    for (int64_t r = threadIdx.y; r < n; r += kRows) {
      const int64_t i = r * c_count + c;
      sg += g[i];
      sgx += g[i] * (x[i] - mean) * rstd;
    }
  }
  const T sum_g = column_total(sg, partial, total);
  const T sum_gx = column_total(sgx, partial, total);
  if (!active) return;
  if (threadIdx.y == 0) {
    dw[c] += sum_gx;
    db[c] += sum_g;
  }
  const T wc = w[c];
  const T inv_n = T(1) / static_cast<T>(n);
  for (int64_t r = threadIdx.y; r < n; r += kRows) {
    const int64_t i = r * c_count + c;
    if (training) {
      const T xhat = (x[i] - mean) * rstd;
      dx[i] = rstd * wc * (g[i] - sum_g * inv_n - xhat * sum_gx * inv_n);
    } else {
      dx[i] = g[i] * wc * rstd;
    }
  }
}

// Parameter gradients of LayerNorm (mean != nullptr) and RMSNorm (mean == nullptr, db ==
// nullptr): xhat = (x - mean[r]) * rstd[r]; dw += sum_r g * xhat, db += sum_r g.
template <typename T>
__global__ void layernorm_backward_params_kernel(T* __restrict__ dw, T* __restrict__ db,
                                                 const T* __restrict__ g,
                                                 const T* __restrict__ x,
                                                 const T* __restrict__ mean,
                                                 const T* __restrict__ rstd, int64_t n,
                                                 int64_t c_count) {
  __shared__ T partial[kRows][kTile + 1];
  __shared__ T total[kTile];
  const int64_t c = static_cast<int64_t>(blockIdx.x) * kTile + threadIdx.x;
  const bool active = c < c_count;
  T sg = T(0), sgx = T(0);
  if (active) {
    for (int64_t r = threadIdx.y; r < n; r += kRows) {
      const int64_t i = r * c_count + c;
      const T xhat = (x[i] - (mean != nullptr ? mean[r] : T(0))) * rstd[r];
      sg += g[i];
      sgx += g[i] * xhat;
    }
  }
  const T sum_g = column_total(sg, partial, total);
  const T sum_gx = column_total(sgx, partial, total);
  if (active && threadIdx.y == 0) {
    dw[c] += sum_gx;
    if (db != nullptr) db[c] += sum_g;
  }
}

// One warp per row of x [N, C]; mean_out, rstd_out [N].
template <typename T>
__global__ void layernorm_forward_kernel(T* __restrict__ out, T* __restrict__ mean_out,
                                         T* __restrict__ rstd_out, const T* __restrict__ x,
                                         const T* __restrict__ w, const T* __restrict__ b,
                                         int64_t n, int64_t c_count, T eps) {
  const int lane = threadIdx.x & 31;
  const int64_t warps = (static_cast<int64_t>(gridDim.x) * blockDim.x) >> 5;
  for (int64_t r = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5; r < n;
       r += warps) {
    const T* row = x + r * c_count;
    T s = T(0);
    for (int64_t c = lane; c < c_count; c += 32) s += row[c];
    const T mean = warp_sum(s) / static_cast<T>(c_count);
    T sq = T(0);
    for (int64_t c = lane; c < c_count; c += 32) {
      const T d = row[c] - mean;
      sq += d * d;
    }
    const T rstd = T(1) / sqrt(warp_sum(sq) / static_cast<T>(c_count) + eps);
    for (int64_t c = lane; c < c_count; c += 32) {
      out[r * c_count + c] = (row[c] - mean) * rstd * w[c] + b[c];
    }
    if (lane == 0) {
      mean_out[r] = mean;
      rstd_out[r] = rstd;
    }
  }
}

// dxhat = g * w; dx = rstd * (dxhat - mean_c(dxhat) - xhat * mean_c(dxhat * xhat)).
template <typename T>
__global__ void layernorm_backward_kernel(T* __restrict__ dx, const T* __restrict__ g,
                                          const T* __restrict__ x, const T* __restrict__ w,
                                          const T* __restrict__ mean_in,
                                          const T* __restrict__ rstd_in, int64_t n,
                                          int64_t c_count) {
  const int lane = threadIdx.x & 31;
  const int64_t warps = (static_cast<int64_t>(gridDim.x) * blockDim.x) >> 5;
  for (int64_t r = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5; r < n;
       r += warps) {
    const T mean = mean_in[r], rstd = rstd_in[r];
    const int64_t base = r * c_count;
    T s1 = T(0), s2 = T(0);
    for (int64_t c = lane; c < c_count; c += 32) {
      const T dxhat = g[base + c] * w[c];
      s1 += dxhat;
      s2 += dxhat * (x[base + c] - mean) * rstd;
    }
    const T mean_dxhat = warp_sum(s1) / static_cast<T>(c_count);
    const T mean_dxhat_xhat = warp_sum(s2) / static_cast<T>(c_count);
    for (int64_t c = lane; c < c_count; c += 32) {
      const T xhat = (x[base + c] - mean) * rstd;
      dx[base + c] = rstd * (g[base + c] * w[c] - mean_dxhat - xhat * mean_dxhat_xhat);
    }
  }
}

template <typename T>
__global__ void rmsnorm_forward_kernel(T* __restrict__ out, T* __restrict__ rstd_out,
                                       const T* __restrict__ x, const T* __restrict__ w,
                                       int64_t n, int64_t c_count, T eps) {
  const int lane = threadIdx.x & 31;
  const int64_t warps = (static_cast<int64_t>(gridDim.x) * blockDim.x) >> 5;
  for (int64_t r = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5; r < n;
       r += warps) {
    const T* row = x + r * c_count;
    T sq = T(0);
    for (int64_t c = lane; c < c_count; c += 32) sq += row[c] * row[c];
    const T rstd = T(1) / sqrt(warp_sum(sq) / static_cast<T>(c_count) + eps);
    for (int64_t c = lane; c < c_count; c += 32) out[r * c_count + c] = row[c] * rstd * w[c];
    if (lane == 0) rstd_out[r] = rstd;
  }
}

// dx = rstd * (g * w - x * rstd^2 * mean_c(g * w * x)).
template <typename T>
__global__ void rmsnorm_backward_kernel(T* __restrict__ dx, const T* __restrict__ g,
                                        const T* __restrict__ x, const T* __restrict__ w,
                                        const T* __restrict__ rstd_in, int64_t n,
                                        int64_t c_count) {
  const int lane = threadIdx.x & 31;
  const int64_t warps = (static_cast<int64_t>(gridDim.x) * blockDim.x) >> 5;
  for (int64_t r = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5; r < n;
       r += warps) {
    const T rstd = rstd_in[r];
    const int64_t base = r * c_count;
    T s = T(0);
    for (int64_t c = lane; c < c_count; c += 32) s += g[base + c] * w[c] * x[base + c];
    const T mean_gwx = warp_sum(s) / static_cast<T>(c_count);
    for (int64_t c = lane; c < c_count; c += 32) {
      dx[base + c] = rstd * (g[base + c] * w[c] - x[base + c] * rstd * rstd * mean_gwx);
    }
  }
}

// Grid for the column kernels: one block per kTile channels.
dim3 column_grid(int64_t c_count) { return dim3(grid_for(c_count, kTile)); }
const dim3 kColumnBlock(kTile, kRows);

}  // namespace

void batchnorm_forward_train(Tensor& out, BatchNormCache& cache, Tensor& running_mean,
                             Tensor& running_var, const Tensor& x, const Tensor& weight,
                             const Tensor& bias, double momentum, double eps) {
  const int64_t n = x.size(0), c = x.size(1);
  if (n == 0 || c == 0) return;
  LAPIS_DISPATCH_FLOAT(x.dtype(), "batchnorm_forward_train", [&] {
    batchnorm_forward_train_kernel<scalar_t><<<column_grid(c), kColumnBlock, 0, stream()>>>(
        out.data<scalar_t>(), cache.mean.data<scalar_t>(), cache.rstd.data<scalar_t>(),
        running_mean.data<scalar_t>(), running_var.data<scalar_t>(), x.data<scalar_t>(),
        weight.data<scalar_t>(), bias.data<scalar_t>(), n, c, static_cast<scalar_t>(momentum),
        static_cast<scalar_t>(eps));
    LAPIS_CUDA_CHECK(cudaGetLastError());
  });
}

void batchnorm_forward_eval(Tensor& out, BatchNormCache& cache, const Tensor& x,
                            const Tensor& weight, const Tensor& bias, const Tensor& running_mean,
                            const Tensor& running_var, double eps) {
  const int64_t n = x.size(0), c = x.size(1);
  LAPIS_DISPATCH_FLOAT(x.dtype(), "batchnorm_forward_eval", [&] {
    LAPIS_LAUNCH(batchnorm_eval_stats_kernel<scalar_t>, c, 256, cache.mean.data<scalar_t>(),
                 cache.rstd.data<scalar_t>(), running_mean.data<scalar_t>(),
                 running_var.data<scalar_t>(), c, static_cast<scalar_t>(eps));
    LAPIS_LAUNCH(batchnorm_forward_eval_kernel<scalar_t>, n * c, 256, out.data<scalar_t>(),
                 x.data<scalar_t>(), weight.data<scalar_t>(), bias.data<scalar_t>(),
                 cache.mean.data<scalar_t>(), cache.rstd.data<scalar_t>(), n * c, c);
  });
}

void batchnorm_backward(Tensor& dL_dx, Tensor& dL_dweight, Tensor& dL_dbias,
                        const Tensor& dL_dout, const Tensor& x, const Tensor& weight,
                        const BatchNormCache& cache) {
  const int64_t n = x.size(0), c = x.size(1);
  if (n == 0 || c == 0) return;
  LAPIS_DISPATCH_FLOAT(x.dtype(), "batchnorm_backward", [&] {
    batchnorm_backward_kernel<scalar_t><<<column_grid(c), kColumnBlock, 0, stream()>>>(
        dL_dx.data<scalar_t>(), dL_dweight.data<scalar_t>(), dL_dbias.data<scalar_t>(),
        dL_dout.data<scalar_t>(), x.data<scalar_t>(), weight.data<scalar_t>(),
        cache.mean.data<scalar_t>(), cache.rstd.data<scalar_t>(), n, c, cache.training);
    LAPIS_CUDA_CHECK(cudaGetLastError());
  });
}

void layernorm_forward(Tensor& out, LayerNormCache& cache, const Tensor& x, const Tensor& weight,
                       const Tensor& bias, double eps) {
  const int64_t n = x.size(0), c = x.size(1);
  if (n == 0 || c == 0) return;
  LAPIS_DISPATCH_FLOAT(x.dtype(), "layernorm_forward", [&] {
    LAPIS_LAUNCH(layernorm_forward_kernel<scalar_t>, n * 32, kRowBlock, out.data<scalar_t>(),
                 cache.mean.data<scalar_t>(), cache.rstd.data<scalar_t>(), x.data<scalar_t>(),
                 weight.data<scalar_t>(), bias.data<scalar_t>(), n, c,
                 static_cast<scalar_t>(eps));
  });
}

void layernorm_backward(Tensor& dL_dx, Tensor& dL_dweight, Tensor& dL_dbias,
                        const Tensor& dL_dout, const Tensor& x, const Tensor& weight,
                        const LayerNormCache& cache) {
  const int64_t n = x.size(0), c = x.size(1);
  if (n == 0 || c == 0) return;
  LAPIS_DISPATCH_FLOAT(x.dtype(), "layernorm_backward", [&] {
    LAPIS_LAUNCH(layernorm_backward_kernel<scalar_t>, n * 32, kRowBlock, dL_dx.data<scalar_t>(),
                 dL_dout.data<scalar_t>(), x.data<scalar_t>(), weight.data<scalar_t>(),
                 cache.mean.data<scalar_t>(), cache.rstd.data<scalar_t>(), n, c);
    layernorm_backward_params_kernel<scalar_t><<<column_grid(c), kColumnBlock, 0, stream()>>>(
        dL_dweight.data<scalar_t>(), dL_dbias.data<scalar_t>(), dL_dout.data<scalar_t>(),
        x.data<scalar_t>(), cache.mean.data<scalar_t>(), cache.rstd.data<scalar_t>(), n, c);
    LAPIS_CUDA_CHECK(cudaGetLastError());
  });
}

void rmsnorm_forward(Tensor& out, RMSNormCache& cache, const Tensor& x, const Tensor& weight,
                     double eps) {
  const int64_t n = x.size(0), c = x.size(1);
  if (n == 0 || c == 0) return;
  LAPIS_DISPATCH_FLOAT(x.dtype(), "rmsnorm_forward", [&] {
    LAPIS_LAUNCH(rmsnorm_forward_kernel<scalar_t>, n * 32, kRowBlock, out.data<scalar_t>(),
                 cache.rstd.data<scalar_t>(), x.data<scalar_t>(), weight.data<scalar_t>(), n, c,
                 static_cast<scalar_t>(eps));
  });
}

void rmsnorm_backward(Tensor& dL_dx, Tensor& dL_dweight, const Tensor& dL_dout, const Tensor& x,
                      const Tensor& weight, const RMSNormCache& cache) {
  const int64_t n = x.size(0), c = x.size(1);
  if (n == 0 || c == 0) return;
  LAPIS_DISPATCH_FLOAT(x.dtype(), "rmsnorm_backward", [&] {
    LAPIS_LAUNCH(rmsnorm_backward_kernel<scalar_t>, n * 32, kRowBlock, dL_dx.data<scalar_t>(),
                 dL_dout.data<scalar_t>(), x.data<scalar_t>(), weight.data<scalar_t>(),
                 cache.rstd.data<scalar_t>(), n, c);
    layernorm_backward_params_kernel<scalar_t><<<column_grid(c), kColumnBlock, 0, stream()>>>(
        dL_dweight.data<scalar_t>(), static_cast<scalar_t*>(nullptr), dL_dout.data<scalar_t>(),
        x.data<scalar_t>(), static_cast<const scalar_t*>(nullptr), cache.rstd.data<scalar_t>(),
        n, c);
    LAPIS_CUDA_CHECK(cudaGetLastError());
  });
}

}  // namespace cuda
}  // namespace lapis
