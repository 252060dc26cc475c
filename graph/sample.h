// GraphSample: one item of a graph dataset, as produced by the datasets and consumed by
// GraphDataLoader.
#pragma once

#include <vector>

#include "core/tensor.h"
#include "graph/graph.h"

namespace lapis {
namespace graph {

struct GraphSample {
  Graph graph;
  // Per-graph target, any dtype and shape [T...] (e.g. f32 [1] for regression, or i32 [N] for
  // per-node labels: node-level targets are concatenated along axis 0 too, see GraphBatch).
  Tensor y;
  // Optional per-node tensors [N, C_k] (positional encodings, node labels ...). Every sample of a
  // dataset must have the same number of extras with matching dtypes and trailing shapes.
  std::vector<Tensor> node_extras;
};

}  // namespace graph
}  // namespace lapis
