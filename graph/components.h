// Connected components (Boost-free declaration; implemented with BGL's disjoint_sets in
// graph/boost_adapter.cpp).
#pragma once

#include <cstdint>
#include <vector>

#include "graph/graph.h"

namespace lapis {
namespace graph {

// Weakly connected components: edge directions are ignored. Returns the component id of each
// node, ids 0 .. count-1 numbered in order of each component's smallest node id (so node 0 is
// in component 0; isolated nodes are components of their own). `count` may be null. Works for
// a graph on any device (copies the index arrays to the host). N = 0 gives {} and count 0.
std::vector<int32_t> connected_components(const Graph& g, int* count = nullptr);

}  // namespace graph
}  // namespace lapis
