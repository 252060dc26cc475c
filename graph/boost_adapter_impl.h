// Template bodies of graph/boost_adapter.h. Do not include directly.
#pragma once

#include <limits>
#include <type_traits>

#include "core/check.h"

namespace lapis {
namespace graph {

template <class BGL, class VertexIndexMap>
Graph graph_from_boost(const BGL& g, VertexIndexMap index) {
  using traits = boost::graph_traits<BGL>;
  constexpr bool directed =
      std::is_convertible<typename traits::directed_category, boost::directed_tag>::value;
  const int64_t n = static_cast<int64_t>(boost::num_vertices(g));
  LAPIS_CHECK(n <= std::numeric_limits<int32_t>::max(), "graph_from_boost",
              "too many vertices for int32 ids: ", n);
  std::vector<int32_t> src, dst;
  typename traits::edge_iterator it, end;
  for (boost::tie(it, end) = boost::edges(g); it != end; ++it) {
    const auto u = static_cast<int64_t>(boost::get(index, boost::source(*it, g)));
    const auto v = static_cast<int64_t>(boost::get(index, boost::target(*it, g)));
    LAPIS_CHECK(u >= 0 && u < n && v >= 0 && v < n, "graph_from_boost", "edge ", src.size(),
                " has vertex index out of range: ", u, " -> ", v, " with ", n, " vertices");
    src.push_back(static_cast<int32_t>(u));
    dst.push_back(static_cast<int32_t>(v));
  }
  CooOptions options;
  options.make_undirected = !directed;  // both directions; self loops stay single
  return graph_from_coo(n, src, dst, options);
}

template <class BGL>
Graph graph_from_boost(const BGL& g) {
  return graph_from_boost(g, boost::get(boost::vertex_index, g));
}

}  // namespace graph
}  // namespace lapis
