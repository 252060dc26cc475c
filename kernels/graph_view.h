// CsrGraphView: the raw index tensors the sparse graph kernels read, so that kernels/ does not
// depend on graph/ (graph::Graph hands out a view of its own tensors).
//
//   in_ptr   i32 [N + 1]  CSR by destination: the incoming edges of node i are the CSR positions
//                         in_ptr[i] .. in_ptr[i+1]-1. Edge ids ARE these CSR positions.
//   src      i32 [E]      source node of each edge (CSR order).
//   out_ptr  i32 [N + 1]  CSC by source: the outgoing edges of node j are out_ptr[j] .. -1.
//   out_edge i32 [E]      CSR id (edge id) of each outgoing edge, in CSC order (the permutation).
//   out_dst  i32 [E]      destination node of each outgoing edge, in CSC order.
//
// The kernels trust that the CSC is the transpose of the CSR (the graph builder's job); on the
// CPU every index is range-checked, on CUDA an out-of-range index is reported through the device
// error flag and skipped (see core/cuda/cuda_check.h).
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace lapis {

struct CsrGraphView {
  Tensor in_ptr, src, out_ptr, out_edge, out_dst;
  int64_t num_nodes = 0, num_edges = 0;
};

// Builds a view and infers num_nodes = in_ptr.numel() - 1 and num_edges = src.numel().
CsrGraphView make_graph_view(const Tensor& in_ptr, const Tensor& src, const Tensor& out_ptr,
                             const Tensor& out_edge, const Tensor& out_dst);

// Checks shapes, dtypes (i32), that every tensor is on `device`, and for CPU tensors every
// index (pointers start at 0, end at E and never decrease; nodes in [0, N); edge ids in [0, E)).
// Throws lapis::Error naming `op`, the field and the offending value. need_csc = false skips
// out_ptr/out_edge/out_dst (they may then be undefined).
void check_graph_view(const char* op, const CsrGraphView& g, Device device, bool need_csc = true);


}  // namespace lapis
