// Losses. Each forward writes a one-element tensor loss [1] on the inputs' device (no host
// synchronisation); each backward takes the upstream gradient dL_dloss as a host number (1 for
// a plain training loss) and overwrites the prediction gradient.
#pragma once

#include "core/tensor.h"

namespace lapis {

// Mean absolute error over all elements: loss = mean |pred - target|; pred, target same shape.
// The derivative at pred == target is taken as 0 (as torch.sign).
void l1_loss_forward(Tensor& loss, const Tensor& pred, const Tensor& target);
void l1_loss_backward(Tensor& dL_dpred, double dL_dloss, const Tensor& pred,
                      const Tensor& target);

// Mean squared error over all elements.
void mse_loss_forward(Tensor& loss, const Tensor& pred, const Tensor& target);
void mse_loss_backward(Tensor& dL_dpred, double dL_dloss, const Tensor& pred,
                       const Tensor& target);

struct CrossEntropyCache {
  Tensor probs;       // [N, K] softmax of the logits
  Tensor weight_sum;  // [1]   sum over rows of class_weight[label] (N when unweighted)
};
// Weighted cross-entropy as torch.nn.functional.cross_entropy(weight=w, reduction='mean'):
// loss = sum_i w[y_i] * -log softmax(logits_i)[y_i] / sum_i w[y_i].
// logits [N, K]; labels [N] (i32/i64, each in [0, K)); class_weights [K] or undefined (all 1).
// cache tensors are allocated by the caller: probs [N, K], weight_sum [1], logits' dtype.
// N == 0 gives loss 0.
void cross_entropy_forward(Tensor& loss, CrossEntropyCache& cache, const Tensor& logits,
                           const Tensor& labels, const Tensor& class_weights);
// dL_dlogits [N, K] = dL_dloss * w[y_i] * (probs_i - onehot(y_i)) / weight_sum.
void cross_entropy_backward(Tensor& dL_dlogits, double dL_dloss, const CrossEntropyCache& cache,
                            const Tensor& labels, const Tensor& class_weights);

}  // namespace lapis
