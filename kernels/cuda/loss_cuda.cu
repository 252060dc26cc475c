#include "kernels/cuda/loss_cuda.h"

#include "core/cuda/cuda_check.h"
#include "kernels/cuda/device_utils.cuh"

namespace lapis {
namespace cuda {
namespace {

constexpr int kBlock = 256;
constexpr int kFinalBlock = 1024;
constexpr int kMaxPartials = 1024;  // blocks of the first reduction pass (<= kFinalBlock)

// Pass 1 of mean(|p - t|) or mean((p - t)^2): each block sums a grid-stride slice into
// partial[blockIdx.x]. The partition depends only on n, so the result is deterministic.
template <typename scalar_t, bool kSquare>
__global__ void pointwise_loss_forward_kernel(scalar_t* partial, const scalar_t* p,
                                              const scalar_t* t, int64_t n) {
  scalar_t sum = 0;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const scalar_t d = p[i] - t[i];
    sum += kSquare ? d * d : (d < scalar_t(0) ? -d : d);
  }
  sum = block_sum(sum);
  if (threadIdx.x == 0) partial[blockIdx.x] = sum;
}

// Pass 2: loss[0] = sum(partial) / n, one block.
template <typename scalar_t>
__global__ void pointwise_loss_finish_kernel(scalar_t* loss, const scalar_t* partial,
                                             int64_t parts, int64_t n) {
  scalar_t sum = 0;
  for (int64_t i = threadIdx.x; i < parts; i += blockDim.x) sum += partial[i];
  sum = block_sum(sum);
  if (threadIdx.x == 0) loss[0] = sum / static_cast<scalar_t>(n);
}

template <typename scalar_t>
__global__ void l1_loss_backward_kernel(scalar_t* d, const scalar_t* p, const scalar_t* t,
                                        scalar_t g, int64_t n) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const scalar_t diff = p[i] - t[i];
    d[i] = diff > scalar_t(0) ? g : (diff < scalar_t(0) ? -g : scalar_t(0));
  }
}

template <typename scalar_t>
__global__ void mse_loss_backward_kernel(scalar_t* d, const scalar_t* p, const scalar_t* t,
                                         scalar_t g, int64_t n) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x)
    d[i] = g * (p[i] - t[i]);
}

template <typename scalar_t, bool kSquare>
void pointwise_loss_forward(Tensor& loss, const Tensor& pred, const Tensor& target) {
  const int64_t n = pred.numel();
  if (n == 0) {  // the mean over nothing is 0, as the CPU reference
    LAPIS_CUDA_CHECK(cudaMemsetAsync(loss.raw_data(), 0, loss.nbytes(), stream()));
    return;
  }
  int64_t parts = (n + kBlock * 4 - 1) / (kBlock * 4);
  if (parts > kMaxPartials) parts = kMaxPartials;
  Tensor partial = Tensor::empty({parts}, dtype_of<scalar_t>(), pred.device());
  pointwise_loss_forward_kernel<scalar_t, kSquare>
      <<<static_cast<unsigned>(parts), kBlock, 0, stream()>>>(
          partial.data<scalar_t>(), pred.data<scalar_t>(), target.data<scalar_t>(), n);
  LAPIS_CUDA_CHECK(cudaGetLastError());
  pointwise_loss_finish_kernel<scalar_t><<<1, kFinalBlock, 0, stream()>>>(
      loss.data<scalar_t>(), partial.data<scalar_t>(), parts, n);
  LAPIS_CUDA_CHECK(cudaGetLastError());
}

