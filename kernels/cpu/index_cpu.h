// CPU references for row gather / scatter-add, embedding and segment reductions
// (kernels/index.h). Indices are validated here and a bad one throws, naming the op, the
// position and the value.
#pragma once

#include "core/tensor.h"
#include "kernels/index.h"

namespace lapis {
namespace cpu {

void gather_rows_forward(Tensor& out, const Tensor& x, const Tensor& index);
void gather_rows_backward(Tensor& dL_dx, const Tensor& dL_dout, const Tensor& index);
void scatter_add_rows_forward(Tensor& out, const Tensor& x, const Tensor& index);
void scatter_add_rows_backward(Tensor& dL_dx, const Tensor& dL_dout, const Tensor& index);
void embedding_forward(Tensor& out, const Tensor& indices, const Tensor& table);
void embedding_backward(Tensor& dL_dtable, const Tensor& dL_dout, const Tensor& indices);
void segment_reduce_forward(Tensor& out, Tensor& argmax, const Tensor& x, const Tensor& ptr,
                            SegmentReduce kind);
void segment_reduce_backward(Tensor& dL_dx, const Tensor& dL_dout, const Tensor& ptr,
                             const Tensor& argmax, SegmentReduce kind);

}  // namespace cpu
}  // namespace lapis
