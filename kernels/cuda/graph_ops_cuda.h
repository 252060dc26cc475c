// CUDA SDDMM, segment softmax and SpMM (host-only declarations; kernels/sddmm.h,
// kernels/segment_softmax.h, kernels/spmm.h). Implementations: sddmm_cuda.cu,
// segment_softmax_cuda.cu, spmm_cuda.cu.
#pragma once

#include "core/tensor.h"
#include "kernels/graph_view.h"
#include "kernels/sddmm.h"
#include "kernels/spmm.h"

namespace lapis {
namespace cuda {

void sddmm_forward(Tensor& score, const CsrGraphView& g, const Tensor& a, const Tensor& b,
                   double scale, SddmmAlgo algo);
void sddmm_backward(Tensor& dL_da, Tensor& dL_db, const Tensor& dL_dscore, const CsrGraphView& g,
                    const Tensor& a, const Tensor& b, double scale);
void segment_softmax_forward(Tensor& alpha, const Tensor& score, const Tensor& in_ptr,
                             int64_t max_segment_length);
void segment_softmax_backward(Tensor& dL_dscore, const Tensor& dL_dalpha, const Tensor& alpha,
                              const Tensor& in_ptr, int64_t max_segment_length);
void spmm_forward(Tensor& out, const CsrGraphView& g, const Tensor& alpha, const Tensor& x,
                  SpmmAlgo algo);
void spmm_backward(Tensor& dL_dalpha, Tensor& dL_dx, const Tensor& dL_dout, const CsrGraphView& g,
                   const Tensor& alpha, const Tensor& x);

// Row passes shared by SDDMM and SpMM (kernels/cuda/graph_block_passes.cuh; defined in
// spmm_cuda.cu for float and double). Hub rows are split unless max_row_length says none exceeds
// 128 edges (-1: unknown).
// out[r] (overwritten) = sum over row r's positions p of w[edge(p), h] * scale * x[nbr[p], h];
// edge(p) = edge_of[p], or p when edge_of is null (CSR).
template <typename T>
void aggregate_rows(T* out, const int32_t* ptr, const int32_t* edge_of, const int32_t* nbr,
                    const T* w, const T* x, T scale, int64_t n, int64_t num_edges, int heads,
                    int dim, int64_t max_row_length, Device device);
// out[e, h] (overwritten) = <a[dst(e), h], b[src(e), h]> * scale over g's CSR.
template <typename T>
void edge_dot(T* out, const CsrGraphView& g, const T* a, const T* b, T scale, int heads, int dim,
              Device device);

}  // namespace cuda
}  // namespace lapis
