#include "kernels/cuda/index_cuda.h"

#include "core/cuda/cuda_check.h"

namespace lapis {
namespace cuda {

namespace {

constexpr int kBlock = 256;

// out [M, C] = src [rows, C] at index [M]; one thread per output element (grid-stride).
// An index outside [0, rows) is reported and its row is written as 0.
template <typename T, typename I>
__global__ void gather_rows_forward_kernel(T* __restrict__ out, const T* __restrict__ src,
                                           const I* __restrict__ index, int64_t m, int64_t c,
                                           int64_t rows, int* error_flag) {
  const int64_t total = m * c;
  const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += stride) {
    const int64_t row = i / c, col = i - row * c;
    const int64_t r = static_cast<int64_t>(index[row]);
    if (r < 0 || r >= rows) {
      report_device_error(error_flag, kIndexOutOfRange);
      out[i] = T(0);
      continue;
    }
    out[i] = src[r * c + col];
  }
}

// dst [rows, C] += src [M, C] at index [M], with atomics (sums may differ in the last bits
// between runs, as kernels/index.h says). A bad index is reported and skipped.
template <typename T, typename I>
__global__ void scatter_add_rows_forward_kernel(T* __restrict__ dst, const T* __restrict__ src,
                                                const I* __restrict__ index, int64_t m,
                                                int64_t c, int64_t rows, int* error_flag) {
  const int64_t total = m * c;
  const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += stride) {
    const int64_t row = i / c, col = i - row * c;
    const int64_t r = static_cast<int64_t>(index[row]);
    if (r < 0 || r >= rows) {
      report_device_error(error_flag, kIndexOutOfRange);
      continue;
    }
    atomicAdd(dst + r * c + col, src[i]);
  }
}

// True when segment b's pointers are consistent: 0 <= start <= end <= n, ptr[0] == 0 and
// ptr[B] == n.
template <typename I>
__device__ bool segment_ok(const I* ptr, int64_t b, int64_t b_count, int64_t n) {
  const int64_t start = static_cast<int64_t>(ptr[b]), end = static_cast<int64_t>(ptr[b + 1]);
  if (start < 0 || end < start || end > n) return false;
  if (b == 0 && start != 0) return false;
  if (b == b_count - 1 && end != n) return false;
  return true;
}

// One thread per (segment b, channel k) loops over the segment's rows: deterministic.
// out [B, C]; argmax [B, C] (only for Max, else nullptr).
template <typename T, typename I>
__global__ void segment_reduce_forward_kernel(T* __restrict__ out, int64_t* __restrict__ argmax,
                                              const T* __restrict__ x, const I* __restrict__ ptr,
                                              int64_t b_count, int64_t n, int64_t c, int kind,
                                              int* error_flag) {
  const int64_t total = b_count * c;
  const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += stride) {
    const int64_t b = i / c, k = i - b * c;
    if (!segment_ok(ptr, b, b_count, n)) {
      report_device_error(error_flag, kBadSegmentPointers);
      out[i] = T(0);
      if (argmax != nullptr) argmax[i] = -1;
      continue;
    }
    const int64_t start = static_cast<int64_t>(ptr[b]), end = static_cast<int64_t>(ptr[b + 1]);
    if (kind == static_cast<int>(SegmentReduce::Max)) {
      int64_t best = -1;
      T value = T(0);
      for (int64_t r = start; r < end; ++r) {
        const T v = x[r * c + k];
        if (best < 0 || v > value) {  // strict: the first row wins ties
          best = r;
          value = v;
        }
      }
      out[i] = value;
      argmax[i] = best;
    } else {
      T sum = T(0);
      for (int64_t r = start; r < end; ++r) sum += x[r * c + k];
      if (kind == static_cast<int>(SegmentReduce::Mean) && end > start) {
        sum /= static_cast<T>(end - start);
      }
      out[i] = sum;
    }
  }
}

// One thread per (row r, channel k) of dL_dx [N, C]; a binary search over ptr finds r's
// segment (the last b with ptr[b] <= r, which skips empty segments). Deterministic.
template <typename T, typename I>
__global__ void segment_reduce_backward_kernel(T* __restrict__ dx, const T* __restrict__ g,
                                               const I* __restrict__ ptr,
                                               const int64_t* __restrict__ argmax,
                                               int64_t b_count, int64_t n, int64_t c, int kind,
                                               int* error_flag) {
  const int64_t total = n * c;
  const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += stride) {
    const int64_t r = i / c, k = i - r * c;
    // upper_bound: first b in [0, B] with ptr[b] > r.
    int64_t lo = 0, hi = b_count;
    while (lo < hi) {
      const int64_t mid = lo + (hi - lo) / 2;
      if (static_cast<int64_t>(ptr[mid]) <= r) lo = mid + 1; else hi = mid;
    }
    const int64_t b = lo - 1;
    if (b < 0 || b >= b_count || !segment_ok(ptr, b, b_count, n) ||
        !(static_cast<int64_t>(ptr[b]) <= r && r < static_cast<int64_t>(ptr[b + 1]))) {
      report_device_error(error_flag, kBadSegmentPointers);
      dx[i] = T(0);
      continue;
    }
    const T gv = g[b * c + k];
    if (kind == static_cast<int>(SegmentReduce::Max)) {
      dx[i] = argmax[b * c + k] == r ? gv : T(0);
    } else if (kind == static_cast<int>(SegmentReduce::Mean)) {
      const int64_t count = static_cast<int64_t>(ptr[b + 1]) - static_cast<int64_t>(ptr[b]);
      dx[i] = gv * (T(1) / static_cast<T>(count));
    } else {
      dx[i] = gv;
    }
  }
}