// One warp per row of logits [N, K]: probs = softmax(row); row_loss[i] = w[y_i] * nll_i and
// row_weight[i] = w[y_i]. A bad label is reported and its row contributes 0 to both.
constexpr int kRowsPerBlock = kBlock / 32;
template <typename scalar_t, typename index_t>
__global__ void cross_entropy_forward_kernel(scalar_t* probs, scalar_t* row_loss,
                                             scalar_t* row_weight, const scalar_t* logits,
                                             const index_t* labels, const scalar_t* weights,
                                             int64_t N, int64_t K, int* error_flag) {
  const int lane = threadIdx.x & 31;
  const int64_t i = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + (threadIdx.x >> 5);
  if (i >= N) return;  // the whole warp leaves together
  const scalar_t* row = logits + i * K;
  scalar_t m = -INFINITY;
  for (int64_t k = lane; k < K; k += 32) m = max(m, row[k]);
  m = warp_all_max(m);
  scalar_t sum = 0;
  for (int64_t k = lane; k < K; k += 32) sum += dev_exp(row[k] - m);
  sum = warp_all_sum(sum);
  const scalar_t inv = scalar_t(1) / sum;
  for (int64_t k = lane; k < K; k += 32) probs[i * K + k] = dev_exp(row[k] - m) * inv;
  if (lane == 0) {
    const int64_t y = static_cast<int64_t>(labels[i]);
    if (y < 0 || y >= K) {
      report_device_error(error_flag, kLabelOutOfRange);
      row_loss[i] = 0;
      row_weight[i] = 0;
    } else {
      const scalar_t w = weights ? weights[y] : scalar_t(1);
      row_loss[i] = w * (dev_log(sum) - (row[y] - m));
      row_weight[i] = w;
    }
  }
}

// loss[0] = sum(row_loss) / sum(row_weight); weight_sum[0] = sum(row_weight). One block.
template <typename scalar_t>
__global__ void cross_entropy_finish_kernel(scalar_t* loss, scalar_t* weight_sum,
                                            const scalar_t* row_loss,
                                            const scalar_t* row_weight, int64_t N) {
  scalar_t l = 0, w = 0;
  for (int64_t i = threadIdx.x; i < N; i += blockDim.x) {
    l += row_loss[i];
    w += row_weight[i];
  }
  l = block_sum(l);
  w = block_sum(w);
  if (threadIdx.x == 0) {
    loss[0] = l / w;
    weight_sum[0] = w;
  }
}

// dL_dlogits[i, k] = g * w[y_i] * (probs[i, k] - [k == y_i]) / weight_sum, g = dL_dloss.
template <typename scalar_t, typename index_t>
__global__ void cross_entropy_backward_kernel(scalar_t* d, const scalar_t* probs,
                                              const scalar_t* weight_sum, const index_t* labels,
                                              const scalar_t* weights, scalar_t g, int64_t N,
                                              int64_t K, int* error_flag) {
  const int64_t n = N * K;
  for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < n;
       idx += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const int64_t i = idx / K, k = idx - i * K;
    const int64_t y = static_cast<int64_t>(labels[i]);
    if (y < 0 || y >= K) {
      if (k == 0) report_device_error(error_flag, kLabelOutOfRange);
      d[idx] = 0;
      continue;
    }
    const scalar_t w = weights ? weights[y] : scalar_t(1);
    const scalar_t onehot = k == y ? scalar_t(1) : scalar_t(0);
    d[idx] = g * w * (probs[idx] - onehot) / weight_sum[0];
  }
}

}  // namespace

void l1_loss_forward(Tensor& loss, const Tensor& pred, const Tensor& target) {
  LAPIS_DISPATCH_FLOAT(pred.dtype(), "l1_loss_forward", [&] {
    pointwise_loss_forward<scalar_t, false>(loss, pred, target);
  });
}

void l1_loss_backward(Tensor& dL_dpred, double dL_dloss, const Tensor& pred,
                      const Tensor& target) {
  LAPIS_DISPATCH_FLOAT(pred.dtype(), "l1_loss_backward", [&] {
    const int64_t n = pred.numel();
    const scalar_t g = static_cast<scalar_t>(dL_dloss / static_cast<double>(n));
    LAPIS_LAUNCH(l1_loss_backward_kernel<scalar_t>, n, kBlock, dL_dpred.data<scalar_t>(),
                 pred.data<scalar_t>(), target.data<scalar_t>(), g, n);
  });
}

