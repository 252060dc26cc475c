// Multi-head SpMM over a graph (kernels/graph_view.h): weighted aggregation of source features
//   out[i,h,:] = sum_{e into i} alpha[e,h] X[src(e),h,:]
// alpha [E,H]; X, out [N,H,D]. The backward is deterministic (no atomics): dL_dX walks the CSC
// (gather over outgoing edges), dL_dalpha is an SDDMM (one dot product per edge and head). On
// CUDA, rows longer than 128 edges (hubs) are split across thread groups and combined in a fixed
// order, unless the view's degree bounds say no row is that long.
#pragma once

#include "core/tensor.h"
#include "kernels/graph_view.h"

namespace lapis {

// Which CUDA implementation runs the forward. Only the single-head case (H == 1, f32) can use
// cuSPARSE's generic SpMM (cusparseSpMM, CSR, scalar edge weight); every other case, and every
// backward, uses Lapis's own kernels. Auto picks the default for the case (see spmm_cuda.cu for
// the reasoning and bench/bench_graph_attention.cpp, which measures both).
enum class SpmmAlgo { Auto, Native, CuSparse };

// out [N,H,D] (overwritten). CuSparse throws unless H == 1, F32 and CUDA; a multigraph with more
// edges than n^2 (which cuSPARSE cannot describe) falls back to the native kernel.
void spmm_forward(Tensor& out, const CsrGraphView& g, const Tensor& alpha, const Tensor& x,
                  SpmmAlgo algo = SpmmAlgo::Auto);
// dL_dalpha [E,H] = sum_d dL_dout[dst(e),h,d] X[src(e),h,d]   (overwritten; may be undefined)
// dL_dx [N,H,D]  = sum_{e out of j} alpha[e,h] dL_dout[dst(e)] (overwritten; may be undefined)
void spmm_backward(Tensor& dL_dalpha, Tensor& dL_dx, const Tensor& dL_dout, const CsrGraphView& g,
                   const Tensor& alpha, const Tensor& x);

}  // namespace lapis
