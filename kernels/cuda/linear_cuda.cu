#include "kernels/cuda/linear_cuda.h"

#include <climits>
#include <cstring>
#include <type_traits>

#include "core/cuda/cuda_check.h"
#include "kernels/cuda/device_utils.cuh"
#include "kernels/cuda/elementwise_cuda.h"
#include "kernels/cuda/overlapped_launch.cuh"

namespace lapis {
namespace cuda {
namespace {

// ---- small GEMM with fused epilogue: out = ((A @ B + bias), relu, * (mask > 0)) + residual ----
//
// A is [N, K], or grouped along K ([G, N, K / G]: column k of A is column k % (K / G) of group
// k / (K / G), as a grouped dL_dout). B is w^T for w [M, K] (a linear forward, x @ W^T) or, with
// kTransW, w itself for w [K, M] (the input gradient, dL_dout @ W).
//
// A block computes a 32-row x 64-column tile of out with 128 threads per K half: thread (ty =
// t / 16, tx = t % 16) of a half owns rows 4 ty .. 4 ty + 3 and columns 4 tx .. 4 tx + 3 (a 4 x 4
// register tile). The reduction over K runs in chunks of 32 through shared memory stored k-major
// (as[k][r], bs[k][c]), so each k costs a thread one 4-wide read of A (a broadcast: a warp
// touches two row groups) and one of B (16 distinct 16-byte words) for 16 FMAs. For F32 the block
// has two K halves (256 threads): half h takes chunks h, h + 2, ..., so at C = 64 both chunks
// are fetched at once and each warp multiplies one chunk (these products are latency bound);
// half 1 then hands its sums to half 0 through shared memory, which adds them to its own (a
// fixed order: deterministic). F64 uses one half (two would need 51 KB of shared memory).
// Global reads are staged so that a warp covers 8 consecutive k of 4 rows (4 full 32-byte
// sectors) and its shared-memory stores hit 32 distinct banks. Each accumulator adds its
// products in k order with FMA. Every epilogue term is optional (nullptr / false); with 4-aligned
// widths and 16-byte aligned pointers (GemmJob::vec) the epilogue reads and writes 4 columns at
// once. residual may be out itself (each element is read and written by the same thread): that
// accumulates into out. Column c of out group g = c / out_group_cols goes to
// out[g, row, c - g * out_group_cols], the plain [N, M] layout with one group.
constexpr int kGemmRows = 32, kGemmCols = 64, kChunk = 32, kGemmHalfThreads = 128;
template <typename T>
constexpr int gemm_k_halves() { return sizeof(T) == 4 ? 2 : 1; }

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
  bool vec;  // M and out_group_cols multiples of 4, out/bias/mask/residual 16-byte aligned
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

// Four consecutive values from 16-byte aligned shared memory.
__device__ inline void lds4(float (&r)[4], const float* p) {
  const float4 v = *reinterpret_cast<const float4*>(p);
  r[0] = v.x; r[1] = v.y; r[2] = v.z; r[3] = v.w;
}
__device__ inline void lds4(double (&r)[4], const double* p) {
  const double2 a = *reinterpret_cast<const double2*>(p);
  const double2 b = *reinterpret_cast<const double2*>(p + 2);
  r[0] = a.x; r[1] = a.y; r[2] = b.x; r[3] = b.y;
}

// Four consecutive values at a 16-byte aligned global address.
__device__ inline void ldg4(float (&r)[4], const float* p) {
  const float4 v = *reinterpret_cast<const float4*>(p);
  r[0] = v.x; r[1] = v.y; r[2] = v.z; r[3] = v.w;
}
__device__ inline void ldg4(double (&r)[4], const double* p) { lds4(r, p); }
__device__ inline void stg4(float* p, const float (&r)[4]) {
  *reinterpret_cast<float4*>(p) = make_float4(r[0], r[1], r[2], r[3]);
}
__device__ inline void stg4(double* p, const double (&r)[4]) {
  *reinterpret_cast<double2*>(p) = make_double2(r[0], r[1]);
  *reinterpret_cast<double2*>(p + 2) = make_double2(r[2], r[3]);
}

// Element e of a staged [rows x 32 k] chunk: k = e % 8 + 8 ((e / 32) % 4), row = (e / 8) % 4 +
// 4 (e / 128): a warp reads 8 consecutive k of 4 rows.
__device__ inline int staged_k(int e) { return (e & 7) + 8 * ((e >> 5) & 3); }
__device__ inline int staged_row(int e) { return ((e >> 3) & 3) + 4 * (e >> 7); }

template <typename T, bool kTransW>
__device__ void small_gemm_tile(const GemmJob<T>& job, int row_tile, int col_tile) {
  constexpr int kHalves = gemm_k_halves<T>();
  constexpr int kPad = 16 / sizeof(T);  // keeps every shared row 16-byte aligned
  __shared__ __align__(16) T as[kHalves][kChunk][kGemmRows + kPad];  // A[r0 + r][k0 + k]
  __shared__ __align__(16) T bs[kHalves][kChunk][kGemmCols + kPad];  // B[k0 + k][c0 + c]
  constexpr int kALoads = kGemmRows * kChunk / kGemmHalfThreads;
  constexpr int kBLoads = kGemmCols * kChunk / kGemmHalfThreads;
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
  const int half = threadIdx.x / kGemmHalfThreads;
  const int tid = threadIdx.x % kGemmHalfThreads, tx = tid & 15, ty = tid >> 4;
  const int64_t r0 = static_cast<int64_t>(row_tile) * kGemmRows;
  const int c0 = col_tile * kGemmCols;
  // A chunk never straddles a group when the group width is a multiple of the chunk (the usual
  // case, C = 64): one division per chunk instead of one per element.
  const bool chunk_in_one_group = a_group_cols % kChunk == 0;

  // Each thread stages kALoads elements of the A chunk and kBLoads of the B chunk in registers;
  // all of them are independent loads in flight at once, and the half's next chunk is fetched
  // before the current one is multiplied. Elements at k >= K read as 0 (no memory access).
  T ra[kALoads], rb[kBLoads];
  auto fetch = [&](int k0) {
    const int g0 = chunk_in_one_group && k0 < K ? k0 / a_group_cols : 0;
#pragma unroll
    for (int q = 0; q < kALoads; ++q) {
      const int e = tid + kGemmHalfThreads * q, kk = k0 + staged_k(e);
      const int64_t row = r0 + staged_row(e);
      T v = T(0);
      if (row < N && kk < K) {
        const int g = chunk_in_one_group ? g0 : kk / a_group_cols;
        v = a[(static_cast<int64_t>(g) * N + row) * a_group_cols + (kk - g * a_group_cols)];
      }
      ra[q] = v;
    }
#pragma unroll
    for (int q = 0; q < kBLoads; ++q) {
      // w [K, M]: a warp reads 32 consecutive columns of one k; w [M, K]: 8 consecutive k of 4
      // columns (staged like A).
      const int e = tid + kGemmHalfThreads * q;
      const int c = kTransW ? e % kGemmCols : staged_row(e);
      const int kk = k0 + (kTransW ? e / kGemmCols : staged_k(e));
      const int col = c0 + c;
      T v = T(0);
      if (col < M && kk < K) {
        v = kTransW ? w[static_cast<int64_t>(kk) * M + col] : w[static_cast<int64_t>(col) * K + kk];
      }
      rb[q] = v;
    }
  };

  T acc[4][4] = {};
  // Both halves run the same number of rounds (they share the block's barriers); a half whose
  // chunk of the last round lies beyond K skips the multiply.
  const int rounds = (K + kHalves * kChunk - 1) / (kHalves * kChunk);
  if (rounds > 0) fetch(half * kChunk);
  for (int round = 0; round < rounds; ++round) {
    const int k0 = (round * kHalves + half) * kChunk;
#pragma unroll
    for (int q = 0; q < kALoads; ++q) {
      const int e = tid + kGemmHalfThreads * q;
      as[half][staged_k(e)][staged_row(e)] = ra[q];
    }
#pragma unroll
    for (int q = 0; q < kBLoads; ++q) {
      const int e = tid + kGemmHalfThreads * q;
      if (kTransW) {
        bs[half][e / kGemmCols][e % kGemmCols] = rb[q];
      } else {
        bs[half][staged_k(e)][staged_row(e)] = rb[q];
      }
    }
    __syncthreads();
    if (round + 1 < rounds) fetch(k0 + kHalves * kChunk);
    if (k0 < K) {
#pragma unroll 8
      for (int k = 0; k < kChunk; ++k) {
        T av[4], bv[4];
        lds4(av, &as[half][k][4 * ty]);
        lds4(bv, &bs[half][k][4 * tx]);
#pragma unroll
        for (int i = 0; i < 4; ++i) {
#pragma unroll
          for (int j = 0; j < 4; ++j) acc[i][j] += av[i] * bv[j];
        }
      }
    }
    __syncthreads();
  }
  if (kHalves == 2) {
    // Half 1's sums go through its own B buffer (free after the last barrier); half 0 adds them.
    T* handoff = &bs[kHalves - 1][0][0];
    static_assert(kChunk * (kGemmCols + kPad) >= 16 * kGemmHalfThreads, "handoff fits");
    if (half == 1) {
#pragma unroll
      for (int i = 0; i < 4; ++i) {
#pragma unroll
        for (int j = 0; j < 4; ++j) handoff[(i * 4 + j) * kGemmHalfThreads + tid] = acc[i][j];
      }
    }
    __syncthreads();
    if (half == 1) return;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
#pragma unroll
      for (int j = 0; j < 4; ++j) acc[i][j] += handoff[(i * 4 + j) * kGemmHalfThreads + tid];
    }
  }
  // Epilogue. All loads first, then all stores: residual may alias out, so a store before a load
  // would serialise the loads (one memory round trip each).
  T v[4][4];
  const int col0 = c0 + 4 * tx;
  if (job.vec) {
    if (col0 >= M) return;
    const int g = col0 / out_group_cols;  // the thread's 4 columns share a group (width % 4 == 0)
    T b4[4] = {T(0), T(0), T(0), T(0)};
    if (bias) ldg4(b4, bias + col0);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int64_t row = r0 + 4 * ty + i;
      T m4[4] = {T(0), T(0), T(0), T(0)}, res4[4] = {T(0), T(0), T(0), T(0)};
      if (row < N && mask) ldg4(m4, mask + row * M + col0);
      if (row < N && residual) ldg4(res4, residual + row * M + col0);
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        v[i][j] = acc[i][j] + b4[j];
        if (relu) v[i][j] = v[i][j] > T(0) ? v[i][j] : T(0);
        if (mask) v[i][j] *= m4[j] > T(0) ? T(1) : T(0);  // as activation_backward
        if (residual) v[i][j] += res4[j];
      }
    }
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int64_t row = r0 + 4 * ty + i;
      if (row < N) {
        stg4(out + (static_cast<int64_t>(g) * N + row) * out_group_cols +
                 (col0 - g * out_group_cols),
             v[i]);
      }
    }
    return;
  }
  // Output group of each of the thread's columns (one division per column, none when the
  // tile lies in one group).
  const bool tile_in_one_group = out_group_cols % kGemmCols == 0;
  int group_of[4];
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    group_of[j] = tile_in_one_group ? c0 / out_group_cols : (col0 + j) / out_group_cols;
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int64_t row = r0 + 4 * ty + i;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int col = col0 + j;
      v[i][j] = acc[i][j];
      if (row >= N || col >= M) continue;
      if (bias) v[i][j] += bias[col];
      if (relu) v[i][j] = v[i][j] > T(0) ? v[i][j] : T(0);
      if (mask) v[i][j] *= mask[row * M + col] > T(0) ? T(1) : T(0);  // as activation_backward
      if (residual) v[i][j] += residual[row * M + col];
    }
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int64_t row = r0 + 4 * ty + i;
    if (row >= N) continue;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int col = col0 + j;
      if (col >= M) continue;
      const int g = group_of[j];
      out[(static_cast<int64_t>(g) * N + row) * out_group_cols + (col - g * out_group_cols)] =
          v[i][j];
    }
  }
}

