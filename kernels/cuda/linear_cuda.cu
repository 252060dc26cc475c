#include "kernels/cuda/linear_cuda.h"

#include <climits>
#include <cstring>

#include "core/cuda/cuda_check.h"
#include "kernels/cuda/device_utils.cuh"
#include "kernels/cuda/elementwise_cuda.h"

namespace lapis {
namespace cuda {
namespace {

// ---- small GEMM with fused epilogue: out = ((A @ B + bias), relu, * (mask > 0)) + residual ----
//
// A is [N, K], or grouped along K ([G, N, K / G]: column k of A is column k % (K / G) of group
// k / (K / G), as a grouped dL_dout). B is w^T for w [M, K] (a linear forward, x @ W^T) or, with
// kTransW, w itself for w [K, M] (the input gradient, dL_dout @ W).
//
// Block (16, 16) computes a 32-row x 64-column tile of out; thread (ty, tx) owns rows ty and
// ty + 16 and columns tx + 16 j, j = 0..3 (8 accumulators). The reduction over K runs in chunks
// of 32 through shared memory (row stride 33: the column reads of B hit 16 distinct banks per
// half warp, the row reads of A are broadcasts). Each accumulator adds its products in k order
// with FMA. Every epilogue term is optional (nullptr / false). residual may be out itself (each
// element is read and written by the same thread): that accumulates into out. Column c of out
// group g = c / out_group_cols goes to out[g, row, c - g * out_group_cols], the plain [N, M]
// layout with one group.
constexpr int kGemmRows = 32, kGemmCols = 64, kChunk = 32;

// One product of the kernel below (pointers may be null where the term is absent).
template <typename T>
struct GemmJob {
  T* out;
  const T* a;
  const T* w;
  const T* bias;
  const T* mask;
  const T* residual;  // may equal out
  int64_t N;
  int K, M, a_group_cols, out_group_cols, row_tiles;
  bool relu;
};

// Up to kMaxGemmJobs independent products in one launch, passed by value (no table upload): job
// k owns blocks [block_begin[k], block_begin[k + 1]) of the 1-D grid, row tile fastest.
constexpr int kMaxGemmJobs = 4;
template <typename T>
struct GemmJobs {
  GemmJob<T> job[kMaxGemmJobs];
  int block_begin[kMaxGemmJobs + 1];
  int count;
};

template <typename T, bool kTransW>
__device__ void small_gemm_tile(const GemmJob<T>& job, int row_tile, int col_tile) {
  __shared__ T as[kGemmRows][kChunk + 1];
  __shared__ T bs[kGemmCols][kChunk + 1];  // bs[c][k] = B[k0 + k][c0 + c]
  constexpr int kALoads = kGemmRows * kChunk / 256, kBLoads = kGemmCols * kChunk / 256;
  T* out = job.out;
  const T* __restrict__ a = job.a;
  const T* __restrict__ w = job.w;
  const T* __restrict__ bias = job.bias;
  const T* __restrict__ mask = job.mask;
  const T* residual = job.residual;
  const int64_t N = job.N;
  const int K = job.K, M = job.M, a_group_cols = job.a_group_cols;
  const int out_group_cols = job.out_group_cols;
  const bool relu = job.relu;
  const int tx = threadIdx.x, ty = threadIdx.y, tid = ty * 16 + tx;
  const int64_t r0 = static_cast<int64_t>(row_tile) * kGemmRows;
  const int c0 = col_tile * kGemmCols;
  // A chunk never straddles a group when the group width is a multiple of the chunk (the usual
  // case, C = 64): one division per chunk instead of one per element.
  const bool chunk_in_one_group = a_group_cols % kChunk == 0;

  // Each thread stages kALoads elements of the A chunk and kBLoads of the B chunk in registers;
  // all of them are independent loads in flight at once, and the next chunk's are issued before
  // the current chunk is multiplied.
  T ra[kALoads], rb[kBLoads];
  auto fetch = [&](int k0) {
    const int g0 = chunk_in_one_group ? k0 / a_group_cols : 0;
#pragma unroll
    for (int q = 0; q < kALoads; ++q) {
      const int e = tid + 256 * q, r = e / kChunk, kk = k0 + e % kChunk;
      const int64_t row = r0 + r;
      T v = T(0);
      if (row < N && kk < K) {
        const int g = chunk_in_one_group ? g0 : kk / a_group_cols;
        v = a[(static_cast<int64_t>(g) * N + row) * a_group_cols + (kk - g * a_group_cols)];
      }
      ra[q] = v;
    }
#pragma unroll
    for (int q = 0; q < kBLoads; ++q) {
      // Consecutive threads read consecutive addresses of w in both layouts.
      const int e = tid + 256 * q;
      const int c = kTransW ? e % kGemmCols : e / kChunk;
      const int kk = k0 + (kTransW ? e / kGemmCols : e % kChunk);
      const int col = c0 + c;
      T v = T(0);
      if (col < M && kk < K) {
        v = kTransW ? w[static_cast<int64_t>(kk) * M + col] : w[static_cast<int64_t>(col) * K + kk];
      }
      rb[q] = v;
    }
  };

  T acc[2][4] = {};
  if (K > 0) fetch(0);
  for (int k0 = 0; k0 < K; k0 += kChunk) {
#pragma unroll
    for (int q = 0; q < kALoads; ++q) {
      const int e = tid + 256 * q;
      as[e / kChunk][e % kChunk] = ra[q];
    }
#pragma unroll
    for (int q = 0; q < kBLoads; ++q) {
      const int e = tid + 256 * q;
      if (kTransW) {
        bs[e % kGemmCols][e / kGemmCols] = rb[q];
      } else {
        bs[e / kChunk][e % kChunk] = rb[q];
      }
    }
    __syncthreads();
    if (k0 + kChunk < K) fetch(k0 + kChunk);
#pragma unroll 8
    for (int k = 0; k < kChunk; ++k) {
      const T a0 = as[ty][k], a1 = as[ty + 16][k];
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const T b = bs[tx + 16 * j][k];
        acc[0][j] += a0 * b;
        acc[1][j] += a1 * b;
      }
    }
    __syncthreads();
  }
  // Output group of each of the thread's columns (one division per column, none when the
  // tile lies in one group).
  const bool tile_in_one_group = out_group_cols % kGemmCols == 0;
  int group_of[4];
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    group_of[j] = tile_in_one_group ? c0 / out_group_cols : (c0 + tx + 16 * j) / out_group_cols;
  }
  // All epilogue loads first, then all stores: residual may alias out, so a store before a load
  // would serialise the loads (one memory round trip each).
  T v[2][4];
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const int64_t row = r0 + ty + 16 * i;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int col = c0 + tx + 16 * j;
      v[i][j] = acc[i][j];
      if (row >= N || col >= M) continue;
      if (bias) v[i][j] += bias[col];
      if (relu) v[i][j] = v[i][j] > T(0) ? v[i][j] : T(0);
      if (mask) v[i][j] *= mask[row * M + col] > T(0) ? T(1) : T(0);  // as activation_backward
      if (residual) v[i][j] += residual[row * M + col];
    }
  }
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const int64_t row = r0 + ty + 16 * i;
    if (row >= N) continue;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int col = c0 + tx + 16 * j;
      if (col >= M) continue;
      const int g = group_of[j];
      out[(static_cast<int64_t>(g) * N + row) * out_group_cols + (col - g * out_group_cols)] =
          v[i][j];
    }
  }
}

