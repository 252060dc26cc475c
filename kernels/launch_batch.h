// Launch batching for independent ops, such as the node and edge branches of a graph-transformer
// layer. At graph-transformer sizes (a few thousand rows, C = 64) each kernel is latency-bound
// and leaves most of the GPU idle, so two independent products in one launch cost about as much
// as one.
//
// While a LaunchBatch is active on its thread (from construction until run()), the fused CUDA
// paths of linear_forward and of linear_backward's input gradient, and CUDA BatchNorm training
// forward and backward, queue their work instead of launching it; run() launches the queued
// calls of each kind together (up to 4 products, or 4 BatchNorms, per launch). The queued ops must be independent: none may read another's output, and nothing may
// read their outputs before run(). Everything else (CPU, large inputs, other ops) runs at once as
// usual. A batch created while another is active is inactive (its run() does nothing; the outer
// one launches). The destructor drops queued work that was not run (after an exception).
#pragma once

#include "kernels/cuda/linear_cuda.h"
#include "kernels/cuda/norm_cuda.h"

namespace lapis {

class LaunchBatch {
 public:
  LaunchBatch();
  ~LaunchBatch();
  LaunchBatch(const LaunchBatch&) = delete;
  LaunchBatch& operator=(const LaunchBatch&) = delete;
  void run();

 private:
  bool owner_;
};

namespace detail {
// Queue a call in the active batch; false (nothing queued) when no batch is active.
bool queue_linear_forward(const cuda::LinearForwardCall& call);
bool queue_input_grad(const cuda::InputGradCall& call);
bool queue_batchnorm_forward(const cuda::BatchNormForwardCall& call);
bool queue_batchnorm_backward(const cuda::BatchNormBackwardCall& call);
}  // namespace detail

}  // namespace lapis
