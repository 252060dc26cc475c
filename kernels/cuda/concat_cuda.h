// CUDA column concatenation and slicing (host-only declarations; kernels/concat.h). One
// strided 2-D block copy kernel serves all four functions.
#pragma once

#include <vector>

#include "core/tensor.h"
#include "kernels/concat.h"

namespace lapis {
namespace cuda {

void concat_cols_forward(Tensor& out, const std::vector<Tensor>& xs);
void concat_cols_backward(std::vector<Tensor>& dL_dxs, const Tensor& dL_dout);
void slice_cols_forward(Tensor& out, const Tensor& x, int64_t start);
void slice_cols_backward(Tensor& dL_dx, const Tensor& dL_dout, int64_t start);

}  // namespace cuda
}  // namespace lapis
