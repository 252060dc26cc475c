// Boost.Graph interop.
//
// graph_from_boost works for any Boost.Graph model that is a VertexListGraph and EdgeListGraph
// with a vertex index (adjacency_list with vecS vertices, compressed_sparse_row_graph, ...), so it
// is a template and lives in this header; its body is in graph/boost_adapter_impl.h, included at
// the end. Include this header only where Boost.Graph is wanted: graph/graph.h stays Boost-free.
//
// Direction: a directed model gives one edge per BGL edge; an undirected model gives both
// directions of each edge (a self loop once). Edge order before the CSR sort is BGL's edges()
// order. No features are transferred.
#pragma once

#include <cstdint>
#include <vector>

#include <boost/graph/adjacency_list.hpp>
#include <boost/graph/graph_traits.hpp>
#include <boost/graph/properties.hpp>

#include "graph/components.h"
#include "graph/graph.h"

namespace lapis {
namespace graph {

// Directed, vector storage: vertex i is node i, out-edges of a vertex in increasing edge id.
using BoostDigraph = boost::adjacency_list<boost::vecS, boost::vecS, boost::directedS>;

// Any BGL model with an interior vertex_index property (vecS adjacency_list, CSR graph).
template <class BGL>
Graph graph_from_boost(const BGL& g);
// Same with an explicit vertex index map (e.g. for listS vertex storage): index[v] in [0, N).
template <class BGL, class VertexIndexMap>
Graph graph_from_boost(const BGL& g, VertexIndexMap index);

// Edges added in edge-id (CSR) order, so the out-edges of vertex u are g's outgoing edges of u
// in increasing edge id (targets = out_dst[out_ptr[u] ..]). Parallel edges and self loops are
// kept. CPU or CUDA graph (index arrays are copied to the host).
BoostDigraph to_boost_adjacency_list(const Graph& g);

// connected_components(const Graph&, int*) is declared in graph/components.h.

}  // namespace graph
}  // namespace lapis

#include "graph/boost_adapter_impl.h"
