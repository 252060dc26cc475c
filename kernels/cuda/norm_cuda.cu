#include "kernels/cuda/norm_cuda.h"

#include <algorithm>

#include "core/cuda/cuda_check.h"
#include "kernels/cuda/device_utils.cuh"

namespace lapis {
namespace cuda {

namespace {

// ---- column reductions over the rows of [N, C] (BatchNorm statistics, parameter gradients) ----
// N is split into S row slices so that even C = 64 fills the GPU (one block per 32 channels alone
// gave 2 blocks and ~1% of memory bandwidth at N = 300k). Stage 1: grid (ceil(C/32), S), block
// (32, 8); threadIdx.x picks the channel (coalesced along a row), threadIdx.y and the slice stride
// over rows; each block writes its slice's partial sums of two quantities to pa/pb[s, c].
// Stage 2 adds the S partials of each channel in slice order. The partition depends only on
// (N, C) and every sum has a fixed order: deterministic, no atomics.
constexpr int kTile = 32;
constexpr int kRows = 8;
const dim3 kColumnBlock(kTile, kRows);

int64_t row_slices(int64_t n, int64_t c) {
  const int64_t tiles = (c + kTile - 1) / kTile;
  const int64_t wanted = (n + 255) / 256;  // >= 256 rows per slice keeps stage 2 small
  const int64_t cap = std::max<int64_t>(1, 2048 / tiles);  // ~2048 blocks fill 132 SMs
  return std::max<int64_t>(1, std::min(wanted, cap));
}

// Per-element contributions (a, b) of element (r, c).
template <typename T>
struct ColumnValue {  // a = x
  const T* x;
  int64_t C;
  __device__ void operator()(int64_t r, int64_t c, T& a, T& b) const {
    a = x[r * C + c];
    b = T(0);
  }
};
template <typename T>
struct ColumnSquaredDeviation {  // a = (x - mean[c])^2
  const T* x;
  const T* mean;
  int64_t C;
  __device__ void operator()(int64_t r, int64_t c, T& a, T& b) const {
    const T d = x[r * C + c] - mean[c];
    a = d * d;
    b = T(0);
  }
};
template <typename T>
struct ColumnGradStats {  // a = g, b = g * xhat with per-channel statistics (BatchNorm)
  const T* g;
  const T* x;
  const T* mean;
  const T* rstd;
  int64_t C;
  __device__ void operator()(int64_t r, int64_t c, T& a, T& b) const {
    const int64_t i = r * C + c;
    a = g[i];
    b = g[i] * (x[i] - mean[c]) * rstd[c];
  }
};
template <typename T>
struct RowGradStats {  // a = g, b = g * xhat with per-row statistics (LayerNorm; RMSNorm: no mean)
  const T* g;
  const T* x;
  const T* mean;  // nullptr for RMSNorm
  const T* rstd;
  int64_t C;
  __device__ void operator()(int64_t r, int64_t c, T& a, T& b) const {
    const int64_t i = r * C + c;
    a = g[i];
    b = g[i] * (x[i] - (mean != nullptr ? mean[r] : T(0))) * rstd[r];
  }
};

template <typename T, typename F>
__global__ void column_partials_kernel(T* __restrict__ pa, T* __restrict__ pb, int64_t n,
                                       int64_t c_count, F f) {
  __shared__ T ta[kRows][kTile + 1];
  __shared__ T tb[kRows][kTile + 1];
  const int64_t c = static_cast<int64_t>(blockIdx.x) * kTile + threadIdx.x;
  T a = T(0), b = T(0);
  if (c < c_count) {
    for (int64_t r = static_cast<int64_t>(blockIdx.y) * kRows + threadIdx.y; r < n;
         r += static_cast<int64_t>(gridDim.y) * kRows) {
      T ea, eb;
      f(r, c, ea, eb);
      a += ea;
      b += eb;
    }
  }
  ta[threadIdx.y][threadIdx.x] = a;
  tb[threadIdx.y][threadIdx.x] = b;
  __syncthreads();
  if (threadIdx.y == 0 && c < c_count) {
    T sa = T(0), sb = T(0);
    for (int k = 0; k < kRows; ++k) {
      sa += ta[k][threadIdx.x];
      sb += tb[k][threadIdx.x];
    }
    pa[static_cast<int64_t>(blockIdx.y) * c_count + c] = sa;
    pb[static_cast<int64_t>(blockIdx.y) * c_count + c] = sb;
  }
}

// Runs stage 1 into partial buffers [S, C] taken from the caching allocator.
template <typename T, typename F>
void column_partials(Tensor& pa, Tensor& pb, int64_t n, int64_t c, const Tensor& like, F f) {
  const int64_t slices = row_slices(n, c);
  pa = Tensor::empty({slices, c}, like.dtype(), like.device());
  pb = Tensor::empty({slices, c}, like.dtype(), like.device());
  const dim3 grid(grid_for(c, kTile), static_cast<unsigned>(slices));
  column_partials_kernel<T, F><<<grid, kColumnBlock, 0, stream()>>>(pa.data<T>(), pb.data<T>(),
                                                                     n, c, f);
  LAPIS_CUDA_CHECK(cudaGetLastError());
}

// Stage 2 for the batch mean: mean[c] = sum_s pa[s, c] / n.
template <typename T>
__global__ void batchnorm_mean_kernel(T* __restrict__ mean, const T* __restrict__ pa,
                                      int64_t slices, int64_t c_count, int64_t n) {
  const int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= c_count) return;
  T s = T(0);
  for (int64_t k = 0; k < slices; ++k) s += pa[k * c_count + c];
  mean[c] = s / static_cast<T>(n);
}

// Stage 2 for the variance: rstd and the running statistics (unbiased variance, momentum).
template <typename T>
__global__ void batchnorm_var_kernel(T* __restrict__ rstd, T* __restrict__ running_mean,
                                     T* __restrict__ running_var, const T* __restrict__ mean,
                                     const T* __restrict__ pa, int64_t slices, int64_t c_count,
                                     int64_t n, T momentum, T eps) {
  const int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= c_count) return;
  T sq = T(0);
  for (int64_t k = 0; k < slices; ++k) sq += pa[k * c_count + c];
  rstd[c] = T(1) / sqrt(sq / static_cast<T>(n) + eps);
  running_mean[c] = (T(1) - momentum) * running_mean[c] + momentum * mean[c];
  running_var[c] = (T(1) - momentum) * running_var[c] + momentum * (sq / static_cast<T>(n - 1));
}

// Stage 2 for gradients: dw += sum b, db += sum a (db may be null); sum_g / sum_gx (may be null)
// keep the sums for BatchNorm's input gradient.
template <typename T>
__global__ void grad_params_kernel(T* __restrict__ dw, T* __restrict__ db, T* __restrict__ sum_g,
                                   T* __restrict__ sum_gx, const T* __restrict__ pa,
                                   const T* __restrict__ pb, int64_t slices, int64_t c_count) {
  const int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= c_count) return;
  T sa = T(0), sb = T(0);
  for (int64_t k = 0; k < slices; ++k) {
    sa += pa[k * c_count + c];
    sb += pb[k * c_count + c];
  }
  dw[c] += sb;
  if (db != nullptr) db[c] += sa;
  if (sum_g != nullptr) sum_g[c] = sa;
  if (sum_gx != nullptr) sum_gx[c] = sb;
}

