#include "kernels/cuda/norm_cuda.h"

#include <algorithm>

#include <cooperative_groups.h>
#include <atomic>
#include <map>
#include <mutex>

#include "core/cuda/cuda_check.h"
#include "kernels/cuda/device_utils.cuh"
#include "kernels/cuda/elementwise_cuda.h"  // reduction_counters

namespace lapis {
namespace cuda {

namespace {

// ---- column reductions over the rows of x [N, C] (BatchNorm statistics, parameter gradients) ----
// One launch per reduction. Grid (ceil(C/32), S), block (32, 8): threadIdx.x picks the channel (a
// warp reads 32 consecutive values of a row), blockIdx.y one of S slices of consecutive rows, and
// threadIdx.y strides over the slice's rows. N is split into slices so that even C = 64 fills the
// GPU (one block per 32 channels alone gave 2 blocks and ~1% of memory bandwidth at N = 300k).
// Each block writes its slice's partial per channel to partial[s, c]; the last block of a column
// tile to arrive (an integer counter per tile: "last block done", as in PyTorch's Reduce.cuh and
// the CUDA threadFenceReduction sample) combines the S partials of its channels and writes the
// results, which saves the separate finishing kernel. The atomic only elects the finishing block;
// the partition depends only on (N, C) and every sum runs in a fixed order: deterministic.
constexpr int kTile = 32;
constexpr int kRows = 8;
const dim3 kColumnBlock(kTile, kRows);
constexpr int64_t kTargetBlocks = 1024;  // ~8 resident 256-thread blocks on each of 132 SMs
constexpr int64_t kMinSliceRows = 64;    // so N <= 64 is one slice: no partials, no counter
constexpr int64_t kChunkRows = 256;      // BatchNorm statistics: rows per two-pass chunk

int64_t column_tiles(int64_t c) { return (c + kTile - 1) / kTile; }

// gridDim.x = ceil(C / 32).
unsigned grid_x(int64_t c) {
  const int64_t tiles = column_tiles(c);
  LAPIS_CHECK(tiles <= 2147483647, "norm (CUDA)", "too many channels for the grid: C = ", c);
  return static_cast<unsigned>(tiles);
}

// Rows [s * rows, min(N, (s + 1) * rows)) form slice s < count; no slice is empty.
struct RowSlices {
  int64_t count;
  int64_t rows;
};
RowSlices row_slices(int64_t n, int64_t c) {
  const int64_t cap = std::max<int64_t>(1, kTargetBlocks / column_tiles(c));
  const int64_t wanted = (n + kMinSliceRows - 1) / kMinSliceRows;
  const int64_t target = std::max<int64_t>(1, std::min(wanted, cap));
  const int64_t rows = std::max<int64_t>(1, (n + target - 1) / target);
  return {std::max<int64_t>(1, (n + rows - 1) / rows), rows};
}

// Rows a warp covers at once in the element-wise passes: 1 for C >= 32, else 32 / C (below).
__host__ __device__ int64_t rows_per_warp(int64_t c) { return c >= kTile ? 1 : kTile / c; }

// Grid (ceil(C/32), Y) for the element-wise passes over [N, C] with block (32, 8): each thread
// keeps one channel's constants in registers and strides over rows (at least 4 per thread).
dim3 elementwise_grid(int64_t n, int64_t c) {
  const int64_t tiles = column_tiles(c);
  const int64_t per_block = 4 * kRows * rows_per_warp(c);
  const int64_t wanted = (n + per_block - 1) / per_block;
  const int64_t cap = std::max<int64_t>(1, 4 * kTargetBlocks / tiles);
  return dim3(grid_x(c), static_cast<unsigned>(std::max<int64_t>(1, std::min(wanted, cap))));
}

// Thread mapping of the element-wise passes (grid elementwise_grid, block (32, 8)). C >= 32: lane
// threadIdx.x takes channel blockIdx.x * 32 + threadIdx.x of one row. C < 32: a warp takes
// P = 32 / C consecutive rows at once (lane: row offset threadIdx.x / C, channel threadIdx.x % C),
// so a warp still reads P * C consecutive values. The thread visits rows row0, row0 + step, ...;
// row0 == 0 holds for exactly one thread per channel.
struct ColumnLanes {
  int64_t c;
  int64_t row0;
  int64_t step;
  bool active;
};
__device__ ColumnLanes column_lanes(int64_t c_count) {
  ColumnLanes m;
  const int64_t pack = rows_per_warp(c_count);
  const int64_t sub = pack == 1 ? 0 : threadIdx.x / c_count;
  m.c = pack == 1 ? static_cast<int64_t>(blockIdx.x) * kTile + threadIdx.x
                  : threadIdx.x % c_count;
  m.active = m.c < c_count && sub < pack;
  m.row0 = (static_cast<int64_t>(blockIdx.y) * kRows + threadIdx.y) * pack + sub;
  m.step = static_cast<int64_t>(gridDim.y) * kRows * pack;
  return m;
}

// Sum of v over threadIdx.y = 0..kRows-1 in that order, for each threadIdx.x; the result is valid
// where threadIdx.y == 0. Every thread of the block must call it; tile is free again on return.
template <typename T>
__device__ T sum_over_block_rows(T (&tile)[kRows][kTile + 1], T v) {
  tile[threadIdx.y][threadIdx.x] = v;
  __syncthreads();
  T total = T(0);
  if (threadIdx.y == 0) {
    for (int k = 0; k < kRows; ++k) total += tile[k][threadIdx.x];
  }
  __syncthreads();
  return total;
}

// ---- column sums of two quantities, then a per-channel finish (BatchNorm/LayerNorm/RMSNorm) ----

// Per-element contributions (a, b) of element (r, c).
template <typename T>
struct ColumnGradStats {  // a = g, b = g * xhat with per-channel statistics (BatchNorm)
  const T* g;
  const T* x;
  const T* mean;
  const T* rstd;
  const T* w;
  T* dx_eval;  // eval mode: also writes dx = g * w * rstd here (the statistics are constants)
  int64_t C;
  __device__ void operator()(int64_t r, int64_t c, T& a, T& b) const {
    const int64_t i = r * C + c;
    const T gi = g[i];
    a = gi;
    b = gi * (x[i] - mean[c]) * rstd[c];
    if (dx_eval != nullptr) dx_eval[i] = gi * w[c] * rstd[c];
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

// Once per channel with the totals: dw += sum b, db += sum a (db may be null); sum_g / sum_gx
// (may be null) keep the totals for BatchNorm's input gradient.
template <typename T>
struct GradFinish {
  T* dw;
  T* db;
  T* sum_g;
  T* sum_gx;
  __device__ void operator()(int64_t c, T sa, T sb) const {
    dw[c] += sb;
    if (db != nullptr) db[c] += sa;
    if (sum_g != nullptr) sum_g[c] = sa;
    if (sum_gx != nullptr) sum_gx[c] = sb;
  }
};

// Column c's sums of f's two terms over rows [r0, r1) of a slice (threadIdx.y strides, then the
// block's 8 row threads in order); valid where threadIdx.y == 0. Every thread must call it.
template <typename T, typename F>
__device__ inline void slice_column_sums(const F& f, int64_t c, bool active, int64_t r0,
                                         int64_t r1, T (&ta)[kRows][kTile + 1],
                                         T (&tb)[kRows][kTile + 1], T& a, T& b) {
  a = b = T(0);
  if (active) {
#pragma unroll 4
    for (int64_t r = r0 + threadIdx.y; r < r1; r += kRows) {
      T ea, eb;
      f(r, c, ea, eb);
      a += ea;
      b += eb;
    }
  }
  a = sum_over_block_rows(ta, a);
  b = sum_over_block_rows(tb, b);
}

// Column c's totals from the S slice partials pa, pb [S, C] in a fixed order (ordered_partial_sums,
// then the 8 row threads); valid where threadIdx.y == 0. Every thread must call it.
template <typename T>
__device__ inline void merged_column_sums(const T* pa, const T* pb, int64_t c, bool active,
                                          int64_t slices, int64_t c_count,
                                          T (&ta)[kRows][kTile + 1], T (&tb)[kRows][kTile + 1],
                                          T& a, T& b) {
  a = b = T(0);
  if (active) ordered_partial_sums(pa + c, pb + c, threadIdx.y, kRows, slices, c_count, &a, &b);
  a = sum_over_block_rows(ta, a);
  b = sum_over_block_rows(tb, b);
}

// pa, pb [S, C] and counters [ceil(C/32)] are unused (may be null) when S == 1.
template <typename T, typename F>
__global__ void column_grad_kernel(T* __restrict__ pa, T* __restrict__ pb,
                                   unsigned int* __restrict__ counters, int64_t n,
                                   int64_t c_count, int64_t slice_rows, F f,
                                   GradFinish<T> finish) {
  __shared__ T ta[kRows][kTile + 1];
  __shared__ T tb[kRows][kTile + 1];
  const int64_t c = static_cast<int64_t>(blockIdx.x) * kTile + threadIdx.x;
  const bool active = c < c_count;
  const int64_t r0 = static_cast<int64_t>(blockIdx.y) * slice_rows;
  const int64_t r1 = r0 + slice_rows < n ? r0 + slice_rows : n;
  T a, b;
  slice_column_sums(f, c, active, r0, r1, ta, tb, a, b);
  if (gridDim.y == 1) {  // the block saw every row
    if (threadIdx.y == 0 && active) finish(c, a, b);
    return;
  }
  if (threadIdx.y == 0 && active) {
    pa[static_cast<int64_t>(blockIdx.y) * c_count + c] = a;
    pb[static_cast<int64_t>(blockIdx.y) * c_count + c] = b;
  }
  if (!last_block_arrives(counters + blockIdx.x, gridDim.y)) return;
  // Last block of the tile: add the S partials of each channel, slices s = threadIdx.y + 8k in
  // order per thread, then the 8 thread sums in order. __ldcg reads them from L2, where the
  // other blocks' stores went.
  merged_column_sums(pa, pb, c, active, gridDim.y, c_count, ta, tb, a, b);
  if (threadIdx.y == 0 && active) finish(c, a, b);
}

// One launch: column sums of f over x's rows, then finish per channel. n >= 1, c >= 1.
template <typename T, typename F>
void column_grad(int64_t n, int64_t c, const Tensor& like, F f, GradFinish<T> finish) {
  const RowSlices slices = row_slices(n, c);
  const int64_t tiles = column_tiles(c);
  Tensor pa, pb;  // scratch from the caching allocator; freeing it at scope end is stream-safe
  T* pa_ptr = nullptr;
  T* pb_ptr = nullptr;
  unsigned int* counters = nullptr;
  if (slices.count > 1) {
    pa = Tensor::empty({slices.count, c}, like.dtype(), like.device());
    pb = Tensor::empty({slices.count, c}, like.dtype(), like.device());
    pa_ptr = pa.data<T>();
    pb_ptr = pb.data<T>();
    counters = reduction_counters(tiles);
  }
  const dim3 grid(grid_x(c), static_cast<unsigned>(slices.count));
  column_grad_kernel<T, F><<<grid, kColumnBlock, 0, stream()>>>(pa_ptr, pb_ptr, counters, n, c,
                                                                 slices.rows, f, finish);
  LAPIS_CUDA_CHECK(cudaGetLastError());
}

// ---- BatchNorm training statistics ----

// Count, mean and sum of squared deviations (M2) of a set of values; merge() adds another set
// with the pairwise update of Chan, Golub & LeVeque ("Algorithms for computing the sample
// variance", 1983): no difference of large sums, so as stable as two passes over all rows.
template <typename T>
struct MeanM2 {
  int64_t n = 0;
  T mean = T(0);
  T m2 = T(0);
  __device__ void merge(int64_t nb, T mean_b, T m2_b) {
    if (nb == 0) return;
    const int64_t total = n + nb;
    const T delta = mean_b - mean;
    const T wb = static_cast<T>(nb) / static_cast<T>(total);
    mean += delta * wb;
    m2 += m2_b + delta * delta * static_cast<T>(n) * wb;
    n = total;
  }
};

// Batch statistics of x [N, C], shared by the two forward variants below. Each block takes a
// slice of rows [r0, r1) in chunks of up to kChunkRows rows, computes each chunk's mean and M2 in
// two passes (the second pass reads the chunk again from L1/L2) and merges the chunks. The
// result is meaningful where threadIdx.y == 0. Every thread of the block must call it.
template <typename T>
__device__ MeanM2<T> slice_mean_m2(const T* __restrict__ x, int64_t c_count, int64_t c,
                                   bool active, int64_t r0, int64_t r1,
                                   T (&tile)[kRows][kTile + 1], T (&chunk_mean)[kTile]) {
  MeanM2<T> slice;
  for (int64_t q0 = r0; q0 < r1; q0 += kChunkRows) {  // same trip count in the whole block
    const int64_t q1 = q0 + kChunkRows < r1 ? q0 + kChunkRows : r1;
    T s = T(0);
    if (active) {
#pragma unroll 4
      for (int64_t r = q0 + threadIdx.y; r < q1; r += kRows) s += x[r * c_count + c];
    }
    s = sum_over_block_rows(tile, s);
    if (threadIdx.y == 0) chunk_mean[threadIdx.x] = s / static_cast<T>(q1 - q0);
    __syncthreads();
    const T m = chunk_mean[threadIdx.x];
    T sq = T(0);
    if (active) {
#pragma unroll 4
      for (int64_t r = q0 + threadIdx.y; r < q1; r += kRows) {
        const T d = x[r * c_count + c] - m;
        sq += d * d;
      }
    }
    // Its first __syncthreads also orders every read of chunk_mean above before the next
    // chunk's write.
    sq = sum_over_block_rows(tile, sq);
    if (threadIdx.y == 0) slice.merge(q1 - q0, m, sq);
  }
  return slice;
}

// Merges the S slice statistics pmean/pm2 [S, C] of channel c (slice s covers rows
// [s * slice_rows, min(N, (s + 1) * slice_rows))): per thread slices threadIdx.y + 8k in order,
// 8 slices' loads in flight at a time (one L2 round trip up to 64 slices), then the 8 threads
// in order. The result is meaningful where threadIdx.y == 0; every thread of the block must
// call it. The order depends only on
// (N, C): every block that merges gets the same bits.
template <typename T>
__device__ MeanM2<T> merge_slices(const T* pmean, const T* pm2, int64_t slices, int64_t n,
                                  int64_t c_count, int64_t c, bool active, int64_t slice_rows) {
  __shared__ T part_mean[kRows][kTile + 1];
  __shared__ T part_m2[kRows][kTile + 1];
  __shared__ int64_t part_n[kRows][kTile + 1];
  MeanM2<T> part;
  if (active) {
    constexpr int kBatch = 8;
    for (int64_t s0 = threadIdx.y; s0 < slices; s0 += kRows * kBatch) {
      T m[kBatch], q[kBatch];
#pragma unroll
      for (int u = 0; u < kBatch; ++u) {
        const int64_t s = s0 + u * kRows;
        m[u] = s < slices ? __ldcg(pmean + s * c_count + c) : T(0);
        q[u] = s < slices ? __ldcg(pm2 + s * c_count + c) : T(0);
      }
#pragma unroll
      for (int u = 0; u < kBatch; ++u) {
        const int64_t s = s0 + u * kRows;
        if (s >= slices) break;
        const int64_t first = s * slice_rows;
        const int64_t rows = first + slice_rows < n ? slice_rows : n - first;
        part.merge(rows, m[u], q[u]);
      }
    }
  }
  __syncthreads();  // an earlier call may still be reading the shared arrays
  part_mean[threadIdx.y][threadIdx.x] = part.mean;
  part_m2[threadIdx.y][threadIdx.x] = part.m2;
  part_n[threadIdx.y][threadIdx.x] = part.n;
  __syncthreads();
  MeanM2<T> total;
  if (threadIdx.y == 0) {
    for (int k = 0; k < kRows; ++k) {
      total.merge(part_n[k][threadIdx.x], part_mean[k][threadIdx.x], part_m2[k][threadIdx.x]);
    }
  }
  return total;
}

// mean and rstd [C] (biased variance, as the CPU reference) and the running statistics
// (unbiased variance) of channel c from its totals.
template <typename T>
__device__ void store_batch_stats(const MeanM2<T>& total, int64_t n, int64_t c, T* mean_out,
                                  T* rstd_out, T* running_mean, T* running_var, T momentum,
                                  T eps) {
  mean_out[c] = total.mean;
  rstd_out[c] = T(1) / sqrt(total.m2 / static_cast<T>(n) + eps);
  running_mean[c] = (T(1) - momentum) * running_mean[c] + momentum * total.mean;
  running_var[c] =
      (T(1) - momentum) * running_var[c] + momentum * (total.m2 / static_cast<T>(n - 1));
}

// One launch for the batch statistics: the slices' (mean, M2) go to pmean/pm2 [S, C] and the
// last block of each column tile merges them and stores mean, rstd and the running statistics.
template <typename T>
__global__ void batchnorm_stats_kernel(T* __restrict__ mean_out, T* __restrict__ rstd_out,
                                       T* __restrict__ running_mean, T* __restrict__ running_var,
                                       T* __restrict__ pmean, T* __restrict__ pm2,
                                       unsigned int* __restrict__ counters,
                                       const T* __restrict__ x, int64_t n, int64_t c_count,
                                       int64_t slice_rows, T momentum, T eps) {
  __shared__ T tile[kRows][kTile + 1];
  __shared__ T chunk_mean[kTile];
  const int64_t c = static_cast<int64_t>(blockIdx.x) * kTile + threadIdx.x;
  const bool active = c < c_count;
  const int64_t r0 = static_cast<int64_t>(blockIdx.y) * slice_rows;
  const int64_t r1 = r0 + slice_rows < n ? r0 + slice_rows : n;
  const MeanM2<T> slice = slice_mean_m2(x, c_count, c, active, r0, r1, tile, chunk_mean);
  MeanM2<T> total;
  if (gridDim.y == 1) {  // the block saw every row
    total = slice;
  } else {
    if (threadIdx.y == 0 && active) {
      pmean[static_cast<int64_t>(blockIdx.y) * c_count + c] = slice.mean;
      pm2[static_cast<int64_t>(blockIdx.y) * c_count + c] = slice.m2;
    }
    if (!last_block_arrives(counters + blockIdx.x, gridDim.y)) return;
    total = merge_slices(pmean, pm2, gridDim.y, n, c_count, c, active, slice_rows);
  }
  if (threadIdx.y != 0 || !active) return;
  store_batch_stats(total, n, c, mean_out, rstd_out, running_mean, running_var, momentum, eps);
}

// One BatchNorm of a cooperative launch (several independent ones may share the launch: the
// grid-wide sync serves them all). Its blocks are (tile, slice) = (local % tiles, local / tiles)
// of the range [block_begin[k], block_begin[k + 1]) of the 1-D grid.
template <typename T>
struct BnForwardJob {
  T* out;
  T* mean_out;
  T* rstd_out;
  T* running_mean;
  T* running_var;
  T* pmean;  // [S, C] slice statistics
  T* pm2;
  const T* x;
  const T* w;
  const T* b;
  int64_t n, c_count, slice_rows;
  T momentum, eps;
  int tiles, slices;
};
template <typename T>
struct BnBackwardJob {
  T* dx;
  T* dw;
  T* db;  // may be null
  T* pa;  // [S, C] slice sums of g and g * xhat
  T* pb;
  const T* g;
  const T* x;
  const T* w;
  const T* mean;
  const T* rstd;
  int64_t n, c_count, slice_rows;
  int tiles, slices;
};
constexpr int kMaxBnJobs = 4;
template <typename Job>
struct BnJobs {
  Job job[kMaxBnJobs];
  int block_begin[kMaxBnJobs + 1];
  int count;
};

// This block's job (selected with constant indices: the jobs stay in the parameter space) and
// its (tile, slice).
template <typename Job>
__device__ Job select_bn_job(const BnJobs<Job>& jobs, int& tile, int& slice) {
  const int b = blockIdx.x;
  int k = 0;
#pragma unroll
  for (int q = 1; q < kMaxBnJobs; ++q) k += (q < jobs.count && b >= jobs.block_begin[q]) ? 1 : 0;
  Job job = jobs.job[0];
#pragma unroll
  for (int q = 1; q < kMaxBnJobs; ++q) {
    if (k == q) job = jobs.job[q];
  }
  const int local = b - jobs.block_begin[k];
  tile = local % job.tiles;
  slice = local / job.tiles;
  return job;
}

// The whole training forward in one cooperative launch (block (32, 8), all blocks resident; at
// most 64 registers so that 4 blocks fit on an SM and the node and edge BatchNorms of a layer
// share one launch at ZINC sizes):
// each block stores its slice's (mean, M2), the grid synchronises, every block merges the S
// slices of its channels in the same order as batchnorm_stats_kernel (so mean and rstd are the
// same bits), the blocks of slice 0 store the statistics, and each block normalises its own rows
// with the same expression as batchnorm_normalize_kernel.
template <typename T>
__global__ void __launch_bounds__(256, 4)
    batchnorm_forward_coop_kernel(const BnJobs<BnForwardJob<T>> jobs) {
  __shared__ T tile_sums[kRows][kTile + 1];
  __shared__ T chunk_mean[kTile];
  __shared__ T stat_mean[kTile], stat_rstd[kTile];
  int tile = 0, slice = 0;
  const BnForwardJob<T> j = select_bn_job(jobs, tile, slice);
  const int64_t n = j.n, c_count = j.c_count;
  const int64_t c = static_cast<int64_t>(tile) * kTile + threadIdx.x;
  const bool active = c < c_count;
  const int64_t r0 = static_cast<int64_t>(slice) * j.slice_rows;
  const int64_t r1 = r0 + j.slice_rows < n ? r0 + j.slice_rows : n;
  const MeanM2<T> part = slice_mean_m2(j.x, c_count, c, active, r0, r1, tile_sums, chunk_mean);
  if (threadIdx.y == 0 && active) {
    j.pmean[static_cast<int64_t>(slice) * c_count + c] = part.mean;
    j.pm2[static_cast<int64_t>(slice) * c_count + c] = part.m2;
  }
  cooperative_groups::this_grid().sync();
  MeanM2<T> total = merge_slices(j.pmean, j.pm2, j.slices, n, c_count, c, active, j.slice_rows);
  if (j.slices == 1) total = part;  // as batchnorm_stats_kernel: no merge of one slice
  if (threadIdx.y == 0) {
    stat_mean[threadIdx.x] = total.mean;
    stat_rstd[threadIdx.x] = T(1) / sqrt(total.m2 / static_cast<T>(n) + j.eps);
    if (slice == 0 && active) {
      store_batch_stats(total, n, c, j.mean_out, j.rstd_out, j.running_mean, j.running_var,
                        j.momentum, j.eps);
    }
  }
  __syncthreads();
  if (!active) return;
  const T mean = stat_mean[threadIdx.x], rstd = stat_rstd[threadIdx.x];
  const T wc = j.w[c], bc = j.b[c];
  for (int64_t r = r0 + threadIdx.y; r < r1; r += kRows) {
    const int64_t i = r * c_count + c;
    j.out[i] = (j.x[i] - mean) * rstd * wc + bc;
  }
}

// out = (x - mean) * rstd * w + b over x [N, C], grid elementwise_grid(N, C), block (32, 8).
// Training (var_in == nullptr): mean/rstd are read from cache_mean/cache_rstd. Eval: mean_in and
// var_in are the running statistics; rstd = 1 / sqrt(var + eps) is computed per thread and one
// thread per channel writes the cache (also when N == 0).
template <typename T>
__global__ void batchnorm_normalize_kernel(T* __restrict__ out, T* cache_mean, T* cache_rstd,
                                           const T* __restrict__ x, const T* __restrict__ w,
                                           const T* __restrict__ b, const T* mean_in,
                                           const T* var_in, int64_t n, int64_t c_count, T eps) {
  const ColumnLanes m = column_lanes(c_count);
  if (!m.active) return;  // no barriers in this kernel
  const int64_t c = m.c;
  T mean, rstd;
  if (var_in != nullptr) {
    mean = mean_in[c];
    rstd = T(1) / sqrt(var_in[c] + eps);
    if (m.row0 == 0) {
      cache_mean[c] = mean;
      cache_rstd[c] = rstd;
    }
  } else {
    mean = cache_mean[c];
    rstd = cache_rstd[c];
  }
  const T wc = w[c], bc = b[c];
  for (int64_t r = m.row0; r < n; r += m.step) {
    const int64_t i = r * c_count + c;
    out[i] = (x[i] - mean) * rstd * wc + bc;
  }
}

// The whole training backward in one cooperative launch (block (32, 8), all blocks resident):
// the column sums of g and g * xhat as column_grad_kernel (same partition and order, so the same
// bits), a grid-wide sync instead of the last-block election, every block adding the S partials
// of its channels, the blocks of slice 0 adding dw and db, and each block writing dx for its own
// rows with batchnorm_backward_input_kernel's expression.
template <typename T>
__global__ void __launch_bounds__(256, 4)
    batchnorm_backward_coop_kernel(const BnJobs<BnBackwardJob<T>> jobs) {
  __shared__ T ta[kRows][kTile + 1];
  __shared__ T tb[kRows][kTile + 1];
  __shared__ T total_g[kTile], total_gx[kTile];
  int tile = 0, slice = 0;
  const BnBackwardJob<T> j = select_bn_job(jobs, tile, slice);
  const int64_t n = j.n, c_count = j.c_count;
  const int64_t c = static_cast<int64_t>(tile) * kTile + threadIdx.x;
  const bool active = c < c_count;
  const int64_t r0 = static_cast<int64_t>(slice) * j.slice_rows;
  const int64_t r1 = r0 + j.slice_rows < n ? r0 + j.slice_rows : n;
  const ColumnGradStats<T> f{j.g, j.x, j.mean, j.rstd, j.w, nullptr, c_count};
  T a, b;
  slice_column_sums(f, c, active, r0, r1, ta, tb, a, b);
  if (threadIdx.y == 0 && active) {
    j.pa[static_cast<int64_t>(slice) * c_count + c] = a;
    j.pb[static_cast<int64_t>(slice) * c_count + c] = b;
  }
  cooperative_groups::this_grid().sync();
  if (j.slices > 1) merged_column_sums(j.pa, j.pb, c, active, j.slices, c_count, ta, tb, a, b);
  if (threadIdx.y == 0) {
    total_g[threadIdx.x] = a;
    total_gx[threadIdx.x] = b;
    if (slice == 0 && active) {
      j.dw[c] += b;
      if (j.db != nullptr) j.db[c] += a;
    }
  }
  __syncthreads();
  if (!active) return;
  const T inv_n = T(1) / static_cast<T>(n);
  const T mc = j.mean[c], rc = j.rstd[c], wc = j.w[c], sg = total_g[threadIdx.x],
          sgx = total_gx[threadIdx.x];
  for (int64_t r = r0 + threadIdx.y; r < r1; r += kRows) {
    const int64_t i = r * c_count + c;
    const T xhat = (j.x[i] - mc) * rc;
    j.dx[i] = rc * wc * (j.g[i] - sg * inv_n - xhat * sgx * inv_n);
  }
}

// Whether `blocks` blocks of 256 threads of `kernel` can all be resident at once, which a
// cooperative launch (grid-wide sync) needs. Occupancy is queried once per kernel.
std::atomic<bool> g_single_launch{true};

bool cooperative_fits(const void* kernel, int64_t blocks) {
  if (!g_single_launch.load()) return false;
  static std::mutex mutex;
  static std::map<const void*, int64_t> capacity;
  std::lock_guard<std::mutex> lock(mutex);
  auto it = capacity.find(kernel);
  if (it == capacity.end()) {
    int device = 0, sms = 0, coop = 0, per_sm = 0;
    LAPIS_CUDA_CHECK(cudaGetDevice(&device));
    LAPIS_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
    LAPIS_CUDA_CHECK(cudaDeviceGetAttribute(&coop, cudaDevAttrCooperativeLaunch, device));
    LAPIS_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, kTile * kRows, 0));
    it = capacity.emplace(kernel, coop ? static_cast<int64_t>(per_sm) * sms : 0).first;
  }
  return blocks <= it->second;
}

// Training: dx = rstd * w * (g - sum(g) / N - xhat * sum(g * xhat) / N) over [N, C], grid
// elementwise_grid(N, C), block (32, 8).
template <typename T>
__global__ void batchnorm_backward_input_kernel(T* __restrict__ dx, const T* __restrict__ g,
                                                const T* __restrict__ x, const T* __restrict__ w,
                                                const T* __restrict__ mean,
                                                const T* __restrict__ rstd,
                                                const T* __restrict__ sum_g,
                                                const T* __restrict__ sum_gx, int64_t n,
                                                int64_t c_count) {
  const ColumnLanes m = column_lanes(c_count);
  if (!m.active) return;
  const int64_t c = m.c;
  const T inv_n = T(1) / static_cast<T>(n);
  const T mc = mean[c], rc = rstd[c], wc = w[c], sg = sum_g[c], sgx = sum_gx[c];
  for (int64_t r = m.row0; r < n; r += m.step) {
    const int64_t i = r * c_count + c;
    const T xhat = (x[i] - mc) * rc;
    dx[i] = rc * wc * (g[i] - sg * inv_n - xhat * sgx * inv_n);
  }
}

// ---- row reductions (LayerNorm, RMSNorm): one warp per row ----
constexpr int kRowBlock = 256;  // 8 warps, 8 rows in flight per block

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

void set_batchnorm_single_launch(bool allow) { g_single_launch.store(allow); }

namespace {

// The two-launch training forward: statistics with the last-block finish, then normalisation.
template <typename T>
void forward_train_two_launch(const BatchNormForwardCall& call) {
  const Tensor& x = call.x;
  const int64_t n = x.size(0), c = x.size(1);
  const RowSlices slices = row_slices(n, c);
  Tensor pmean, pm2;  // [S, C] slice statistics, only with S > 1
  T* pmean_ptr = nullptr;
  T* pm2_ptr = nullptr;
  unsigned int* counters = nullptr;
  if (slices.count > 1) {
    pmean = Tensor::empty({slices.count, c}, x.dtype(), x.device());
    pm2 = Tensor::empty({slices.count, c}, x.dtype(), x.device());
    pmean_ptr = pmean.data<T>();
    pm2_ptr = pm2.data<T>();
    counters = reduction_counters(column_tiles(c));
  }
  const dim3 grid(grid_x(c), static_cast<unsigned>(slices.count));
  batchnorm_stats_kernel<T><<<grid, kColumnBlock, 0, stream()>>>(
      call.cache.mean.data<T>(), call.cache.rstd.data<T>(), call.running_mean.data<T>(),
      call.running_var.data<T>(), pmean_ptr, pm2_ptr, counters, x.data<T>(), n, c, slices.rows,
      static_cast<T>(call.momentum), static_cast<T>(call.eps));
  LAPIS_CUDA_CHECK(cudaGetLastError());
  batchnorm_normalize_kernel<T><<<elementwise_grid(n, c), kColumnBlock, 0, stream()>>>(
      call.out.data<T>(), call.cache.mean.data<T>(), call.cache.rstd.data<T>(), x.data<T>(),
      call.weight.data<T>(), call.bias.data<T>(), static_cast<const T*>(nullptr),
      static_cast<const T*>(nullptr), n, c, static_cast<T>(call.eps));
  LAPIS_CUDA_CHECK(cudaGetLastError());
}

// The two-launch training backward: column sums with the dw/db finish, then dL_dx.
template <typename T>
void backward_train_two_launch(const BatchNormBackwardCall& call) {
  const Tensor& x = call.x;
  const int64_t n = x.size(0), c = x.size(1);
  const ColumnGradStats<T> stats{call.dL_dout.data<T>(), x.data<T>(), call.cache.mean.data<T>(),
                                 call.cache.rstd.data<T>(), call.weight.data<T>(), nullptr, c};
  Tensor sums = Tensor::empty({2, c}, x.dtype(), x.device());  // sum g, sum g * xhat
  T* sum_g = sums.data<T>();
  T* sum_gx = sum_g + c;
  T* db = call.dL_dbias.defined() ? call.dL_dbias.data<T>() : nullptr;
  column_grad<T>(n, c, x, stats, GradFinish<T>{call.dL_dweight.data<T>(), db, sum_g, sum_gx});
  batchnorm_backward_input_kernel<T><<<elementwise_grid(n, c), kColumnBlock, 0, stream()>>>(
      call.dL_dx.data<T>(), call.dL_dout.data<T>(), x.data<T>(), call.weight.data<T>(),
      call.cache.mean.data<T>(), call.cache.rstd.data<T>(), sum_g, sum_gx, n, c);
  LAPIS_CUDA_CHECK(cudaGetLastError());
}

// Packs up to kMaxBnJobs calls whose blocks all fit on the GPU at once into one cooperative
// launch; a call that does not fit alone takes the two-launch path. make_job(call, partials)
// fills a job (partials: 2 x S x C scratch), two_launch(call) is the fallback.
template <typename T, typename Job, typename Call, typename MakeJob, typename TwoLaunch>
void launch_cooperative_packs(const std::vector<Call>& calls, const void* kernel,
                              MakeJob make_job, TwoLaunch two_launch) {
  struct Planned {
    const Call* call;
    RowSlices slices;
    int64_t tiles;
  };
  std::vector<Planned> pack;
  int64_t blocks = 0;
  auto flush = [&] {
    if (pack.empty()) return;
    int64_t scratch = 0;
    for (const Planned& p : pack) scratch += 2 * p.slices.count * p.call->x.size(1);
    Tensor partials = Tensor::empty({scratch}, pack.front().call->x.dtype(),
                                    pack.front().call->x.device());
    BnJobs<Job> jobs{};
    T* next = partials.data<T>();
    int begin = 0;
    for (const Planned& p : pack) {
      Job j = make_job(*p.call, next, p.slices);
      j.tiles = static_cast<int>(p.tiles);
      j.slices = static_cast<int>(p.slices.count);
      next += 2 * p.slices.count * p.call->x.size(1);
      jobs.job[jobs.count] = j;
      jobs.block_begin[jobs.count] = begin;
      begin += static_cast<int>(p.tiles * p.slices.count);
      ++jobs.count;
    }
    jobs.block_begin[jobs.count] = begin;
    void* args[] = {&jobs};
    LAPIS_CUDA_CHECK(cudaLaunchCooperativeKernel(kernel, dim3(static_cast<unsigned>(begin)),
                                                 kColumnBlock, args, 0, stream()));
    pack.clear();
    blocks = 0;
  };
  for (const Call& call : calls) {
    const int64_t n = call.x.size(0), c = call.x.size(1);
    if (n == 0 || c == 0) continue;
    const Planned p{&call, row_slices(n, c), column_tiles(c)};
    const int64_t call_blocks = p.tiles * p.slices.count;
    if (!cooperative_fits(kernel, call_blocks)) {
      two_launch(call);
      continue;
    }
    if (static_cast<int>(pack.size()) == kMaxBnJobs ||
        !cooperative_fits(kernel, blocks + call_blocks)) {
      flush();
    }
    pack.push_back(p);
    blocks += call_blocks;
  }
  flush();
}

template <typename T>
void forward_train_typed(const std::vector<BatchNormForwardCall>& calls) {
  const auto kernel = reinterpret_cast<const void*>(batchnorm_forward_coop_kernel<T>);
  launch_cooperative_packs<T, BnForwardJob<T>>(
      calls, kernel,
      [](const BatchNormForwardCall& call, T* partials, const RowSlices& slices) {
        BnForwardJob<T> j{};
        j.out = call.out.data<T>();
        j.mean_out = call.cache.mean.data<T>();
        j.rstd_out = call.cache.rstd.data<T>();
        j.running_mean = call.running_mean.data<T>();
        j.running_var = call.running_var.data<T>();
        j.pmean = partials;
        j.pm2 = partials + slices.count * call.x.size(1);
        j.x = call.x.data<T>();
        j.w = call.weight.data<T>();
        j.b = call.bias.data<T>();
        j.n = call.x.size(0);
        j.c_count = call.x.size(1);
        j.slice_rows = slices.rows;
        j.momentum = static_cast<T>(call.momentum);
        j.eps = static_cast<T>(call.eps);
        return j;
      },
      [](const BatchNormForwardCall& call) { forward_train_two_launch<T>(call); });
}

template <typename T>
void backward_train_typed(const std::vector<BatchNormBackwardCall>& calls) {
  const auto kernel = reinterpret_cast<const void*>(batchnorm_backward_coop_kernel<T>);
  launch_cooperative_packs<T, BnBackwardJob<T>>(
      calls, kernel,
      [](const BatchNormBackwardCall& call, T* partials, const RowSlices& slices) {
        BnBackwardJob<T> j{};
        j.dx = call.dL_dx.data<T>();
        j.dw = call.dL_dweight.data<T>();
        j.db = call.dL_dbias.defined() ? call.dL_dbias.data<T>() : nullptr;
        j.pa = partials;
        j.pb = partials + slices.count * call.x.size(1);
        j.g = call.dL_dout.data<T>();
        j.x = call.x.data<T>();
        j.w = call.weight.data<T>();
        j.mean = call.cache.mean.data<T>();
        j.rstd = call.cache.rstd.data<T>();
        j.n = call.x.size(0);
        j.c_count = call.x.size(1);
        j.slice_rows = slices.rows;
        return j;
      },
      [](const BatchNormBackwardCall& call) { backward_train_two_launch<T>(call); });
}

template <typename Call>
Dtype calls_dtype(const char* op, const std::vector<Call>& calls) {
  const Dtype d = calls.front().x.dtype();
  for (const Call& c : calls) {
    LAPIS_CHECK(c.x.dtype() == d, op, "one batch holds one dtype, got ", dtype_name(d), " and ",
                c.x.describe());
  }
  return d;
}

}  // namespace

// Launches: 1 where the grid fits on the GPU at once (a cooperative kernel: statistics, grid
// sync, normalisation), else 2 (statistics with the last-block finish, then the normalisation).
void batchnorm_forward_train(Tensor& out, BatchNormCache& cache, Tensor& running_mean,
                             Tensor& running_var, const Tensor& x, const Tensor& weight,
                             const Tensor& bias, double momentum, double eps) {
  batchnorm_forward_train_batch(
      {BatchNormForwardCall{out, cache, running_mean, running_var, x, weight, bias, momentum, eps}});
}

void batchnorm_forward_train_batch(const std::vector<BatchNormForwardCall>& calls) {
  if (calls.empty()) return;
  LAPIS_DISPATCH_FLOAT(calls_dtype("batchnorm_forward_train", calls), "batchnorm_forward_train",
                       [&] { forward_train_typed<scalar_t>(calls); });
}

void batchnorm_backward_train_batch(const std::vector<BatchNormBackwardCall>& calls) {
  if (calls.empty()) return;
  LAPIS_DISPATCH_FLOAT(calls_dtype("batchnorm_backward", calls), "batchnorm_backward",
                       [&] { backward_train_typed<scalar_t>(calls); });
}

// Launches: 1 (was 2); N == 0 still fills the cache.
void batchnorm_forward_eval(Tensor& out, BatchNormCache& cache, const Tensor& x,
                            const Tensor& weight, const Tensor& bias, const Tensor& running_mean,
                            const Tensor& running_var, double eps) {
  const int64_t n = x.size(0), c = x.size(1);
  if (c == 0) return;
  LAPIS_DISPATCH_FLOAT(x.dtype(), "batchnorm_forward_eval", [&] {
    using T = scalar_t;
    batchnorm_normalize_kernel<T><<<elementwise_grid(n, c), kColumnBlock, 0, stream()>>>(
        out.data<T>(), cache.mean.data<T>(), cache.rstd.data<T>(), x.data<T>(),
        weight.data<T>(), bias.data<T>(), running_mean.data<T>(), running_var.data<T>(), n, c,
        static_cast<T>(eps));
    LAPIS_CUDA_CHECK(cudaGetLastError());
  });
}

// Launches: training 1 where the grid fits on the GPU at once (a cooperative kernel: column
// sums, grid sync, dw/db and dL_dx), else 2 (column sums with the dw/db finish, then dL_dx);
// eval 1 (dL_dx is written during the column sums).
void batchnorm_backward(Tensor& dL_dx, Tensor& dL_dweight, Tensor& dL_dbias,
                        const Tensor& dL_dout, const Tensor& x, const Tensor& weight,
                        const BatchNormCache& cache) {
  const int64_t n = x.size(0), c = x.size(1);
  if (n == 0 || c == 0) return;
  if (cache.training) {
    batchnorm_backward_train_batch(
        {BatchNormBackwardCall{dL_dx, dL_dweight, dL_dbias, dL_dout, x, weight, cache}});
    return;
  }
  LAPIS_DISPATCH_FLOAT(x.dtype(), "batchnorm_backward", [&] {
    using T = scalar_t;
    const ColumnGradStats<T> stats{dL_dout.data<T>(), x.data<T>(), cache.mean.data<T>(),
                                   cache.rstd.data<T>(), weight.data<T>(), dL_dx.data<T>(), c};
    column_grad<T>(n, c, x, stats, GradFinish<T>{dL_dweight.data<T>(), dL_dbias.data<T>(),
                                                 nullptr, nullptr});
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

// Launches: 2 (the row kernel for dL_dx, the column sums with the dw/db finish); was 3.
void layernorm_backward(Tensor& dL_dx, Tensor& dL_dweight, Tensor& dL_dbias,
                        const Tensor& dL_dout, const Tensor& x, const Tensor& weight,
                        const LayerNormCache& cache) {
  const int64_t n = x.size(0), c = x.size(1);
  if (n == 0 || c == 0) return;
  LAPIS_DISPATCH_FLOAT(x.dtype(), "layernorm_backward", [&] {
    using T = scalar_t;
    LAPIS_LAUNCH(layernorm_backward_kernel<T>, n * 32, kRowBlock, dL_dx.data<T>(),
                 dL_dout.data<T>(), x.data<T>(), weight.data<T>(), cache.mean.data<T>(),
                 cache.rstd.data<T>(), n, c);
    column_grad<T>(n, c, x,
                   RowGradStats<T>{dL_dout.data<T>(), x.data<T>(), cache.mean.data<T>(),
                                   cache.rstd.data<T>(), c},
                   GradFinish<T>{dL_dweight.data<T>(), dL_dbias.data<T>(), nullptr, nullptr});
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

// Launches: 2 (was 3), as layernorm_backward.
void rmsnorm_backward(Tensor& dL_dx, Tensor& dL_dweight, const Tensor& dL_dout, const Tensor& x,
                      const Tensor& weight, const RMSNormCache& cache) {
  const int64_t n = x.size(0), c = x.size(1);
  if (n == 0 || c == 0) return;
  LAPIS_DISPATCH_FLOAT(x.dtype(), "rmsnorm_backward", [&] {
    using T = scalar_t;
    LAPIS_LAUNCH(rmsnorm_backward_kernel<T>, n * 32, kRowBlock, dL_dx.data<T>(),
                 dL_dout.data<T>(), x.data<T>(), weight.data<T>(), cache.rstd.data<T>(), n, c);
    column_grad<T>(n, c, x,
                   RowGradStats<T>{dL_dout.data<T>(), x.data<T>(), nullptr, cache.rstd.data<T>(),
                                   c},
                   GradFinish<T>{dL_dweight.data<T>(), nullptr, nullptr, nullptr});
  });
}

}  // namespace cuda
}  // namespace lapis
