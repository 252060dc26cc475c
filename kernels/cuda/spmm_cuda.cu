// Multi-head SpMM on CUDA (kernels/spmm.h).
//
// Native kernels: one head group of ceil(D/4) lanes per (row, head) (kernels/cuda/graph_rows.cuh);
// the forward and dL_dalpha walk the CSR by destination, dL_dX walks the CSC by source, so there
// are no atomics and every sum has a fixed order (deterministic).
//
// cuSPARSE: the single-head scalar-weight case (H == 1, f32) can also run through the generic
// cusparseSpMM (CSR, row-major dense operands, CUSPARSE_SPMM_CSR_ALG2, non-transposed, which
// cuSPARSE documents as run-to-run reproducible). SpmmAlgo::Auto picks the native kernel, also
// on graphs with hubs, where a native group walks a hub row alone (the power-law benchmark graph,
// largest in-degree ~329k: native 140 ms, cuSPARSE 1.25 ms on the H200): with a 1000-edge hub,
// two cuSPARSE runs gave different bits on the H200 (tests/kernels/test_spmm.cpp caught it when
// Auto chose cuSPARSE for hubs), and the building blocks promise deterministic results. Why the
// native kernel otherwise:
// the graph-transformer shapes are narrow (D = 8 or 16 columns per head), where a CSR SpMM is
// bound by the gathers of X rows, and the native kernel reads each X row with D/4 float4 loads
// per edge and writes each output row once, exactly like the cuSPARSE CSR algorithm does at best;
// cuSPARSE adds descriptor setup, a bufferSize query and a workspace per call (host overhead that
// dominates on ZINC-sized batches of ~6k edges), and it cannot serve H > 1 or the backward
// (transposed SpMM is not reproducible in cuSPARSE). bench/bench_graph_attention.cpp times both
// paths side by side on the same graphs ("spmm H=1 native" vs "spmm H=1 cusparse") so the choice
// can be revisited with measured numbers.
#include "core/cuda/cuda_check.h"
#include "core/cuda_api.h"
#include "kernels/cuda/graph_ops_cuda.h"
#include "kernels/cuda/graph_rows.cuh"

namespace lapis {
namespace cuda {

namespace {

// out[r] = sum over row r's edges of alpha[edge, h] * x[neighbour]; CSR when edge_of == nullptr.
template <typename T, bool VEC>
__global__ void spmm_forward_kernel(T* __restrict__ out, const int32_t* __restrict__ ptr,
                                    const int32_t* __restrict__ edge_of,
                                    const int32_t* __restrict__ nbr, const T* __restrict__ alpha,
                                    const T* __restrict__ x, int64_t n, int64_t num_edges,
                                    int heads, int dim, int ns, int* error_flag) {
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
      T xj[4];
      load4<T, VEC>(xj, x + j * hd + off, valid);
      const T w = alpha[e * heads + g.h];
#pragma unroll
      for (int c = 0; c < 4; ++c) acc[c] += w * xj[c];
    }
  }
  store4<T, VEC>(out + g.row * hd + off, acc, valid);
}

// dalpha[e,h] = <dout[i], x[src(e)]> over the incoming edges of row i.
template <typename T, bool VEC>
__global__ void spmm_backward_alpha_kernel(T* __restrict__ dalpha,
                                           const int32_t* __restrict__ in_ptr,
                                           const int32_t* __restrict__ src,
                                           const T* __restrict__ dout, const T* __restrict__ x,
                                           int64_t n, int64_t num_edges, int heads, int dim,
                                           int ns, int* error_flag) {
  HeadGroup g;
  if (!head_group(n, heads, ns, g)) return;
  const int64_t hd = static_cast<int64_t>(heads) * dim;
  const int off = g.h * dim + g.s * kSliceWidth;
  const int valid = min(kSliceWidth, dim - g.s * kSliceWidth);
  T gi[4];
  load4<T, VEC>(gi, dout + g.row * hd + off, valid);
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
    T xj[4];
    load4<T, VEC>(xj, x + j * hd + off, valid);
    T p = T(0);
#pragma unroll
    for (int c = 0; c < 4; ++c) p += gi[c] * xj[c];
    const T s = group_sum(p, g, ns);
    if (g.s == 0) dalpha[e * heads + g.h] = s;
  }
}

template <typename T>
void launch_aggregate(T* out, const int32_t* ptr, const int32_t* edge_of, const int32_t* nbr,
                      const T* alpha, const T* x, int64_t n, int64_t num_edges, int heads,
                      int dim) {
  const int ns = head_group_lanes(dim);
  const bool vec = dim % 4 == 0 && aligned16(out) && aligned16(x);
  with_flag(vec, [&](auto v) {
    spmm_forward_kernel<T, decltype(v)::value>
        <<<head_group_blocks(n, heads, ns), kGraphBlock, 0, stream()>>>(
            out, ptr, edge_of, nbr, alpha, x, n, num_edges, heads, dim, ns, device_error_flag());
  });
  LAPIS_CUDA_CHECK(cudaGetLastError());
}

