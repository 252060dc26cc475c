#include "kernels/loss.h"

#include "core/cuda_api.h"
#include "kernels/cpu/loss_cpu.h"
#include "kernels/cuda/loss_cuda.h"

namespace lapis {
namespace {


// loss must be a one-element [1] tensor of ref's dtype on ref's device.
void check_scalar(const char* op, const char* name, const Tensor& t, const Tensor& ref) {
  check_shape(op, name, t, {1});
  check_dtype(op, name, t, ref.dtype());
  check_same_device(op, name, t, "the inputs", ref);
}

void check_pointwise(const char* op, const Tensor& pred, const Tensor& target) {
  check_floating(op, "pred", pred);
  check_like(op, "target", target, "pred", pred);
}

// Checks logits [N, K], labels [N] and class_weights [K] (or undefined).
void check_classification(const char* op, const Tensor& logits, const Tensor& labels,
                          const Tensor& class_weights) {
  check_floating(op, "logits", logits);
  check_dim(op, "logits", logits, 2);
  const int64_t N = logits.size(0), K = logits.size(1);
  LAPIS_CHECK(N == 0 || K > 0, op, "logits must have at least one class, got ",
              logits.describe());
  check_index(op, "labels", labels);
  LAPIS_CHECK(labels.dim() == 1 && labels.size(0) == N, op, "labels must have shape [", N,
              "] for logits ", logits.describe(), ", got ", labels.describe());
  check_same_device(op, "labels", labels, "logits", logits);
  if (class_weights.defined()) {
    check_shape(op, "class_weights", class_weights, {K});
    check_dtype(op, "class_weights", class_weights, logits.dtype());
    check_same_device(op, "class_weights", class_weights, "logits", logits);
  }
}

}  // namespace

void l1_loss_forward(Tensor& loss, const Tensor& pred, const Tensor& target) {
  const char* op = "l1_loss_forward";
  check_pointwise(op, pred, target);
  check_scalar(op, "loss", loss, pred);
  if (pred.is_cuda()) LAPIS_CUDA_CALL(cuda::l1_loss_forward, loss, pred, target);
  else cpu::l1_loss_forward(loss, pred, target);
}

void l1_loss_backward(Tensor& dL_dpred, double dL_dloss, const Tensor& pred,
                      const Tensor& target) {
  const char* op = "l1_loss_backward";
  check_pointwise(op, pred, target);
  check_like(op, "dL_dpred", dL_dpred, "pred", pred);
  if (pred.is_cuda()) LAPIS_CUDA_CALL(cuda::l1_loss_backward, dL_dpred, dL_dloss, pred, target);
  else cpu::l1_loss_backward(dL_dpred, dL_dloss, pred, target);
}

void mse_loss_forward(Tensor& loss, const Tensor& pred, const Tensor& target) {
  const char* op = "mse_loss_forward";
  check_pointwise(op, pred, target);
  check_scalar(op, "loss", loss, pred);
  if (pred.is_cuda()) LAPIS_CUDA_CALL(cuda::mse_loss_forward, loss, pred, target);
  else cpu::mse_loss_forward(loss, pred, target);
}

void mse_loss_backward(Tensor& dL_dpred, double dL_dloss, const Tensor& pred,
                       const Tensor& target) {
  const char* op = "mse_loss_backward";
  check_pointwise(op, pred, target);
  check_like(op, "dL_dpred", dL_dpred, "pred", pred);
  if (pred.is_cuda()) LAPIS_CUDA_CALL(cuda::mse_loss_backward, dL_dpred, dL_dloss, pred, target);
  else cpu::mse_loss_backward(dL_dpred, dL_dloss, pred, target);
}

void cross_entropy_forward(Tensor& loss, CrossEntropyCache& cache, const Tensor& logits,
                           const Tensor& labels, const Tensor& class_weights) {
  const char* op = "cross_entropy_forward";
  check_classification(op, logits, labels, class_weights);
  check_scalar(op, "loss", loss, logits);
  check_like(op, "cache.probs", cache.probs, "logits", logits);
  check_scalar(op, "cache.weight_sum", cache.weight_sum, logits);
  if (logits.is_cuda()) {
    LAPIS_CUDA_CALL(cuda::cross_entropy_forward, loss, cache, logits, labels, class_weights);
  } else {
    cpu::cross_entropy_forward(loss, cache, logits, labels, class_weights);
  }
}

void cross_entropy_backward(Tensor& dL_dlogits, double dL_dloss, const CrossEntropyCache& cache,
                            const Tensor& labels, const Tensor& class_weights) {
  const char* op = "cross_entropy_backward";
  check_floating(op, "cache.probs", cache.probs);
  check_classification(op, cache.probs, labels, class_weights);
  check_like(op, "dL_dlogits", dL_dlogits, "cache.probs", cache.probs);
  check_scalar(op, "cache.weight_sum", cache.weight_sum, cache.probs);
  if (dL_dlogits.is_cuda()) {
    LAPIS_CUDA_CALL(cuda::cross_entropy_backward, dL_dlogits, dL_dloss, cache, labels,
                    class_weights);
  } else {
    cpu::cross_entropy_backward(dL_dlogits, dL_dloss, cache, labels, class_weights);
  }
}

}  // namespace lapis
