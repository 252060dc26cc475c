#include "kernels/index.h"

#include "core/cuda_api.h"
#include "kernels/cpu/index_cpu.h"
#include "kernels/cuda/index_cuda.h"

namespace lapis {

namespace {


// index: 1-D integer tensor on ref's device.
void check_index_vector(const char* op, const char* name, const Tensor& index,
                        const char* ref_name, const Tensor& ref) {
  check_index(op, name, index);
  check_dim(op, name, index, 1);
  check_same_device(op, ref_name, ref, name, index);
}

void check_matrix(const char* op, const char* name, const Tensor& t) {
  check_floating(op, name, t);
  check_dim(op, name, t, 2);
}

// Shared checks of the gather shape: dst [M, C] = src [*, C] rows at index [M].
void check_gather(const char* op, const char* dst_name, const Tensor& dst, const char* src_name,
                  const Tensor& src, const char* index_name, const Tensor& index) {
  check_matrix(op, src_name, src);
  check_index_vector(op, index_name, index, src_name, src);
  check_like(op, dst_name, dst, {index.size(0), src.size(1)}, src_name, src);
}

// Shared checks of the scatter shape: dst [N, C] += src [M, C] rows into index [M].
void check_scatter(const char* op, const char* dst_name, const Tensor& dst, const char* src_name,
                   const Tensor& src, const char* index_name, const Tensor& index) {
  check_matrix(op, src_name, src);
  check_index_vector(op, index_name, index, src_name, src);
  LAPIS_CHECK(index.size(0) == src.size(0), op, index_name, " has ", index.size(0),
              " entries but ", src_name, " has ", src.size(0), " rows (", index_name, " ",
              index.describe(), ", ", src_name, " ", src.describe(), ")");
  check_matrix(op, dst_name, dst);
  check_like(op, dst_name, dst, {dst.size(0), src.size(1)}, src_name, src);
}

// ptr [B + 1] integer on ref's device.
void check_ptr(const char* op, const Tensor& ptr, int64_t b_count, const char* ref_name,
               const Tensor& ref) {
  check_index_vector(op, "ptr", ptr, ref_name, ref);
  LAPIS_CHECK(ptr.size(0) == b_count + 1, op, "ptr must have B + 1 = ", b_count + 1,
              " entries for B = ", b_count, " segments, got ", ptr.describe());
}

}  // namespace

void gather_rows_forward(Tensor& out, const Tensor& x, const Tensor& index) {
  const char* op = "gather_rows_forward";
  check_gather(op, "out", out, "x", x, "index", index);
  if (out.numel() == 0) return;
  LAPIS_CHECK(x.size(0) > 0, op, "cannot gather from x with 0 rows (x ", x.describe(), ")");
  switch (x.device().type) {
    case DeviceType::CPU: cpu::gather_rows_forward(out, x, index); break;
    case DeviceType::CUDA: LAPIS_CUDA_CALL(cuda::gather_rows_forward, out, x, index); break;
  }
}

void gather_rows_backward(Tensor& dL_dx, const Tensor& dL_dout, const Tensor& index) {
  const char* op = "gather_rows_backward";
  check_scatter(op, "dL_dx", dL_dx, "dL_dout", dL_dout, "index", index);
  if (dL_dx.numel() == 0 && dL_dout.numel() == 0 && index.numel() == 0) return;
  switch (dL_dx.device().type) {
    case DeviceType::CPU: cpu::gather_rows_backward(dL_dx, dL_dout, index); break;
    case DeviceType::CUDA:
      LAPIS_CUDA_CALL(cuda::gather_rows_backward, dL_dx, dL_dout, index);
      break;
  }
}

void scatter_add_rows_forward(Tensor& out, const Tensor& x, const Tensor& index) {
  const char* op = "scatter_add_rows_forward";
  check_scatter(op, "out", out, "x", x, "index", index);
  if (out.numel() == 0 && x.numel() == 0 && index.numel() == 0) return;
  switch (x.device().type) {
    case DeviceType::CPU: cpu::scatter_add_rows_forward(out, x, index); break;
    case DeviceType::CUDA: LAPIS_CUDA_CALL(cuda::scatter_add_rows_forward, out, x, index); break;
  }
}

void scatter_add_rows_backward(Tensor& dL_dx, const Tensor& dL_dout, const Tensor& index) {
  const char* op = "scatter_add_rows_backward";
  check_gather(op, "dL_dx", dL_dx, "dL_dout", dL_dout, "index", index);
  if (dL_dx.numel() == 0) return;
  LAPIS_CHECK(dL_dout.size(0) > 0, op, "cannot gather from dL_dout with 0 rows (dL_dout ",
              dL_dout.describe(), ")");
  switch (dL_dx.device().type) {
    case DeviceType::CPU: cpu::scatter_add_rows_backward(dL_dx, dL_dout, index); break;
    case DeviceType::CUDA:
      LAPIS_CUDA_CALL(cuda::scatter_add_rows_backward, dL_dx, dL_dout, index);
      break;
  }
}

void embedding_forward(Tensor& out, const Tensor& indices, const Tensor& table) {
  const char* op = "embedding_forward";
  check_gather(op, "out", out, "table", table, "indices", indices);
  if (out.numel() == 0) return;
  LAPIS_CHECK(table.size(0) > 0, op, "cannot look up rows of an empty table (table ",
              table.describe(), ")");
  switch (table.device().type) {
    case DeviceType::CPU: cpu::embedding_forward(out, indices, table); break;
    case DeviceType::CUDA: LAPIS_CUDA_CALL(cuda::embedding_forward, out, indices, table); break;
  }
}

void embedding_backward(Tensor& dL_dtable, const Tensor& dL_dout, const Tensor& indices) {
  const char* op = "embedding_backward";
  check_scatter(op, "dL_dtable", dL_dtable, "dL_dout", dL_dout, "indices", indices);
  if (indices.numel() == 0) return;  // += nothing
  switch (dL_dtable.device().type) {
    case DeviceType::CPU: cpu::embedding_backward(dL_dtable, dL_dout, indices); break;
    case DeviceType::CUDA:
      LAPIS_CUDA_CALL(cuda::embedding_backward, dL_dtable, dL_dout, indices);
      break;
  }
}

const char* segment_reduce_name(SegmentReduce kind) {
  switch (kind) {
    case SegmentReduce::Sum: return "sum";
    case SegmentReduce::Mean: return "mean";
    case SegmentReduce::Max: return "max";
  }
  return "?";
}

void segment_reduce_forward(Tensor& out, Tensor& argmax, const Tensor& x, const Tensor& ptr,
                            SegmentReduce kind) {
  const char* op = "segment_reduce_forward";
  check_matrix(op, "x", x);
  check_dim(op, "out", out, 2);
  const int64_t b_count = out.size(0);
  check_like(op, "out", out, {b_count, x.size(1)}, "x", x);
  check_ptr(op, ptr, b_count, "x", x);
  // Sum and Mean ignore argmax (it may be undefined); Max needs it.
  if (kind == SegmentReduce::Max || argmax.defined()) {
    check_shape(op, "argmax", argmax, {b_count, x.size(1)});
    check_dtype(op, "argmax", argmax, Dtype::I64);
    check_same_device(op, "x", x, "argmax", argmax);
  }
  switch (x.device().type) {
    case DeviceType::CPU: cpu::segment_reduce_forward(out, argmax, x, ptr, kind); break;
    case DeviceType::CUDA:
      LAPIS_CUDA_CALL(cuda::segment_reduce_forward, out, argmax, x, ptr, kind);
      break;
  }
}

void segment_reduce_backward(Tensor& dL_dx, const Tensor& dL_dout, const Tensor& ptr,
                             const Tensor& argmax, SegmentReduce kind) {
  const char* op = "segment_reduce_backward";
  check_matrix(op, "dL_dout", dL_dout);
  check_matrix(op, "dL_dx", dL_dx);
  const int64_t b_count = dL_dout.size(0);
  check_like(op, "dL_dx", dL_dx, {dL_dx.size(0), dL_dout.size(1)}, "dL_dout", dL_dout);
  check_ptr(op, ptr, b_count, "dL_dout", dL_dout);
  if (kind == SegmentReduce::Max) {
    check_shape(op, "argmax", argmax, dL_dout.shape());
    check_dtype(op, "argmax", argmax, Dtype::I64);
    check_same_device(op, "dL_dout", dL_dout, "argmax", argmax);
  }
  switch (dL_dx.device().type) {
    case DeviceType::CPU: cpu::segment_reduce_backward(dL_dx, dL_dout, ptr, argmax, kind); break;
    case DeviceType::CUDA:
      LAPIS_CUDA_CALL(cuda::segment_reduce_backward, dL_dx, dL_dout, ptr, argmax, kind);
      break;
  }
}

}  // namespace lapis
