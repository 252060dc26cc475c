// Non-template parts of the Boost.Graph interop: export to adjacency_list, connected components
// (BGL's disjoint_sets).
#include "graph/boost_adapter.h"

#include <boost/pending/disjoint_sets.hpp>

namespace lapis {
namespace graph {

BoostDigraph to_boost_adjacency_list(const Graph& g) {
  const std::vector<int32_t> src = g.src.to_vector<int32_t>();
  const std::vector<int32_t> dst = g.dst.to_vector<int32_t>();
  BoostDigraph out(static_cast<size_t>(g.num_nodes));
  for (size_t e = 0; e < src.size(); ++e) boost::add_edge(src[e], dst[e], out);
  return out;
}

std::vector<int32_t> connected_components(const Graph& g, int* count) {
  const int64_t n = g.num_nodes;
  std::vector<int32_t> component(static_cast<size_t>(n));
  if (n == 0) {
    if (count) *count = 0;
    return component;
  }
  LAPIS_CHECK(g.src.defined() && g.dst.defined(), "connected_components",
              "graph is not built (src/dst undefined)");
  const std::vector<int32_t> src = g.src.to_vector<int32_t>();
  const std::vector<int32_t> dst = g.dst.to_vector<int32_t>();
  // BGL's union-find (the disjoint_sets behind incremental_components): O(E alpha(N)) and no
  // adjacency_list to allocate, which matters at millions of edges. Directions are ignored.
  std::vector<int32_t> rank(static_cast<size_t>(n)), parent(static_cast<size_t>(n));
  boost::disjoint_sets<int32_t*, int32_t*> sets(rank.data(), parent.data());
  for (int32_t v = 0; v < n; ++v) sets.make_set(v);
  for (size_t e = 0; e < src.size(); ++e) {
    if (src[e] != dst[e]) sets.union_set(src[e], dst[e]);
  }
  // Number components by smallest member (the first time a root is met in node order).
  std::vector<int32_t> id_of_root(static_cast<size_t>(n), -1);
  int32_t next = 0;
  for (int32_t v = 0; v < n; ++v) {
    int32_t& id = id_of_root[static_cast<size_t>(sets.find_set(v))];
    if (id < 0) id = next++;
    component[v] = id;
  }
  if (count) *count = next;
  return component;
}

}  // namespace graph
}  // namespace lapis