template <typename T, bool kTransW>
__global__ void __launch_bounds__(256) small_gemm_kernel(const GemmJobs<T> jobs) {
  const int b = blockIdx.x;
  // Constant indices keep the jobs in the parameter space (a dynamic index would copy them to
  // local memory).
  int k = 0;
#pragma unroll
  for (int q = 1; q < kMaxGemmJobs; ++q) k += (q < jobs.count && b >= jobs.block_begin[q]) ? 1 : 0;
  GemmJob<T> job = jobs.job[0];
#pragma unroll
  for (int q = 1; q < kMaxGemmJobs; ++q) {
    if (k == q) job = jobs.job[q];
  }
  const int local = b - jobs.block_begin[k];
  small_gemm_tile<T, kTransW>(job, local % job.row_tiles, local / job.row_tiles);
}

// Launches the non-empty jobs, kMaxGemmJobs per launch.
template <typename T, bool kTransW>
void launch_small_gemms(std::vector<GemmJob<T>> jobs) {
  GemmJobs<T> pack{};
  int blocks = 0;
  auto flush = [&] {
    if (pack.count == 0) return;
    pack.block_begin[pack.count] = blocks;
    small_gemm_kernel<T, kTransW><<<static_cast<unsigned>(blocks), dim3(16, 16), 0, stream()>>>(pack);
    LAPIS_CUDA_CHECK(cudaGetLastError());
    pack = GemmJobs<T>{};
    blocks = 0;
  };
  for (GemmJob<T>& job : jobs) {
    if (job.N == 0 || job.M == 0) continue;
    const int64_t row_tiles = (job.N + kGemmRows - 1) / kGemmRows;
    const int64_t col_tiles = (job.M + kGemmCols - 1) / kGemmCols;
    LAPIS_CHECK(row_tiles * col_tiles < (int64_t{1} << 30), "linear",
                "too many tiles for the fused kernel: N ", job.N, ", columns ", job.M);
    job.row_tiles = static_cast<int>(row_tiles);
    const int job_blocks = static_cast<int>(row_tiles * col_tiles);
    if (pack.count == kMaxGemmJobs || blocks > (1 << 30) - job_blocks) flush();
    pack.job[pack.count] = job;
    pack.block_begin[pack.count] = blocks;
    ++pack.count;
    blocks += job_blocks;
  }
  flush();
}

