#include "kernels/cuda/reduce_cuda.h"

#include "core/cuda/cuda_check.h"
#include "kernels/cuda/device_utils.cuh"

namespace lapis {
namespace cuda {
namespace {

constexpr int kBlock = 256;
constexpr int kFinalBlock = 1024;
constexpr int kMaxPartials = 1024;  // blocks of the first reduce_all pass (<= kFinalBlock)
constexpr int kRowsPerBlock = kBlock / 32;  // one warp per row

// Divisor for a reduction over `count` items: the count for a mean (1 when empty, so the mean
// of nothing is 0), 1 for a sum. Same rule as the CPU reference.
double divisor(Reduce kind, int64_t count) {
  return kind == Reduce::Mean && count > 0 ? static_cast<double>(count) : 1.0;
}

// Column sums of x [N, C] (axis 0). Block (32, 8): threadIdx.x picks a column (coalesced),
// threadIdx.y and blockIdx.y stride over rows; the block's partial sum of its row slice goes to
// partial[blockIdx.y, c], or, with one slice, straight to out[c] / div.
constexpr int kColX = 32, kColY = 8;
template <typename scalar_t>
__global__ void reduce_forward_cols_kernel(scalar_t* dst, const scalar_t* x, int64_t N,
                                           int64_t C, scalar_t div) {
  __shared__ scalar_t tile[kColY][kColX + 1];
  const int64_t c = static_cast<int64_t>(blockIdx.x) * kColX + threadIdx.x;
  scalar_t sum = 0;
  if (c < C) {
    for (int64_t r = static_cast<int64_t>(blockIdx.y) * kColY + threadIdx.y; r < N;
         r += static_cast<int64_t>(gridDim.y) * kColY)
      sum += x[r * C + c];
  }
  tile[threadIdx.y][threadIdx.x] = sum;
  __syncthreads();
  if (threadIdx.y == 0 && c < C) {
    scalar_t total = 0;
    for (int k = 0; k < kColY; ++k) total += tile[k][threadIdx.x];
    dst[static_cast<int64_t>(blockIdx.y) * C + c] = total / div;
  }
}

// out[c] = sum over slices s of partial[s, c], in order of s, / div.
template <typename scalar_t>
__global__ void reduce_forward_cols_finish_kernel(scalar_t* out, const scalar_t* partial,
                                                  int64_t slices, int64_t C, scalar_t div) {
  LAPIS_KERNEL_LOOP(c, C) {
    scalar_t total = 0;
    for (int64_t s = 0; s < slices; ++s) total += partial[s * C + c];
    out[c] = total / div;
  }
}

// Row sums of x [N, C] (axis 1), one warp per row.
template <typename scalar_t>
__global__ void reduce_forward_rows_kernel(scalar_t* out, const scalar_t* x, int64_t N,
                                           int64_t C, scalar_t div) {
  const int lane = threadIdx.x & 31;
  const int64_t i = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + (threadIdx.x >> 5);
  if (i >= N) return;  // whole warps leave together
  scalar_t sum = 0;
  for (int64_t c = lane; c < C; c += 32) sum += x[i * C + c];
  sum = warp_all_sum(sum);
  if (lane == 0) out[i] = sum / div;
}

// dL_dx[i, c] = dL_dout[axis == 0 ? c : i] / div.
template <typename scalar_t>
__global__ void reduce_backward_kernel(scalar_t* dL_dx, const scalar_t* dL_dout, int64_t N,
                                       int64_t C, int axis, scalar_t div) {
  LAPIS_KERNEL_LOOP(idx, N * C) {
    const int64_t i = idx / C, c = idx - i * C;
    dL_dx[idx] = dL_dout[axis == 0 ? c : i] / div;
  }
}

// Pass 1 of reduce_all: each block sums a grid-stride slice into partial[blockIdx.x]. The
// partition depends only on n, so the result is deterministic.
template <typename scalar_t>
__global__ void reduce_all_forward_kernel(scalar_t* partial, const scalar_t* x, int64_t n) {
  scalar_t sum = 0;
  LAPIS_KERNEL_LOOP(i, n) sum += x[i];
  sum = block_sum(sum);
  if (threadIdx.x == 0) partial[blockIdx.x] = sum;
}

// Pass 2: out[0] = sum(partial) / div, one block.
template <typename scalar_t>
__global__ void reduce_all_finish_kernel(scalar_t* out, const scalar_t* partial, int64_t parts,
                                         scalar_t div) {
  scalar_t sum = 0;
  for (int64_t i = threadIdx.x; i < parts; i += blockDim.x) sum += partial[i];
  sum = block_sum(sum);
  if (threadIdx.x == 0) out[0] = sum / div;
}

// dL_dx[i] = dL_dout[0] / div; dL_dout stays on the device (no host synchronisation).
template <typename scalar_t>
__global__ void reduce_all_backward_kernel(scalar_t* dL_dx, const scalar_t* dL_dout, int64_t n,
                                           scalar_t div) {
  const scalar_t g = dL_dout[0] / div;
  LAPIS_KERNEL_LOOP(i, n) dL_dx[i] = g;
}

// One warp per row. Candidates are ordered by (value descending, index ascending), a total
// order without NaNs, so the winner is the first maximum whatever the reduction order.
template <typename scalar_t>
__global__ void argmax_rows_kernel(int64_t* out, const scalar_t* x, int64_t N, int64_t C) {
  const int lane = threadIdx.x & 31;
  const int64_t i = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + (threadIdx.x >> 5);
  if (i >= N) return;
  const int64_t kNone = INT64_MAX;
  scalar_t best_v = 0;
  int64_t best_i = kNone;
  for (int64_t c = lane; c < C; c += 32) {
    const scalar_t v = x[i * C + c];
    if (best_i == kNone || v > best_v) {
      best_v = v;
      best_i = c;
    }
  }
  for (int o = 16; o > 0; o >>= 1) {
    const scalar_t other_v = __shfl_xor_sync(kFullMask, best_v, o);
    const int64_t other_i = __shfl_xor_sync(kFullMask, best_i, o);
    const bool take = other_i != kNone &&
                      (best_i == kNone || other_v > best_v ||
                       (other_v == best_v && other_i < best_i));
    if (take) {
      best_v = other_v;
      best_i = other_i;
    }
  }
  if (lane == 0) out[i] = best_i;
}

unsigned row_blocks(int64_t N, const char* op) {
  const int64_t blocks = (N + kRowsPerBlock - 1) / kRowsPerBlock;
  LAPIS_CHECK(blocks <= 2147483647, op, "too many rows: ", N);
  return static_cast<unsigned>(blocks);
}

template <typename scalar_t>
void column_reduce(Tensor& out, const Tensor& x, scalar_t div) {
  const int64_t N = x.size(0), C = x.size(1);
  const int64_t col_blocks = (C + kColX - 1) / kColX;
  LAPIS_CHECK(col_blocks <= 2147483647, "reduce_forward", "too many columns: ", C);
  // Enough row slices to fill the GPU when C is small, each at least 64 rows long.
  int64_t slices = (N + 63) / 64;
  const int64_t max_slices = col_blocks >= 512 ? 1 : 512 / col_blocks;
  if (slices > max_slices) slices = max_slices;
  if (slices < 1) slices = 1;
  const dim3 block(kColX, kColY);
  const dim3 grid(static_cast<unsigned>(col_blocks), static_cast<unsigned>(slices));
  if (slices == 1) {
    reduce_forward_cols_kernel<scalar_t><<<grid, block, 0, stream()>>>(
        out.data<scalar_t>(), x.data<scalar_t>(), N, C, div);
    LAPIS_CUDA_CHECK(cudaGetLastError());
    return;
  }
  // Scratch from the caching allocator; freeing it at scope end is safe in stream order.
  Tensor partial = Tensor::empty({slices, C}, x.dtype(), x.device());
  reduce_forward_cols_kernel<scalar_t><<<grid, block, 0, stream()>>>(
      partial.data<scalar_t>(), x.data<scalar_t>(), N, C, scalar_t(1));
  LAPIS_CUDA_CHECK(cudaGetLastError());
  LAPIS_LAUNCH(reduce_forward_cols_finish_kernel<scalar_t>, C, kBlock, out.data<scalar_t>(),
               partial.data<scalar_t>(), slices, C, div);
}

}  // namespace

void reduce_forward(Tensor& out, const Tensor& x, int axis, Reduce kind) {
  const int64_t N = x.size(0), C = x.size(1);
  if (out.numel() == 0) return;
  LAPIS_DISPATCH_FLOAT(x.dtype(), "reduce_forward", [&] {
    const scalar_t div = static_cast<scalar_t>(divisor(kind, axis == 0 ? N : C));
    if (axis == 0) {
      column_reduce<scalar_t>(out, x, div);
    } else {
      reduce_forward_rows_kernel<scalar_t>
          <<<row_blocks(N, "reduce_forward"), kBlock, 0, stream()>>>(
              out.data<scalar_t>(), x.data<scalar_t>(), N, C, div);
      LAPIS_CUDA_CHECK(cudaGetLastError());
    }
  });
}

void reduce_backward(Tensor& dL_dx, const Tensor& dL_dout, int axis, Reduce kind) {
  const int64_t N = dL_dx.size(0), C = dL_dx.size(1);
  LAPIS_DISPATCH_FLOAT(dL_dx.dtype(), "reduce_backward", [&] {
    const scalar_t div = static_cast<scalar_t>(divisor(kind, axis == 0 ? N : C));
    LAPIS_LAUNCH(reduce_backward_kernel<scalar_t>, N * C, kBlock, dL_dx.data<scalar_t>(),
                 dL_dout.data<scalar_t>(), N, C, axis, div);
  });
}

void reduce_all_forward(Tensor& out, const Tensor& x, Reduce kind) {
  const int64_t n = x.numel();
  if (n == 0) {  // the sum (and, by the rule above, the mean) of nothing is 0
    LAPIS_CUDA_CHECK(cudaMemsetAsync(out.raw_data(), 0, out.nbytes(), stream()));
    return;
  }
  LAPIS_DISPATCH_FLOAT(x.dtype(), "reduce_all_forward", [&] {
    int64_t parts = (n + kBlock * 4 - 1) / (kBlock * 4);
    if (parts > kMaxPartials) parts = kMaxPartials;
    Tensor partial = Tensor::empty({parts}, x.dtype(), x.device());
    reduce_all_forward_kernel<scalar_t><<<static_cast<unsigned>(parts), kBlock, 0, stream()>>>(
        partial.data<scalar_t>(), x.data<scalar_t>(), n);
    LAPIS_CUDA_CHECK(cudaGetLastError());
    reduce_all_finish_kernel<scalar_t><<<1, kFinalBlock, 0, stream()>>>(
        out.data<scalar_t>(), partial.data<scalar_t>(), parts,
        static_cast<scalar_t>(divisor(kind, n)));
    LAPIS_CUDA_CHECK(cudaGetLastError());
  });
}

void reduce_all_backward(Tensor& dL_dx, const Tensor& dL_dout, Reduce kind) {
  const int64_t n = dL_dx.numel();
  LAPIS_DISPATCH_FLOAT(dL_dx.dtype(), "reduce_all_backward", [&] {
    LAPIS_LAUNCH(reduce_all_backward_kernel<scalar_t>, n, kBlock, dL_dx.data<scalar_t>(),
                 dL_dout.data<scalar_t>(), n, static_cast<scalar_t>(divisor(kind, n)));
  });
}

void argmax_rows(Tensor& out, const Tensor& x) {
  const int64_t N = x.size(0), C = x.size(1);
  if (N == 0) return;
  LAPIS_DISPATCH_FLOAT(x.dtype(), "argmax_rows", [&] {
    argmax_rows_kernel<scalar_t><<<row_blocks(N, "argmax_rows"), kBlock, 0, stream()>>>(
        out.data<int64_t>(), x.data<scalar_t>(), N, C);
    LAPIS_CUDA_CHECK(cudaGetLastError());
  });
}

}  // namespace cuda
}  // namespace lapis
