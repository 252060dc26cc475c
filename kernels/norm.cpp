#include "kernels/norm.h"

#include "core/cuda_api.h"
#include "kernels/cpu/norm_cpu.h"
#include "kernels/cuda/norm_cuda.h"
#include "kernels/launch_batch.h"

namespace lapis {

namespace {


// x [N, C] floating; returns nothing, throws on a bad x.
void check_input(const char* op, const Tensor& x) {
  check_floating(op, "x", x);
  check_dim(op, "x", x, 2);
}

void check_eps(const char* op, double eps) {
  LAPIS_CHECK(eps >= 0.0, op, "eps must be >= 0, got ", eps);
}

// LayerNorm and RMSNorm average over a row's channels, which needs at least one.
void check_has_channels(const char* op, const Tensor& x) {
  LAPIS_CHECK(x.size(1) >= 1 || x.size(0) == 0, op,
              "normalising over channels needs C >= 1, got x ", x.describe());
}

}  // namespace

void batchnorm_forward_train(Tensor& out, BatchNormCache& cache, Tensor& running_mean,
                             Tensor& running_var, const Tensor& x, const Tensor& weight,
                             const Tensor& bias, double momentum, double eps) {
  const char* op = "batchnorm_forward_train";
  check_input(op, x);
  const int64_t n = x.size(0), c = x.size(1);
  check_like(op, "out", out, x.shape(), "x", x);
  check_like(op, "weight", weight, {c}, "x", x);
  check_like(op, "bias", bias, {c}, "x", x);
  check_like(op, "running_mean", running_mean, {c}, "x", x);
  check_like(op, "running_var", running_var, {c}, "x", x);
  check_like(op, "cache.mean", cache.mean, {c}, "x", x);
  check_like(op, "cache.rstd", cache.rstd, {c}, "x", x);
  LAPIS_CHECK(n >= 2, op, "training needs at least 2 rows for the batch variance, got N = ", n,
              " (x ", x.describe(), ")");
  LAPIS_CHECK(momentum >= 0.0 && momentum <= 1.0, op, "momentum must be in [0, 1], got ",
              momentum);
  check_eps(op, eps);
  cache.training = true;
  if (c == 0) return;
  switch (x.device().type) {
    case DeviceType::CPU:
      cpu::batchnorm_forward_train(out, cache, running_mean, running_var, x, weight, bias,
                                   momentum, eps);
      break;
    case DeviceType::CUDA:
      if (detail::queue_batchnorm_forward(
              {out, cache, running_mean, running_var, x, weight, bias, momentum, eps})) {
        break;
      }
      LAPIS_CUDA_CALL(cuda::batchnorm_forward_train, out, cache, running_mean, running_var, x,
                      weight, bias, momentum, eps);
      break;
  }
}

void batchnorm_forward_eval(Tensor& out, BatchNormCache& cache, const Tensor& x,
                            const Tensor& weight, const Tensor& bias, const Tensor& running_mean,
                            const Tensor& running_var, double eps) {
  const char* op = "batchnorm_forward_eval";
  check_input(op, x);
  const int64_t c = x.size(1);
  check_like(op, "out", out, x.shape(), "x", x);
  check_like(op, "weight", weight, {c}, "x", x);
  check_like(op, "bias", bias, {c}, "x", x);
  check_like(op, "running_mean", running_mean, {c}, "x", x);
  check_like(op, "running_var", running_var, {c}, "x", x);
  check_like(op, "cache.mean", cache.mean, {c}, "x", x);
  check_like(op, "cache.rstd", cache.rstd, {c}, "x", x);
  check_eps(op, eps);
  cache.training = false;
  if (c == 0) return;
  switch (x.device().type) {
    case DeviceType::CPU:
      cpu::batchnorm_forward_eval(out, cache, x, weight, bias, running_mean, running_var, eps);
      break;
    case DeviceType::CUDA:
      LAPIS_CUDA_CALL(cuda::batchnorm_forward_eval, out, cache, x, weight, bias, running_mean,
                      running_var, eps);
      break;
  }
}

void batchnorm_backward(Tensor& dL_dx, Tensor& dL_dweight, Tensor& dL_dbias,
                        const Tensor& dL_dout, const Tensor& x, const Tensor& weight,
                        const BatchNormCache& cache) {
  const char* op = "batchnorm_backward";
  check_input(op, x);
  const int64_t c = x.size(1);
  check_like(op, "dL_dx", dL_dx, x.shape(), "x", x);
  check_like(op, "dL_dout", dL_dout, x.shape(), "x", x);
  check_like(op, "dL_dweight", dL_dweight, {c}, "x", x);
  check_like(op, "dL_dbias", dL_dbias, {c}, "x", x);
  check_like(op, "weight", weight, {c}, "x", x);
  check_like(op, "cache.mean", cache.mean, {c}, "x", x);
  check_like(op, "cache.rstd", cache.rstd, {c}, "x", x);
  if (cache.training) {
    LAPIS_CHECK(x.size(0) >= 2, op, "training-mode backward needs N >= 2, got N = ", x.size(0));
  }
  if (x.numel() == 0) return;  // nothing to write; parameter gradients gain 0
  switch (x.device().type) {
    case DeviceType::CPU:
      cpu::batchnorm_backward(dL_dx, dL_dweight, dL_dbias, dL_dout, x, weight, cache);
      break;
    case DeviceType::CUDA:
      if (cache.training && detail::queue_batchnorm_backward(
                                {dL_dx, dL_dweight, dL_dbias, dL_dout, x, weight, cache})) {
        break;
      }
      LAPIS_CUDA_CALL(cuda::batchnorm_backward, dL_dx, dL_dweight, dL_dbias, dL_dout, x, weight,
                      cache);
      break;
  }
}

void layernorm_forward(Tensor& out, LayerNormCache& cache, const Tensor& x, const Tensor& weight,
                       const Tensor& bias, double eps) {
  const char* op = "layernorm_forward";
  check_input(op, x);
  const int64_t n = x.size(0), c = x.size(1);
  check_like(op, "out", out, x.shape(), "x", x);
  check_like(op, "weight", weight, {c}, "x", x);
  check_like(op, "bias", bias, {c}, "x", x);
  check_like(op, "cache.mean", cache.mean, {n}, "x", x);
  check_like(op, "cache.rstd", cache.rstd, {n}, "x", x);
  check_eps(op, eps);
  check_has_channels(op, x);
  if (n == 0) return;
  switch (x.device().type) {
    case DeviceType::CPU: cpu::layernorm_forward(out, cache, x, weight, bias, eps); break;
    case DeviceType::CUDA:
      LAPIS_CUDA_CALL(cuda::layernorm_forward, out, cache, x, weight, bias, eps);
      break;
  }
}

void layernorm_backward(Tensor& dL_dx, Tensor& dL_dweight, Tensor& dL_dbias,
                        const Tensor& dL_dout, const Tensor& x, const Tensor& weight,
                        const LayerNormCache& cache) {
  const char* op = "layernorm_backward";
  check_input(op, x);
  const int64_t n = x.size(0), c = x.size(1);
  check_like(op, "dL_dx", dL_dx, x.shape(), "x", x);
  check_like(op, "dL_dout", dL_dout, x.shape(), "x", x);
  check_like(op, "dL_dweight", dL_dweight, {c}, "x", x);
  check_like(op, "dL_dbias", dL_dbias, {c}, "x", x);
  check_like(op, "weight", weight, {c}, "x", x);
  check_like(op, "cache.mean", cache.mean, {n}, "x", x);
  check_like(op, "cache.rstd", cache.rstd, {n}, "x", x);
  check_has_channels(op, x);
  if (n == 0) return;
  switch (x.device().type) {
    case DeviceType::CPU:
      cpu::layernorm_backward(dL_dx, dL_dweight, dL_dbias, dL_dout, x, weight, cache);
      break;
    case DeviceType::CUDA:
      LAPIS_CUDA_CALL(cuda::layernorm_backward, dL_dx, dL_dweight, dL_dbias, dL_dout, x, weight,
                      cache);
      break;
  }
}

void rmsnorm_forward(Tensor& out, RMSNormCache& cache, const Tensor& x, const Tensor& weight,
                     double eps) {
  const char* op = "rmsnorm_forward";
  check_input(op, x);
  const int64_t n = x.size(0), c = x.size(1);
  check_like(op, "out", out, x.shape(), "x", x);
  check_like(op, "weight", weight, {c}, "x", x);
  check_like(op, "cache.rstd", cache.rstd, {n}, "x", x);
  check_eps(op, eps);
  check_has_channels(op, x);
  if (n == 0) return;
  switch (x.device().type) {
    case DeviceType::CPU: cpu::rmsnorm_forward(out, cache, x, weight, eps); break;
    case DeviceType::CUDA:
      LAPIS_CUDA_CALL(cuda::rmsnorm_forward, out, cache, x, weight, eps);
      break;
  }
}

void rmsnorm_backward(Tensor& dL_dx, Tensor& dL_dweight, const Tensor& dL_dout, const Tensor& x,
                      const Tensor& weight, const RMSNormCache& cache) {
  const char* op = "rmsnorm_backward";
  check_input(op, x);
  const int64_t n = x.size(0), c = x.size(1);
  check_like(op, "dL_dx", dL_dx, x.shape(), "x", x);
  check_like(op, "dL_dout", dL_dout, x.shape(), "x", x);
  check_like(op, "dL_dweight", dL_dweight, {c}, "x", x);
  check_like(op, "weight", weight, {c}, "x", x);
  check_like(op, "cache.rstd", cache.rstd, {n}, "x", x);
  check_has_channels(op, x);
  if (n == 0) return;
  switch (x.device().type) {
    case DeviceType::CPU:
      cpu::rmsnorm_backward(dL_dx, dL_dweight, dL_dout, x, weight, cache);
      break;
    case DeviceType::CUDA:
      LAPIS_CUDA_CALL(cuda::rmsnorm_backward, dL_dx, dL_dweight, dL_dout, x, weight, cache);
      break;
  }
}

}  // namespace lapis
