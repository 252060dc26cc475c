// CUDA BatchNorm, LayerNorm and RMSNorm over x [N, C] (host-only declarations; kernels/norm.h).
// Column reductions (BatchNorm statistics, parameter gradients) split the rows into slices and
// finish in the last block of each 32-channel tile to arrive, in one launch and in a fixed order
// (deterministic); LayerNorm and RMSNorm use one warp per row. Launches per call: BatchNorm
// training forward and backward 1 each where the grid fits on the GPU at once (a cooperative
// kernel with a grid-wide sync between the statistics and the element-wise pass; same
// partition and summation order, so the same statistics bits), else 2; eval 1; LayerNorm and
// RMSNorm forward 1, backward 2.
#pragma once

#include "core/tensor.h"
#include "kernels/norm.h"

#include <vector>

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

// Several independent training BatchNorms (none reads another's output) in as few cooperative
// launches as fit on the GPU at once (up to 4 per launch): the node and edge norms of a
// graph-transformer layer cost one launch.
struct BatchNormForwardCall {
  Tensor out;
  BatchNormCache cache;
  Tensor running_mean, running_var, x, weight, bias;
  double momentum, eps;
};
void batchnorm_forward_train_batch(const std::vector<BatchNormForwardCall>& calls);
struct BatchNormBackwardCall {
  Tensor dL_dx, dL_dweight, dL_dbias, dL_dout, x, weight;
  BatchNormCache cache;  // training statistics
};
void batchnorm_backward_train_batch(const std::vector<BatchNormBackwardCall>& calls);

// Allows (default) or forbids the single-launch cooperative BatchNorm kernels; forbidding them
// runs the two-launch path everywhere (tests compare the two).
void set_batchnorm_single_launch(bool allow);

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
