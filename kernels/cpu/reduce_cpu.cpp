#include "kernels/cpu/reduce_cpu.h"

namespace lapis {
namespace cpu {
namespace {

// Divisor for a reduction over `count` items: the count for a mean (1 when empty, so the mean
// of nothing is 0), 1 for a sum.
double divisor(Reduce kind, int64_t count) {
  return kind == Reduce::Mean && count > 0 ? static_cast<double>(count) : 1.0;
}

}  // namespace

void reduce_forward(Tensor& out, const Tensor& x, int axis, Reduce kind) {
  const int64_t N = x.size(0), C = x.size(1);
  LAPIS_DISPATCH_FLOAT(x.dtype(), "reduce_forward", [&] {
    const scalar_t* px = x.data<scalar_t>();
    scalar_t* po = out.data<scalar_t>();
    if (axis == 0) {
      for (int64_t c = 0; c < C; ++c) {
        double sum = 0;
        for (int64_t i = 0; i < N; ++i) sum += px[i * C + c];
        po[c] = static_cast<scalar_t>(sum / divisor(kind, N));
      }
    } else {
      for (int64_t i = 0; i < N; ++i) {
        double sum = 0;
        for (int64_t c = 0; c < C; ++c) sum += px[i * C + c];
        po[i] = static_cast<scalar_t>(sum / divisor(kind, C));
      }
    }
  });
}

void reduce_backward(Tensor& dL_dx, const Tensor& dL_dout, int axis, Reduce kind) {
  const int64_t N = dL_dx.size(0), C = dL_dx.size(1);
  LAPIS_DISPATCH_FLOAT(dL_dx.dtype(), "reduce_backward", [&] {
    const scalar_t* pg = dL_dout.data<scalar_t>();
    scalar_t* pd = dL_dx.data<scalar_t>();
    const double div = divisor(kind, axis == 0 ? N : C);
    for (int64_t i = 0; i < N; ++i)
      for (int64_t c = 0; c < C; ++c)
        pd[i * C + c] = static_cast<scalar_t>(pg[axis == 0 ? c : i] / div);
  });
}

void reduce_all_forward(Tensor& out, const Tensor& x, Reduce kind) {
  LAPIS_DISPATCH_FLOAT(x.dtype(), "reduce_all_forward", [&] {
    const scalar_t* px = x.data<scalar_t>();
    double sum = 0;
    for (int64_t i = 0; i < x.numel(); ++i) sum += px[i];
    out.data<scalar_t>()[0] = static_cast<scalar_t>(sum / divisor(kind, x.numel()));
  });
}

void reduce_all_backward(Tensor& dL_dx, const Tensor& dL_dout, Reduce kind) {
  LAPIS_DISPATCH_FLOAT(dL_dx.dtype(), "reduce_all_backward", [&] {
    const double g = dL_dout.data<scalar_t>()[0] / divisor(kind, dL_dx.numel());
    scalar_t* pd = dL_dx.data<scalar_t>();
    for (int64_t i = 0; i < dL_dx.numel(); ++i) pd[i] = static_cast<scalar_t>(g);
  });
}

void argmax_rows(Tensor& out, const Tensor& x) {
  const int64_t N = x.size(0), C = x.size(1);
  LAPIS_DISPATCH_FLOAT(x.dtype(), "argmax_rows", [&] {
    const scalar_t* px = x.data<scalar_t>();
    int64_t* po = out.data<int64_t>();
    for (int64_t i = 0; i < N; ++i) {
      int64_t best = 0;
      for (int64_t c = 1; c < C; ++c)
        if (px[i * C + c] > px[i * C + best]) best = c;  // strict: the first max wins ties
      po[i] = best;
    }
  });
}

}  // namespace cpu
}  // namespace lapis
