#include "kernels/cuda/elementwise_cuda.h"

#include <algorithm>
#include <mutex>

#include "core/cuda/cuda_check.h"
#include "kernels/cuda/device_utils.cuh"
#include "core/random.h"

namespace lapis {
namespace cuda {
namespace {

constexpr int kBlock = 256;

template <typename scalar_t>
__global__ void add_kernel(scalar_t* out, const scalar_t* a, const scalar_t* b, int64_t n) {
  LAPIS_KERNEL_LOOP(i, n) out[i] = a[i] + b[i];
}

template <typename scalar_t>
__global__ void axpy_kernel(scalar_t* y, scalar_t alpha, const scalar_t* x, int64_t n) {
  LAPIS_KERNEL_LOOP(i, n) y[i] += alpha * x[i];
}

template <typename scalar_t>
__global__ void scale_kernel(scalar_t* out, const scalar_t* x, scalar_t alpha, int64_t n) {
  LAPIS_KERNEL_LOOP(i, n) out[i] = alpha * x[i];
}

// out = (x + bias) + residual, residual optional (nullptr): the residual sum of a transformer
// layer folded into the bias add, with the rounding of the two separate adds.
template <typename scalar_t>
__global__ void bias_add_forward_kernel(scalar_t* out, const scalar_t* x, const scalar_t* bias,
                                        const scalar_t* residual, int64_t n, int64_t C) {
  if (residual) {
    LAPIS_KERNEL_LOOP(i, n) {
      const scalar_t t = x[i] + bias[i % C];
      out[i] = t + residual[i];
    }
  } else {
    LAPIS_KERNEL_LOOP(i, n) out[i] = x[i] + bias[i % C];
  }
}

// Column sums of x [N, C] in one launch, deterministic (fixed partition and summation order; the
// only atomic elects the finishing block). Grid (ceil(C/32), S), block (32, 8): threadIdx.x picks
// a column (coalesced across the warp), blockIdx.y a slice of consecutive rows, threadIdx.y
// strides over the slice. With one slice the block adds its sum to out directly; otherwise each
// block stores its slice's sum in partial[s, c], and the last block of the column tile to arrive
// (counter per tile, "last block done" as in PyTorch's Reduce.cuh and the CUDA
// threadFenceReduction sample) adds the S partials in slice order and writes out. This replaces
// the partial-sums kernel + finishing kernel pair (2 launches -> 1).
constexpr int kColX = 32, kColY = 8;
constexpr int64_t kColTargetBlocks = 1024;  // ~8 resident 256-thread blocks on each of 132 SMs
constexpr int64_t kColMinRows = 64;         // N <= 64: one slice, no partials, no counter

// Sum of v over threadIdx.y = 0..kColY-1 in that order, for each threadIdx.x; valid where
// threadIdx.y == 0. Every thread of the block must call it; tile is free again on return.
template <typename scalar_t>
__device__ scalar_t sum_over_block_rows(scalar_t (&tile)[kColY][kColX + 1], scalar_t v) {
  tile[threadIdx.y][threadIdx.x] = v;
  __syncthreads();
  scalar_t total = 0;
  if (threadIdx.y == 0) {
    for (int k = 0; k < kColY; ++k) total += tile[k][threadIdx.x];
  }
  __syncthreads();
  return total;
}

// out[c] += sum over rows of x[r, c]. partial [S, C] and counters [ceil(C/32)] are unused (may
// be null) when S == 1.
template <typename scalar_t>
__global__ void bias_add_backward_kernel(scalar_t* __restrict__ out, scalar_t* __restrict__ partial,
                                         unsigned int* __restrict__ counters,
                                         const scalar_t* __restrict__ x, int64_t N, int64_t C,
                                         int64_t slice_rows) {
  __shared__ scalar_t tile[kColY][kColX + 1];
  const int64_t c = static_cast<int64_t>(blockIdx.x) * kColX + threadIdx.x;
  const bool active = c < C;
  const int64_t r0 = static_cast<int64_t>(blockIdx.y) * slice_rows;
  const int64_t r1 = r0 + slice_rows < N ? r0 + slice_rows : N;
  scalar_t sum = 0;
  if (active) {
#pragma unroll 4
    for (int64_t r = r0 + threadIdx.y; r < r1; r += kColY) sum += x[r * C + c];
  }
  sum = sum_over_block_rows(tile, sum);
  if (gridDim.y == 1) {  // the block saw every row
    if (threadIdx.y == 0 && active) out[c] += sum;
    return;
  }
  if (threadIdx.y == 0 && active) partial[static_cast<int64_t>(blockIdx.y) * C + c] = sum;
  if (!last_block_arrives(counters + blockIdx.x, gridDim.y)) return;
  // Last block of the tile: slices s = threadIdx.y + 8k in order per thread, then the 8 thread
  // sums in order. __ldcg reads from L2, where the other blocks' stores went.
  sum = active ? ordered_partial_sum(partial + c, threadIdx.y, kColY, gridDim.y, C) : scalar_t(0);
  sum = sum_over_block_rows(tile, sum);
  if (threadIdx.y == 0 && active) out[c] += sum;
}

// out [C] += column sums of x [N, C]; one launch (none when N == 0 or C == 0).
template <typename scalar_t>
void column_sums_accumulate(scalar_t* out, const scalar_t* x, int64_t N, int64_t C,
                            Device device) {
  if (N == 0 || C == 0) return;  // adding zero
  const int64_t col_blocks = (C + kColX - 1) / kColX;
  if (col_blocks > 2147483647) LAPIS_FAIL("bias_add_backward", "too many columns: ", C);
  // Enough row slices to fill the GPU when C is small, each at least kColMinRows rows; rows
  // [s * rows, min(N, (s + 1) * rows)) form slice s, and no slice is empty.
  const int64_t cap = col_blocks >= kColTargetBlocks ? 1 : kColTargetBlocks / col_blocks;
  int64_t slices = (N + kColMinRows - 1) / kColMinRows;
  if (slices > cap) slices = cap;
  const int64_t rows = (N + slices - 1) / slices;
  slices = (N + rows - 1) / rows;
  const dim3 block(kColX, kColY);
  const dim3 grid(static_cast<unsigned>(col_blocks), static_cast<unsigned>(slices));
  Tensor partial;  // scratch from the caching allocator; freeing it at scope end is stream-safe
  scalar_t* partial_ptr = nullptr;
  unsigned int* counters = nullptr;
  if (slices > 1) {
    partial = Tensor::empty({slices, C}, dtype_of<scalar_t>(), device);
    partial_ptr = partial.data<scalar_t>();
    counters = reduction_counters(col_blocks);
  }
  bias_add_backward_kernel<scalar_t><<<grid, block, 0, stream()>>>(out, partial_ptr, counters,
                                                                   x, N, C, rows);
  LAPIS_CUDA_CHECK(cudaGetLastError());
}

template <typename scalar_t>
__device__ scalar_t activation_value(scalar_t x, Activation act) {
  switch (act) {
    case Activation::ReLU: return x > scalar_t(0) ? x : scalar_t(0);
    case Activation::GELU:
      return scalar_t(0.5) * x * (scalar_t(1) + dev_erf(x * scalar_t(0.7071067811865476)));
    case Activation::SiLU: return x / (scalar_t(1) + dev_exp(-x));
  }
  return x;
}

template <typename scalar_t>
__device__ scalar_t activation_derivative(scalar_t x, Activation act) {
  switch (act) {
    case Activation::ReLU: return x > scalar_t(0) ? scalar_t(1) : scalar_t(0);
    case Activation::GELU: {
      const scalar_t cdf =
          scalar_t(0.5) * (scalar_t(1) + dev_erf(x * scalar_t(0.7071067811865476)));
      const scalar_t pdf = dev_exp(scalar_t(-0.5) * x * x) * scalar_t(0.3989422804014327);
      return cdf + x * pdf;
    }
    case Activation::SiLU: {
      const scalar_t s = scalar_t(1) / (scalar_t(1) + dev_exp(-x));
      return s * (scalar_t(1) + x * (scalar_t(1) - s));
    }
  }
  return scalar_t(1);
}

template <typename scalar_t>
__global__ void activation_forward_kernel(scalar_t* out, const scalar_t* x, Activation act,
                                          int64_t n) {
  LAPIS_KERNEL_LOOP(i, n) out[i] = activation_value(x[i], act);
}

template <typename scalar_t>
__global__ void activation_backward_kernel(scalar_t* dL_dx, const scalar_t* dL_dout,
                                           const scalar_t* x, Activation act, int64_t n) {
  LAPIS_KERNEL_LOOP(i, n) dL_dx[i] = dL_dout[i] * activation_derivative(x[i], act);
}

// Same draw and comparison as the CPU reference, so the masks agree bit for bit.
template <typename scalar_t>
__global__ void dropout_forward_kernel(scalar_t* out, scalar_t* mask, const scalar_t* x,
                                       double p, scalar_t keep_value, uint64_t seed,
                                       uint64_t offset, int64_t n) {
  LAPIS_KERNEL_LOOP(i, n) {
    const float u = uniform01(seed, offset + static_cast<uint64_t>(i));
    const scalar_t m = static_cast<double>(u) >= p ? keep_value : scalar_t(0);
    mask[i] = m;
    out[i] = x[i] * m;
  }
}

template <typename scalar_t>
__global__ void dropout_backward_kernel(scalar_t* dL_dx, const scalar_t* dL_dout,
                                        const scalar_t* mask, int64_t n) {
  LAPIS_KERNEL_LOOP(i, n) dL_dx[i] = dL_dout[i] * mask[i];
}

}  // namespace

void add(Tensor& out, const Tensor& a, const Tensor& b) {
  LAPIS_DISPATCH_FLOAT(out.dtype(), "add", [&] {
    LAPIS_LAUNCH(add_kernel<scalar_t>, out.numel(), kBlock, out.data<scalar_t>(),
                 a.data<scalar_t>(), b.data<scalar_t>(), out.numel());
  });
}

void axpy(Tensor& y, double alpha, const Tensor& x) {
  LAPIS_DISPATCH_FLOAT(y.dtype(), "axpy", [&] {
    LAPIS_LAUNCH(axpy_kernel<scalar_t>, y.numel(), kBlock, y.data<scalar_t>(),
                 static_cast<scalar_t>(alpha), x.data<scalar_t>(), y.numel());
  });
}

void scale(Tensor& out, const Tensor& x, double alpha) {
  LAPIS_DISPATCH_FLOAT(out.dtype(), "scale", [&] {
    LAPIS_LAUNCH(scale_kernel<scalar_t>, out.numel(), kBlock, out.data<scalar_t>(),
                 x.data<scalar_t>(), static_cast<scalar_t>(alpha), out.numel());
  });
}

void bias_add_forward(Tensor& out, const Tensor& x, const Tensor& bias, const Tensor& residual) {
  LAPIS_DISPATCH_FLOAT(out.dtype(), "bias_add_forward", [&] {
    LAPIS_LAUNCH(bias_add_forward_kernel<scalar_t>, out.numel(), kBlock, out.data<scalar_t>(),
                 x.data<scalar_t>(), bias.data<scalar_t>(),
                 residual.defined() ? residual.data<scalar_t>() : nullptr, out.numel(),
                 x.size(1));
  });
}

void bias_add_backward(Tensor& dL_dbias, const Tensor& dL_dout) {
  LAPIS_DISPATCH_FLOAT(dL_dbias.dtype(), "bias_add_backward", [&] {
    column_sums_accumulate<scalar_t>(dL_dbias.data<scalar_t>(), dL_dout.data<scalar_t>(),
                                     dL_dout.size(0), dL_dout.size(1), dL_dbias.device());
  });
}

void activation_forward(Tensor& out, const Tensor& x, Activation act) {
  LAPIS_DISPATCH_FLOAT(out.dtype(), "activation_forward", [&] {
    LAPIS_LAUNCH(activation_forward_kernel<scalar_t>, out.numel(), kBlock, out.data<scalar_t>(),
                 x.data<scalar_t>(), act, out.numel());
  });
}

void activation_backward(Tensor& dL_dx, const Tensor& dL_dout, const Tensor& x, Activation act) {
  LAPIS_DISPATCH_FLOAT(dL_dx.dtype(), "activation_backward", [&] {
    LAPIS_LAUNCH(activation_backward_kernel<scalar_t>, dL_dx.numel(), kBlock,
                 dL_dx.data<scalar_t>(), dL_dout.data<scalar_t>(), x.data<scalar_t>(), act,
                 dL_dx.numel());
  });
}

void dropout_forward(Tensor& out, Tensor& mask, const Tensor& x, double p, uint64_t seed,
                     uint64_t offset) {
  LAPIS_DISPATCH_FLOAT(out.dtype(), "dropout_forward", [&] {
    const scalar_t keep_value = static_cast<scalar_t>(1.0 / (1.0 - p));
    LAPIS_LAUNCH(dropout_forward_kernel<scalar_t>, out.numel(), kBlock, out.data<scalar_t>(),
                 mask.data<scalar_t>(), x.data<scalar_t>(), p, keep_value, seed, offset,
                 out.numel());
  });
}

void dropout_backward(Tensor& dL_dx, const Tensor& dL_dout, const Tensor& mask) {
  LAPIS_DISPATCH_FLOAT(dL_dx.dtype(), "dropout_backward", [&] {
    LAPIS_LAUNCH(dropout_backward_kernel<scalar_t>, dL_dx.numel(), kBlock,
                 dL_dx.data<scalar_t>(), dL_dout.data<scalar_t>(), mask.data<scalar_t>(),
                 dL_dx.numel());
  });
}

unsigned int* reduction_counters(int64_t count) {
  // Created once and deliberately never destroyed (as the library stream: static destruction
  // races with the CUDA runtime's own teardown). A larger request gets a fresh buffer and the old
  // one stays allocated (kernels queued earlier, or a pointer another host thread already took,
  // may still use it); that happens only past 131072 columns and costs a few KiB.
  struct Pool {
    std::mutex mutex;
    unsigned int* counters = nullptr;
    int64_t capacity = 0;
  };
  static Pool* pool = new Pool();
  std::lock_guard<std::mutex> lock(pool->mutex);
  if (count > pool->capacity) {
    const int64_t capacity = std::max<int64_t>(count, 4096);  // 4096 tiles = 131072 columns
    const size_t bytes = static_cast<size_t>(capacity) * sizeof(unsigned int);
    unsigned int* fresh = nullptr;
    LAPIS_CUDA_CHECK(cudaMalloc(&fresh, bytes));
    // On the library stream, so every kernel queued there later sees zeros.
    LAPIS_CUDA_CHECK(cudaMemsetAsync(fresh, 0, bytes, stream()));
    pool->counters = fresh;
    pool->capacity = capacity;
  }
  return pool->counters;
}

}  // namespace cuda
}  // namespace lapis
