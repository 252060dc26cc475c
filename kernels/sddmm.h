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

// score [E,H] (overwritten).
void sddmm_forward(Tensor& score, const CsrGraphView& g, const Tensor& a, const Tensor& b,
                   double scale);
// dL_da [N,H,D] = scale * sum_{e into i} dL_dscore[e,h] B[src(e)]  (overwritten; may be undefined)
// dL_db [N,H,D] = scale * sum_{e out of j} dL_dscore[e,h] A[dst(e)] (overwritten; may be undefined)
void sddmm_backward(Tensor& dL_da, Tensor& dL_db, const Tensor& dL_dscore, const CsrGraphView& g,
                    const Tensor& a, const Tensor& b, double scale);

}  // namespace lapis