template <typename T, bool kTransW>
__global__ void __launch_bounds__(256) small_gemm_kernel(const GemmJobs<T> jobs) {
  wait_for_previous_kernel();
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
    launch_overlapped(small_gemm_kernel<T, kTransW>, dim3(static_cast<unsigned>(blocks)),
                      dim3(kGemmHalfThreads * gemm_k_halves<T>()), pack);
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
// Grid (tiles, slices, groups). A block of 64 threads owns a 32 x 32 tile of dW_g (rows o0..,
// columns i0..) over one slice of consecutive rows of dY_g / X; thread (ty = tid / 8,
// tx = tid % 8) accumulates the 4 x 4 outputs (4 ty + i, 4 tx + j) over the slice's rows in row
// order, reading 32-row chunks staged in shared memory (the next chunk is fetched into
// registers while the current one is used; per row one 4-wide read of dY and one of X for 16
// FMAs). Blocks of the first column tile also sum dY's columns for the bias. With one slice the
// block adds its tile to dW directly. Otherwise it stores the tile as a partial, and the last
// slice block of the tile to arrive (last_block_arrives) adds the partials in slice order, with
// 16 slices' loads in flight per step, and adds the total to dW: deterministic, one launch, no
// split-K reduction kernel and no separate bias-gradient kernel.
constexpr int kTile = 32, kWgThreads = 64;

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
  constexpr int kPad = 16 / sizeof(T);  // keeps every shared row 16-byte aligned
  constexpr int kLoads = kTile * kTile / kWgThreads;
  __shared__ __align__(16) T dys[kTile][kTile + kPad];
  __shared__ __align__(16) T xs[kTile][kTile + kPad];
  const int tid = threadIdx.x, tx = tid & 7, ty = tid >> 3;
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

  // Thread tid stages elements e = tid + 64 q of each chunk: row e / 32, column e % 32 (a warp
  // reads 32 consecutive columns of one row).
  T next_dy[kLoads], next_x[kLoads];
  auto fetch = [&](int64_t r0) {
#pragma unroll
    for (int q = 0; q < kLoads; ++q) {
      const int e = tid + kWgThreads * q, r = e / kTile, c = e % kTile;
      const int64_t row = r0 + r;
      const bool in_rows = row < n1;
      next_dy[q] = (in_rows && o0 + c < OG) ? dyg[row * OG + o0 + c] : T(0);
      next_x[q] = (in_rows && i0 + c < IN) ? x[row * IN + i0 + c] : T(0);
    }
  };
  T acc[4][4] = {}, bsum = 0;
  if (n0 < n1) fetch(n0);
  for (int64_t r0 = n0; r0 < n1; r0 += kTile) {
#pragma unroll
    for (int q = 0; q < kLoads; ++q) {
      const int e = tid + kWgThreads * q;
      dys[e / kTile][e % kTile] = next_dy[q];
      xs[e / kTile][e % kTile] = next_x[q];
    }
    __syncthreads();
    if (r0 + kTile < n1) fetch(r0 + kTile);
#pragma unroll 8
    for (int r = 0; r < kTile; ++r) {
      T d[4], a[4];
      lds4(d, &dys[r][4 * ty]);
      lds4(a, &xs[r][4 * tx]);
#pragma unroll
      for (int i = 0; i < 4; ++i) {
#pragma unroll
        for (int k = 0; k < 4; ++k) acc[i][k] += d[i] * a[k];
      }
    }
    if (with_bias && tid < kTile) {
#pragma unroll 8
      for (int r = 0; r < kTile; ++r) bsum += dys[r][tid];
    }
    __syncthreads();
  }

  const int64_t tile_id = static_cast<int64_t>(g) * tiles + tile;
  if (slices == 1) {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int o = o0 + 4 * ty + i;
#pragma unroll
      for (int k = 0; k < 4; ++k) {
        const int in = i0 + 4 * tx + k;
        if (o < OG && in < IN) dw[static_cast<int64_t>(o) * IN + in] += acc[i][k];
      }
    }
    if (with_bias && tid < kTile && o0 + tid < OG) db[o0 + tid] += bsum;
    return;
  }
  T* pw = j.partial_w + (tile_id * slices + slice) * (kTile * kTile);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
