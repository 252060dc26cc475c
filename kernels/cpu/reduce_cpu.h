// CPU reference for sum/mean reductions and argmax (kernels/reduce.h). Arguments are checked
// by kernels/reduce.cpp.
#pragma once

#include "core/tensor.h"
#include "kernels/reduce.h"

namespace lapis {
namespace cpu {

void reduce_forward(Tensor& out, const Tensor& x, int axis, Reduce kind);
void reduce_backward(Tensor& dL_dx, const Tensor& dL_dout, int axis, Reduce kind);
void reduce_all_forward(Tensor& out, const Tensor& x, Reduce kind);
void reduce_all_backward(Tensor& dL_dx, const Tensor& dL_dout, Reduce kind);
void argmax_rows(Tensor& out, const Tensor& x);

}  // namespace cpu
}  // namespace lapis
