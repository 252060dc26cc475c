#include "kernels/cuda/elementwise_cuda.h"

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

template <typename scalar_t>
__global__ void bias_add_forward_kernel(scalar_t* out, const scalar_t* x, const scalar_t* bias,
                                        int64_t n, int64_t C) {
  LAPIS_KERNEL_LOOP(i, n) out[i] = x[i] + bias[i % C];
}

// Column sums of x [N, C], deterministic (fixed partition and summation order, no atomics).
// Block (32, 8): threadIdx.x picks a column (coalesced across the warp), threadIdx.y and
// blockIdx.y stride over rows. Each block writes the partial sum of its row slice to
// partial[blockIdx.y, c]; with one row slice (gridDim.y == 1) it writes the result directly.
constexpr int kColX = 32, kColY = 8;
template <typename scalar_t>
__global__ void bias_add_backward_kernel(scalar_t* partial, const scalar_t* x, int64_t N,
                                         int64_t C, bool accumulate) {
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
    scalar_t* dst = partial + static_cast<int64_t>(blockIdx.y) * C + c;
    if (gridDim.y == 1 && accumulate) *dst += total;
    else *dst = total;
  }
}

// out[c] (+)= sum over s of partial[s, c], in order of s.
template <typename scalar_t>
__global__ void bias_add_backward_finish_kernel(scalar_t* out, const scalar_t* partial,
                                                int64_t slices, int64_t C, bool accumulate) {
  LAPIS_KERNEL_LOOP(c, C) {
    scalar_t total = 0;
    for (int64_t s = 0; s < slices; ++s) total += partial[s * C + c];
    out[c] = accumulate ? out[c] + total : total;
  }
}

template <typename scalar_t>
void column_sums(scalar_t* out, const scalar_t* x, int64_t N, int64_t C, bool accumulate,
                 Device device) {
  if (C == 0) return;
  const int64_t col_blocks = (C + kColX - 1) / kColX;
  // Enough row slices to fill the GPU when C is small, each slice at least 64 rows long.
  int64_t slices = (N + 63) / 64;
  const int64_t max_slices = col_blocks >= 512 ? 1 : 512 / col_blocks;
  if (slices > max_slices) slices = max_slices;
  if (slices < 1) slices = 1;
  if (col_blocks > 2147483647) LAPIS_FAIL("column_sums", "too many columns: ", C);
  const dim3 block(kColX, kColY);
  const dim3 grid(static_cast<unsigned>(col_blocks), static_cast<unsigned>(slices));
  if (slices == 1) {
    if (N == 0 && accumulate) return;  // adding zero
    bias_add_backward_kernel<scalar_t><<<grid, block, 0, stream()>>>(out, x, N, C, accumulate);
    LAPIS_CUDA_CHECK(cudaGetLastError());
    return;
  }
  // Scratch from the caching allocator; freeing it at scope end is safe in stream order.
  Tensor partial = Tensor::empty({slices, C}, dtype_of<scalar_t>(), device);
  bias_add_backward_kernel<scalar_t><<<grid, block, 0, stream()>>>(partial.data<scalar_t>(), x,
                                                                   N, C, false);
  LAPIS_CUDA_CHECK(cudaGetLastError());
  LAPIS_LAUNCH(bias_add_backward_finish_kernel<scalar_t>, C, kBlock, out,
               partial.data<scalar_t>(), slices, C, accumulate);
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

void bias_add_forward(Tensor& out, const Tensor& x, const Tensor& bias) {
  LAPIS_DISPATCH_FLOAT(out.dtype(), "bias_add_forward", [&] {
    LAPIS_LAUNCH(bias_add_forward_kernel<scalar_t>, out.numel(), kBlock, out.data<scalar_t>(),
                 x.data<scalar_t>(), bias.data<scalar_t>(), out.numel(), x.size(1));
  });
}

void bias_add_backward(Tensor& dL_dbias, const Tensor& dL_dout) {
  LAPIS_DISPATCH_FLOAT(dL_dbias.dtype(), "bias_add_backward", [&] {
    column_sums<scalar_t>(dL_dbias.data<scalar_t>(), dL_dout.data<scalar_t>(),
                          dL_dout.size(0), dL_dout.size(1), /*accumulate=*/true,
                          dL_dbias.device());
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

}  // namespace cuda
}  // namespace lapis