#pragma unroll
    for (int k = 0; k < 4; ++k) pw[(4 * ty + i) * kTile + 4 * tx + k] = acc[i][k];
  }
  const int64_t bias_tile = static_cast<int64_t>(g) * out_tiles + ot;
  if (with_bias && tid < kTile) j.partial_b[(bias_tile * slices + slice) * kTile + tid] = bsum;
  if (!last_block_arrives(j.counters + tile_id, slices)) return;

  // Finishing block: in part p, thread tid adds outputs 4 u .. 4 u + 3 of the tile, u = tid +
  // 64 p (row u / 8), and threads tid < 32 the bias partials of the tile's rows; slices in order,
  // 16 slices' loads in flight per step.
  constexpr int kBatch = 16;
  const bool finish_bias = with_bias && tid < kTile;
  T bias_sum = 0;
  for (int p = 0; p < kTile * kTile / 4 / kWgThreads; ++p) {
    const int u = tid + kWgThreads * p;
    const T* base = j.partial_w + tile_id * slices * (kTile * kTile) + 4 * u;
    const T* bias_base = j.partial_b + bias_tile * slices * kTile + tid;
    const bool add_bias = finish_bias && p == 0;
    T sum[4] = {0, 0, 0, 0};
    for (int s0 = 0; s0 < slices; s0 += kBatch) {
      T v[kBatch][4], vb[kBatch];
#pragma unroll
      for (int b = 0; b < kBatch; ++b) {
        const bool in = s0 + b < slices;
        const int64_t at = static_cast<int64_t>(s0 + b);
#pragma unroll
        for (int q = 0; q < 4; ++q) v[b][q] = in ? __ldcg(base + at * (kTile * kTile) + q) : T(0);
        vb[b] = in && add_bias ? __ldcg(bias_base + at * kTile) : T(0);
      }
#pragma unroll
      for (int b = 0; b < kBatch; ++b) {
#pragma unroll
        for (int q = 0; q < 4; ++q) sum[q] += v[b][q];
        bias_sum += vb[b];
      }
    }
    const int o = o0 + u / 8;
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      const int i = i0 + (u % 8) * 4 + q;
      if (o < OG && i < IN) dw[static_cast<int64_t>(o) * IN + i] += sum[q];
    }
  }
  if (finish_bias && o0 + tid < OG) db[o0 + tid] += bias_sum;
}

