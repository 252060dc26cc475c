// CUDA BatchNorm, LayerNorm and RMSNorm over x [N, C] (host-only declarations; kernels/norm.h).
// Column reductions (BatchNorm statistics, parameter gradients) split the rows into slices and
// finish in the last block of each 32-channel tile to arrive, in one launch and in a fixed order
// (deterministic); LayerNorm and RMSNorm use one warp per row. Launches per call: BatchNorm
// forward 2 (training) / 1 (eval), backward 2 (training) / 1 (eval); LayerNorm and RMSNorm
// forward 1, backward 2.
#pragma once

#include "core/tensor.h"
#include "kernels/norm.h"

namespace lapis {
namespace cuda {

void batchnorm_forward_train(Tensor& out, BatchNormCache& cache, Tensor& running_mean,
                             Tensor& running_var, const Tensor& x, const Tensor& weight,
                             const Tensor& bias, double momentum, double eps);
void batchnorm_forward_eval(Tensor& out, BatchNormCache& cache, const Tensor& x,
                            const Tensor& weight, const Tensor& bias, const Tensor& running_mean,
                            const Tensor& running_var, double eps);
void batchnorm_backward(Tensor& dL_dx, Tensor& dL_dweight, Tensor& dL_dbias,
                        const Tensor& dL_dout, const Tensor& x, const Tensor& weight,
                        const BatchNormCache& cache);

void layernorm_forward(Tensor& out, LayerNormCache& cache, const Tensor& x, const Tensor& weight,
                       const Tensor& bias, double eps);
void layernorm_backward(Tensor& dL_dx, Tensor& dL_dweight, Tensor& dL_dbias,
                        const Tensor& dL_dout, const Tensor& x, const Tensor& weight,
                        const LayerNormCache& cache);

void rmsnorm_forward(Tensor& out, RMSNormCache& cache, const Tensor& x, const Tensor& weight,
                     double eps);
void rmsnorm_backward(Tensor& dL_dx, Tensor& dL_dweight, const Tensor& dL_dout, const Tensor& x,
                      const Tensor& weight, const RMSNormCache& cache);

}  // namespace cuda
}  // namespace lapis
