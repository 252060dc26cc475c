#include "kernels/adam.h"

#include "core/cuda_api.h"
#include "kernels/cpu/adam_cpu.h"
#include "kernels/cuda/adam_cuda.h"

namespace lapis {

void adam_step(Tensor& param, Tensor& m, Tensor& v, const Tensor& grad, const AdamHyper& hyper,
               int64_t step) {
  const char* op = "adam_step";
  check_floating(op, "param", param);
  check_shape(op, "m", m, param.shape());
  check_shape(op, "v", v, param.shape());
  check_shape(op, "grad", grad, param.shape());
  check_dtype(op, "m", m, param.dtype());
  check_dtype(op, "v", v, param.dtype());
  check_dtype(op, "grad", grad, param.dtype());
  check_same_device(op, "param", param, "m", m);
  check_same_device(op, "param", param, "v", v);
  check_same_device(op, "param", param, "grad", grad);
  LAPIS_CHECK(step >= 1, op, "step counts from 1, got ", step);
  LAPIS_CHECK(hyper.beta1 >= 0.0 && hyper.beta1 < 1.0, op, "beta1 must be in [0, 1), got ",
              hyper.beta1);
  LAPIS_CHECK(hyper.beta2 >= 0.0 && hyper.beta2 < 1.0, op, "beta2 must be in [0, 1), got ",
              hyper.beta2);
  LAPIS_CHECK(hyper.lr >= 0.0, op, "lr must be >= 0, got ", hyper.lr);
  LAPIS_CHECK(hyper.eps >= 0.0, op, "eps must be >= 0, got ", hyper.eps);
  LAPIS_CHECK(hyper.weight_decay >= 0.0, op, "weight_decay must be >= 0, got ",
              hyper.weight_decay);
  if (param.numel() == 0) return;
  switch (param.device().type) {
    case DeviceType::CPU: cpu::adam_step(param, m, v, grad, hyper, step); break;
    case DeviceType::CUDA: LAPIS_CUDA_CALL(cuda::adam_step, param, m, v, grad, hyper, step); break;
  }
}

}  // namespace lapis