// ---- row reductions (LayerNorm, RMSNorm): one warp per row ----
constexpr int kRowBlock = 256;  // 8 warps, 8 rows in flight per block


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
template <typename T>
__global__ void batchnorm_backward_input_kernel(T* __restrict__ dx, const T* __restrict__ g,
                                                const T* __restrict__ x, const T* __restrict__ w,
                                                const T* __restrict__ mean,
                                                const T* __restrict__ rstd,
                                                const T* __restrict__ sum_g,
                                                const T* __restrict__ sum_gx, int64_t n,
                                                int64_t c_count, bool training) {
  const T inv_n = T(1) / static_cast<T>(n);
  LAPIS_KERNEL_LOOP(i, n * c_count) {
    const int64_t c = i % c_count;
    if (training) {
      const T xhat = (x[i] - mean[c]) * rstd[c];
      dx[i] = rstd[c] * w[c] * (g[i] - sum_g[c] * inv_n - xhat * sum_gx[c] * inv_n);
    } else {
      dx[i] = g[i] * w[c] * rstd[c];
    }
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
    const T mean = warp_all_sum(s) / static_cast<T>(c_count);
    T sq = T(0);
    for (int64_t c = lane; c < c_count; c += 32) {
      const T d = row[c] - mean;
      sq += d * d;
    }
    const T rstd = T(1) / sqrt(warp_all_sum(sq) / static_cast<T>(c_count) + eps);
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
    const T mean_dxhat = warp_all_sum(s1) / static_cast<T>(c_count);
    const T mean_dxhat_xhat = warp_all_sum(s2) / static_cast<T>(c_count);
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
    const T rstd = T(1) / sqrt(warp_all_sum(sq) / static_cast<T>(c_count) + eps);
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
    const T mean_gwx = warp_all_sum(s) / static_cast<T>(c_count);
    for (int64_t c = lane; c < c_count; c += 32) {
      dx[base + c] = rstd * (g[base + c] * w[c] - x[base + c] * rstd * rstd * mean_gwx);
    }
  }
}


}  // namespace

