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
  // Largest in- and out-degree, or -1 when unknown. Only a load-balancing hint: the CUDA kernels
  // split very long rows across thread groups (a few extra launches) unless the bound says no
  // row is long. A wrong bound can cost speed, never correctness.
  int64_t max_in_degree = -1, max_out_degree = -1;
};

// Builds a view and infers num_nodes = in_ptr.numel() - 1 and num_edges = src.numel(). When the
// pointer arrays are on the CPU, the degree bounds are filled in too (an O(N) scan).
CsrGraphView make_graph_view(const Tensor& in_ptr, const Tensor& src, const Tensor& out_ptr,
                             const Tensor& out_edge, const Tensor& out_dst);

// The largest ptr[i+1] - ptr[i] of a pointer array [N+1] (0 for N = 0, -1 when undefined). A
// CUDA tensor is copied to the host first (a synchronisation: once per graph, not per step).
int64_t max_segment_length(const Tensor& ptr);

// Fills g.max_in_degree / g.max_out_degree from host copies of its pointer arrays (e.g. the CPU
// batch a device view was copied from).
void set_degree_bounds(CsrGraphView& g, const Tensor& in_ptr, const Tensor& out_ptr);

// Checks shapes, dtypes (i32), that every tensor is on `device`, and for CPU tensors every
// index (pointers start at 0, end at E and never decrease; nodes in [0, N); edge ids in [0, E)).
// Throws lapis::Error naming `op`, the field and the offending value. need_csc = false skips
// out_ptr/out_edge/out_dst (they may then be undefined).
void check_graph_view(const char* op, const CsrGraphView& g, Device device, bool need_csc = true);


}  // namespace lapis