template <typename T>
__global__ void __launch_bounds__(kWgThreads) weight_grad_kernel(const WeightGradJob<T> j) {
  wait_for_previous_kernel();
  weight_grad_block(j, blockIdx.x, blockIdx.y, blockIdx.z);
}

// Several jobs in one grid: job k owns blocks [block_begin[k], block_begin[k + 1]), numbered
// (g * tiles + tile) * slices + slice.
template <typename T>
__global__ void __launch_bounds__(kWgThreads)
    weight_grad_batched_kernel(const WeightGradJob<T>* __restrict__ jobs,
                               const int64_t* __restrict__ block_begin, int count) {
  wait_for_previous_kernel();
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

// The 4-wide epilogue applies: whole 4-column runs of one output group, aligned operands.
template <typename T>
bool vector_epilogue(const GemmJob<T>& j) {
  return j.M % 4 == 0 && j.out_group_cols % 4 == 0 && aligned16(j.out) && aligned16(j.bias) &&
         aligned16(j.mask) && aligned16(j.residual);
}

Dtype batch_dtype(const char* op, const std::vector<Dtype>& dtypes) {
  for (Dtype d : dtypes) {
    LAPIS_CHECK(d == dtypes.front(), op, "one fused batch holds one dtype, got ",
                dtype_name(dtypes.front()), " and ", dtype_name(d));
  }
  return dtypes.front();
}

}  // namespace

