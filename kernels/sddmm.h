// Multi-head SDDMM over a graph (CSR by destination, CSC for the backward; kernels/graph_view.h):
//   score[e,h] = scale * sum_d A[dst(e),h,d] * B[src(e),h,d]
// A, B [N,H,D]; score [E,H]. Typical use: A = Q, B = K, scale = 1/sqrt(D).
// Deterministic on every device (no atomics): dL_dA walks the CSR, dL_dB the CSC. On CUDA, rows
// longer than 128 edges (hubs) are split across thread groups and combined in a fixed order,
// unless the view's degree bounds say no row is that long.
#pragma once

#include "core/tensor.h"
#include "kernels/graph_view.h"

namespace lapis {

// Which CUDA implementation runs the forward. Only the single-head case (H == 1, f32) can use
// cuSPARSE's generic SDDMM (cusparseSDDMM, the CSR pattern, row-major A and B); every other case,
// and the backward, uses Lapis's own kernels. Auto picks the default for the case (see
// sddmm_cuda.cu; bench/bench_graph_attention.cpp measures both).
enum class SddmmAlgo { Auto, Native, CuSparse };

// score [E,H] (overwritten). CuSparse throws unless H == 1, F32 and CUDA; a multigraph with more
// edges than n^2 (which cuSPARSE cannot describe) falls back to the native kernel.
void sddmm_forward(Tensor& score, const CsrGraphView& g, const Tensor& a, const Tensor& b,
                   double scale, SddmmAlgo algo = SddmmAlgo::Auto);
// dL_da [N,H,D] = scale * sum_{e into i} dL_dscore[e,h] B[src(e)]  (overwritten; may be undefined)
// dL_db [N,H,D] = scale * sum_{e out of j} dL_dscore[e,h] A[dst(e)] (overwritten; may be undefined)
void sddmm_backward(Tensor& dL_da, Tensor& dL_db, const Tensor& dL_dscore, const CsrGraphView& g,
                    const Tensor& a, const Tensor& b, double scale);

}  // namespace lapis
