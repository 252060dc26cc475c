// Multi-head SDDMM on CUDA (kernels/sddmm.h), on the row passes of
// kernels/cuda/graph_block_passes.cuh: the forward is an edge dot product over the CSR, dL_dA an
// aggregation over the CSR by destination and dL_dB one over the CSC by source, so no gradient
// needs atomics, every sum runs in a fixed order, and hub rows are split across thread groups.
#include "core/cuda/cuda_check.h"
#include "kernels/cuda/graph_ops_cuda.h"

namespace lapis {
namespace cuda {

void sddmm_forward(Tensor& score, const CsrGraphView& g, const Tensor& a, const Tensor& b,
                   double scale) {
  if (g.num_nodes == 0 || g.num_edges == 0) return;
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
