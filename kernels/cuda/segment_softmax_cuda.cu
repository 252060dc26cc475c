// Segment softmax on CUDA (kernels/segment_softmax.h): one thread per (segment, head), three
// passes over the segment's scores (max, sum of exp, normalise). Consecutive threads are
// consecutive heads of one segment, so the [E, H] reads of a segment are contiguous.
// Deterministic (fixed order, no atomics).
#include "core/cuda/cuda_check.h"
#include "kernels/cuda/device_utils.cuh"
#include "kernels/cuda/graph_ops_cuda.h"

namespace lapis {
namespace cuda {

namespace {

constexpr int kBlock = 256;

template <typename T>
__global__ void segment_softmax_forward_kernel(T* __restrict__ alpha, const T* __restrict__ score,
                                               const int32_t* __restrict__ ptr, int64_t n,
                                               int64_t num_edges, int64_t heads,
                                               int* error_flag) {
  LAPIS_KERNEL_LOOP(idx, n * heads) {
    const int64_t i = idx / heads, h = idx - i * heads;
    const int64_t e0 = ptr[i], e1 = ptr[i + 1];
    if (e0 < 0 || e1 < e0 || e1 > num_edges) {
      report_device_error(error_flag, kBadSegmentPointers);
      continue;
    }
    if (e0 == e1) continue;
    T m = score[e0 * heads + h];
    for (int64_t e = e0 + 1; e < e1; ++e) m = max(m, score[e * heads + h]);
    T sum = T(0);
    for (int64_t e = e0; e < e1; ++e) sum += dev_exp(score[e * heads + h] - m);
    for (int64_t e = e0; e < e1; ++e) alpha[e * heads + h] = dev_exp(score[e * heads + h] - m) / sum;
  }
}

template <typename T>
__global__ void segment_softmax_backward_kernel(T* __restrict__ dscore,
                                                const T* __restrict__ dalpha,
                                                const T* __restrict__ alpha,
                                                const int32_t* __restrict__ ptr, int64_t n,
                                                int64_t num_edges, int64_t heads,
                                                int* error_flag) {
  LAPIS_KERNEL_LOOP(idx, n * heads) {
    const int64_t i = idx / heads, h = idx - i * heads;
    const int64_t e0 = ptr[i], e1 = ptr[i + 1];
    if (e0 < 0 || e1 < e0 || e1 > num_edges) {
      report_device_error(error_flag, kBadSegmentPointers);
      continue;
    }
    T dot = T(0);
    for (int64_t e = e0; e < e1; ++e) dot += alpha[e * heads + h] * dalpha[e * heads + h];
    for (int64_t e = e0; e < e1; ++e) {
      dscore[e * heads + h] = alpha[e * heads + h] * (dalpha[e * heads + h] - dot);
    }
  }
}

}  // namespace

void segment_softmax_forward(Tensor& alpha, const Tensor& score, const Tensor& in_ptr) {
  const int64_t n = in_ptr.numel() - 1, e = score.size(0), h = score.size(1);
  if (n <= 0 || score.numel() == 0) return;
  LAPIS_DISPATCH_FLOAT(score.dtype(), "segment_softmax_forward", [&] {
    LAPIS_LAUNCH(segment_softmax_forward_kernel<scalar_t>, n * h, kBlock, alpha.data<scalar_t>(),
                 score.data<scalar_t>(), in_ptr.data<int32_t>(), n, e, h, device_error_flag());
  });
}

void segment_softmax_backward(Tensor& dL_dscore, const Tensor& dL_dalpha, const Tensor& alpha,
                              const Tensor& in_ptr) {
  const int64_t n = in_ptr.numel() - 1, e = alpha.size(0), h = alpha.size(1);
  if (n <= 0 || alpha.numel() == 0) return;
  LAPIS_DISPATCH_FLOAT(alpha.dtype(), "segment_softmax_backward", [&] {
    LAPIS_LAUNCH(segment_softmax_backward_kernel<scalar_t>, n * h, kBlock,
                 dL_dscore.data<scalar_t>(), dL_dalpha.data<scalar_t>(), alpha.data<scalar_t>(),
                 in_ptr.data<int32_t>(), n, e, h, device_error_flag());
  });
}

}  // namespace cuda
}  // namespace lapis
