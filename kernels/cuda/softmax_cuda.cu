#include "kernels/cuda/softmax_cuda.h"

#include "core/cuda/cuda_check.h"
#include "kernels/cuda/device_utils.cuh"

namespace lapis {
namespace cuda {
namespace {

constexpr int kBlock = 256;
constexpr int kRowsPerBlock = kBlock / 32;  // one warp per row

// Each lane reads and writes only its own columns, so out may alias x.
template <typename scalar_t>
__global__ void softmax_forward_kernel(scalar_t* out, const scalar_t* x, int64_t N, int64_t C) {
  const int lane = threadIdx.x & 31;
  const int64_t i = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + (threadIdx.x >> 5);
  if (i >= N) return;  // whole warps leave together
  const scalar_t* row = x + i * C;
  scalar_t m = -INFINITY;
  for (int64_t c = lane; c < C; c += 32) m = max(m, row[c]);
  m = warp_all_max(m);
  scalar_t sum = 0;
  for (int64_t c = lane; c < C; c += 32) sum += dev_exp(row[c] - m);
  sum = warp_all_sum(sum);
  const scalar_t inv = scalar_t(1) / sum;
  for (int64_t c = lane; c < C; c += 32) out[i * C + c] = dev_exp(row[c] - m) * inv;
}

template <typename scalar_t>
__global__ void softmax_backward_kernel(scalar_t* dL_dx, const scalar_t* dL_dout,
                                        const scalar_t* out, int64_t N, int64_t C) {
  const int lane = threadIdx.x & 31;
  const int64_t i = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + (threadIdx.x >> 5);
  if (i >= N) return;
  const scalar_t* g = dL_dout + i * C;
  const scalar_t* y = out + i * C;
  scalar_t dot = 0;
  for (int64_t c = lane; c < C; c += 32) dot += g[c] * y[c];
  dot = warp_all_sum(dot);
  for (int64_t c = lane; c < C; c += 32) dL_dx[i * C + c] = y[c] * (g[c] - dot);
}

unsigned row_blocks(int64_t N, const char* op) {
  const int64_t blocks = (N + kRowsPerBlock - 1) / kRowsPerBlock;
  LAPIS_CHECK(blocks <= 2147483647, op, "too many rows: ", N);
  return static_cast<unsigned>(blocks);
}

}  // namespace

void softmax_forward(Tensor& out, const Tensor& x) {
  const int64_t N = x.size(0), C = x.size(1);
  if (N == 0 || C == 0) return;
  LAPIS_DISPATCH_FLOAT(x.dtype(), "softmax_forward", [&] {
    softmax_forward_kernel<scalar_t><<<row_blocks(N, "softmax_forward"), kBlock, 0, stream()>>>(
        out.data<scalar_t>(), x.data<scalar_t>(), N, C);
    LAPIS_CUDA_CHECK(cudaGetLastError());
  });
}

void softmax_backward(Tensor& dL_dx, const Tensor& dL_dout, const Tensor& out) {
  const int64_t N = out.size(0), C = out.size(1);
  if (N == 0 || C == 0) return;
  LAPIS_DISPATCH_FLOAT(out.dtype(), "softmax_backward", [&] {
    softmax_backward_kernel<scalar_t>
        <<<row_blocks(N, "softmax_backward"), kBlock, 0, stream()>>>(
            dL_dx.data<scalar_t>(), dL_dout.data<scalar_t>(), out.data<scalar_t>(), N, C);
    LAPIS_CUDA_CHECK(cudaGetLastError());
  });
}

}  // namespace cuda
}  // namespace lapis
