#include "kernels/softmax.h"

#include "core/cuda_api.h"
#include "kernels/cpu/softmax_cpu.h"
#include "kernels/cuda/softmax_cuda.h"

namespace lapis {

void softmax_forward(Tensor& out, const Tensor& x) {
  const char* op = "softmax_forward";
  check_floating(op, "x", x);
  check_dim(op, "x", x, 2);
  check_like(op, "out", out, "x", x);
  if (x.is_cuda()) LAPIS_CUDA_CALL(cuda::softmax_forward, out, x);
  else cpu::softmax_forward(out, x);
}

void softmax_backward(Tensor& dL_dx, const Tensor& dL_dout, const Tensor& out) {
  const char* op = "softmax_backward";
  check_floating(op, "out", out);
  check_dim(op, "out", out, 2);
  check_like(op, "dL_dout", dL_dout, "out", out);
  check_like(op, "dL_dx", dL_dx, "out", out);
  if (out.is_cuda()) LAPIS_CUDA_CALL(cuda::softmax_backward, dL_dx, dL_dout, out);
  else cpu::softmax_backward(dL_dx, dL_dout, out);
}

}  // namespace lapis
