#include "kernels/cpu/loss_cpu.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace lapis {
namespace cpu {
namespace {

// Labels [N] as int64, each checked to lie in [0, K).
std::vector<int64_t> checked_labels(const char* op, const Tensor& labels, int64_t K) {
  std::vector<int64_t> y = labels.to(Dtype::I64).to_vector<int64_t>();
  for (size_t i = 0; i < y.size(); ++i) {
    LAPIS_CHECK(y[i] >= 0 && y[i] < K, op, "label ", y[i], " in row ", i, " is outside [0, ",
                K, ") (logits have ", K, " classes)");
  }
  return y;
}

// Weight of class c: class_weights[c], or 1 when class_weights is undefined.
template <typename scalar_t>
double class_weight(const Tensor& class_weights, int64_t c) {
  return class_weights.defined() ? static_cast<double>(class_weights.data<scalar_t>()[c]) : 1.0;
}

}  // namespace

void l1_loss_forward(Tensor& loss, const Tensor& pred, const Tensor& target) {
  LAPIS_DISPATCH_FLOAT(pred.dtype(), "l1_loss_forward", [&] {
    const scalar_t* p = pred.data<scalar_t>();
    const scalar_t* t = target.data<scalar_t>();
    const int64_t n = pred.numel();
    double sum = 0;
    for (int64_t i = 0; i < n; ++i) sum += std::abs(static_cast<double>(p[i]) - t[i]);
    loss.data<scalar_t>()[0] = static_cast<scalar_t>(n == 0 ? 0.0 : sum / n);  // empty: 0
  });
}

void l1_loss_backward(Tensor& dL_dpred, double dL_dloss, const Tensor& pred,
                      const Tensor& target) {
  LAPIS_DISPATCH_FLOAT(pred.dtype(), "l1_loss_backward", [&] {
    const scalar_t* p = pred.data<scalar_t>();
    const scalar_t* t = target.data<scalar_t>();
    scalar_t* d = dL_dpred.data<scalar_t>();
    const int64_t n = pred.numel();
    const scalar_t g = static_cast<scalar_t>(dL_dloss / static_cast<double>(n));
    for (int64_t i = 0; i < n; ++i) {
      const scalar_t diff = p[i] - t[i];
      d[i] = diff > scalar_t(0) ? g : (diff < scalar_t(0) ? -g : scalar_t(0));
    }
  });
}

void mse_loss_forward(Tensor& loss, const Tensor& pred, const Tensor& target) {
  LAPIS_DISPATCH_FLOAT(pred.dtype(), "mse_loss_forward", [&] {
    const scalar_t* p = pred.data<scalar_t>();
    const scalar_t* t = target.data<scalar_t>();
    const int64_t n = pred.numel();
    double sum = 0;
    for (int64_t i = 0; i < n; ++i) {
      const double diff = static_cast<double>(p[i]) - t[i];
      sum += diff * diff;
    }
    loss.data<scalar_t>()[0] = static_cast<scalar_t>(n == 0 ? 0.0 : sum / n);
  });
}

void mse_loss_backward(Tensor& dL_dpred, double dL_dloss, const Tensor& pred,
                       const Tensor& target) {
  LAPIS_DISPATCH_FLOAT(pred.dtype(), "mse_loss_backward", [&] {
    const scalar_t* p = pred.data<scalar_t>();
    const scalar_t* t = target.data<scalar_t>();
    scalar_t* d = dL_dpred.data<scalar_t>();
    const int64_t n = pred.numel();
    const scalar_t g = static_cast<scalar_t>(2.0 * dL_dloss / static_cast<double>(n));
    for (int64_t i = 0; i < n; ++i) d[i] = g * (p[i] - t[i]);
  });
}

void cross_entropy_forward(Tensor& loss, CrossEntropyCache& cache, const Tensor& logits,
                           const Tensor& labels, const Tensor& class_weights) {
  const int64_t N = logits.size(0), K = logits.size(1);
  const std::vector<int64_t> y = checked_labels("cross_entropy_forward", labels, K);
  LAPIS_DISPATCH_FLOAT(logits.dtype(), "cross_entropy_forward", [&] {
    const scalar_t* x = logits.data<scalar_t>();
    scalar_t* probs = cache.probs.data<scalar_t>();
    double total = 0, weight_sum = 0;
    for (int64_t i = 0; i < N; ++i) {
      const scalar_t* row = x + i * K;
      double m = row[0];
      for (int64_t k = 1; k < K; ++k) m = std::max(m, static_cast<double>(row[k]));
      double sum = 0;
      for (int64_t k = 0; k < K; ++k) sum += std::exp(row[k] - m);
      for (int64_t k = 0; k < K; ++k)
        probs[i * K + k] = static_cast<scalar_t>(std::exp(row[k] - m) / sum);
      // -log softmax(row)[y] = log(sum) - (row[y] - m).
      const double nll = std::log(sum) - (row[y[i]] - m);
      const double w = class_weight<scalar_t>(class_weights, y[i]);
      total += w * nll;
      weight_sum += w;
    }
    // As torch: sum_i w_i nll_i / sum_i w_i (0/0 = NaN when all weights are 0), but 0 for N == 0.
    loss.data<scalar_t>()[0] = static_cast<scalar_t>(N == 0 ? 0.0 : total / weight_sum);
    cache.weight_sum.data<scalar_t>()[0] = static_cast<scalar_t>(weight_sum);
  });
}

void cross_entropy_backward(Tensor& dL_dlogits, double dL_dloss, const CrossEntropyCache& cache,
                            const Tensor& labels, const Tensor& class_weights) {
  const int64_t N = dL_dlogits.size(0), K = dL_dlogits.size(1);
  const std::vector<int64_t> y = checked_labels("cross_entropy_backward", labels, K);
  LAPIS_DISPATCH_FLOAT(dL_dlogits.dtype(), "cross_entropy_backward", [&] {
    const scalar_t* probs = cache.probs.data<scalar_t>();
    scalar_t* d = dL_dlogits.data<scalar_t>();
    if (N == 0) return;
    const double weight_sum = static_cast<double>(cache.weight_sum.data<scalar_t>()[0]);
    for (int64_t i = 0; i < N; ++i) {
      const double g = dL_dloss * class_weight<scalar_t>(class_weights, y[i]) / weight_sum;
      for (int64_t k = 0; k < K; ++k) {
        const double onehot = k == y[i] ? 1.0 : 0.0;
        d[i * K + k] = static_cast<scalar_t>(g * (probs[i * K + k] - onehot));
      }
    }
  });
}

}  // namespace cpu
}  // namespace lapis