// ---- weight and bias gradients: dW_g += dY_g^T X, db_g += column sums of dY_g ----
//
// Grid (tiles, slices, groups). Block (16, 16) owns a 32 x 32 tile of dW_g (rows o0.., columns
// i0..) over one slice of consecutive rows of dY_g / X; thread (ty, tx) accumulates outputs
// (ty | ty + 16, tx | tx + 16) over the slice's rows in row order, reading 32-row chunks staged
// in shared memory (the next chunk is fetched into registers while the current one is used).
// Blocks of the first column tile also sum dY's columns for the bias. With one slice the block
// adds its tile to dW directly. Otherwise it stores the tile as a partial, and the last slice
// block of the tile to arrive (last_block_arrives) adds the partials in slice order, with 8
// slices' loads in flight per step, and adds the total to dW: deterministic, one launch, no
// split-K reduction kernel and no separate bias-gradient kernel.
constexpr int kTile = 32;

// One weight-gradient problem: dy [G, N, OG] (or [N, OG]), x [N, IN], dw [G * OG, IN], db
// [G * OG] or null; partials and counters for its tiles when slices > 1.
template <typename T>
struct WeightGradJob {
  const T* dy;
  const T* x;
  T* dw;
  T* db;
  T* partial_w;   // [groups * tiles, slices, 32 * 32]
  T* partial_b;   // [groups * out_tiles, slices, 32]
  unsigned int* counters;  // [groups * tiles]
  int64_t N, slice_rows;
  int OG, IN, in_tiles, tiles, slices;
};

// The block (tile, slice, g) of job j; every thread of the block calls it.
template <typename T>
__device__ void weight_grad_block(const WeightGradJob<T>& j, int tile, int slice, int g) {
  __shared__ T dys[kTile][kTile + 1];
  __shared__ T xs[kTile][kTile + 1];
  const int tx = threadIdx.x, ty = threadIdx.y, tid = ty * 16 + tx;
  const int slices = j.slices, tiles = j.tiles, in_tiles = j.in_tiles;
  const int out_tiles = tiles / in_tiles, OG = j.OG, IN = j.IN;
  const int64_t N = j.N;
  const int ot = tile / in_tiles, it = tile - ot * in_tiles;
  const int o0 = ot * kTile, i0 = it * kTile;
  const T* __restrict__ dyg = j.dy + static_cast<int64_t>(g) * N * OG;
  const T* __restrict__ x = j.x;
  T* __restrict__ dw = j.dw + static_cast<int64_t>(g) * OG * IN;
  T* __restrict__ db = j.db ? j.db + static_cast<int64_t>(g) * OG : nullptr;
  const bool with_bias = db != nullptr && it == 0;
  const int64_t n0 = static_cast<int64_t>(slice) * j.slice_rows;
  const int64_t n1 = n0 + j.slice_rows < N ? n0 + j.slice_rows : N;

  // Thread tid stages elements e = tid + 256 q, q = 0..3, of each chunk: row e / 32, column
  // e % 32 (a warp reads 32 consecutive columns of one row).
  T next_dy[4], next_x[4];
  auto fetch = [&](int64_t r0) {
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      const int e = tid + 256 * q, r = e / kTile, c = e % kTile;
      const int64_t row = r0 + r;
      const bool in_rows = row < n1;
      next_dy[q] = (in_rows && o0 + c < OG) ? dyg[row * OG + o0 + c] : T(0);
      next_x[q] = (in_rows && i0 + c < IN) ? x[row * IN + i0 + c] : T(0);
    }
  };
  T acc00 = 0, acc01 = 0, acc10 = 0, acc11 = 0, bsum = 0;
  if (n0 < n1) fetch(n0);
  for (int64_t r0 = n0; r0 < n1; r0 += kTile) {
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      const int e = tid + 256 * q;
      dys[e / kTile][e % kTile] = next_dy[q];
      xs[e / kTile][e % kTile] = next_x[q];
    }
    __syncthreads();
    if (r0 + kTile < n1) fetch(r0 + kTile);
