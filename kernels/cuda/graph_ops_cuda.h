// CUDA SDDMM, segment softmax and SpMM (host-only declarations; kernels/sddmm.h,
// kernels/segment_softmax.h, kernels/spmm.h). Implementations: sddmm_cuda.cu,
// segment_softmax_cuda.cu, spmm_cuda.cu.
#pragma once

#include "core/tensor.h"
#include "kernels/graph_view.h"
#include "kernels/spmm.h"

namespace lapis {
namespace cuda {

void sddmm_forward(Tensor& score, const CsrGraphView& g, const Tensor& a, const Tensor& b,
                   double scale);
void sddmm_backward(Tensor& dL_da, Tensor& dL_db, const Tensor& dL_dscore, const CsrGraphView& g,
                    const Tensor& a, const Tensor& b, double scale);
void segment_softmax_forward(Tensor& alpha, const Tensor& score, const Tensor& in_ptr);
void segment_softmax_backward(Tensor& dL_dscore, const Tensor& dL_dalpha, const Tensor& alpha,
                              const Tensor& in_ptr);
void spmm_forward(Tensor& out, const CsrGraphView& g, const Tensor& alpha, const Tensor& x,
                  SpmmAlgo algo);
void spmm_backward(Tensor& dL_dalpha, Tensor& dL_dx, const Tensor& dL_dout, const CsrGraphView& g,
                   const Tensor& alpha, const Tensor& x);

}  // namespace cuda
}  // namespace lapis
