#include "kernels/elementwise.h"

#include "core/cuda_api.h"
#include "kernels/cpu/elementwise_cpu.h"
#include "kernels/cuda/elementwise_cuda.h"

namespace lapis {

void add(Tensor& out, const Tensor& a, const Tensor& b) {
  check_floating("add", "a", a);
  check_like("add", "b", b, "a", a);
  check_like("add", "out", out, "a", a);
  if (out.is_cuda()) LAPIS_CUDA_CALL(cuda::add, out, a, b);
  else cpu::add(out, a, b);
}

void axpy(Tensor& y, double alpha, const Tensor& x) {
  check_floating("axpy", "x", x);
  check_like("axpy", "y", y, "x", x);
  if (y.is_cuda()) LAPIS_CUDA_CALL(cuda::axpy, y, alpha, x);
  else cpu::axpy(y, alpha, x);
}

void scale(Tensor& out, const Tensor& x, double alpha) {
  check_floating("scale", "x", x);
  check_like("scale", "out", out, "x", x);
  if (out.is_cuda()) LAPIS_CUDA_CALL(cuda::scale, out, x, alpha);
  else cpu::scale(out, x, alpha);
}

void bias_add_forward(Tensor& out, const Tensor& x, const Tensor& bias, const Tensor& residual) {
  const char* op = "bias_add_forward";
  check_floating(op, "x", x);
  check_dim(op, "x", x, 2);
  check_like(op, "out", out, "x", x);
  check_defined(op, "bias", bias);
  LAPIS_CHECK(bias.dim() == 1 && bias.size(0) == x.size(1), op, "bias must have shape [",
              x.size(1), "] for x ", x.describe(), ", got ", bias.describe());
  check_dtype(op, "bias", bias, x.dtype());
  check_same_device(op, "bias", bias, "x", x);
  if (residual.defined()) check_like(op, "residual", residual, "x", x);
  if (out.is_cuda()) LAPIS_CUDA_CALL(cuda::bias_add_forward, out, x, bias, residual);
  else cpu::bias_add_forward(out, x, bias, residual);
}

void bias_add_backward(Tensor& dL_dbias, const Tensor& dL_dout) {
  const char* op = "bias_add_backward";
  check_floating(op, "dL_dout", dL_dout);
  check_dim(op, "dL_dout", dL_dout, 2);
  check_defined(op, "dL_dbias", dL_dbias);
  LAPIS_CHECK(dL_dbias.dim() == 1 && dL_dbias.size(0) == dL_dout.size(1), op,
              "dL_dbias must have shape [", dL_dout.size(1), "] for dL_dout ",
              dL_dout.describe(), ", got ", dL_dbias.describe());
  check_dtype(op, "dL_dbias", dL_dbias, dL_dout.dtype());
  check_same_device(op, "dL_dbias", dL_dbias, "dL_dout", dL_dout);
  if (dL_dbias.is_cuda()) LAPIS_CUDA_CALL(cuda::bias_add_backward, dL_dbias, dL_dout);
  else cpu::bias_add_backward(dL_dbias, dL_dout);
}

const char* activation_name(Activation act) {
  switch (act) {
    case Activation::ReLU: return "relu";
    case Activation::GELU: return "gelu";
    case Activation::SiLU: return "silu";
  }
  return "?";
}

Activation parse_activation(const std::string& name) {
  if (name == "relu") return Activation::ReLU;
  if (name == "gelu") return Activation::GELU;
  if (name == "silu") return Activation::SiLU;
  LAPIS_FAIL("parse_activation", "unknown activation \"", name,
             "\" (expected relu, gelu or silu)");
}

void activation_forward(Tensor& out, const Tensor& x, Activation act) {
  const char* op = "activation_forward";
  check_floating(op, "x", x);
  check_like(op, "out", out, "x", x);
  LAPIS_CHECK(x.numel() == 0 || out.raw_data() != x.raw_data(), op,
              "out must not alias x (backward needs x), x ", x.describe());
  if (out.is_cuda()) LAPIS_CUDA_CALL(cuda::activation_forward, out, x, act);
  else cpu::activation_forward(out, x, act);
}

void activation_backward(Tensor& dL_dx, const Tensor& dL_dout, const Tensor& x, Activation act) {
  const char* op = "activation_backward";
  check_floating(op, "x", x);
  check_like(op, "dL_dout", dL_dout, "x", x);
  check_like(op, "dL_dx", dL_dx, "x", x);
  if (dL_dx.is_cuda()) LAPIS_CUDA_CALL(cuda::activation_backward, dL_dx, dL_dout, x, act);
  else cpu::activation_backward(dL_dx, dL_dout, x, act);
}

void dropout_forward(Tensor& out, Tensor& mask, const Tensor& x, double p, uint64_t seed,
                     uint64_t offset) {
  const char* op = "dropout_forward";
  LAPIS_CHECK(p >= 0.0 && p < 1.0, op, "p must be in [0, 1), got ", p);
  check_floating(op, "x", x);
  check_like(op, "out", out, "x", x);
  check_like(op, "mask", mask, "x", x);
  if (out.is_cuda()) LAPIS_CUDA_CALL(cuda::dropout_forward, out, mask, x, p, seed, offset);
  else cpu::dropout_forward(out, mask, x, p, seed, offset);
}

void dropout_backward(Tensor& dL_dx, const Tensor& dL_dout, const Tensor& mask) {
  const char* op = "dropout_backward";
  check_floating(op, "mask", mask);
  check_like(op, "dL_dout", dL_dout, "mask", mask);
  check_like(op, "dL_dx", dL_dx, "mask", mask);
  if (dL_dx.is_cuda()) LAPIS_CUDA_CALL(cuda::dropout_backward, dL_dx, dL_dout, mask);
  else cpu::dropout_backward(dL_dx, dL_dout, mask);
}

}  // namespace lapis
