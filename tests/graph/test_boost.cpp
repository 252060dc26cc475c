// Boost.Graph interop: graph_from_boost for adjacency_list (directed, bidirectional, undirected,
// listS vertices with an index property) and compressed_sparse_row_graph; export to
// adjacency_list; weakly connected components against a union-find reference.
#include <gtest/gtest.h>

#include <boost/graph/compressed_sparse_row_graph.hpp>
#include <functional>
#include <map>
#include <numeric>

#include "graph/boost_adapter.h"
#include "tests/common/test_util.h"

namespace lapis {
namespace graph {
namespace {

std::vector<int32_t> vec(const Tensor& t) { return t.to_vector<int32_t>(); }

// Edges with a self loop (2->2), a duplicate (0->1 twice), an isolated node (5).
const int kN = 6;
const std::vector<std::pair<int, int>> kEdges = {{0, 1}, {3, 1}, {2, 2}, {1, 0}, {0, 1}, {4, 3}};

Graph reference_graph(bool undirected) {
  std::vector<int32_t> s, d;
  for (auto [u, v] : kEdges) {
    s.push_back(u);
    d.push_back(v);
  }
  CooOptions o;
  o.make_undirected = undirected;
  return graph_from_coo(kN, s, d, o);
}

void expect_same_structure(const Graph& a, const Graph& b) {
  a.validate();
  EXPECT_EQ(a.num_nodes, b.num_nodes);
  EXPECT_EQ(vec(a.in_ptr), vec(b.in_ptr));
  EXPECT_EQ(vec(a.src), vec(b.src));
  EXPECT_EQ(vec(a.dst), vec(b.dst));
  EXPECT_EQ(vec(a.out_edge), vec(b.out_edge));
}

template <class BGL>
BGL build() {
  BGL g(kN);
  for (auto [u, v] : kEdges) boost::add_edge(u, v, g);
  return g;
}

TEST(Boost, DirectedAdjacencyList) {
  using G = boost::adjacency_list<boost::vecS, boost::vecS, boost::directedS>;
  expect_same_structure(graph_from_boost(build<G>()), reference_graph(false));
  using B = boost::adjacency_list<boost::vecS, boost::vecS, boost::bidirectionalS>;
  expect_same_structure(graph_from_boost(build<B>()), reference_graph(false));
  // setS out-edges drop the parallel edge (BGL's choice), so compare counts only.
  using S = boost::adjacency_list<boost::setS, boost::vecS, boost::directedS>;
  EXPECT_EQ(graph_from_boost(build<S>()).num_edges, static_cast<int64_t>(kEdges.size()) - 1);
}

TEST(Boost, UndirectedAdjacencyListGivesBothDirections) {
  using G = boost::adjacency_list<boost::vecS, boost::vecS, boost::undirectedS>;
  const Graph g = graph_from_boost(build<G>());
  expect_same_structure(g, reference_graph(true));
  // 5 non-loop edges twice + the loop once.
  EXPECT_EQ(g.num_edges, 11);
  EXPECT_EQ(vec(g.in_degree()), vec(g.out_degree()));
}

TEST(Boost, ListSVerticesWithIndexProperty) {
  using G = boost::adjacency_list<boost::listS, boost::listS, boost::directedS,
                                  boost::property<boost::vertex_index_t, int>>;
  G g;
  std::vector<G::vertex_descriptor> vs;
  for (int i = 0; i < kN; ++i) vs.push_back(boost::add_vertex(i, g));
  for (auto [u, v] : kEdges) boost::add_edge(vs[u], vs[v], g);
  expect_same_structure(graph_from_boost(g), reference_graph(false));
  // The explicit-map overload with an out-of-range index names the problem.
  boost::put(boost::vertex_index, g, vs[3], 17);
  ::lapis::testing::expect_error_mentions([&] { graph_from_boost(g); },
                                          {"graph_from_boost", "out of range", "17"});
}

TEST(Boost, CompressedSparseRowGraph) {
  using G = boost::compressed_sparse_row_graph<boost::directedS>;
  const G g(boost::edges_are_unsorted_multi_pass, kEdges.begin(), kEdges.end(), kN);
  expect_same_structure(graph_from_boost(g), reference_graph(false));
  const G empty(boost::edges_are_unsorted_multi_pass, kEdges.begin(), kEdges.begin(), 0);
  const Graph e = graph_from_boost(empty);
  e.validate();
  EXPECT_EQ(e.num_nodes, 0);
}

TEST(Boost, ExportRoundTrip) {
  Generator gen(21);
  std::vector<int32_t> s, d;
  const int n = 40;
  for (int i = 0; i < 120; ++i) {
    s.push_back(static_cast<int32_t>(gen.uniform() * n) % n);
    d.push_back(static_cast<int32_t>(gen.uniform() * n) % n);
  }
  const Graph g = graph_from_coo(n, s, d);
  const BoostDigraph b = to_boost_adjacency_list(g);
  ASSERT_EQ(boost::num_vertices(b), static_cast<size_t>(n));
  ASSERT_EQ(boost::num_edges(b), static_cast<size_t>(g.num_edges));
  const auto op = vec(g.out_ptr), od = vec(g.out_dst);
  for (int u = 0; u < n; ++u) {
    std::vector<int32_t> targets;
    for (auto [it, end] = boost::out_edges(u, b); it != end; ++it) {
      targets.push_back(static_cast<int32_t>(boost::target(*it, b)));
    }
    EXPECT_EQ(targets, std::vector<int32_t>(od.begin() + op[u], od.begin() + op[u + 1]));
  }
  expect_same_structure(graph_from_boost(b), g);
  EXPECT_EQ(boost::num_vertices(to_boost_adjacency_list(graph_from_coo(0, {}, {}))), 0u);
}

// Union-find reference for weak components, numbered by smallest member.
std::vector<int32_t> reference_components(int n, const std::vector<int32_t>& s,
                                          const std::vector<int32_t>& d, int* count) {
  std::vector<int> parent(n);
  std::iota(parent.begin(), parent.end(), 0);
  std::function<int(int)> find = [&](int x) {
    return parent[x] == x ? x : parent[x] = find(parent[x]);
  };
  for (size_t e = 0; e < s.size(); ++e) parent[find(s[e])] = find(d[e]);
  std::map<int, int32_t> id;
  std::vector<int32_t> out(n);
  for (int v = 0; v < n; ++v) {
    auto it = id.find(find(v));
    if (it == id.end()) it = id.emplace(find(v), static_cast<int32_t>(id.size())).first;
    out[v] = it->second;
  }
  *count = static_cast<int>(id.size());
  return out;
}

TEST(Boost, ConnectedComponents) {
  // 0-1 (via 0->1, 1->0), 3->1 and 4->3 join {0,1,3,4}; 2 has only a loop; 5 is isolated.
  int count = -1;
  EXPECT_EQ(connected_components(reference_graph(false), &count),
            (std::vector<int32_t>{0, 0, 1, 0, 0, 2}));
  EXPECT_EQ(count, 3);
  // Direction does not matter: 1 -> 0 only, with 0 the sink, still one component.
  EXPECT_EQ(connected_components(graph_from_coo(3, {2, 1}, {1, 0})),
            (std::vector<int32_t>{0, 0, 0}));
  EXPECT_EQ(connected_components(graph_from_coo(4, {}, {}), &count),
            (std::vector<int32_t>{0, 1, 2, 3}));
  EXPECT_EQ(count, 4);
  EXPECT_TRUE(connected_components(graph_from_coo(0, {}, {}), &count).empty());
  EXPECT_EQ(count, 0);

  Generator gen(99);
  for (int n : {1, 7, 33, 257}) {
    for (int e : {0, n / 3, n / 2, 2 * n}) {
      std::vector<int32_t> s, d;
      for (int i = 0; i < e; ++i) {
        s.push_back(static_cast<int32_t>(gen.uniform() * n) % n);
        d.push_back(static_cast<int32_t>(gen.uniform() * n) % n);
      }
      int expected_count = 0;
      const auto expected = reference_components(n, s, d, &expected_count);
      EXPECT_EQ(connected_components(graph_from_coo(n, s, d), &count), expected)
          << "n=" << n << " e=" << e;
      EXPECT_EQ(count, expected_count);
    }
  }
}

TEST(BoostCuda, ComponentsOfDeviceGraph) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  const Graph g = reference_graph(false).to(Device::cuda());
  int count = 0;
  EXPECT_EQ(connected_components(g, &count), (std::vector<int32_t>{0, 0, 1, 0, 0, 2}));
  EXPECT_EQ(count, 3);
  EXPECT_EQ(boost::num_edges(to_boost_adjacency_list(g)), kEdges.size());
}

}  // namespace
}  // namespace graph
}  // namespace lapis
