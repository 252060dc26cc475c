// Multi-head SpMM on CUDA (kernels/spmm.h).
//
// Native kernels: row passes of kernels/cuda/graph_block_passes.cuh, one head group of ceil(D/4)
// lanes per (row, head): the forward and dL_dalpha walk the CSR by destination, dL_dX walks the
// CSC by source, so there are no atomics and every sum has a fixed order (deterministic); rows
// longer than 128 edges are split across groups and combined in order (kernels/cuda/
// split_rows.cuh).
//
// cuSPARSE: the single-head scalar-weight case (H == 1, f32) can also run through the generic
// cusparseSpMM (CSR, row-major dense operands, CUSPARSE_SPMM_CSR_ALG2, non-transposed, which
// cuSPARSE documents as run-to-run reproducible). SpmmAlgo::Auto picks the native kernel. Measured
// on the H200 (bench/bench_graph_attention.cpp, "spmm H=1 native" vs "spmm H=1 cusparse", 1M
// nodes, 10M edges, D = 64): random graph native 0.86 ms vs cuSPARSE 1.12 ms; ZINC-like batch
// 0.022 vs 0.035 ms (cuSPARSE's descriptor setup, bufferSize query and workspace per call
// dominate on ~6k edges); power-law graph with a 329k-edge hub 1.41 vs 1.24 ms (2026-11-29,
// hub pieces combined in two levels; was 1.60 vs 1.22), the one case cuSPARSE wins; but there, with a 1000-edge hub, two cuSPARSE runs gave different bits on the
// H200 (tests/kernels/test_spmm.cpp caught it when Auto chose cuSPARSE for hubs), and the building
// blocks promise deterministic results. cuSPARSE also cannot serve H > 1 or the backward
// (transposed SpMM is not reproducible in cuSPARSE). The graph-transformer shapes are narrow
// (D = 8 or 16 columns per head), where a CSR SpMM is bound by the gathers of X rows; the native
// kernel reads each X row with D/4 float4 loads per edge and writes each output row once.
#include "core/cuda/cuda_check.h"
#include "core/cuda_api.h"
#include "kernels/cuda/cusparse_operands.h"
#include "kernels/cuda/graph_block_passes.cuh"
#include "kernels/cuda/graph_ops_cuda.h"

namespace lapis {
namespace cuda {

template <typename T>
void aggregate_rows(T* out, const int32_t* ptr, const int32_t* edge_of, const int32_t* nbr,
                    const T* w, const T* x, T scale, int64_t n, int64_t num_edges, int heads,
                    int dim, int64_t max_row_length, Device device) {
  AggregateArgs<T> a{};
  a.out = out;
  a.ptr = ptr;
  a.edge_of = edge_of;
  a.nbr = nbr;
  a.w = w;
  a.x = x;
  a.scale = scale;
  static_cast<RowPassShape&>(a) = row_pass_shape(n, num_edges, heads, dim);
  const bool vec = dim % 4 == 0 && aligned16(out) && aligned16(x);
  with_flag(vec, [&](auto v) {
    run_pass<AggregatePass<T, decltype(v)::value>>(a, max_row_length, device);
  });
}

template <typename T>
void edge_dot(T* out, const CsrGraphView& g, const T* a_rows, const T* b_rows, T scale,
              int heads, int dim, Device device) {
  EdgeDotArgs<T> a{};
  a.out = out;
  a.in_ptr = g.in_ptr.data<int32_t>();
  a.src = g.src.data<int32_t>();
  a.a = a_rows;
  a.b = b_rows;
  a.scale = scale;
  static_cast<RowPassShape&>(a) = row_pass_shape(g.num_nodes, g.num_edges, heads, dim);
  const bool vec = dim % 4 == 0 && aligned16(a_rows) && aligned16(b_rows);
  with_flag(vec, [&](auto v) {
    run_pass<EdgeDotPass<T, decltype(v)::value>>(a, g.max_in_degree, device);
  });
}

template void aggregate_rows<float>(float*, const int32_t*, const int32_t*, const int32_t*,
                                   const float*, const float*, float, int64_t, int64_t, int, int,
                                   int64_t, Device);
template void aggregate_rows<double>(double*, const int32_t*, const int32_t*, const int32_t*,
                                     const double*, const double*, double, int64_t, int64_t, int,
                                     int, int64_t, Device);
template void edge_dot<float>(float*, const CsrGraphView&, const float*, const float*, float, int,
                              int, Device);
template void edge_dot<double>(double*, const CsrGraphView&, const double*, const double*, double,
                               int, int, Device);

namespace {

// out [N, D] = A x [N, D] with A the CSR (in_ptr, src, alpha) through cusparseSpMM.
void cusparse_forward(Tensor& out, const CsrGraphView& g, const Tensor& alpha, const Tensor& x) {
  const int64_t n = g.num_nodes, d = x.size(2);
  if (g.num_edges == 0) {
    out.zero();
    return;
  }
  cusparseHandle_t handle = cusparse_handle();
  const CusparseCsr mat_a(g, alpha.data<float>());
  const CusparseDense mat_b(n, d, x.data<float>());
  const CusparseDense mat_c(n, d, out.data<float>());
  const float one = 1.0f, zero = 0.0f;
  size_t bytes = 0;
  LAPIS_CUSPARSE_CHECK(cusparseSpMM_bufferSize(
      handle, CUSPARSE_OPERATION_NON_TRANSPOSE, CUSPARSE_OPERATION_NON_TRANSPOSE, &one,
      mat_a.get(), mat_b.get(), &zero, mat_c.get(), CUDA_R_32F, CUSPARSE_SPMM_CSR_ALG2, &bytes));
  run_with_workspace(bytes, [&](void* buffer) {
    return cusparseSpMM(handle, CUSPARSE_OPERATION_NON_TRANSPOSE,
                        CUSPARSE_OPERATION_NON_TRANSPOSE, &one, mat_a.get(), mat_b.get(), &zero,
                        mat_c.get(), CUDA_R_32F, CUSPARSE_SPMM_CSR_ALG2, buffer);
  });
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
    aggregate_rows<T>(out.data<T>(), g.in_ptr.data<int32_t>(), nullptr, src, al, x.data<T>(), T(1),
                 g.num_nodes, g.num_edges, static_cast<int>(x.size(1)),
                 static_cast<int>(x.size(2)), g.max_in_degree, x.device());
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
      edge_dot<T>(dL_dalpha.data<T>(), g, dL_dout.data<T>(), x.data<T>(), T(1), heads, dim,
                  x.device());
    }
    if (dL_dx.defined()) {
      const int32_t* oe = g.num_edges > 0 ? g.out_edge.data<int32_t>() : nullptr;
      const int32_t* od = g.num_edges > 0 ? g.out_dst.data<int32_t>() : nullptr;
      aggregate_rows<T>(dL_dx.data<T>(), g.out_ptr.data<int32_t>(), oe, od, al, dL_dout.data<T>(),
                   T(1), g.num_nodes, g.num_edges, heads, dim, g.max_out_degree, x.device());
    }
  });
}

}  // namespace cuda
}  // namespace lapis
