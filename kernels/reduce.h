// Sum and mean reductions of x [N, C], and argmax over rows.
#pragma once

#include "core/tensor.h"

namespace lapis {

enum class Reduce { Sum, Mean };

// axis 0: out [C] reduces over rows; axis 1: out [N] reduces over columns.
// The mean of an empty axis is 0 (not NaN); say so rather than divide by zero.
void reduce_forward(Tensor& out, const Tensor& x, int axis, Reduce kind);
// dL_dx [N, C] (overwritten) = dL_dout broadcast back (divided by the count for Mean).
void reduce_backward(Tensor& dL_dx, const Tensor& dL_dout, int axis, Reduce kind);

// out [1] = sum (or mean) of all elements of x (any shape).
void reduce_all_forward(Tensor& out, const Tensor& x, Reduce kind);
void reduce_all_backward(Tensor& dL_dx, const Tensor& dL_dout, Reduce kind);

// out [N] (i64) = index of the largest value in each row of x [N, C] (first one on ties).
void argmax_rows(Tensor& out, const Tensor& x);

}  // namespace lapis
