#include "kernels/reduce.h"

#include "core/cuda_api.h"
#include "kernels/cpu/reduce_cpu.h"
#include "kernels/cuda/reduce_cuda.h"

namespace lapis {
namespace {

void check_axis(const char* op, int axis) {
  LAPIS_CHECK(axis == 0 || axis == 1, op, "axis must be 0 (over rows) or 1 (over columns), got ",
              axis);
}

}  // namespace

void reduce_forward(Tensor& out, const Tensor& x, int axis, Reduce kind) {
  const char* op = "reduce_forward";
  check_axis(op, axis);
  check_floating(op, "x", x);
  check_dim(op, "x", x, 2);
  check_shape(op, "out", out, {x.size(axis == 0 ? 1 : 0)});
  check_dtype(op, "out", out, x.dtype());
  check_same_device(op, "out", out, "x", x);
  if (x.is_cuda()) LAPIS_CUDA_CALL(cuda::reduce_forward, out, x, axis, kind);
  else cpu::reduce_forward(out, x, axis, kind);
}

void reduce_backward(Tensor& dL_dx, const Tensor& dL_dout, int axis, Reduce kind) {
  const char* op = "reduce_backward";
  check_axis(op, axis);
  check_floating(op, "dL_dx", dL_dx);
  check_dim(op, "dL_dx", dL_dx, 2);
  check_shape(op, "dL_dout", dL_dout, {dL_dx.size(axis == 0 ? 1 : 0)});
  check_dtype(op, "dL_dout", dL_dout, dL_dx.dtype());
  check_same_device(op, "dL_dout", dL_dout, "dL_dx", dL_dx);
  if (dL_dx.is_cuda()) LAPIS_CUDA_CALL(cuda::reduce_backward, dL_dx, dL_dout, axis, kind);
  else cpu::reduce_backward(dL_dx, dL_dout, axis, kind);
}

void reduce_all_forward(Tensor& out, const Tensor& x, Reduce kind) {
  const char* op = "reduce_all_forward";
  check_floating(op, "x", x);
  check_shape(op, "out", out, {1});
  check_dtype(op, "out", out, x.dtype());
  check_same_device(op, "out", out, "x", x);
  if (x.is_cuda()) LAPIS_CUDA_CALL(cuda::reduce_all_forward, out, x, kind);
  else cpu::reduce_all_forward(out, x, kind);
}

void reduce_all_backward(Tensor& dL_dx, const Tensor& dL_dout, Reduce kind) {
  const char* op = "reduce_all_backward";
  check_floating(op, "dL_dx", dL_dx);
  check_shape(op, "dL_dout", dL_dout, {1});
  check_dtype(op, "dL_dout", dL_dout, dL_dx.dtype());
  check_same_device(op, "dL_dout", dL_dout, "dL_dx", dL_dx);
  if (dL_dx.is_cuda()) LAPIS_CUDA_CALL(cuda::reduce_all_backward, dL_dx, dL_dout, kind);
  else cpu::reduce_all_backward(dL_dx, dL_dout, kind);
}

void argmax_rows(Tensor& out, const Tensor& x) {
  const char* op = "argmax_rows";
  check_floating(op, "x", x);
  check_dim(op, "x", x, 2);
  LAPIS_CHECK(x.size(0) == 0 || x.size(1) > 0, op, "rows have no columns: x ", x.describe());
  check_shape(op, "out", out, {x.size(0)});
  check_dtype(op, "out", out, Dtype::I64);
  check_same_device(op, "out", out, "x", x);
  if (x.is_cuda()) LAPIS_CUDA_CALL(cuda::argmax_rows, out, x);
  else cpu::argmax_rows(out, x);
}

}  // namespace lapis
