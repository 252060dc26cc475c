// Multi-head SDDMM on CUDA (kernels/sddmm.h): one head group of ceil(D/4) lanes per (row, head)
// (kernels/cuda/graph_rows.cuh). Forward and dL_dA walk the CSR by destination, dL_dB the CSC
// by source, so no gradient needs atomics and every sum runs in a fixed order.
#include "core/cuda/cuda_check.h"
#include "kernels/cuda/graph_ops_cuda.h"
#include "kernels/cuda/graph_rows.cuh"

namespace lapis {
namespace cuda {

namespace {

// score[e,h] = scale * <A[i], B[src(e)]> for the incoming edges e of row i.
template <typename T, bool VEC>
__global__ void sddmm_forward_kernel(T* __restrict__ score, const int32_t* __restrict__ in_ptr,
                                     const int32_t* __restrict__ src, const T* __restrict__ a,
                                     const T* __restrict__ b, int64_t n, int64_t num_edges,
                                     int heads, int dim, int ns, T scale, int* error_flag) {
  HeadGroup g;
  if (!head_group(n, heads, ns, g)) return;
  const int64_t hd = static_cast<int64_t>(heads) * dim;
  const int off = g.h * dim + g.s * kSliceWidth;
  const int valid = min(kSliceWidth, dim - g.s * kSliceWidth);
  T ai[4];
  load4<T, VEC>(ai, a + g.row * hd + off, valid);
  const int64_t e0 = in_ptr[g.row], e1 = in_ptr[g.row + 1];
  if (!segment_valid(e0, e1, num_edges)) {
    if (g.s == 0) report_device_error(error_flag, kBadSegmentPointers);
    return;
  }
  for (int64_t e = e0; e < e1; ++e) {
    const int64_t j = src[e];
    if (j < 0 || j >= n) {
      if (g.s == 0) report_device_error(error_flag, kIndexOutOfRange);
      continue;
    }
    T bj[4];
    load4<T, VEC>(bj, b + j * hd + off, valid);
    T p = T(0);
#pragma unroll
    for (int x = 0; x < 4; ++x) p += ai[x] * bj[x];
    const T s = group_sum(p, g, ns);
    if (g.s == 0) score[e * heads + g.h] = s * scale;
  }
}

// out[r] = scale * sum over row r's edges of dscore[edge, h] * other[neighbour]; CSR when
// edge_of == nullptr (edge = position, neighbour = nbr[position]), CSC otherwise.
template <typename T, bool VEC>
__global__ void sddmm_backward_kernel(T* __restrict__ out, const int32_t* __restrict__ ptr,
                                      const int32_t* __restrict__ edge_of,
                                      const int32_t* __restrict__ nbr,
                                      const T* __restrict__ dscore, const T* __restrict__ other,
                                      int64_t n, int64_t num_edges, int heads, int dim, int ns,
                                      T scale, int* error_flag) {
  HeadGroup g;
  if (!head_group(n, heads, ns, g)) return;
  const int64_t hd = static_cast<int64_t>(heads) * dim;
  const int off = g.h * dim + g.s * kSliceWidth;
  const int valid = min(kSliceWidth, dim - g.s * kSliceWidth);
  T acc[4] = {T(0), T(0), T(0), T(0)};
  const int64_t p0 = ptr[g.row], p1 = ptr[g.row + 1];
  if (!segment_valid(p0, p1, num_edges)) {
    if (g.s == 0) report_device_error(error_flag, kBadSegmentPointers);
  } else {
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t e = edge_of != nullptr ? edge_of[p] : p;
      const int64_t j = nbr[p];
      if (e < 0 || e >= num_edges || j < 0 || j >= n) {
        if (g.s == 0) report_device_error(error_flag, kIndexOutOfRange);
        continue;
      }
      T o[4];
      load4<T, VEC>(o, other + j * hd + off, valid);
      const T w = dscore[e * heads + g.h] * scale;
#pragma unroll
      for (int x = 0; x < 4; ++x) acc[x] += w * o[x];
    }
  }
  store4<T, VEC>(out + g.row * hd + off, acc, valid);
}

template <typename T>
void launch_backward(T* out, const int32_t* ptr, const int32_t* edge_of, const int32_t* nbr,
                     const T* dscore, const T* other, int64_t n, int64_t num_edges, int heads,
                     int dim, T scale) {
  const int ns = head_group_lanes(dim);
  const bool vec = dim % 4 == 0 && aligned16(out) && aligned16(other);
  with_flag(vec, [&](auto v) {
    sddmm_backward_kernel<T, decltype(v)::value>
        <<<head_group_blocks(n, heads, ns), kGraphBlock, 0, stream()>>>(
            out, ptr, edge_of, nbr, dscore, other, n, num_edges, heads, dim, ns, scale,
            device_error_flag());
  });
  LAPIS_CUDA_CHECK(cudaGetLastError());
}

}  // namespace

void sddmm_forward(Tensor& score, const CsrGraphView& g, const Tensor& a, const Tensor& b,
                   double scale) {
  if (g.num_nodes == 0 || g.num_edges == 0) return;
  LAPIS_DISPATCH_FLOAT(a.dtype(), "sddmm_forward", [&] {
    using T = scalar_t;
    const int heads = static_cast<int>(a.size(1)), dim = static_cast<int>(a.size(2));
    const int ns = head_group_lanes(dim);
    const bool vec = dim % 4 == 0 && aligned16(a.data<T>()) && aligned16(b.data<T>());
    with_flag(vec, [&](auto v) {
      sddmm_forward_kernel<T, decltype(v)::value>
          <<<head_group_blocks(g.num_nodes, heads, ns), kGraphBlock, 0, stream()>>>(
              score.data<T>(), g.in_ptr.data<int32_t>(), g.src.data<int32_t>(), a.data<T>(),
              b.data<T>(), g.num_nodes, g.num_edges, heads, dim, ns, static_cast<T>(scale),
              device_error_flag());
    });
    LAPIS_CUDA_CHECK(cudaGetLastError());
  });
}

void sddmm_backward(Tensor& dL_da, Tensor& dL_db, const Tensor& dL_dscore, const CsrGraphView& g,
                    const Tensor& a, const Tensor& b, double scale) {
  if (g.num_nodes == 0) return;
  LAPIS_DISPATCH_FLOAT(a.dtype(), "sddmm_backward", [&] {
    using T = scalar_t;
    const int heads = static_cast<int>(a.size(1)), dim = static_cast<int>(a.size(2));
    const T* ds = dL_dscore.numel() > 0 ? dL_dscore.data<T>() : nullptr;
    const int32_t* src = g.num_edges > 0 ? g.src.data<int32_t>() : nullptr;
    if (dL_da.defined()) {
      launch_backward<T>(dL_da.data<T>(), g.in_ptr.data<int32_t>(), nullptr, src, ds,
                         b.data<T>(), g.num_nodes, g.num_edges, heads, dim,
                         static_cast<T>(scale));
    }
    if (dL_db.defined()) {
      const int32_t* oe = g.num_edges > 0 ? g.out_edge.data<int32_t>() : nullptr;
      const int32_t* od = g.num_edges > 0 ? g.out_dst.data<int32_t>() : nullptr;
      launch_backward<T>(dL_db.data<T>(), g.out_ptr.data<int32_t>(), oe, od, ds, a.data<T>(),
                         g.num_nodes, g.num_edges, heads, dim, static_cast<T>(scale));
    }
  });
}

}  // namespace cuda
}  // namespace lapis
