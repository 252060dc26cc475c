// CPU reference for the losses (kernels/loss.h). Arguments are checked by the dispatch in
// kernels/loss.cpp, except labels' range, which only the backends can see.
#pragma once

#include "core/tensor.h"
#include "kernels/loss.h"

namespace lapis {
namespace cpu {

void l1_loss_forward(Tensor& loss, const Tensor& pred, const Tensor& target);
void l1_loss_backward(Tensor& dL_dpred, double dL_dloss, const Tensor& pred,
                      const Tensor& target);
void mse_loss_forward(Tensor& loss, const Tensor& pred, const Tensor& target);
void mse_loss_backward(Tensor& dL_dpred, double dL_dloss, const Tensor& pred,
                       const Tensor& target);
// Throws lapis::Error naming the label and its row when a label is outside [0, K).
void cross_entropy_forward(Tensor& loss, CrossEntropyCache& cache, const Tensor& logits,
                           const Tensor& labels, const Tensor& class_weights);
void cross_entropy_backward(Tensor& dL_dlogits, double dL_dloss, const CrossEntropyCache& cache,
                            const Tensor& labels, const Tensor& class_weights);

}  // namespace cpu
}  // namespace lapis
