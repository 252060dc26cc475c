#include "kernels/cuda/adam_cuda.h"

#include <cmath>

#include "core/cuda/cuda_check.h"

namespace lapis {
namespace cuda {

namespace {

// Same arithmetic, in the same order, as the CPU reference (kernels/cpu/adam_cpu.cpp).
// Grid-stride loop over the n elements.
template <typename scalar_t>
__global__ void adam_step_kernel(scalar_t* __restrict__ p, scalar_t* __restrict__ m,
                                 scalar_t* __restrict__ v, const scalar_t* __restrict__ g,
                                 int64_t n, scalar_t lr, scalar_t beta1, scalar_t beta2,
                                 scalar_t eps, scalar_t wd, scalar_t step_size,
                                 scalar_t bias2_sqrt, bool decoupled) {
  const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    scalar_t grad = g[i];
    scalar_t param = p[i];
    if (decoupled) {
      param = param - lr * wd * param;
    } else {
      grad = grad + wd * param;
    }
    const scalar_t mi = beta1 * m[i] + (scalar_t(1) - beta1) * grad;
    const scalar_t vi = beta2 * v[i] + (scalar_t(1) - beta2) * grad * grad;
    m[i] = mi;
    v[i] = vi;
    const scalar_t denom = sqrt(vi) / bias2_sqrt + eps;
    p[i] = param - step_size * mi / denom;
  }
}

}  // namespace

void adam_step(Tensor& param, Tensor& m, Tensor& v, const Tensor& grad, const AdamHyper& hyper,
               int64_t step) {
  const int64_t n = param.numel();
  const double bias1 = 1.0 - std::pow(hyper.beta1, static_cast<double>(step));
  const double bias2 = 1.0 - std::pow(hyper.beta2, static_cast<double>(step));
  LAPIS_DISPATCH_FLOAT(param.dtype(), "adam_step", [&] {
    constexpr int kBlock = 256;
    LAPIS_LAUNCH(adam_step_kernel<scalar_t>, n, kBlock, param.data<scalar_t>(),
                 m.data<scalar_t>(), v.data<scalar_t>(), grad.data<scalar_t>(), n,
                 static_cast<scalar_t>(hyper.lr), static_cast<scalar_t>(hyper.beta1),
                 static_cast<scalar_t>(hyper.beta2), static_cast<scalar_t>(hyper.eps),
                 static_cast<scalar_t>(hyper.weight_decay),
                 static_cast<scalar_t>(hyper.lr / bias1),
                 static_cast<scalar_t>(std::sqrt(bias2)), hyper.decoupled);
  });
}

}  // namespace cuda
}  // namespace lapis
