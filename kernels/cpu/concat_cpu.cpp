#include "kernels/cpu/concat_cpu.h"

namespace lapis {
namespace cpu {

namespace {

// dst[r, dst_col + k] = src[r, src_col + k] for r < rows, k < cols; dst and src are row-major
// with dst_width and src_width columns.
template <typename scalar_t>
void copy_block(scalar_t* dst, int64_t dst_width, int64_t dst_col, const scalar_t* src,
                int64_t src_width, int64_t src_col, int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t k = 0; k < cols; ++k) {
      dst[r * dst_width + dst_col + k] = src[r * src_width + src_col + k];
    }
  }
}

}  // namespace

void concat_cols_forward(Tensor& out, const std::vector<Tensor>& xs) {
  LAPIS_DISPATCH_FLOAT(out.dtype(), "concat_cols_forward", [&] {
    const int64_t rows = out.size(0), width = out.size(1);
    int64_t col = 0;
    for (const Tensor& x : xs) {
      copy_block(out.data<scalar_t>(), width, col, x.data<scalar_t>(), x.size(1), 0, rows,
                 x.size(1));
      col += x.size(1);
    }
  });
}

void concat_cols_backward(std::vector<Tensor>& dL_dxs, const Tensor& dL_dout) {
  LAPIS_DISPATCH_FLOAT(dL_dout.dtype(), "concat_cols_backward", [&] {
    const int64_t rows = dL_dout.size(0), width = dL_dout.size(1);
    int64_t col = 0;
    for (Tensor& dx : dL_dxs) {
      copy_block(dx.data<scalar_t>(), dx.size(1), 0, dL_dout.data<scalar_t>(), width, col, rows,
                 dx.size(1));
      col += dx.size(1);
    }
  });
}

void slice_cols_forward(Tensor& out, const Tensor& x, int64_t start) {
  LAPIS_DISPATCH_FLOAT(x.dtype(), "slice_cols_forward", [&] {
    copy_block(out.data<scalar_t>(), out.size(1), 0, x.data<scalar_t>(), x.size(1), start,
               x.size(0), out.size(1));
  });
}

void slice_cols_backward(Tensor& dL_dx, const Tensor& dL_dout, int64_t start) {
  LAPIS_DISPATCH_FLOAT(dL_dx.dtype(), "slice_cols_backward", [&] {
    scalar_t* pdx = dL_dx.data<scalar_t>();
    for (int64_t i = 0; i < dL_dx.numel(); ++i) pdx[i] = scalar_t(0);
    copy_block(pdx, dL_dx.size(1), start, dL_dout.data<scalar_t>(), dL_dout.size(1), 0,
               dL_dx.size(0), dL_dout.size(1));
  });
}

}  // namespace cpu
}  // namespace lapis
