// CUDA element-wise ops (host-only declarations, no CUDA types; launched on the library
// stream). Arguments are checked by the dispatch in kernels/elementwise.cpp.
#pragma once

#include <cstdint>

#include "core/tensor.h"
#include "kernels/elementwise.h"

namespace lapis {
namespace cuda {

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

// Device pointer to at least `count` zeroed unsigned counters for single-launch "last block
// done" reductions (bias_add_backward here, the column reductions of norm_cuda.cu): the blocks
// of one column tile count themselves in and the last one finishes the tile. Every kernel that
// uses them must leave them zero when it completes (the last block resets its counter), so
// kernels queued one after the other on stream() can share them. Allocated and zeroed on the
// first call (grown when a larger count is asked for); never freed.
unsigned int* reduction_counters(int64_t count);

}  // namespace cuda
}  // namespace lapis
