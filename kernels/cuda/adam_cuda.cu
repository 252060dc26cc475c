#include "kernels/cuda/adam_cuda.h"

#include <climits>
#include <cmath>

#include "core/cuda/cuda_check.h"

namespace lapis {
namespace cuda {

namespace {

// The hyper-parameters as the kernels read them, computed once on the host (bias corrections in
// double, as torch computes them in Python floats, then rounded to scalar_t).
template <typename scalar_t>
struct AdamCoeffs {
  scalar_t lr, beta1, beta2, eps, wd;
  scalar_t step_size;   // lr / (1 - beta1^step)
  scalar_t bias2_sqrt;  // sqrt(1 - beta2^step)
  bool decoupled;
};

template <typename scalar_t>
AdamCoeffs<scalar_t> adam_coeffs(const AdamHyper& hyper, int64_t step) {
  const double bias1 = 1.0 - std::pow(hyper.beta1, static_cast<double>(step));
  const double bias2 = 1.0 - std::pow(hyper.beta2, static_cast<double>(step));
  AdamCoeffs<scalar_t> c;
  c.lr = static_cast<scalar_t>(hyper.lr);
  c.beta1 = static_cast<scalar_t>(hyper.beta1);
  c.beta2 = static_cast<scalar_t>(hyper.beta2);
  c.eps = static_cast<scalar_t>(hyper.eps);
  c.wd = static_cast<scalar_t>(hyper.weight_decay);
  c.step_size = static_cast<scalar_t>(hyper.lr / bias1);
  c.bias2_sqrt = static_cast<scalar_t>(std::sqrt(bias2));
  c.decoupled = hyper.decoupled;
  return c;
}

// The update of element i: the one formula both kernels below use, so that the multi-tensor
// path is bitwise identical to the per-tensor one. Same arithmetic, in the same order, as the
// CPU reference (kernels/cpu/adam_cpu.cpp).
template <typename scalar_t>
__device__ __forceinline__ void adam_update_element(scalar_t* __restrict__ p,
                                                    scalar_t* __restrict__ m,
                                                    scalar_t* __restrict__ v,
                                                    const scalar_t* __restrict__ g, int64_t i,
                                                    const AdamCoeffs<scalar_t>& c) {
  scalar_t grad = g[i];
  scalar_t param = p[i];
  if (c.decoupled) {
    param = param - c.lr * c.wd * param;
  } else {
    grad = grad + c.wd * param;
  }
  const scalar_t mi = c.beta1 * m[i] + (scalar_t(1) - c.beta1) * grad;
  const scalar_t vi = c.beta2 * v[i] + (scalar_t(1) - c.beta2) * grad * grad;
  m[i] = mi;
  v[i] = vi;
  const scalar_t denom = sqrt(vi) / c.bias2_sqrt + c.eps;
  p[i] = param - c.step_size * mi / denom;
}

// One tensor of n elements, grid-stride loop.
template <typename scalar_t>
__global__ void adam_step_kernel(scalar_t* __restrict__ p, scalar_t* __restrict__ m,
                                 scalar_t* __restrict__ v, const scalar_t* __restrict__ g,
                                 int64_t n, AdamCoeffs<scalar_t> c) {
  const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    adam_update_element(p, m, v, g, i, c);
  }
}

// Many tensors: block b updates chunk b (elements [start, min(start + kMultiTensorChunk, numel))
// of tensor chunks[b].tensor), with consecutive threads on consecutive elements.
template <typename scalar_t>
__global__ void adam_step_multi_kernel(const MultiTensorEntry* __restrict__ entries,
                                       const MultiTensorChunk* __restrict__ chunks,
                                       AdamCoeffs<scalar_t> c) {
  const MultiTensorChunk chunk = chunks[blockIdx.x];
  const MultiTensorEntry& e = entries[chunk.tensor];
  scalar_t* p = static_cast<scalar_t*>(e.ptr[0]);
  const scalar_t* g = static_cast<const scalar_t*>(e.ptr[1]);
  scalar_t* m = static_cast<scalar_t*>(e.ptr[2]);
  scalar_t* v = static_cast<scalar_t*>(e.ptr[3]);
  const int64_t end = min(chunk.start + kMultiTensorChunk, e.numel);
  for (int64_t i = chunk.start + threadIdx.x; i < end; i += blockDim.x) {
    adam_update_element(p, m, v, g, i, c);
  }
}

// Zeroes chunk b of word array chunks[b].tensor (4-byte words: every dtype's size divides).
__global__ void zero_multi_kernel(const MultiTensorEntry* __restrict__ entries,
                                  const MultiTensorChunk* __restrict__ chunks) {
  const MultiTensorChunk chunk = chunks[blockIdx.x];
  const MultiTensorEntry& e = entries[chunk.tensor];
  uint32_t* words = static_cast<uint32_t*>(e.ptr[0]);
  const int64_t end = min(chunk.start + kMultiTensorChunk, e.numel);
  for (int64_t i = chunk.start + threadIdx.x; i < end; i += blockDim.x) words[i] = 0u;
}

constexpr int kBlock = 256;

unsigned chunk_grid(const char* op, int64_t num_chunks) {
  LAPIS_CHECK(num_chunks >= 1 && num_chunks <= INT_MAX, op, "chunk count ", num_chunks,
              " outside the grid's range [1, ", INT_MAX, "]");
  return static_cast<unsigned>(num_chunks);
}

}  // namespace

void adam_step(Tensor& param, Tensor& m, Tensor& v, const Tensor& grad, const AdamHyper& hyper,
               int64_t step) {
  const int64_t n = param.numel();
  LAPIS_DISPATCH_FLOAT(param.dtype(), "adam_step", [&] {
    LAPIS_LAUNCH(adam_step_kernel<scalar_t>, n, kBlock, param.data<scalar_t>(),
                 m.data<scalar_t>(), v.data<scalar_t>(), grad.data<scalar_t>(), n,
                 adam_coeffs<scalar_t>(hyper, step));
  });
}

void adam_step_multi(const MultiTensorEntry* entries, const MultiTensorChunk* chunks,
                     int64_t num_chunks, Dtype dtype, const AdamHyper& hyper, int64_t step) {
  const unsigned grid = chunk_grid("adam_step_multi", num_chunks);
  LAPIS_DISPATCH_FLOAT(dtype, "adam_step_multi", [&] {
    adam_step_multi_kernel<scalar_t>
        <<<grid, kBlock, 0, stream()>>>(entries, chunks, adam_coeffs<scalar_t>(hyper, step));
    LAPIS_CUDA_CHECK(cudaGetLastError());
  });
}

void zero_multi(const MultiTensorEntry* entries, const MultiTensorChunk* chunks,
                int64_t num_chunks) {
  const unsigned grid = chunk_grid("zero_multi", num_chunks);
  zero_multi_kernel<<<grid, kBlock, 0, stream()>>>(entries, chunks);
  LAPIS_CUDA_CHECK(cudaGetLastError());
}

}  // namespace cuda
}  // namespace lapis
