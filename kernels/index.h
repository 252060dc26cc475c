// Row gather / scatter-add by index, embedding lookup, and segment reductions over sorted
// segment pointers (pooling per graph). Index tensors are i32 or i64. An index out of range is an
// error: thrown at once on the CPU; on CUDA reported at the next host readback (see
// core/cuda_api.h check_device_errors), because checking would stall the stream.
// CUDA scatter-add and embedding backward use float atomics: sums are correct but their last
// bits may vary between runs. Segment reductions are deterministic (no atomics).
#pragma once

#include "core/tensor.h"

namespace lapis {

// out [M, C] = x [N, C] rows picked by index [M].
void gather_rows_forward(Tensor& out, const Tensor& x, const Tensor& index);
// dL_dx [N, C] (overwritten) = scatter-add of dL_dout [M, C] rows into index.
void gather_rows_backward(Tensor& dL_dx, const Tensor& dL_dout, const Tensor& index);

// out [N, C] (overwritten) = for each i, out[index[i]] += x[i]; x [M, C], index [M].
void scatter_add_rows_forward(Tensor& out, const Tensor& x, const Tensor& index);
// dL_dx [M, C] = dL_dout rows picked by index.
void scatter_add_rows_backward(Tensor& dL_dx, const Tensor& dL_dout, const Tensor& index);

// Embedding: out [N, C] = table [V, C] rows picked by indices [N].
void embedding_forward(Tensor& out, const Tensor& indices, const Tensor& table);
// dL_dtable [V, C] += rows of dL_dout [N, C] added at indices (rows may repeat).
void embedding_backward(Tensor& dL_dtable, const Tensor& dL_dout, const Tensor& indices);

enum class SegmentReduce { Sum, Mean, Max };
const char* segment_reduce_name(SegmentReduce kind);

// Segments of rows of x [N, C] given by ptr [B + 1] (i32 or i64): segment b is rows
// ptr[b] .. ptr[b+1]-1; ptr[0] == 0, ptr[B] == N, non-decreasing. out [B, C].
// Empty segments give 0 for every kind. For Max, argmax [B, C] (i64) receives the row that won
// (-1 for an empty segment; first row on ties); for Sum/Mean argmax may be undefined.
void segment_reduce_forward(Tensor& out, Tensor& argmax, const Tensor& x, const Tensor& ptr,
                            SegmentReduce kind);
// dL_dx [N, C] (overwritten): Sum copies dL_dout[b] to each row of b, Mean divides by the
// segment size, Max routes dL_dout[b, c] to row argmax[b, c] only.
void segment_reduce_backward(Tensor& dL_dx, const Tensor& dL_dout, const Tensor& ptr,
                             const Tensor& argmax, SegmentReduce kind);

}  // namespace lapis
