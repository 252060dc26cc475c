// Multi-head SDDMM on CUDA (kernels/sddmm.h), on the row passes of
// kernels/cuda/graph_block_passes.cuh: the forward is an edge dot product over the CSR, dL_dA an
// aggregation over the CSR by destination and dL_dB one over the CSC by source, so no gradient
// needs atomics, every sum runs in a fixed order, and hub rows are split across thread groups.
//
// cuSPARSE: the single-head forward (H == 1, f32) can also run through cusparseSDDMM. Auto picks
// the native kernel because it is faster on every benchmark graph (H200, CUDA 13, D = 64 columns,
// bench/bench_graph_attention.cpp rows "sddmm H=1 native" vs "sddmm H=1 cusparse", 2026-11-29):
// ZINC-like batch 22.6 vs 29.3 us, random 1M nodes / 10M edges 0.861 vs 1.390 ms, power-law
// (a 329k-edge hub) 1.51 vs 19.9 ms. The native kernel writes each score with one group-wide dot
// product per edge, reads each B row with D/4 float4 loads and splits hub rows across thread
// groups; cuSPARSE also pays a descriptor setup, bufferSize query and workspace per call. It
// cannot serve H > 1 or the backward (dL_dB is a transposed SpMM, not reproducible there).
#include "core/cuda/cuda_check.h"
#include "core/cuda_api.h"
#include "kernels/cuda/cusparse_operands.h"
#include "kernels/cuda/graph_ops_cuda.h"

namespace lapis {
namespace cuda {

namespace {

// score [E] = scale * <a[dst(e)], b[src(e)]> for one head through cusparseSDDMM: C (the CSR
// pattern in_ptr/src, values score) = scale * (A B^T) o spy(C), A = a and B = b as row-major
// [N, D] matrices, B transposed by the operation.
void cusparse_forward(Tensor& score, const CsrGraphView& g, const Tensor& a, const Tensor& b,
                      double scale) {
  const int64_t n = g.num_nodes, d = a.size(2);
  cusparseHandle_t handle = cusparse_handle();
  // beta = 0, but C's old values are cleared anyway: the result must not depend on whether the
  // library reads them (0 * NaN).
  score.zero();
  const CusparseCsr mat_c(g, score.data<float>());
  const CusparseDense mat_a(n, d, a.data<float>());
  const CusparseDense mat_b(n, d, b.data<float>());
  const float alpha = static_cast<float>(scale), beta = 0.0f;
  size_t bytes = 0;
  LAPIS_CUSPARSE_CHECK(cusparseSDDMM_bufferSize(
      handle, CUSPARSE_OPERATION_NON_TRANSPOSE, CUSPARSE_OPERATION_TRANSPOSE, &alpha, mat_a.get(),
      mat_b.get(), &beta, mat_c.get(), CUDA_R_32F, CUSPARSE_SDDMM_ALG_DEFAULT, &bytes));
  run_with_workspace(bytes, [&](void* buffer) {
    return cusparseSDDMM(handle, CUSPARSE_OPERATION_NON_TRANSPOSE, CUSPARSE_OPERATION_TRANSPOSE,
                         &alpha, mat_a.get(), mat_b.get(), &beta, mat_c.get(), CUDA_R_32F,
                         CUSPARSE_SDDMM_ALG_DEFAULT, buffer);
  });
}

}  // namespace

void sddmm_forward(Tensor& score, const CsrGraphView& g, const Tensor& a, const Tensor& b,
                   double scale, SddmmAlgo algo) {
  if (g.num_nodes == 0 || g.num_edges == 0) return;
  // cuSPARSE describes a matrix, so it refuses a multigraph with more edges than the n x n matrix
  // has entries; the native kernel serves those graphs with the same result.
  if (algo == SddmmAlgo::CuSparse && g.num_edges <= g.num_nodes * g.num_nodes) {
    cusparse_forward(score, g, a, b, scale);
    return;
  }
  LAPIS_DISPATCH_FLOAT(a.dtype(), "sddmm_forward", [&] {
    using T = scalar_t;
    edge_dot<T>(score.data<T>(), g, a.data<T>(), b.data<T>(), static_cast<T>(scale),
                static_cast<int>(a.size(1)), static_cast<int>(a.size(2)), a.device());
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
      aggregate_rows<T>(dL_da.data<T>(), g.in_ptr.data<int32_t>(), nullptr, src, ds,
                        b.data<T>(), static_cast<T>(scale), g.num_nodes, g.num_edges, heads,
                        dim, g.max_in_degree, a.device());
    }
    if (dL_db.defined()) {
      const int32_t* oe = g.num_edges > 0 ? g.out_edge.data<int32_t>() : nullptr;
      const int32_t* od = g.num_edges > 0 ? g.out_dst.data<int32_t>() : nullptr;
      aggregate_rows<T>(dL_db.data<T>(), g.out_ptr.data<int32_t>(), oe, od, ds, a.data<T>(),
                        static_cast<T>(scale), g.num_nodes, g.num_edges, heads, dim,
                        g.max_out_degree, a.device());
    }
  });
}

}  // namespace cuda
}  // namespace lapis
