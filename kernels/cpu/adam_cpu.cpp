#include "kernels/cpu/adam_cpu.h"

#include <cmath>

namespace lapis {
namespace cpu {

namespace {

// One plain loop over the n elements; arithmetic in scalar_t as the CUDA kernel does, with the
// bias corrections computed once in double (torch computes them in Python floats).
template <typename scalar_t>
void adam_step_impl(scalar_t* p, scalar_t* m, scalar_t* v, const scalar_t* g, int64_t n,
                    const AdamHyper& h, int64_t step) {
  const double bias1 = 1.0 - std::pow(h.beta1, static_cast<double>(step));
  const double bias2 = 1.0 - std::pow(h.beta2, static_cast<double>(step));
  const scalar_t lr = static_cast<scalar_t>(h.lr);
  const scalar_t beta1 = static_cast<scalar_t>(h.beta1);
  const scalar_t beta2 = static_cast<scalar_t>(h.beta2);
  const scalar_t eps = static_cast<scalar_t>(h.eps);
  const scalar_t wd = static_cast<scalar_t>(h.weight_decay);
  const scalar_t step_size = static_cast<scalar_t>(h.lr / bias1);
  const scalar_t bias2_sqrt = static_cast<scalar_t>(std::sqrt(bias2));
  for (int64_t i = 0; i < n; ++i) {
    scalar_t grad = g[i];
    scalar_t param = p[i];
    if (h.decoupled) {
      param = param - lr * wd * param;  // AdamW: decay the weight, not the gradient
    } else {
      grad = grad + wd * param;  // Adam with L2: the decay joins the gradient (and the moments)
    }
    const scalar_t mi = beta1 * m[i] + (scalar_t(1) - beta1) * grad;
    const scalar_t vi = beta2 * v[i] + (scalar_t(1) - beta2) * grad * grad;
    m[i] = mi;
    v[i] = vi;
    const scalar_t denom = std::sqrt(vi) / bias2_sqrt + eps;
    p[i] = param - step_size * mi / denom;
  }
}

}  // namespace

void adam_step(Tensor& param, Tensor& m, Tensor& v, const Tensor& grad, const AdamHyper& hyper,
               int64_t step) {
  LAPIS_DISPATCH_FLOAT(param.dtype(), "adam_step", [&] {
    adam_step_impl<scalar_t>(param.data<scalar_t>(), m.data<scalar_t>(), v.data<scalar_t>(),
                             grad.data<scalar_t>(), param.numel(), hyper, step);
  });
}

}  // namespace cpu
}  // namespace lapis
