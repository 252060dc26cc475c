#include "kernels/concat.h"

#include <string>

#include "core/cuda_api.h"
#include "kernels/cpu/concat_cpu.h"
#include "kernels/cuda/concat_cuda.h"

namespace lapis {

namespace {

// t: 2-D, with ref's dtype and device.
void check_matrix_like(const char* op, const std::string& name, const Tensor& t,
                       const char* ref_name, const Tensor& ref) {
  check_floating(op, name.c_str(), t);
  check_dim(op, name.c_str(), t, 2);
  LAPIS_CHECK(t.dtype() == ref.dtype(), op, name, " must have the dtype of ", ref_name, " (",
              ref.describe(), "), got ", t.describe());
  check_same_device(op, ref_name, ref, name.c_str(), t);
}

// parts[i] [N, C_i] against whole [N, sum C_i].
template <typename Parts>
void check_parts(const char* op, const char* parts_name, const Parts& parts,
                 const char* whole_name, const Tensor& whole) {
  check_floating(op, whole_name, whole);
  check_dim(op, whole_name, whole, 2);
  LAPIS_CHECK(!parts.empty(), op, parts_name, " is empty: nothing to concatenate");
  int64_t cols = 0;
  for (size_t i = 0; i < parts.size(); ++i) {
    const std::string name = str_cat(parts_name, "[", i, "]");
    check_matrix_like(op, name, parts[i], whole_name, whole);
    LAPIS_CHECK(parts[i].size(0) == whole.size(0), op, name, " has ", parts[i].size(0),
                " rows but ", whole_name, " has ", whole.size(0), " (", name, " ",
                parts[i].describe(), ", ", whole_name, " ", whole.describe(), ")");
    cols += parts[i].size(1);
  }
  LAPIS_CHECK(cols == whole.size(1), op, "the parts have ", cols, " columns in total but ",
              whole_name, " has ", whole.size(1), " (", whole_name, " ", whole.describe(), ")");
}

// wide [N, C] against the slice narrow [N, L] at columns start .. start + L - 1.
void check_slice(const char* op, const char* wide_name, const Tensor& wide,
                 const char* narrow_name, const Tensor& narrow, int64_t start) {
  check_floating(op, wide_name, wide);
  check_dim(op, wide_name, wide, 2);
  check_matrix_like(op, narrow_name, narrow, wide_name, wide);
  LAPIS_CHECK(narrow.size(0) == wide.size(0), op, narrow_name, " has ", narrow.size(0),
              " rows but ", wide_name, " has ", wide.size(0), " (", narrow.describe(), ", ",
              wide.describe(), ")");
  LAPIS_CHECK(start >= 0 && start + narrow.size(1) <= wide.size(1), op, "columns ", start,
              " .. ", start + narrow.size(1) - 1, " are outside ", wide_name, " ",
              wide.describe());
}

}  // namespace

void concat_cols_forward(Tensor& out, const std::vector<Tensor>& xs) {
  const char* op = "concat_cols_forward";
  check_parts(op, "xs", xs, "out", out);
  if (out.numel() == 0) return;
  switch (out.device().type) {
    case DeviceType::CPU: cpu::concat_cols_forward(out, xs); break;
    case DeviceType::CUDA: LAPIS_CUDA_CALL(cuda::concat_cols_forward, out, xs); break;
  }
}

void concat_cols_backward(std::vector<Tensor>& dL_dxs, const Tensor& dL_dout) {
  const char* op = "concat_cols_backward";
  check_parts(op, "dL_dxs", dL_dxs, "dL_dout", dL_dout);
  if (dL_dout.numel() == 0) return;
  switch (dL_dout.device().type) {
    case DeviceType::CPU: cpu::concat_cols_backward(dL_dxs, dL_dout); break;
    case DeviceType::CUDA: LAPIS_CUDA_CALL(cuda::concat_cols_backward, dL_dxs, dL_dout); break;
  }
}

void slice_cols_forward(Tensor& out, const Tensor& x, int64_t start) {
  const char* op = "slice_cols_forward";
  check_slice(op, "x", x, "out", out, start);
  if (out.numel() == 0) return;
  switch (x.device().type) {
    case DeviceType::CPU: cpu::slice_cols_forward(out, x, start); break;
    case DeviceType::CUDA: LAPIS_CUDA_CALL(cuda::slice_cols_forward, out, x, start); break;
  }
}

void slice_cols_backward(Tensor& dL_dx, const Tensor& dL_dout, int64_t start) {
  const char* op = "slice_cols_backward";
  check_slice(op, "dL_dx", dL_dx, "dL_dout", dL_dout, start);
  if (dL_dx.numel() == 0) return;
  switch (dL_dx.device().type) {
    case DeviceType::CPU: cpu::slice_cols_backward(dL_dx, dL_dout, start); break;
    case DeviceType::CUDA: LAPIS_CUDA_CALL(cuda::slice_cols_backward, dL_dx, dL_dout, start); break;
  }
}

}  // namespace lapis