void batchnorm_forward_train(Tensor& out, BatchNormCache& cache, Tensor& running_mean,
                             Tensor& running_var, const Tensor& x, const Tensor& weight,
                             const Tensor& bias, double momentum, double eps) {
  const int64_t n = x.size(0), c = x.size(1);
  if (n == 0 || c == 0) return;
  LAPIS_DISPATCH_FLOAT(x.dtype(), "batchnorm_forward_train", [&] {
    using T = scalar_t;
    Tensor pa, pb;
    // Two passes (mean, then squared deviations) for a stable variance.
    column_partials<T>(pa, pb, n, c, x, ColumnValue<T>{x.data<T>(), c});
    LAPIS_LAUNCH(batchnorm_mean_kernel<T>, c, 128, cache.mean.data<T>(), pa.data<T>(),
                 pa.size(0), c, n);
    column_partials<T>(pa, pb, n, c, x,
                       ColumnSquaredDeviation<T>{x.data<T>(), cache.mean.data<T>(), c});
    LAPIS_LAUNCH(batchnorm_var_kernel<T>, c, 128, cache.rstd.data<T>(), running_mean.data<T>(),
                 running_var.data<T>(), cache.mean.data<T>(), pa.data<T>(), pa.size(0), c, n,
                 static_cast<T>(momentum), static_cast<T>(eps));
    LAPIS_LAUNCH(batchnorm_forward_eval_kernel<T>, n * c, 256, out.data<T>(), x.data<T>(),
                 weight.data<T>(), bias.data<T>(), cache.mean.data<T>(), cache.rstd.data<T>(),
                 n * c, c);
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
    using T = scalar_t;
    Tensor pa, pb;
    column_partials<T>(pa, pb, n, c, x,
                       ColumnGradStats<T>{dL_dout.data<T>(), x.data<T>(), cache.mean.data<T>(),
                                          cache.rstd.data<T>(), c});
    Tensor sums = Tensor::empty({2, c}, x.dtype(), x.device());  // sum g, sum g * xhat
    T* sum_g = sums.data<T>();
    T* sum_gx = sum_g + c;
    LAPIS_LAUNCH(grad_params_kernel<T>, c, 128, dL_dweight.data<T>(), dL_dbias.data<T>(), sum_g,
                 sum_gx, pa.data<T>(), pb.data<T>(), pa.size(0), c);
    LAPIS_LAUNCH(batchnorm_backward_input_kernel<T>, n * c, 256, dL_dx.data<T>(),
                 dL_dout.data<T>(), x.data<T>(), weight.data<T>(), cache.mean.data<T>(),
                 cache.rstd.data<T>(), sum_g, sum_gx, n, c, cache.training);
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
    using T = scalar_t;
    Tensor pa, pb;
    column_partials<T>(pa, pb, n, c, x,
                       RowGradStats<T>{dL_dout.data<T>(), x.data<T>(), cache.mean.data<T>(),
                                       cache.rstd.data<T>(), c});
    LAPIS_LAUNCH(grad_params_kernel<T>, c, 128, dL_dweight.data<T>(), dL_dbias.data<T>(),
                 static_cast<T*>(nullptr), static_cast<T*>(nullptr), pa.data<T>(), pb.data<T>(),
                 pa.size(0), c);
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
    using T = scalar_t;
    Tensor pa, pb;
    column_partials<T>(pa, pb, n, c, x,
                       RowGradStats<T>{dL_dout.data<T>(), x.data<T>(), nullptr,
                                       cache.rstd.data<T>(), c});
    LAPIS_LAUNCH(grad_params_kernel<T>, c, 128, dL_dweight.data<T>(), static_cast<T*>(nullptr),
                 static_cast<T*>(nullptr), static_cast<T*>(nullptr), pa.data<T>(), pb.data<T>(),
                 pa.size(0), c);
  });
}

}  // namespace cuda
}  // namespace lapis