#pragma unroll 8
    for (int r = 0; r < kTile; ++r) {
      const T d0 = dys[r][ty], d1 = dys[r][ty + 16], a0 = xs[r][tx], a1 = xs[r][tx + 16];
      acc00 += d0 * a0;
      acc01 += d0 * a1;
      acc10 += d1 * a0;
      acc11 += d1 * a1;
    }
    if (with_bias && tid < kTile) {
#pragma unroll 8
      for (int r = 0; r < kTile; ++r) bsum += dys[r][tid];
    }
    __syncthreads();
  }

  const int64_t tile_id = static_cast<int64_t>(g) * tiles + tile;
  if (slices == 1) {
    const int oa = o0 + ty, ob = o0 + ty + 16, ia = i0 + tx, ib = i0 + tx + 16;
    if (oa < OG && ia < IN) dw[static_cast<int64_t>(oa) * IN + ia] += acc00;
    if (oa < OG && ib < IN) dw[static_cast<int64_t>(oa) * IN + ib] += acc01;
    if (ob < OG && ia < IN) dw[static_cast<int64_t>(ob) * IN + ia] += acc10;
    if (ob < OG && ib < IN) dw[static_cast<int64_t>(ob) * IN + ib] += acc11;
    if (with_bias && tid < kTile && o0 + tid < OG) db[o0 + tid] += bsum;
    return;
  }
  T* pw = j.partial_w + (tile_id * slices + slice) * (kTile * kTile);
  pw[ty * kTile + tx] = acc00;
  pw[ty * kTile + tx + 16] = acc01;
  pw[(ty + 16) * kTile + tx] = acc10;
  pw[(ty + 16) * kTile + tx + 16] = acc11;
  const int64_t bias_tile = static_cast<int64_t>(g) * out_tiles + ot;
  if (with_bias && tid < kTile) j.partial_b[(bias_tile * slices + slice) * kTile + tid] = bsum;
  if (!last_block_arrives(j.counters + tile_id, slices)) return;

  // Finishing block: thread tid adds outputs 4 tid .. 4 tid + 3 of the tile (row tid / 8), and
  // threads tid < 32 the bias partials of the tile's rows, slices in order, 16 slices' loads in
  // flight per step (two L2 round trips for 32 slices).
  constexpr int kBatch = 16;
  const T* base = j.partial_w + tile_id * slices * (kTile * kTile) + 4 * tid;
  const T* bias_base = j.partial_b + bias_tile * slices * kTile + tid;
  const bool finish_bias = with_bias && tid < kTile;
  T sum[4] = {0, 0, 0, 0}, bias_sum = 0;
  for (int s0 = 0; s0 < slices; s0 += kBatch) {
    T v[kBatch][4], vb[kBatch];
#pragma unroll
    for (int u = 0; u < kBatch; ++u) {
      const bool in = s0 + u < slices;
      const int64_t at = static_cast<int64_t>(s0 + u);
#pragma unroll
      for (int q = 0; q < 4; ++q) v[u][q] = in ? __ldcg(base + at * (kTile * kTile) + q) : T(0);
      vb[u] = in && finish_bias ? __ldcg(bias_base + at * kTile) : T(0);
    }
#pragma unroll
    for (int u = 0; u < kBatch; ++u) {
#pragma unroll
      for (int q = 0; q < 4; ++q) sum[q] += v[u][q];
      bias_sum += vb[u];
    }
  }
  const int o = o0 + tid / 8;
#pragma unroll
  for (int q = 0; q < 4; ++q) {
    const int i = i0 + (tid % 8) * 4 + q;
    if (o < OG && i < IN) dw[static_cast<int64_t>(o) * IN + i] += sum[q];
  }
  if (finish_bias && o0 + tid < OG) db[o0 + tid] += bias_sum;
}

