// Concatenation and slicing along the feature (last) axis of 2-D tensors [N, C].
#pragma once

#include <vector>

#include "core/tensor.h"

namespace lapis {

// out [N, sum C_i] = [x_0 | x_1 | ...]; every x_i is [N, C_i], same dtype and device.
void concat_cols_forward(Tensor& out, const std::vector<Tensor>& xs);
// Each dL_dxs[i] [N, C_i] (overwritten) receives its column block of dL_dout.
void concat_cols_backward(std::vector<Tensor>& dL_dxs, const Tensor& dL_dout);

// out [N, L] = x [N, C] columns start .. start + L - 1 (L = out.size(1)).
void slice_cols_forward(Tensor& out, const Tensor& x, int64_t start);
// dL_dx [N, C] (overwritten): dL_dout in the slice's columns, zero elsewhere.
void slice_cols_backward(Tensor& dL_dx, const Tensor& dL_dout, int64_t start);

}  // namespace lapis
