#include "kernels/cpu/elementwise_cpu.h"

#include <cmath>

#include "core/random.h"

namespace lapis {
namespace cpu {
namespace {

template <typename scalar_t>
scalar_t activation_value(scalar_t x, Activation act) {
  switch (act) {
    case Activation::ReLU: return x > scalar_t(0) ? x : scalar_t(0);
    case Activation::GELU:
      return scalar_t(0.5) * x * (scalar_t(1) + std::erf(x * scalar_t(0.7071067811865476)));
    case Activation::SiLU: return x / (scalar_t(1) + std::exp(-x));
  }
  return x;
}

// d act(x) / dx.
template <typename scalar_t>
scalar_t activation_derivative(scalar_t x, Activation act) {
  switch (act) {
    case Activation::ReLU: return x > scalar_t(0) ? scalar_t(1) : scalar_t(0);
    case Activation::GELU: {
      // Phi(x) + x * phi(x), with Phi the normal CDF and phi its density.
      const scalar_t cdf = scalar_t(0.5) * (scalar_t(1) + std::erf(x * scalar_t(0.7071067811865476)));
      const scalar_t pdf = std::exp(scalar_t(-0.5) * x * x) * scalar_t(0.3989422804014327);
      return cdf + x * pdf;
    }
    case Activation::SiLU: {
      const scalar_t s = scalar_t(1) / (scalar_t(1) + std::exp(-x));
      return s * (scalar_t(1) + x * (scalar_t(1) - s));
    }
  }
  return scalar_t(1);
}

}  // namespace

void add(Tensor& out, const Tensor& a, const Tensor& b) {
  LAPIS_DISPATCH_FLOAT(out.dtype(), "add", [&] {
    const scalar_t* pa = a.data<scalar_t>();
    const scalar_t* pb = b.data<scalar_t>();
    scalar_t* po = out.data<scalar_t>();
    for (int64_t i = 0; i < out.numel(); ++i) po[i] = pa[i] + pb[i];
  });
}

void axpy(Tensor& y, double alpha, const Tensor& x) {
  LAPIS_DISPATCH_FLOAT(y.dtype(), "axpy", [&] {
    const scalar_t al = static_cast<scalar_t>(alpha);
    const scalar_t* px = x.data<scalar_t>();
    scalar_t* py = y.data<scalar_t>();
    for (int64_t i = 0; i < y.numel(); ++i) py[i] += al * px[i];
  });
}

void scale(Tensor& out, const Tensor& x, double alpha) {
  LAPIS_DISPATCH_FLOAT(out.dtype(), "scale", [&] {
    const scalar_t al = static_cast<scalar_t>(alpha);
    const scalar_t* px = x.data<scalar_t>();
    scalar_t* po = out.data<scalar_t>();
    for (int64_t i = 0; i < out.numel(); ++i) po[i] = al * px[i];
  });
}

void bias_add_forward(Tensor& out, const Tensor& x, const Tensor& bias, const Tensor& residual) {
  const int64_t N = x.size(0), C = x.size(1);
  LAPIS_DISPATCH_FLOAT(out.dtype(), "bias_add_forward", [&] {
    const scalar_t* px = x.data<scalar_t>();
    const scalar_t* pb = bias.data<scalar_t>();
    const scalar_t* pr = residual.defined() ? residual.data<scalar_t>() : nullptr;
    scalar_t* po = out.data<scalar_t>();
    for (int64_t i = 0; i < N; ++i) {
      for (int64_t c = 0; c < C; ++c) {
        const scalar_t t = px[i * C + c] + pb[c];
        po[i * C + c] = pr ? t + pr[i * C + c] : t;
      }
    }
  });
}

void bias_add_backward(Tensor& dL_dbias, const Tensor& dL_dout) {
  const int64_t N = dL_dout.size(0), C = dL_dout.size(1);
  LAPIS_DISPATCH_FLOAT(dL_dbias.dtype(), "bias_add_backward", [&] {
    const scalar_t* pg = dL_dout.data<scalar_t>();
    scalar_t* pb = dL_dbias.data<scalar_t>();
    for (int64_t c = 0; c < C; ++c) {
      double sum = 0;  // accumulated in double: this is the reference
      for (int64_t i = 0; i < N; ++i) sum += pg[i * C + c];
      pb[c] += static_cast<scalar_t>(sum);
    }
  });
}

void activation_forward(Tensor& out, const Tensor& x, Activation act) {
  LAPIS_DISPATCH_FLOAT(out.dtype(), "activation_forward", [&] {
    const scalar_t* px = x.data<scalar_t>();
    scalar_t* po = out.data<scalar_t>();
    for (int64_t i = 0; i < out.numel(); ++i) po[i] = activation_value(px[i], act);
  });
}

void activation_backward(Tensor& dL_dx, const Tensor& dL_dout, const Tensor& x, Activation act) {
  LAPIS_DISPATCH_FLOAT(dL_dx.dtype(), "activation_backward", [&] {
    const scalar_t* px = x.data<scalar_t>();
    const scalar_t* pg = dL_dout.data<scalar_t>();
    scalar_t* pd = dL_dx.data<scalar_t>();
    for (int64_t i = 0; i < dL_dx.numel(); ++i) pd[i] = pg[i] * activation_derivative(px[i], act);
  });
}

void dropout_forward(Tensor& out, Tensor& mask, const Tensor& x, double p, uint64_t seed,
                     uint64_t offset) {
  LAPIS_DISPATCH_FLOAT(out.dtype(), "dropout_forward", [&] {
    const scalar_t keep_value = static_cast<scalar_t>(1.0 / (1.0 - p));
    const scalar_t* px = x.data<scalar_t>();
    scalar_t* po = out.data<scalar_t>();
    scalar_t* pm = mask.data<scalar_t>();
    for (int64_t i = 0; i < out.numel(); ++i) {
      const float u = uniform01(seed, offset + static_cast<uint64_t>(i));
      const scalar_t m = static_cast<double>(u) >= p ? keep_value : scalar_t(0);
      pm[i] = m;
      po[i] = px[i] * m;
    }
  });
}

void dropout_backward(Tensor& dL_dx, const Tensor& dL_dout, const Tensor& mask) {
  LAPIS_DISPATCH_FLOAT(dL_dx.dtype(), "dropout_backward", [&] {
    const scalar_t* pg = dL_dout.data<scalar_t>();
    const scalar_t* pm = mask.data<scalar_t>();
    scalar_t* pd = dL_dx.data<scalar_t>();
    for (int64_t i = 0; i < dL_dx.numel(); ++i) pd[i] = pg[i] * pm[i];
  });
}

}  // namespace cpu
}  // namespace lapis