template <typename T>
__global__ void __launch_bounds__(256) weight_grad_kernel(const WeightGradJob<T> j) {
  weight_grad_block(j, blockIdx.x, blockIdx.y, blockIdx.z);
}

// Several jobs in one grid: job k owns blocks [block_begin[k], block_begin[k + 1]), numbered
// (g * tiles + tile) * slices + slice.
template <typename T>
__global__ void __launch_bounds__(256)
    weight_grad_batched_kernel(const WeightGradJob<T>* __restrict__ jobs,
                               const int64_t* __restrict__ block_begin, int count) {
  const int64_t b = blockIdx.x;
  int lo = 0, hi = count - 1;  // the last k with block_begin[k] <= b
  while (lo < hi) {
    const int mid = (lo + hi + 1) / 2;
    if (block_begin[mid] <= b) lo = mid; else hi = mid - 1;
  }
  const WeightGradJob<T> j = jobs[lo];
  const int64_t local = b - block_begin[lo];
  const int slice = static_cast<int>(local % j.slices);
  const int64_t rest = local / j.slices;
  weight_grad_block(j, static_cast<int>(rest % j.tiles), slice, static_cast<int>(rest / j.tiles));
}

void check_int_range(const char* op, int64_t rows, int64_t in, int64_t out) {
  LAPIS_CHECK(in <= INT_MAX && out <= INT_MAX && rows <= INT_MAX, op,
              "sizes exceed the fused kernel's int range: N ", rows, ", IN ", in, ", OUT ", out);
}

}  // namespace

void linear_forward_fused(Tensor& out, const Tensor& x, const Tensor& weight, const Tensor& bias,
                          const Tensor& residual, bool relu, int64_t groups) {
  linear_forward_fused_batch({LinearForwardCall{out, x, weight, bias, residual, relu, groups}});
}

void input_grad_fused(Tensor& dL_dx, const Tensor& dL_dout, const Tensor& weight,
                      const Tensor& relu_mask, const Tensor& plus, int64_t groups) {
  input_grad_fused_batch({InputGradCall{dL_dx, dL_dout, weight, relu_mask, plus, groups}});
}

namespace {

template <typename T>
const T* ptr_or_null(const Tensor& t) {
  return t.defined() && t.numel() > 0 ? t.data<T>() : nullptr;
}

Dtype batch_dtype(const char* op, const std::vector<Dtype>& dtypes) {
  for (Dtype d : dtypes) {
    LAPIS_CHECK(d == dtypes.front(), op, "one fused batch holds one dtype, got ",
                dtype_name(dtypes.front()), " and ", dtype_name(d));
  }
  return dtypes.front();
}

}  // namespace

void linear_forward_fused_batch(const std::vector<LinearForwardCall>& calls) {
  if (calls.empty()) return;
  std::vector<Dtype> dtypes;
  for (const LinearForwardCall& c : calls) dtypes.push_back(c.x.dtype());
  LAPIS_DISPATCH_FLOAT(batch_dtype("linear_forward", dtypes), "linear_forward", [&] {
    std::vector<GemmJob<scalar_t>> jobs;
    for (const LinearForwardCall& c : calls) {
      const int64_t N = c.x.size(0), IN = c.x.size(1), OUT = c.weight.size(0);
      check_int_range("linear_forward", N, IN, OUT);
      GemmJob<scalar_t> j{};
      j.out = N * OUT > 0 ? c.out.data<scalar_t>() : nullptr;
      j.a = ptr_or_null<scalar_t>(c.x);
      j.w = ptr_or_null<scalar_t>(c.weight);
      j.bias = ptr_or_null<scalar_t>(c.bias);
      j.residual = ptr_or_null<scalar_t>(c.residual);
      j.N = N;
      j.K = static_cast<int>(IN);
      j.M = static_cast<int>(OUT);
      j.a_group_cols = IN == 0 ? 1 : static_cast<int>(IN);
      j.out_group_cols = OUT == 0 ? 1 : static_cast<int>(OUT / c.groups);
      j.relu = c.relu;
      jobs.push_back(j);
    }
    launch_small_gemms<scalar_t, false>(std::move(jobs));
  });
}