// out [N, D] = A x [N, D] with A the CSR (in_ptr, src, alpha) through cusparseSpMM.
void cusparse_forward(Tensor& out, const CsrGraphView& g, const Tensor& alpha, const Tensor& x) {
  const int64_t n = g.num_nodes, e = g.num_edges, d = x.size(2);
  if (e == 0) {
    out.zero();
    return;
  }
  cusparseHandle_t handle = cusparse_handle();
  cusparseSpMatDescr_t mat_a = nullptr;
  cusparseDnMatDescr_t mat_b = nullptr, mat_c = nullptr;
  LAPIS_CUSPARSE_CHECK(cusparseCreateCsr(&mat_a, n, n, e, g.in_ptr.data<int32_t>(),
                                         g.src.data<int32_t>(), alpha.data<float>(),
                                         CUSPARSE_INDEX_32I, CUSPARSE_INDEX_32I,
                                         CUSPARSE_INDEX_BASE_ZERO, CUDA_R_32F));
  LAPIS_CUSPARSE_CHECK(cusparseCreateDnMat(&mat_b, n, d, d, x.data<float>(), CUDA_R_32F,
                                           CUSPARSE_ORDER_ROW));
  LAPIS_CUSPARSE_CHECK(cusparseCreateDnMat(&mat_c, n, d, d, out.data<float>(), CUDA_R_32F,
                                           CUSPARSE_ORDER_ROW));
  const float one = 1.0f, zero = 0.0f;
  size_t bytes = 0;
  LAPIS_CUSPARSE_CHECK(cusparseSpMM_bufferSize(
      handle, CUSPARSE_OPERATION_NON_TRANSPOSE, CUSPARSE_OPERATION_NON_TRANSPOSE, &one, mat_a,
      mat_b, &zero, mat_c, CUDA_R_32F, CUSPARSE_SPMM_CSR_ALG2, &bytes));
  void* buffer = bytes > 0 ? device_alloc(bytes) : nullptr;
  const cusparseStatus_t status = cusparseSpMM(
      handle, CUSPARSE_OPERATION_NON_TRANSPOSE, CUSPARSE_OPERATION_NON_TRANSPOSE, &one, mat_a,
      mat_b, &zero, mat_c, CUDA_R_32F, CUSPARSE_SPMM_CSR_ALG2, buffer);
  // The caching allocator reuses the block in stream order, so freeing right away is safe.
  if (buffer != nullptr) device_free(buffer);
  cusparseDestroySpMat(mat_a);
  cusparseDestroyDnMat(mat_b);
  cusparseDestroyDnMat(mat_c);
  LAPIS_CUSPARSE_CHECK(status);
}

}  // namespace

void spmm_forward(Tensor& out, const CsrGraphView& g, const Tensor& alpha, const Tensor& x,
                  SpmmAlgo algo) {
  if (g.num_nodes == 0) return;
  // cuSPARSE describes a matrix, so it refuses a multigraph with more edges than the n x n
  // matrix has entries (nnz > n^2, e.g. repeated self loops on one node); the native kernel
  // serves those graphs with the same result.
  if (algo == SpmmAlgo::CuSparse && g.num_edges <= g.num_nodes * g.num_nodes) {
    cusparse_forward(out, g, alpha, x);
    return;
  }
  LAPIS_DISPATCH_FLOAT(x.dtype(), "spmm_forward", [&] {
    using T = scalar_t;
    const T* al = g.num_edges > 0 ? alpha.data<T>() : nullptr;
    const int32_t* src = g.num_edges > 0 ? g.src.data<int32_t>() : nullptr;
    launch_aggregate<T>(out.data<T>(), g.in_ptr.data<int32_t>(), nullptr, src, al, x.data<T>(),
                        g.num_nodes, g.num_edges, static_cast<int>(x.size(1)),
                        static_cast<int>(x.size(2)));
  });
}

void spmm_backward(Tensor& dL_dalpha, Tensor& dL_dx, const Tensor& dL_dout, const CsrGraphView& g,
                   const Tensor& alpha, const Tensor& x) {
  if (g.num_nodes == 0) return;
  LAPIS_DISPATCH_FLOAT(x.dtype(), "spmm_backward", [&] {
    using T = scalar_t;
    const int heads = static_cast<int>(x.size(1)), dim = static_cast<int>(x.size(2));
    const T* al = g.num_edges > 0 ? alpha.data<T>() : nullptr;
    if (dL_dalpha.defined() && g.num_edges > 0) {
      const int ns = head_group_lanes(dim);
      const bool vec = dim % 4 == 0 && aligned16(dL_dout.data<T>()) && aligned16(x.data<T>());
      with_flag(vec, [&](auto v) {
        spmm_backward_alpha_kernel<T, decltype(v)::value>
            <<<head_group_blocks(g.num_nodes, heads, ns), kGraphBlock, 0, stream()>>>(
                dL_dalpha.data<T>(), g.in_ptr.data<int32_t>(), g.src.data<int32_t>(),
                dL_dout.data<T>(), x.data<T>(), g.num_nodes, g.num_edges, heads, dim, ns,
                device_error_flag());
      });
      LAPIS_CUDA_CHECK(cudaGetLastError());
    }
    if (dL_dx.defined()) {
      const int32_t* oe = g.num_edges > 0 ? g.out_edge.data<int32_t>() : nullptr;
      const int32_t* od = g.num_edges > 0 ? g.out_dst.data<int32_t>() : nullptr;
      launch_aggregate<T>(dL_dx.data<T>(), g.out_ptr.data<int32_t>(), oe, od, al,
                          dL_dout.data<T>(), g.num_nodes, g.num_edges, heads, dim);
    }
  });
}

}  // namespace cuda
}  // namespace lapis
