#include "kernels/launch_batch.h"

#include <vector>

#include "core/cuda_api.h"

namespace lapis {
namespace {

struct BatchQueue {
  bool active = false;
  std::vector<cuda::LinearForwardCall> linear_forward;
  std::vector<cuda::InputGradCall> input_grad;
  std::vector<cuda::BatchNormForwardCall> bn_forward;
  std::vector<cuda::BatchNormBackwardCall> bn_backward;
  void clear() {
    linear_forward.clear();
    input_grad.clear();
    bn_forward.clear();
    bn_backward.clear();
  }
};
thread_local BatchQueue t_batch;

// Calls of one dtype per launch, in queue order.
template <typename Call, typename Launch>
void launch_by_dtype(std::vector<Call>& calls, Dtype (*dtype_of_call)(const Call&),
                     Launch launch) {
  for (Dtype dtype : {Dtype::F32, Dtype::F64}) {
    std::vector<Call> same;
    for (const Call& c : calls) {
      if (dtype_of_call(c) == dtype) same.push_back(c);
    }
    if (!same.empty()) launch(same);
  }
}

Dtype forward_dtype(const cuda::LinearForwardCall& c) { return c.x.dtype(); }
Dtype input_grad_dtype(const cuda::InputGradCall& c) { return c.dL_dx.dtype(); }
Dtype bn_forward_dtype(const cuda::BatchNormForwardCall& c) { return c.x.dtype(); }
Dtype bn_backward_dtype(const cuda::BatchNormBackwardCall& c) { return c.x.dtype(); }

}  // namespace

LaunchBatch::LaunchBatch() : owner_(!t_batch.active) {
  if (owner_) {
    t_batch.clear();
    t_batch.active = true;
  }
}

LaunchBatch::~LaunchBatch() {
  if (owner_ && t_batch.active) {
    t_batch.active = false;
    t_batch.clear();
  }
}

void LaunchBatch::run() {
  if (!owner_ || !t_batch.active) return;
  t_batch.active = false;
  std::vector<cuda::LinearForwardCall> forward;
  std::vector<cuda::InputGradCall> input_grad;
  std::vector<cuda::BatchNormForwardCall> bn_forward;
  std::vector<cuda::BatchNormBackwardCall> bn_backward;
  forward.swap(t_batch.linear_forward);
  input_grad.swap(t_batch.input_grad);
  bn_forward.swap(t_batch.bn_forward);
  bn_backward.swap(t_batch.bn_backward);
  launch_by_dtype(forward, forward_dtype, [](const std::vector<cuda::LinearForwardCall>& c) {
    LAPIS_CUDA_CALL(cuda::linear_forward_fused_batch, c);
  });
  launch_by_dtype(input_grad, input_grad_dtype, [](const std::vector<cuda::InputGradCall>& c) {
    LAPIS_CUDA_CALL(cuda::input_grad_fused_batch, c);
  });
  launch_by_dtype(bn_forward, bn_forward_dtype,
                  [](const std::vector<cuda::BatchNormForwardCall>& c) {
                    LAPIS_CUDA_CALL(cuda::batchnorm_forward_train_batch, c);
                  });
  launch_by_dtype(bn_backward, bn_backward_dtype,
                  [](const std::vector<cuda::BatchNormBackwardCall>& c) {
                    LAPIS_CUDA_CALL(cuda::batchnorm_backward_train_batch, c);
                  });
}

namespace detail {

namespace {

// Appends call to a list of the active batch; false (nothing queued) when no batch is active.
template <typename Call>
bool queue_into(std::vector<Call>& list, const Call& call) {
  if (!t_batch.active) return false;
  list.push_back(call);
  return true;
}

}  // namespace

bool queue_linear_forward(const cuda::LinearForwardCall& call) {
  return queue_into(t_batch.linear_forward, call);
}

bool queue_input_grad(const cuda::InputGradCall& call) {
  return queue_into(t_batch.input_grad, call);
}

bool queue_batchnorm_forward(const cuda::BatchNormForwardCall& call) {
  return queue_into(t_batch.bn_forward, call);
}

bool queue_batchnorm_backward(const cuda::BatchNormBackwardCall& call) {
  return queue_into(t_batch.bn_backward, call);
}

}  // namespace detail
}  // namespace lapis