void input_grad_fused_batch(const std::vector<InputGradCall>& calls) {
  if (calls.empty()) return;
  std::vector<Dtype> dtypes;
  for (const InputGradCall& c : calls) dtypes.push_back(c.dL_dx.dtype());
  LAPIS_DISPATCH_FLOAT(batch_dtype("linear_backward", dtypes), "linear_backward", [&] {
    std::vector<GemmJob<scalar_t>> jobs;
    for (const InputGradCall& c : calls) {
      const int64_t N = c.dL_dx.size(0), IN = c.dL_dx.size(1), OUT = c.weight.size(0);
      check_int_range("linear_backward", N, IN, OUT);
      GemmJob<scalar_t> j{};
      j.out = N * IN > 0 ? c.dL_dx.data<scalar_t>() : nullptr;
      j.a = ptr_or_null<scalar_t>(c.dL_dout);
      j.w = ptr_or_null<scalar_t>(c.weight);
      j.mask = ptr_or_null<scalar_t>(c.relu_mask);
      j.residual = ptr_or_null<scalar_t>(c.plus);
      j.N = N;
      j.K = static_cast<int>(OUT);
      j.M = static_cast<int>(IN);
      j.a_group_cols = OUT == 0 ? 1 : static_cast<int>(OUT / c.groups);
      j.out_group_cols = IN == 0 ? 1 : static_cast<int>(IN);
      jobs.push_back(j);
    }
    launch_small_gemms<scalar_t, true>(std::move(jobs));
  });
}

