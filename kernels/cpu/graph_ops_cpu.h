// CPU SDDMM, segment softmax and SpMM (kernels/sddmm.h, segment_softmax.h, spmm.h). The plain
// names are the naive single-threaded references (backwards scatter edge by edge); the
// *_parallel versions are the multi-threaded row paths the dispatch runs (CSR rows for
// per-destination results, CSC rows for per-source results). Arguments are checked by the
// dispatch.
#pragma once

#include "core/tensor.h"
#include "kernels/graph_view.h"

namespace lapis {
namespace cpu {

void sddmm_forward(Tensor& score, const CsrGraphView& g, const Tensor& a, const Tensor& b,
                   double scale, bool parallel = false);
void sddmm_backward(Tensor& dL_da, Tensor& dL_db, const Tensor& dL_dscore, const CsrGraphView& g,
                    const Tensor& a, const Tensor& b, double scale, bool parallel = false);

void segment_softmax_forward(Tensor& alpha, const Tensor& score, const Tensor& in_ptr,
                             bool parallel = false);
void segment_softmax_backward(Tensor& dL_dscore, const Tensor& dL_dalpha, const Tensor& alpha,
                              const Tensor& in_ptr, bool parallel = false);

void spmm_forward(Tensor& out, const CsrGraphView& g, const Tensor& alpha, const Tensor& x,
                  bool parallel = false);
void spmm_backward(Tensor& dL_dalpha, Tensor& dL_dx, const Tensor& dL_dout, const CsrGraphView& g,
                   const Tensor& alpha, const Tensor& x, bool parallel = false);

}  // namespace cpu
}  // namespace lapis
