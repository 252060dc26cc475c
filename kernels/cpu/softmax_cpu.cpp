#include "kernels/cpu/softmax_cpu.h"

#include <algorithm>
#include <cmath>

namespace lapis {
namespace cpu {

void softmax_forward(Tensor& out, const Tensor& x) {
  const int64_t N = x.size(0), C = x.size(1);
  LAPIS_DISPATCH_FLOAT(x.dtype(), "softmax_forward", [&] {
    const scalar_t* px = x.data<scalar_t>();
    scalar_t* po = out.data<scalar_t>();
    for (int64_t i = 0; i < N; ++i) {
      const scalar_t* row = px + i * C;
      // Subtract the row max so exp never overflows; sums in double (this is the reference).
      double m = -INFINITY;
      for (int64_t c = 0; c < C; ++c) m = std::max(m, static_cast<double>(row[c]));
      double sum = 0;
      for (int64_t c = 0; c < C; ++c) sum += std::exp(row[c] - m);
      for (int64_t c = 0; c < C; ++c)
        po[i * C + c] = static_cast<scalar_t>(std::exp(row[c] - m) / sum);
    }
  });
}

void softmax_backward(Tensor& dL_dx, const Tensor& dL_dout, const Tensor& out) {
  const int64_t N = out.size(0), C = out.size(1);
  LAPIS_DISPATCH_FLOAT(out.dtype(), "softmax_backward", [&] {
    const scalar_t* pg = dL_dout.data<scalar_t>();
    const scalar_t* po = out.data<scalar_t>();
    scalar_t* pd = dL_dx.data<scalar_t>();
    for (int64_t i = 0; i < N; ++i) {
      double dot = 0;
      for (int64_t c = 0; c < C; ++c) dot += static_cast<double>(pg[i * C + c]) * po[i * C + c];
      for (int64_t c = 0; c < C; ++c)
        pd[i * C + c] = static_cast<scalar_t>(po[i * C + c] * (pg[i * C + c] - dot));
    }
  });
}

}  // namespace cpu
}  // namespace lapis