namespace {

// Tiling of one weight-gradient problem. At most 32 slices of at least 64 rows (a multiple of
// the 32-row chunk): enough blocks to fill the GPU for C = 64 at ZINC sizes, and two steps of 16
// loads to finish a tile.
struct WeightGradShape {
  int64_t N, OG, IN, groups, out_tiles, in_tiles, tiles, slice_rows, slices;
  int64_t blocks() const { return groups * tiles * slices; }
  int64_t partial_w() const { return slices > 1 ? groups * tiles * slices * kTile * kTile : 0; }
  int64_t partial_b() const { return slices > 1 ? groups * out_tiles * slices * kTile : 0; }
  int64_t counters() const { return slices > 1 ? groups * tiles : 0; }
};

WeightGradShape weight_grad_shape(const Tensor& dL_dweight, const Tensor& x, int64_t groups) {
  WeightGradShape s{};
  s.N = x.size(0);
  s.IN = x.size(1);
  s.groups = groups;
  s.OG = dL_dweight.size(0) / groups;
  check_int_range("linear_backward", s.N, s.IN, dL_dweight.size(0));
  s.out_tiles = (s.OG + kTile - 1) / kTile;
  s.in_tiles = s.IN == 0 ? 1 : (s.IN + kTile - 1) / kTile;
  s.tiles = s.out_tiles * s.in_tiles;
  int64_t rows = (s.N + 31) / 32;
  rows = (rows + kTile - 1) / kTile * kTile;
  s.slice_rows = rows < 64 ? 64 : rows;
  s.slices = (s.N + s.slice_rows - 1) / s.slice_rows;
  LAPIS_CHECK(groups <= 65535 && s.tiles <= INT_MAX && s.slices <= INT_MAX, "linear_backward",
              "too many groups or tiles for the fused kernel: groups ", groups, ", tiles ",
              s.tiles);
  return s;
}

template <typename T>
WeightGradJob<T> weight_grad_job(const WeightGradItem& item, const WeightGradShape& s,
                                 T* partial_w, T* partial_b, unsigned int* counters) {
  WeightGradJob<T> j{};
  j.dy = item.dL_dout.data<T>();
  j.x = s.IN == 0 ? nullptr : item.x.data<T>();
  j.dw = s.IN == 0 ? nullptr : item.dL_dweight.data<T>();
  j.db = item.dL_dbias.defined() ? item.dL_dbias.data<T>() : nullptr;
  j.partial_w = partial_w;
  j.partial_b = j.db ? partial_b : nullptr;
  j.counters = counters;
  j.N = s.N;
  j.slice_rows = s.slice_rows;
  j.OG = static_cast<int>(s.OG);
  j.IN = static_cast<int>(s.IN);
  j.in_tiles = static_cast<int>(s.in_tiles);
  j.tiles = static_cast<int>(s.tiles);
  j.slices = static_cast<int>(s.slices);
  return j;
}

// Launches every non-empty item's blocks in one grid (a single item: the plain 3-D grid).
template <typename T>
void launch_weight_grads(const std::vector<WeightGradItem>& items, Device device) {
  std::vector<WeightGradShape> shapes;
  std::vector<const WeightGradItem*> live;
  int64_t pw_total = 0, pb_total = 0, counter_total = 0, blocks = 0;
  for (const WeightGradItem& item : items) {
    const WeightGradShape s = weight_grad_shape(item.dL_dweight, item.x, item.groups);
    if (s.N == 0 || s.OG == 0) continue;  // adding zero
    shapes.push_back(s);
    live.push_back(&item);
    pw_total += s.partial_w();
    pb_total += s.partial_b();
    counter_total += s.counters();
    blocks += s.blocks();
  }
  if (live.empty()) return;
  LAPIS_CHECK(blocks <= INT_MAX, "linear_backward", "too many blocks for one launch: ", blocks);
  // Scratch from the caching allocator; freeing it at scope end is stream-ordered.
  Tensor scratch = Tensor::empty({pw_total + pb_total}, dtype_of<T>(), device);
  T* pw = pw_total + pb_total > 0 ? scratch.data<T>() : nullptr;
  T* pb = pw ? pw + pw_total : nullptr;
  unsigned int* counters = counter_total > 0 ? reduction_counters(counter_total) : nullptr;
  std::vector<WeightGradJob<T>> jobs;
  std::vector<int64_t> begin;
  int64_t next_block = 0;
  for (size_t k = 0; k < live.size(); ++k) {
    const WeightGradShape& s = shapes[k];
    jobs.push_back(weight_grad_job<T>(*live[k], s, s.slices > 1 ? pw : nullptr,
                                      s.slices > 1 ? pb : nullptr,
                                      s.slices > 1 ? counters : nullptr));
    begin.push_back(next_block);
    next_block += s.blocks();
    pw += s.partial_w();
    pb = pb ? pb + s.partial_b() : nullptr;
    counters = counters ? counters + s.counters() : nullptr;
  }
  const dim3 block(16, 16);
  if (jobs.size() == 1) {
    const WeightGradShape& s = shapes[0];
    const dim3 grid(static_cast<unsigned>(s.tiles), static_cast<unsigned>(s.slices),
                    static_cast<unsigned>(s.groups));
    weight_grad_kernel<T><<<grid, block, 0, stream()>>>(jobs[0]);
    LAPIS_CUDA_CHECK(cudaGetLastError());
    return;
  }
  // The job table and block offsets go to the device in one upload (through the staging ring).
  const int64_t job_words = static_cast<int64_t>((sizeof(WeightGradJob<T>) + 7) / 8);
  const int64_t count = static_cast<int64_t>(jobs.size());
  std::vector<int64_t> table(static_cast<size_t>(job_words * count + count));
  std::memcpy(table.data(), jobs.data(), sizeof(WeightGradJob<T>) * jobs.size());
  std::memcpy(table.data() + job_words * count, begin.data(), sizeof(int64_t) * begin.size());
  const Tensor table_dev = Tensor::from_vector<int64_t>(table, {static_cast<int64_t>(table.size())}).to(device);
  const int64_t* words = table_dev.data<int64_t>();
  static_assert(sizeof(WeightGradJob<T>) % 8 == 0, "job table entries are 8-byte words");
  weight_grad_batched_kernel<T><<<static_cast<unsigned>(blocks), block, 0, stream()>>>(
      reinterpret_cast<const WeightGradJob<T>*>(words), words + job_words * count,
      static_cast<int>(count));
  LAPIS_CUDA_CHECK(cudaGetLastError());
}

}  // namespace

void weight_grad_fused(Tensor& dL_dweight, Tensor& dL_dbias, const Tensor& dL_dout,
                       const Tensor& x, int64_t groups) {
  weight_grad_fused_batch({WeightGradItem{dL_dweight, dL_dbias, dL_dout, x, groups}});
}

void weight_grad_fused_batch(const std::vector<WeightGradItem>& items) {
  if (items.empty()) return;
  const Dtype dtype = items.front().x.dtype();
  for (const WeightGradItem& item : items) {
    LAPIS_CHECK(item.x.dtype() == dtype, "linear_backward",
                "one weight-gradient batch holds one dtype, got ", dtype_name(dtype), " and ",
                item.x.describe());
  }
  LAPIS_DISPATCH_FLOAT(dtype, "linear_backward", [&] {
    launch_weight_grads<scalar_t>(items, items.front().x.device());
  });
}

}  // namespace cuda
}  // namespace lapis
