// Graph: N nodes and E directed edges src -> dst with int32 ids, stored twice.
//
//  * CSR by destination (each node's incoming edges). Edge ids ARE the CSR positions: edges are
//    sorted by (dst, src), duplicates kept in input order (the sort is stable). Message passing
//    "gather from sources, reduce per destination" walks in_ptr / src directly.
//  * CSC by source (each node's outgoing edges) as a permutation into the CSR: out_edge[k] is the
//    CSR edge id of the k-th outgoing edge, out_dst[k] = dst[out_edge[k]]. Within one source the
//    outgoing edges are in increasing edge id order (hence by increasing dst). Backward passes
//    that scatter to sources walk out_ptr / out_edge without atomics.
//
// Both structures are built once by graph_from_coo (O(N + E) counting sorts). Features are
// optional: node_features [N, F] and edge_features [E, F] in edge-id (CSR) order, any dtype.
// Every index tensor is i32 and lives on the same device as the others (to(device) moves all).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace lapis {
namespace graph {

struct Graph {
  int64_t num_nodes = 0, num_edges = 0;
  Tensor in_ptr;    // i32 [N+1]: incoming edges of node v are edge ids in_ptr[v] .. in_ptr[v+1]-1
  Tensor src;       // i32 [E] source of edge e
  Tensor dst;       // i32 [E] destination of edge e (non-decreasing)
  Tensor out_ptr;   // i32 [N+1]: node u's outgoing edges are out_edge[out_ptr[u] .. out_ptr[u+1]-1]
  Tensor out_edge;  // i32 [E] CSR edge id of the k-th outgoing edge (csr->csc permutation)
  Tensor out_dst;   // i32 [E] = dst[out_edge[k]]
  Tensor node_features;  // optional [N, F] (any dtype), undefined when absent
  Tensor edge_features;  // optional [E, F] in edge-id order, undefined when absent

  // The device of the index tensors (CPU for a default-constructed graph).
  Device device() const;
  // A copy with every defined tensor moved to `device` (shares tensors already there).
  Graph to(Device device) const;
  // Checks every invariant listed above (shapes, dtypes, same device, ids in range, sortedness,
  // that out_edge is a permutation consistent with src/dst); throws lapis::Error naming the
  // broken one. Copies to the host when the graph is on CUDA. O(N + E).
  void validate() const;

  // Host helpers (copy from the device when needed): in-/out-degree per node, i32 [N].
  Tensor in_degree() const;
  Tensor out_degree() const;
  // One line: "Graph(N=..., E=..., node_features f32 [N, F], ... on cpu)".
  std::string describe() const;
};

enum class DuplicateEdges { Keep, Drop };  // Drop keeps the first occurrence (in input order)

struct CooOptions {
  bool remove_self_loops = false;
  DuplicateEdges duplicates = DuplicateEdges::Keep;
  // Adds the reverse v -> u of every edge u -> v (after self-loop removal). Self loops are not
  // doubled. With duplicates == Drop an edge given in both directions appears once each way;
  // with Keep, the input edge u->v plus an input edge v->u give two copies each way.
  bool make_undirected = false;
};

// Builds a CPU graph from edges src[i] -> dst[i] in input order. edge_features [E_in, F]
// (optional, any dtype, CPU) follow their edges through sorting, removal and duplication
// (reverse edges added by make_undirected copy the features of their original).
// node_features must be [num_nodes, F] (optional, CPU). Ids out of range (or num_nodes < 0,
// src/dst length mismatch, E beyond int32) -> lapis::Error naming the position and value.
Graph graph_from_coo(int64_t num_nodes, const std::vector<int32_t>& src,
                     const std::vector<int32_t>& dst, const CooOptions& options = {},
                     const Tensor& edge_features = {}, const Tensor& node_features = {});

// Builds the CSC half (out_ptr, out_edge, out_dst) of a graph whose CSR half (in_ptr, src, dst)
// is set, on the CPU. Used by builders that produce CSR directly (batching).
void build_out_index(Graph& g);

}  // namespace graph
}  // namespace lapis
