// CUDA losses (host-only declarations, no CUDA types). Each forward writes loss [1] on the
// device without a host synchronisation. Arguments are checked by kernels/loss.cpp.
#pragma once

#include "core/tensor.h"
#include "kernels/loss.h"

namespace lapis {
namespace cuda {

void l1_loss_forward(Tensor& loss, const Tensor& pred, const Tensor& target);
void l1_loss_backward(Tensor& dL_dpred, double dL_dloss, const Tensor& pred,
                      const Tensor& target);
void mse_loss_forward(Tensor& loss, const Tensor& pred, const Tensor& target);
void mse_loss_backward(Tensor& dL_dpred, double dL_dloss, const Tensor& pred,
                       const Tensor& target);
// A label outside [0, K) is reported with report_device_error(kLabelOutOfRange) and thrown
// at the next host readback; that row contributes nothing (its gradient row is 0).
void cross_entropy_forward(Tensor& loss, CrossEntropyCache& cache, const Tensor& logits,
                           const Tensor& labels, const Tensor& class_weights);
void cross_entropy_backward(Tensor& dL_dlogits, double dL_dloss, const CrossEntropyCache& cache,
                            const Tensor& labels, const Tensor& class_weights);

}  // namespace cuda
}  // namespace lapis
