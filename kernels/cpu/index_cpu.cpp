#include "kernels/cpu/index_cpu.h"

#include <vector>

namespace lapis {
namespace cpu {

namespace {

// Throws unless every index[i] is in [0, rows).
template <typename index_t>
void check_indices(const char* op, const char* name, const index_t* index, int64_t count,
                   int64_t rows) {
  for (int64_t i = 0; i < count; ++i) {
    const int64_t v = static_cast<int64_t>(index[i]);
    LAPIS_CHECK(v >= 0 && v < rows, op, name, "[", i, "] = ", v, " is out of range [0, ", rows,
                ")");
  }
}

// out [M, C] = src rows picked by index [M]; src has `rows` rows.
void gather(const char* op, const char* index_name, Tensor& out, const Tensor& src,
            const Tensor& index) {
  const int64_t m = index.numel(), c = src.size(1), rows = src.size(0);
  LAPIS_DISPATCH_FLOAT(src.dtype(), op, [&] {
    LAPIS_DISPATCH_INDEX(index.dtype(), op, [&] {
      const index_t* idx = index.data<index_t>();
      check_indices(op, index_name, idx, m, rows);
      const scalar_t* ps = src.data<scalar_t>();
      scalar_t* po = out.data<scalar_t>();
      for (int64_t i = 0; i < m; ++i) {
        const int64_t r = static_cast<int64_t>(idx[i]);
        for (int64_t k = 0; k < c; ++k) po[i * c + k] = ps[r * c + k];
      }
    });
  });
}

// For each i, out[index[i]] += src[i]; out is zeroed first unless accumulate.
void scatter_add(const char* op, const char* index_name, Tensor& out, const Tensor& src,
                 const Tensor& index, bool accumulate) {
  const int64_t m = index.numel(), c = out.size(1), rows = out.size(0);
  LAPIS_DISPATCH_FLOAT(src.dtype(), op, [&] {
    LAPIS_DISPATCH_INDEX(index.dtype(), op, [&] {
      const index_t* idx = index.data<index_t>();
      check_indices(op, index_name, idx, m, rows);
      const scalar_t* ps = src.data<scalar_t>();
      scalar_t* po = out.data<scalar_t>();
      if (!accumulate) {
        for (int64_t i = 0; i < rows * c; ++i) po[i] = scalar_t(0);
      }
      for (int64_t i = 0; i < m; ++i) {
        const int64_t r = static_cast<int64_t>(idx[i]);
        for (int64_t k = 0; k < c; ++k) po[r * c + k] += ps[i * c + k];
      }
    });
  });
}

// Throws unless ptr [B + 1] starts at 0, ends at n and never decreases.
template <typename index_t>
void check_segment_pointers(const char* op, const index_t* ptr, int64_t b_count, int64_t n) {
  LAPIS_CHECK(static_cast<int64_t>(ptr[0]) == 0, op, "ptr[0] must be 0, got ",
              static_cast<int64_t>(ptr[0]));
  for (int64_t b = 0; b < b_count; ++b) {
    LAPIS_CHECK(ptr[b + 1] >= ptr[b], op, "ptr must be non-decreasing, but ptr[", b + 1,
                "] = ", static_cast<int64_t>(ptr[b + 1]), " < ptr[", b,
                "] = ", static_cast<int64_t>(ptr[b]));
  }
  LAPIS_CHECK(static_cast<int64_t>(ptr[b_count]) == n, op, "ptr[", b_count,
              "] must equal the number of rows ", n, ", got ",
              static_cast<int64_t>(ptr[b_count]));
}

}  // namespace

void gather_rows_forward(Tensor& out, const Tensor& x, const Tensor& index) {
  gather("gather_rows_forward", "index", out, x, index);
}

void gather_rows_backward(Tensor& dL_dx, const Tensor& dL_dout, const Tensor& index) {
  scatter_add("gather_rows_backward", "index", dL_dx, dL_dout, index, /*accumulate=*/false);
}

void scatter_add_rows_forward(Tensor& out, const Tensor& x, const Tensor& index) {
  scatter_add("scatter_add_rows_forward", "index", out, x, index, /*accumulate=*/false);
}

void scatter_add_rows_backward(Tensor& dL_dx, const Tensor& dL_dout, const Tensor& index) {
  gather("scatter_add_rows_backward", "index", dL_dx, dL_dout, index);
}

void embedding_forward(Tensor& out, const Tensor& indices, const Tensor& table) {
  gather("embedding_forward", "indices", out, table, indices);
}

void embedding_backward(Tensor& dL_dtable, const Tensor& dL_dout, const Tensor& indices) {
  scatter_add("embedding_backward", "indices", dL_dtable, dL_dout, indices, /*accumulate=*/true);
}

void segment_reduce_forward(Tensor& out, Tensor& argmax, const Tensor& x, const Tensor& ptr,
                            SegmentReduce kind) {
  const char* op = "segment_reduce_forward";
  const int64_t n = x.size(0), c = x.size(1), b_count = out.size(0);
  LAPIS_DISPATCH_FLOAT(x.dtype(), op, [&] {
    LAPIS_DISPATCH_INDEX(ptr.dtype(), op, [&] {
      const index_t* pp = ptr.data<index_t>();
      check_segment_pointers(op, pp, b_count, n);
      const scalar_t* px = x.data<scalar_t>();
      scalar_t* po = out.data<scalar_t>();
      int64_t* pa = kind == SegmentReduce::Max ? argmax.data<int64_t>() : nullptr;
      for (int64_t b = 0; b < b_count; ++b) {
        const int64_t start = pp[b], end = pp[b + 1];
        for (int64_t k = 0; k < c; ++k) {
          if (kind == SegmentReduce::Max) {
            // First row wins ties (strict >); an empty segment gives 0 and argmax -1.
            int64_t best = -1;
            scalar_t value = scalar_t(0);
            for (int64_t r = start; r < end; ++r) {
              if (best < 0 || px[r * c + k] > value) {
                best = r;
                value = px[r * c + k];
              }
            }
            po[b * c + k] = value;
            pa[b * c + k] = best;
          } else {
            double sum = 0.0;
            for (int64_t r = start; r < end; ++r) sum += px[r * c + k];
            if (kind == SegmentReduce::Mean && end > start) sum /= static_cast<double>(end - start);
            po[b * c + k] = static_cast<scalar_t>(sum);
          }
        }
      }
    });
  });
}

void segment_reduce_backward(Tensor& dL_dx, const Tensor& dL_dout, const Tensor& ptr,
                             const Tensor& argmax, SegmentReduce kind) {
  const char* op = "segment_reduce_backward";
  const int64_t n = dL_dx.size(0), c = dL_dx.size(1), b_count = dL_dout.size(0);
  LAPIS_DISPATCH_FLOAT(dL_dx.dtype(), op, [&] {
    LAPIS_DISPATCH_INDEX(ptr.dtype(), op, [&] {
      const index_t* pp = ptr.data<index_t>();
      check_segment_pointers(op, pp, b_count, n);
      const scalar_t* pg = dL_dout.data<scalar_t>();
      scalar_t* pdx = dL_dx.data<scalar_t>();
      for (int64_t i = 0; i < n * c; ++i) pdx[i] = scalar_t(0);
      const int64_t* pa = kind == SegmentReduce::Max ? argmax.data<int64_t>() : nullptr;
      for (int64_t b = 0; b < b_count; ++b) {
        const int64_t start = pp[b], end = pp[b + 1];
        for (int64_t k = 0; k < c; ++k) {
          const scalar_t g = pg[b * c + k];
          if (kind == SegmentReduce::Max) {
            const int64_t a = pa[b * c + k];
            if (a == -1 && start == end) continue;  // empty segment: no input to route to
            LAPIS_CHECK(a >= start && a < end, op, "argmax[", b, ", ", k, "] = ", a,
                        " is outside segment ", b, " (rows ", start, " .. ", end - 1, ")");
            pdx[a * c + k] = g;
          } else {
            const scalar_t scale =
                kind == SegmentReduce::Mean ? scalar_t(1) / static_cast<scalar_t>(end - start)
                                            : scalar_t(1);
            for (int64_t r = start; r < end; ++r) pdx[r * c + k] = g * scale;
          }
        }
      }
    });
  });
}

}  // namespace cpu
}  // namespace lapis