void mse_loss_forward(Tensor& loss, const Tensor& pred, const Tensor& target) {
  LAPIS_DISPATCH_FLOAT(pred.dtype(), "mse_loss_forward", [&] {
    pointwise_loss_forward<scalar_t, true>(loss, pred, target);
  });
}

void mse_loss_backward(Tensor& dL_dpred, double dL_dloss, const Tensor& pred,
                       const Tensor& target) {
  LAPIS_DISPATCH_FLOAT(pred.dtype(), "mse_loss_backward", [&] {
    const int64_t n = pred.numel();
    const scalar_t g = static_cast<scalar_t>(2.0 * dL_dloss / static_cast<double>(n));
    LAPIS_LAUNCH(mse_loss_backward_kernel<scalar_t>, n, kBlock, dL_dpred.data<scalar_t>(),
                 pred.data<scalar_t>(), target.data<scalar_t>(), g, n);
  });
}

void cross_entropy_forward(Tensor& loss, CrossEntropyCache& cache, const Tensor& logits,
                           const Tensor& labels, const Tensor& class_weights) {
  const int64_t N = logits.size(0), K = logits.size(1);
  if (N == 0) {  // loss 0 and weight_sum 0, as the CPU reference
    LAPIS_CUDA_CHECK(cudaMemsetAsync(loss.raw_data(), 0, loss.nbytes(), stream()));
    LAPIS_CUDA_CHECK(
        cudaMemsetAsync(cache.weight_sum.raw_data(), 0, cache.weight_sum.nbytes(), stream()));
    return;
  }
  LAPIS_DISPATCH_FLOAT(logits.dtype(), "cross_entropy_forward", [&] {
    LAPIS_DISPATCH_INDEX(labels.dtype(), "cross_entropy_forward", [&] {
      Tensor rows = Tensor::empty({2, N}, logits.dtype(), logits.device());  // loss, weight
      scalar_t* row_loss = rows.data<scalar_t>();
      scalar_t* row_weight = row_loss + N;
      const scalar_t* w = class_weights.defined() ? class_weights.data<scalar_t>() : nullptr;
      const int64_t blocks = (N + kRowsPerBlock - 1) / kRowsPerBlock;
      LAPIS_CHECK(blocks <= 2147483647, "cross_entropy_forward", "too many rows: ", N);
      cross_entropy_forward_kernel<scalar_t, index_t>
          <<<static_cast<unsigned>(blocks), kBlock, 0, stream()>>>(
              cache.probs.data<scalar_t>(), row_loss, row_weight, logits.data<scalar_t>(),
              labels.data<index_t>(), w, N, K, device_error_flag());
      LAPIS_CUDA_CHECK(cudaGetLastError());
      cross_entropy_finish_kernel<scalar_t><<<1, kFinalBlock, 0, stream()>>>(
          loss.data<scalar_t>(), cache.weight_sum.data<scalar_t>(), row_loss, row_weight, N);
      LAPIS_CUDA_CHECK(cudaGetLastError());
    });
  });
}

void cross_entropy_backward(Tensor& dL_dlogits, double dL_dloss, const CrossEntropyCache& cache,
                            const Tensor& labels, const Tensor& class_weights) {
  const int64_t N = dL_dlogits.size(0), K = dL_dlogits.size(1);
  if (N * K == 0) return;
  LAPIS_DISPATCH_FLOAT(dL_dlogits.dtype(), "cross_entropy_backward", [&] {
    LAPIS_DISPATCH_INDEX(labels.dtype(), "cross_entropy_backward", [&] {
      const scalar_t* w = class_weights.defined() ? class_weights.data<scalar_t>() : nullptr;
      auto* kernel = cross_entropy_backward_kernel<scalar_t, index_t>;  // no comma in the macro
      LAPIS_LAUNCH(kernel, N * K, kBlock,
                   dL_dlogits.data<scalar_t>(), cache.probs.data<scalar_t>(),
                   cache.weight_sum.data<scalar_t>(), labels.data<index_t>(), w,
                   static_cast<scalar_t>(dL_dloss), N, K, device_error_flag());
    });
  });
}

}  // namespace cuda
}  // namespace lapis