void gather(const char* op, Tensor& out, const Tensor& src, const Tensor& index) {
  const int64_t m = index.numel(), c = src.size(1), rows = src.size(0);
  LAPIS_DISPATCH_FLOAT(src.dtype(), op, [&] {
    LAPIS_DISPATCH_INDEX(index.dtype(), op, [&] {
      LAPIS_LAUNCH((gather_rows_forward_kernel<scalar_t, index_t>), m * c, kBlock,
                   out.data<scalar_t>(), src.data<scalar_t>(), index.data<index_t>(), m, c, rows,
                   device_error_flag());
    });
  });
}

void scatter_add(const char* op, Tensor& dst, const Tensor& src, const Tensor& index,
                 bool accumulate) {
  const int64_t m = index.numel(), c = dst.size(1), rows = dst.size(0);
  if (!accumulate) dst.zero();
  LAPIS_DISPATCH_FLOAT(src.dtype(), op, [&] {
    LAPIS_DISPATCH_INDEX(index.dtype(), op, [&] {
      LAPIS_LAUNCH((scatter_add_rows_forward_kernel<scalar_t, index_t>), m * c, kBlock,
                   dst.data<scalar_t>(), src.data<scalar_t>(), index.data<index_t>(), m, c, rows,
                   device_error_flag());
    });
  });
}

}  // namespace

void gather_rows_forward(Tensor& out, const Tensor& x, const Tensor& index) {
  gather("gather_rows_forward", out, x, index);
}

void gather_rows_backward(Tensor& dL_dx, const Tensor& dL_dout, const Tensor& index) {
  scatter_add("gather_rows_backward", dL_dx, dL_dout, index, /*accumulate=*/false);
}

void scatter_add_rows_forward(Tensor& out, const Tensor& x, const Tensor& index) {
  scatter_add("scatter_add_rows_forward", out, x, index, /*accumulate=*/false);
}

void scatter_add_rows_backward(Tensor& dL_dx, const Tensor& dL_dout, const Tensor& index) {
  gather("scatter_add_rows_backward", dL_dx, dL_dout, index);
}

void embedding_forward(Tensor& out, const Tensor& indices, const Tensor& table) {
  gather("embedding_forward", out, table, indices);
}

void embedding_backward(Tensor& dL_dtable, const Tensor& dL_dout, const Tensor& indices) {
  scatter_add("embedding_backward", dL_dtable, dL_dout, indices, /*accumulate=*/true);
}

void segment_reduce_forward(Tensor& out, Tensor& argmax, const Tensor& x, const Tensor& ptr,
                            SegmentReduce kind) {
  const char* op = "segment_reduce_forward";
  const int64_t n = x.size(0), c = x.size(1), b_count = out.size(0);
  int64_t* pa = kind == SegmentReduce::Max ? argmax.data<int64_t>() : nullptr;
  LAPIS_DISPATCH_FLOAT(x.dtype(), op, [&] {
    LAPIS_DISPATCH_INDEX(ptr.dtype(), op, [&] {
      LAPIS_LAUNCH((segment_reduce_forward_kernel<scalar_t, index_t>), b_count * c, kBlock,
                   out.data<scalar_t>(), pa, x.data<scalar_t>(), ptr.data<index_t>(), b_count, n,
                   c, static_cast<int>(kind), device_error_flag());
    });
  });
}

void segment_reduce_backward(Tensor& dL_dx, const Tensor& dL_dout, const Tensor& ptr,
                             const Tensor& argmax, SegmentReduce kind) {
  const char* op = "segment_reduce_backward";
  const int64_t n = dL_dx.size(0), c = dL_dx.size(1), b_count = dL_dout.size(0);
  const int64_t* pa = kind == SegmentReduce::Max ? argmax.data<int64_t>() : nullptr;
  LAPIS_DISPATCH_FLOAT(dL_dx.dtype(), op, [&] {
    LAPIS_DISPATCH_INDEX(ptr.dtype(), op, [&] {
      LAPIS_LAUNCH((segment_reduce_backward_kernel<scalar_t, index_t>), n * c, kBlock,
                   dL_dx.data<scalar_t>(), dL_dout.data<scalar_t>(), ptr.data<index_t>(), pa,
                   b_count, n, c, static_cast<int>(kind), device_error_flag());
    });
  });
}

}  // namespace cuda
}  // namespace lapis
