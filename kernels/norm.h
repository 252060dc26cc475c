// Normalisation layers over the channel axis of x [N, C]: BatchNorm (statistics over rows),
// LayerNorm and RMSNorm (statistics over each row's channels).
#pragma once

#include "core/tensor.h"

namespace lapis {

// What BatchNorm's backward needs. In training, mean/rstd are the batch statistics
// (rstd = 1 / sqrt(biased var + eps)); in eval they are the running statistics.
struct BatchNormCache {
  Tensor mean;  // [C]
  Tensor rstd;  // [C]
  bool training = true;
};

// Training mode, as torch.nn.BatchNorm1d: normalises with the batch mean and biased variance,
// then updates running_mean = (1 - momentum) * running_mean + momentum * mean and
// running_var likewise with the unbiased variance (N / (N - 1)). Needs N >= 2.
// out [N, C]; weight, bias, running_mean, running_var [C]. cache tensors are allocated by the
// caller with shape [C].
void batchnorm_forward_train(Tensor& out, BatchNormCache& cache, Tensor& running_mean,
                             Tensor& running_var, const Tensor& x, const Tensor& weight,
                             const Tensor& bias, double momentum, double eps);
// Eval mode: out = (x - running_mean) * rsqrt(running_var + eps) * weight + bias.
void batchnorm_forward_eval(Tensor& out, BatchNormCache& cache, const Tensor& x,
                            const Tensor& weight, const Tensor& bias, const Tensor& running_mean,
                            const Tensor& running_var, double eps);
// dL_dx (overwritten), dL_dweight += , dL_dbias += . Uses cache.training to pick the formula:
// training differentiates through the batch statistics, eval treats them as constants.
void batchnorm_backward(Tensor& dL_dx, Tensor& dL_dweight, Tensor& dL_dbias,
                        const Tensor& dL_dout, const Tensor& x, const Tensor& weight,
                        const BatchNormCache& cache);

struct LayerNormCache {
  Tensor mean;  // [N]
  Tensor rstd;  // [N]
};
// out [N, C] = (x - mean_row) * rstd_row * weight + bias, biased variance, as torch LayerNorm.
void layernorm_forward(Tensor& out, LayerNormCache& cache, const Tensor& x, const Tensor& weight,
                       const Tensor& bias, double eps);
void layernorm_backward(Tensor& dL_dx, Tensor& dL_dweight, Tensor& dL_dbias,
                        const Tensor& dL_dout, const Tensor& x, const Tensor& weight,
                        const LayerNormCache& cache);

struct RMSNormCache {
  Tensor rstd;  // [N] = 1 / sqrt(mean(x_row^2) + eps)
};
// out [N, C] = x * rstd_row * weight.
void rmsnorm_forward(Tensor& out, RMSNormCache& cache, const Tensor& x, const Tensor& weight,
                     double eps);
void rmsnorm_backward(Tensor& dL_dx, Tensor& dL_dweight, const Tensor& dL_dout, const Tensor& x,
                      const Tensor& weight, const RMSNormCache& cache);

}  // namespace lapis