namespace {

// One batched launch of small GEMMs: fill(call, job) sets each call's operands and shape (job's
// scalar type is the batch's dtype); the epilogue width is then chosen per job.
template <bool TRANSPOSED, class Call, class DtypeOf, class Fill>
void gemm_batch(const char* op, const std::vector<Call>& calls, DtypeOf dtype_of, Fill fill) {
  if (calls.empty()) return;
  std::vector<Dtype> dtypes;
  for (const Call& c : calls) dtypes.push_back(dtype_of(c));
  LAPIS_DISPATCH_FLOAT(batch_dtype(op, dtypes), op, [&] {
    std::vector<GemmJob<scalar_t>> jobs;
    for (const Call& c : calls) {
      GemmJob<scalar_t> j{};
      fill(c, j);
      j.vec = vector_epilogue(j);
      jobs.push_back(j);
    }
    launch_small_gemms<scalar_t, TRANSPOSED>(std::move(jobs));
  });
}

template <class Job>
using JobScalar = std::remove_pointer_t<decltype(Job::out)>;

}  // namespace

void linear_forward_fused_batch(const std::vector<LinearForwardCall>& calls) {
  gemm_batch<false>(
      "linear_forward", calls, [](const LinearForwardCall& c) { return c.x.dtype(); },
      [](const LinearForwardCall& c, auto& j) {
        using T = JobScalar<std::decay_t<decltype(j)>>;
        const int64_t N = c.x.size(0), IN = c.x.size(1), OUT = c.weight.size(0);
        check_int_range("linear_forward", N, IN, OUT);
        j.out = N * OUT > 0 ? c.out.data<T>() : nullptr;
        j.a = ptr_or_null<T>(c.x);
        j.w = ptr_or_null<T>(c.weight);
        j.bias = ptr_or_null<T>(c.bias);
        j.residual = ptr_or_null<T>(c.residual);
        j.N = N;
        j.K = static_cast<int>(IN);
        j.M = static_cast<int>(OUT);
        j.a_group_cols = IN == 0 ? 1 : static_cast<int>(IN);
        j.out_group_cols = OUT == 0 ? 1 : static_cast<int>(OUT / c.groups);
        j.relu = c.relu;
      });
}

