// Batching: many small graphs as one block-diagonal graph, and back.
//
// Graph b's nodes become rows node_ptr[b] .. node_ptr[b+1]-1 of the batch and its edges become
// edge ids edge_ptr[b] .. edge_ptr[b+1]-1 (node ids shifted by node_ptr[b]). Because graphs are
// concatenated in order and each is sorted by (dst, src), the batch's CSR is just the
// concatenation: no re-sorting, O(N + E).
#pragma once

#include <cstdint>
#include <vector>

#include "core/tensor.h"
#include "graph/graph.h"
#include "graph/sample.h"

namespace lapis {
namespace graph {

struct GraphBatch {
  Graph graph;          // block diagonal, B graphs, N nodes, E edges in total
  Tensor node_graph;    // i32 [N]: graph index of each node (for segment pooling / readout)
  Tensor node_ptr;      // i32 [B+1]: node offsets
  Tensor edge_ptr;      // i32 [B+1]: edge offsets
  int64_t num_graphs = 0;
  // Filled when collated from GraphSamples (batch_samples / GraphDataLoader), else empty:
  Tensor y;                         // targets concatenated along axis 0 (see batch_samples)
  std::vector<Tensor> node_extras;  // per-node extras concatenated along axis 0: [N, C_k]
  std::vector<int64_t> sample_index;  // dataset index of each graph (loader only), size B

  // A copy with every tensor on `device` (node_ptr/edge_ptr too; host copies are cheap to get
  // back with to_vector). sample_index stays on the host.
  GraphBatch to(Device device) const;
};

// CPU, block diagonal. Node (edge) features are concatenated: either every graph has them with
// the same dtype and trailing shape, or none does (a graph with zero nodes / zero edges may omit
// them). Graphs must be on the CPU. An empty list gives an empty batch (B = 0, N = E = 0).
GraphBatch batch_graphs(const std::vector<const Graph*>& graphs);

// batch_graphs of the samples' graphs plus their targets and node extras. Targets y of each
// sample (shape [T0, T...], or a 0-d / [1] scalar) are concatenated along axis 0, so graph-level
// targets [1] give [B] and [1, T] give [B, T]; node-level targets [N_b] give [N]. Every sample
// must have y defined with the same dtype and trailing shape, or none may; node_extras likewise
// (same count, dtypes and widths; each [N_b, ...]).
GraphBatch batch_samples(const std::vector<const GraphSample*>& samples);

// x [N, C...] (rows = batch nodes, any dtype, CPU or CUDA) -> per-graph copies [N_b, C...] on
// x's device.
std::vector<Tensor> split_node_rows(const Tensor& x, const GraphBatch& batch);
// x [E, C...] (rows = batch edges) -> per-graph [E_b, C...].
std::vector<Tensor> split_edge_rows(const Tensor& x, const GraphBatch& batch);

}  // namespace graph
}  // namespace lapis
