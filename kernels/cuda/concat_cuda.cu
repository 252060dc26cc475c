#include "kernels/cuda/concat_cuda.h"

#include "core/cuda/cuda_check.h"

namespace lapis {
namespace cuda {

namespace {

constexpr int kBlock = 256;

// dst[r, dst_col + k] = src[r, src_col + k] for r < rows, k < cols (row-major, dst_width and
// src_width columns). One thread per copied element, grid-stride; consecutive threads walk a
// row, so both sides are coalesced.
template <typename T>
__global__ void concat_copy_kernel(T* __restrict__ dst, int64_t dst_width, int64_t dst_col,
                                   const T* __restrict__ src, int64_t src_width, int64_t src_col,
                                   int64_t rows, int64_t cols) {
  const int64_t total = rows * cols;
  const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += stride) {
    const int64_t r = i / cols, k = i - r * cols;
    dst[r * dst_width + dst_col + k] = src[r * src_width + src_col + k];
  }
}

// Launches the copy (nothing when the block is empty).
template <typename T>
void copy_block(T* dst, int64_t dst_width, int64_t dst_col, const T* src, int64_t src_width,
                int64_t src_col, int64_t rows, int64_t cols) {
  LAPIS_LAUNCH(concat_copy_kernel<T>, rows * cols, kBlock, dst, dst_width, dst_col, src,
               src_width, src_col, rows, cols);
}

}  // namespace

void concat_cols_forward(Tensor& out, const std::vector<Tensor>& xs) {
  LAPIS_DISPATCH_FLOAT(out.dtype(), "concat_cols_forward", [&] {
    const int64_t rows = out.size(0), width = out.size(1);
    int64_t col = 0;
    for (const Tensor& x : xs) {
      copy_block(out.data<scalar_t>(), width, col, x.data<scalar_t>(), x.size(1), int64_t(0),
                 rows, x.size(1));
      col += x.size(1);
    }
  });
}

void concat_cols_backward(std::vector<Tensor>& dL_dxs, const Tensor& dL_dout) {
  LAPIS_DISPATCH_FLOAT(dL_dout.dtype(), "concat_cols_backward", [&] {
    const int64_t rows = dL_dout.size(0), width = dL_dout.size(1);
    int64_t col = 0;
    for (Tensor& dx : dL_dxs) {
      copy_block(dx.data<scalar_t>(), dx.size(1), int64_t(0), dL_dout.data<scalar_t>(), width,
                 col, rows, dx.size(1));
      col += dx.size(1);
    }
  });
}

void slice_cols_forward(Tensor& out, const Tensor& x, int64_t start) {
  LAPIS_DISPATCH_FLOAT(x.dtype(), "slice_cols_forward", [&] {
    copy_block(out.data<scalar_t>(), out.size(1), int64_t(0), x.data<scalar_t>(), x.size(1),
               start, x.size(0), out.size(1));
  });
}

void slice_cols_backward(Tensor& dL_dx, const Tensor& dL_dout, int64_t start) {
  dL_dx.zero();
  LAPIS_DISPATCH_FLOAT(dL_dx.dtype(), "slice_cols_backward", [&] {
    copy_block(dL_dx.data<scalar_t>(), dL_dx.size(1), start, dL_dout.data<scalar_t>(),
               dL_dout.size(1), int64_t(0), dL_dx.size(0), dL_dout.size(1));
  });
}

}  // namespace cuda
}  // namespace lapis
