// Random-walk structural encoding (RWSE, as in GraphGPS / GRIT): for each node i and
// t = 1..K the return probability p_t(i) = ((D^-1 A)^t)_ii of a simple random walk.
//
// Uses the same simple undirected graph as LapPE (graph/laplacian_pe.h): directions ignored,
// duplicates merged, self loops dropped. An isolated node has no walk: all its values are 0.
// Returns f32 [N, K].
//
// Computation: one sparse walk per start node, x_t = x_{t-1} P over the nodes reached so far
// (a dense work vector plus a touched list), so the cost is O(sum_i sum_{t<K} |edges within
// t hops of i|) <= O(N K E) time and O(N) extra memory; on molecules (small K-hop balls) this is
// ~N K d^2. For N <= 64 a dense O(K N^3) matrix power is used instead (faster on tiny graphs).
#pragma once

#include <cstdint>
#include <vector>

#include "core/tensor.h"
#include "graph/graph.h"

namespace lapis {
namespace graph {

Tensor random_walk_se(const Graph& g, int K);
Tensor random_walk_se(int64_t num_nodes, const std::vector<int32_t>& src,
                      const std::vector<int32_t>& dst, int K);

}  // namespace graph
}  // namespace lapis
