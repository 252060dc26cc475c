// Hoppe MST orientation through Boost.Graph, and viewpoint orientation.
#include "geometry/orientation.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include <boost/graph/compressed_sparse_row_graph.hpp>
#include <boost/graph/kruskal_min_spanning_tree.hpp>

#include "core/check.h"

namespace lapis {
namespace geometry {

namespace {

struct EdgeWeight {
  float weight;
};
// Each undirected Riemannian edge stored once (i < j); Kruskal only needs the edge list.
using RiemannianGraph = boost::compressed_sparse_row_graph<boost::directedS, boost::no_property,
                                                           EdgeWeight>;

bool finite_normal(const Points& normals, int64_t i) {
  return std::isfinite(normals(i, 0)) && std::isfinite(normals(i, 1)) &&
         std::isfinite(normals(i, 2));
}

}  // namespace

OrientationStats orient_normals_mst(const Points& points, Points& normals,
                                    const IndexMatrix& neighbors) {
  const int64_t n = points.rows();
  const int k = static_cast<int>(neighbors.cols());
  LAPIS_CHECK(normals.rows() == n, "orient_normals_mst", "normals has ", normals.rows(),
              " rows but there are ", n, " points");
  LAPIS_CHECK(neighbors.rows() == n, "orient_normals_mst", "neighbors has ", neighbors.rows(),
              " rows but there are ", n, " points");
  LAPIS_CHECK(n < (int64_t{1} << 31), "orient_normals_mst", "too many points: ", n);
  OrientationStats stats;
  if (n == 0) return stats;
  std::vector<uint8_t> ok(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) ok[static_cast<size_t>(i)] = finite_normal(normals, i);
  for (int64_t i = 0; i < n; ++i) {
    for (int c = 0; c < k; ++c) {
      const int32_t j = neighbors(i, c);
      LAPIS_CHECK(j < n, "orient_normals_mst", "neighbour (", i, ", ", c, ") = ", j,
                  " is out of range for ", n, " points");
    }
  }

  // Symmetrised kNN graph, each edge once: (i, j) from row i, unless j < i already listed i
  // (then row j added it).
  std::vector<std::pair<size_t, size_t>> edges;
  std::vector<EdgeWeight> weights;
  edges.reserve(static_cast<size_t>(n) * static_cast<size_t>(k));
  weights.reserve(edges.capacity());
  for (int64_t i = 0; i < n; ++i) {
    if (!ok[static_cast<size_t>(i)]) continue;
    const int32_t* row = neighbors.row(i).data();
    for (int c = 0; c < k; ++c) {
      const int32_t j = row[c];
      if (j < 0 || j == i || !ok[static_cast<size_t>(j)]) continue;
      bool duplicate = false;
      for (int d = 0; d < c && !duplicate; ++d) duplicate = row[d] == j;  // repeated entry
      if (j < i) {
        const int32_t* other = neighbors.row(j).data();
        for (int d = 0; d < k && !duplicate; ++d) duplicate = other[d] == i;
      }
      if (duplicate) continue;
      const float dot = normals(i, 0) * normals(j, 0) + normals(i, 1) * normals(j, 1) +
                        normals(i, 2) * normals(j, 2);
      edges.emplace_back(static_cast<size_t>(i), static_cast<size_t>(j));
      weights.push_back(EdgeWeight{1.0f - std::fabs(dot)});
    }
  }
  stats.edges = static_cast<int64_t>(edges.size());

  const RiemannianGraph graph(boost::edges_are_unsorted_multi_pass, edges.begin(), edges.end(),
                              weights.begin(), static_cast<size_t>(n));
  std::vector<boost::graph_traits<RiemannianGraph>::edge_descriptor> tree;
  tree.reserve(static_cast<size_t>(n));
  boost::kruskal_minimum_spanning_tree(graph, std::back_inserter(tree),
                                       boost::weight_map(boost::get(&EdgeWeight::weight, graph)));

  // Spanning forest as CSR adjacency.
  std::vector<int64_t> start(static_cast<size_t>(n) + 1, 0);
  for (const auto& e : tree) {
    ++start[boost::source(e, graph) + 1];
    ++start[boost::target(e, graph) + 1];
  }
  std::partial_sum(start.begin(), start.end(), start.begin());
  std::vector<int32_t> adj(static_cast<size_t>(start.back()));
  {
    std::vector<int64_t> fill(start.begin(), start.end() - 1);
    for (const auto& e : tree) {
      const size_t s = boost::source(e, graph), t = boost::target(e, graph);
      adj[static_cast<size_t>(fill[s]++)] = static_cast<int32_t>(t);
      adj[static_cast<size_t>(fill[t]++)] = static_cast<int32_t>(s);
    }
  }

  // Roots: visiting points by decreasing z (ties by index), the first point of each component
  // is its highest one.
  std::vector<int32_t> order;
  order.reserve(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    if (ok[static_cast<size_t>(i)]) order.push_back(static_cast<int32_t>(i));
  }
  std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
    return points(a, 2) > points(b, 2) || (points(a, 2) == points(b, 2) && a < b);
  });
  std::vector<uint8_t> visited(static_cast<size_t>(n), 0);
  std::vector<int32_t> queue;
  queue.reserve(static_cast<size_t>(n));
  for (const int32_t root : order) {
    if (visited[static_cast<size_t>(root)]) continue;
    ++stats.components;
    if (normals(root, 2) < 0.f) {
      normals.row(root) *= -1.f;
      ++stats.flipped;
    }
    visited[static_cast<size_t>(root)] = 1;
    queue.clear();
    queue.push_back(root);
    for (size_t head = 0; head < queue.size(); ++head) {
      const int32_t u = queue[head];
      for (int64_t a = start[static_cast<size_t>(u)]; a < start[static_cast<size_t>(u) + 1]; ++a) {
        const int32_t v = adj[static_cast<size_t>(a)];
        if (visited[static_cast<size_t>(v)]) continue;
        visited[static_cast<size_t>(v)] = 1;
        const float dot = normals(u, 0) * normals(v, 0) + normals(u, 1) * normals(v, 1) +
                          normals(u, 2) * normals(v, 2);
        if (dot < 0.f) {
          normals.row(v) *= -1.f;
          ++stats.flipped;
        }
        queue.push_back(v);
      }
    }
  }
  return stats;
}

