#include "kernels/segment_softmax.h"

#include "core/cuda_api.h"
#include "kernels/cpu/graph_ops_cpu.h"
#include "kernels/cuda/graph_ops_cuda.h"
#include "kernels/graph_view.h"  // check_graph_operand

namespace lapis {

namespace {

// score [E,H] floating; in_ptr i32 [N+1] on score's device, values checked on the CPU.
void check_inputs(const char* op, const char* name, const Tensor& score, const Tensor& in_ptr) {
  check_defined(op, name, score);
  check_floating(op, name, score);
  check_dim(op, name, score, 2);
  check_defined(op, "in_ptr", in_ptr);
  check_dtype(op, "in_ptr", in_ptr, Dtype::I32);
  check_dim(op, "in_ptr", in_ptr, 1);
  LAPIS_CHECK(in_ptr.numel() >= 1, op, "in_ptr must have N + 1 >= 1 entries, got ",
              in_ptr.describe());
  check_same_device(op, name, score, "in_ptr", in_ptr);
  if (in_ptr.device().is_cpu()) {  // CUDA kernels report bad pointers on the device
    const int32_t* p = in_ptr.data<int32_t>();
    const int64_t n = in_ptr.numel() - 1, e = score.size(0);
    LAPIS_CHECK(p[0] == 0 && p[n] == e, op, "in_ptr must start at 0 and end at E = ", e,
                ", got ", p[0], " .. ", p[n], " (", name, " ", score.describe(), ")");
    for (int64_t i = 0; i < n; ++i) {
      LAPIS_CHECK(p[i] <= p[i + 1], op, "in_ptr decreases at ", i, ": ", p[i], " > ", p[i + 1]);
    }
  }
}

}  // namespace

void segment_softmax_forward(Tensor& alpha, const Tensor& score, const Tensor& in_ptr,
                             int64_t max_segment_length) {
  const char* op = "segment_softmax_forward";
  check_inputs(op, "score", score, in_ptr);
  check_like(op, "alpha", alpha, score.shape(), "score", score);
  if (score.numel() == 0) return;
  switch (score.device().type) {
    case DeviceType::CPU: cpu::segment_softmax_forward(alpha, score, in_ptr, true); break;
    case DeviceType::CUDA:
      LAPIS_CUDA_CALL(cuda::segment_softmax_forward, alpha, score, in_ptr, max_segment_length);
      break;
  }
}

void segment_softmax_backward(Tensor& dL_dscore, const Tensor& dL_dalpha, const Tensor& alpha,
                              const Tensor& in_ptr, int64_t max_segment_length) {
  const char* op = "segment_softmax_backward";
  check_inputs(op, "alpha", alpha, in_ptr);
  check_like(op, "dL_dalpha", dL_dalpha, alpha.shape(), "alpha", alpha);
  check_like(op, "dL_dscore", dL_dscore, alpha.shape(), "alpha", alpha);
  if (alpha.numel() == 0) return;
  switch (alpha.device().type) {
    case DeviceType::CPU:
      cpu::segment_softmax_backward(dL_dscore, dL_dalpha, alpha, in_ptr, true);
      break;
    case DeviceType::CUDA:
      LAPIS_CUDA_CALL(cuda::segment_softmax_backward, dL_dscore, dL_dalpha, alpha, in_ptr,
                      max_segment_length);
      break;
  }
}

}  // namespace lapis
