// CPU reference for element-wise ops (kernels/elementwise.h). Arguments are checked by the
// dispatch in kernels/elementwise.cpp; shapes are as documented there.
#pragma once

#include <cstdint>

#include "core/tensor.h"
#include "kernels/elementwise.h"

namespace lapis {
namespace cpu {

void add(Tensor& out, const Tensor& a, const Tensor& b);
void axpy(Tensor& y, double alpha, const Tensor& x);
void scale(Tensor& out, const Tensor& x, double alpha);
void bias_add_forward(Tensor& out, const Tensor& x, const Tensor& bias, const Tensor& residual);
void bias_add_backward(Tensor& dL_dbias, const Tensor& dL_dout);
void activation_forward(Tensor& out, const Tensor& x, Activation act);
void activation_backward(Tensor& dL_dx, const Tensor& dL_dout, const Tensor& x, Activation act);
void dropout_forward(Tensor& out, Tensor& mask, const Tensor& x, double p, uint64_t seed,
                     uint64_t offset);
void dropout_backward(Tensor& dL_dx, const Tensor& dL_dout, const Tensor& mask);

}  // namespace cpu
}  // namespace lapis