OrientationStats orient_normals_mst(const Points& points, Points& normals, int k,
                                    int num_threads) {
  LAPIS_CHECK(normals.rows() == points.rows(), "orient_normals_mst", "normals has ",
              normals.rows(), " rows but there are ", points.rows(), " points");
  LAPIS_CHECK(k >= 1, "orient_normals_mst", "k must be at least 1, got ", k);
  KnnOptions options;
  options.include_self = false;
  options.num_threads = num_threads;
  if (points.rows() == 0) return {};
  // Clouds smaller than k + 1 use every other point.
  options.k = static_cast<int>(std::min<int64_t>(k, points.rows() - 1));
  if (options.k < 1) {  // a single point: only the +z rule applies
    OrientationStats stats;
    stats.components = 1;
    if (finite_normal(normals, 0) && normals(0, 2) < 0.f) {
      normals.row(0) *= -1.f;
      stats.flipped = 1;
    }
    return stats;
  }
  const KnnResult neighbours = knn(points, options);
  return orient_normals_mst(points, normals, neighbours.indices);
}

int64_t orient_normals_toward_viewpoint(const Points& points, Points& normals,
                                        const Eigen::Vector3f& viewpoint) {
  LAPIS_CHECK(normals.rows() == points.rows(), "orient_normals_toward_viewpoint", "normals has ",
              normals.rows(), " rows but there are ", points.rows(), " points");
  int64_t flipped = 0;
  for (int64_t i = 0; i < points.rows(); ++i) {
    const float dot = (viewpoint.x() - points(i, 0)) * normals(i, 0) +
                      (viewpoint.y() - points(i, 1)) * normals(i, 1) +
                      (viewpoint.z() - points(i, 2)) * normals(i, 2);
    if (dot < 0.f) {
      normals.row(i) *= -1.f;
      ++flipped;
    }
  }
  return flipped;
}

}  // namespace geometry
}  // namespace lapis