void input_grad_fused_batch(const std::vector<InputGradCall>& calls) {
  gemm_batch<true>(
      "linear_backward", calls, [](const InputGradCall& c) { return c.dL_dx.dtype(); },
      [](const InputGradCall& c, auto& j) {
        using T = JobScalar<std::decay_t<decltype(j)>>;
        const int64_t N = c.dL_dx.size(0), IN = c.dL_dx.size(1), OUT = c.weight.size(0);
        check_int_range("linear_backward", N, IN, OUT);
        j.out = N * IN > 0 ? c.dL_dx.data<T>() : nullptr;
        j.a = ptr_or_null<T>(c.dL_dout);
        j.w = ptr_or_null<T>(c.weight);
        j.mask = ptr_or_null<T>(c.relu_mask);
        j.residual = ptr_or_null<T>(c.plus);
        j.N = N;
        j.K = static_cast<int>(OUT);
        j.M = static_cast<int>(IN);
        j.a_group_cols = OUT == 0 ? 1 : static_cast<int>(OUT / c.groups);
        j.out_group_cols = IN == 0 ? 1 : static_cast<int>(IN);
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
  const unsigned block = kWgThreads;
  if (jobs.size() == 1) {
    const WeightGradShape& s = shapes[0];
    const dim3 grid(static_cast<unsigned>(s.tiles), static_cast<unsigned>(s.slices),
                    static_cast<unsigned>(s.groups));
    launch_overlapped(weight_grad_kernel<T>, grid, dim3(block), jobs[0]);
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
  launch_overlapped(weight_grad_batched_kernel<T>, dim3(static_cast<unsigned>(blocks)), dim3(block),
                    reinterpret_cast<const WeightGradJob<T>*>(words), words + job_words * count,
                    static_cast<int>(count));
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
