// Graph builders: CSR/CSC/permutation against a naive reference (std::stable_sort), option
// handling (self loops, duplicates, undirected), features following their edges, empty graphs,
// validation and errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <tuple>

#include "tests/common/test_util.h"
#include "graph/graph.h"

namespace lapis {
namespace graph {
namespace {

using ::lapis::testing::expect_error_mentions;

std::vector<int32_t> vec(const Tensor& t) { return t.to_vector<int32_t>(); }

// The specification, written the slow way: originals (minus removed loops), then reverses of the
// non-loop kept ones; stable sort by (dst, src); Drop keeps the first of equal pairs.
struct RefEdge {
  int32_t s, d, origin;
};
std::vector<RefEdge> reference(const std::vector<int32_t>& src, const std::vector<int32_t>& dst,
                               const CooOptions& o) {
  std::vector<RefEdge> list;
  for (size_t i = 0; i < src.size(); ++i) {
    if (o.remove_self_loops && src[i] == dst[i]) continue;
    list.push_back({src[i], dst[i], static_cast<int32_t>(i)});
  }
  if (o.make_undirected) {
    const size_t kept = list.size();
    for (size_t k = 0; k < kept; ++k) {
      if (list[k].s != list[k].d) list.push_back({list[k].d, list[k].s, list[k].origin});
    }
  }
  std::stable_sort(list.begin(), list.end(), [](const RefEdge& a, const RefEdge& b) {
    return std::make_pair(a.d, a.s) < std::make_pair(b.d, b.s);
  });
  if (o.duplicates == DuplicateEdges::Drop) {
    std::vector<RefEdge> unique;
    for (const RefEdge& e : list) {
      if (!unique.empty() && unique.back().s == e.s && unique.back().d == e.d) continue;
      unique.push_back(e);
    }
    list = unique;
  }
  return list;
}

// Checks g against the reference, including CSC consistency by brute force.
void expect_matches_reference(const Graph& g, int64_t n, const std::vector<int32_t>& src,
                              const std::vector<int32_t>& dst, const CooOptions& o,
                              const Tensor& edge_features) {
  g.validate();
  const std::vector<RefEdge> ref = reference(src, dst, o);
  ASSERT_EQ(g.num_nodes, n);
  ASSERT_EQ(g.num_edges, static_cast<int64_t>(ref.size()));
  const auto s = vec(g.src), d = vec(g.dst), ip = vec(g.in_ptr);
  const auto op = vec(g.out_ptr), oe = vec(g.out_edge), od = vec(g.out_dst);
  for (size_t e = 0; e < ref.size(); ++e) {
    ASSERT_EQ(s[e], ref[e].s) << "edge " << e;
    ASSERT_EQ(d[e], ref[e].d) << "edge " << e;
  }
  for (int64_t v = 0; v < n; ++v) {
    const int64_t in = std::count(d.begin(), d.end(), v);
    const int64_t out = std::count(s.begin(), s.end(), v);
    ASSERT_EQ(ip[v + 1] - ip[v], in) << "node " << v;
    ASSERT_EQ(op[v + 1] - op[v], out) << "node " << v;
    // Outgoing edges of v: exactly the edge ids with src v, increasing.
    std::vector<int32_t> expected;
    for (size_t e = 0; e < s.size(); ++e) {
      if (s[e] == v) expected.push_back(static_cast<int32_t>(e));
    }
    ASSERT_EQ(std::vector<int32_t>(oe.begin() + op[v], oe.begin() + op[v + 1]), expected);
    for (int32_t k = op[v]; k < op[v + 1]; ++k) ASSERT_EQ(od[k], d[oe[k]]);
  }
  if (edge_features.defined()) {
    ASSERT_TRUE(g.edge_features.defined());
    ASSERT_EQ(g.edge_features.shape(), (Shape{g.num_edges, edge_features.size(1)}));
    const auto in = edge_features.to_vector<double>();
    const auto out = g.edge_features.to_vector<double>();
    const int64_t f = edge_features.size(1);
    for (size_t e = 0; e < ref.size(); ++e) {
      for (int64_t c = 0; c < f; ++c) {
        ASSERT_EQ(out[e * f + c], in[ref[e].origin * f + c]) << "edge " << e << " channel " << c;
      }
    }
  }
}

TEST(Graph, HandBuilt) {
  // 0->1, 2->1, 1->0, 3->3, 0->1 (duplicate), node 4 isolated.
  const Graph g = graph_from_coo(5, {0, 2, 1, 3, 0}, {1, 1, 0, 3, 1});
  g.validate();
  EXPECT_EQ(g.num_nodes, 5);
  EXPECT_EQ(g.num_edges, 5);
  // Sorted by (dst, src): (1->0), (0->1), (0->1), (2->1), (3->3).
  EXPECT_EQ(vec(g.in_ptr), (std::vector<int32_t>{0, 1, 4, 4, 5, 5}));
  EXPECT_EQ(vec(g.src), (std::vector<int32_t>{1, 0, 0, 2, 3}));
  EXPECT_EQ(vec(g.dst), (std::vector<int32_t>{0, 1, 1, 1, 3}));
  // Outgoing: node 0 -> edges 1, 2; node 1 -> edge 0; node 2 -> edge 3; node 3 -> edge 4.
  EXPECT_EQ(vec(g.out_ptr), (std::vector<int32_t>{0, 2, 3, 4, 5, 5}));
  EXPECT_EQ(vec(g.out_edge), (std::vector<int32_t>{1, 2, 0, 3, 4}));
  EXPECT_EQ(vec(g.out_dst), (std::vector<int32_t>{1, 1, 0, 1, 3}));
  EXPECT_EQ(vec(g.in_degree()), (std::vector<int32_t>{1, 3, 0, 1, 0}));
  EXPECT_EQ(vec(g.out_degree()), (std::vector<int32_t>{2, 1, 1, 1, 0}));
  EXPECT_EQ(g.device(), Device::cpu());
}

TEST(Graph, EdgeFeaturesFollowEdgesAndDuplicatesKeepInputOrder) {
  // Features = input position, so the output tells where each edge came from.
  const Tensor ef = Tensor::from_vector<float>({0, 1, 2, 3, 4}, {5, 1});
  const Tensor nf = Tensor::from_vector<int32_t>({7, 8, 9}, {3, 1});
  const Graph g = graph_from_coo(3, {2, 0, 1, 0, 2}, {1, 1, 1, 1, 2}, {}, ef, nf);
  // (0->1 #1), (0->1 #3), (1->1 #2), (2->1 #0), (2->2 #4)
  EXPECT_EQ(g.edge_features.to_vector<float>(), (std::vector<float>{1, 3, 2, 0, 4}));
  EXPECT_EQ(g.node_features.to_vector<int32_t>(), (std::vector<int32_t>{7, 8, 9}));

  CooOptions drop;
  drop.duplicates = DuplicateEdges::Drop;
  drop.remove_self_loops = true;
  const Graph h = graph_from_coo(3, {2, 0, 1, 0, 2}, {1, 1, 1, 1, 2}, drop, ef);
  h.validate();
  EXPECT_EQ(vec(h.src), (std::vector<int32_t>{0, 2}));
  EXPECT_EQ(h.edge_features.to_vector<float>(), (std::vector<float>{1, 0}));
}

TEST(Graph, UndirectedCopiesFeaturesAndPrefersInputEdges) {
  // 0->1 (feature 10), 1->0 (feature 20), 2->2 (30): with Drop, each input edge wins over the
  // synthesized reverse of the other; the loop is not doubled.
  const Tensor ef = Tensor::from_vector<double>({10, 20, 30}, {3, 1});
  CooOptions o;
  o.make_undirected = true;
  o.duplicates = DuplicateEdges::Drop;
  const Graph g = graph_from_coo(3, {0, 1, 2}, {1, 0, 2}, o, ef);
  g.validate();
  EXPECT_EQ(vec(g.src), (std::vector<int32_t>{1, 0, 2}));
  EXPECT_EQ(vec(g.dst), (std::vector<int32_t>{0, 1, 2}));
  EXPECT_EQ(g.edge_features.to_vector<double>(), (std::vector<double>{20, 10, 30}));

  o.duplicates = DuplicateEdges::Keep;
  const Graph k = graph_from_coo(3, {0, 1, 2}, {1, 0, 2}, o, ef);
  // dst 0: 1->0 (input, 20), 1->0 (reverse of 0->1, 10); dst 1: 0->1 (10), 0->1 (reverse, 20).
  EXPECT_EQ(vec(k.src), (std::vector<int32_t>{1, 1, 0, 0, 2}));
  EXPECT_EQ(k.edge_features.to_vector<double>(), (std::vector<double>{20, 10, 10, 20, 30}));
}

TEST(Graph, RandomGraphsMatchReference) {
  Generator gen(1234);
  const std::vector<int64_t> sizes = {1, 2, 7, 31, 33, 257};
  for (int64_t n : sizes) {
    for (int64_t e_in : {int64_t{0}, n / 2, 3 * n}) {  // sparse ones leave isolated nodes
      std::vector<int32_t> src(e_in), dst(e_in);
      // Small id range on part of the edges forces self loops and duplicates.
      for (int64_t i = 0; i < e_in; ++i) {
        const int64_t range = (i % 3 == 0) ? std::min<int64_t>(n, 3) : n;
        src[i] = static_cast<int32_t>(gen.uniform() * range) % range;
        dst[i] = static_cast<int32_t>(gen.uniform() * range) % range;
      }
      const Tensor ef = Tensor::randn({e_in, 3}, gen, Dtype::F64);
      for (int mask = 0; mask < 8; ++mask) {
        CooOptions o;
        o.remove_self_loops = mask & 1;
        o.duplicates = (mask & 2) ? DuplicateEdges::Drop : DuplicateEdges::Keep;
        o.make_undirected = mask & 4;
        SCOPED_TRACE(::testing::Message() << "n=" << n << " e=" << e_in << " mask=" << mask);
        const Graph g = graph_from_coo(n, src, dst, o, ef);
        expect_matches_reference(g, n, src, dst, o, ef);
        if (::testing::Test::HasFatalFailure()) return;
      }
    }
  }
}

TEST(Graph, UndirectedIsSymmetric) {
  Generator gen(7);
  const int64_t n = 40;
  std::vector<int32_t> src, dst;
  for (int i = 0; i < 150; ++i) {
    src.push_back(static_cast<int32_t>(gen.uniform() * n));
    dst.push_back(static_cast<int32_t>(gen.uniform() * n));
  }
  for (DuplicateEdges dup : {DuplicateEdges::Keep, DuplicateEdges::Drop}) {
    CooOptions o;
    o.make_undirected = true;
    o.duplicates = dup;
    const Graph g = graph_from_coo(n, src, dst, o);
    g.validate();
    std::map<std::pair<int32_t, int32_t>, int> count;
    const auto s = vec(g.src), d = vec(g.dst);
    for (size_t e = 0; e < s.size(); ++e) ++count[{s[e], d[e]}];
    for (const auto& kv : count) {
      EXPECT_EQ(kv.second, (count[{kv.first.second, kv.first.first}]))
          << kv.first.first << " -> " << kv.first.second;
      if (dup == DuplicateEdges::Drop) EXPECT_EQ(kv.second, 1);
    }
    // Symmetric graph: in-degree == out-degree.
    EXPECT_EQ(vec(g.in_degree()), vec(g.out_degree()));
  }
}

TEST(Graph, EmptyGraphs) {
  const Graph none = graph_from_coo(0, {}, {});
  none.validate();
  EXPECT_EQ(none.num_nodes, 0);
  EXPECT_EQ(none.num_edges, 0);
  EXPECT_EQ(vec(none.in_ptr), (std::vector<int32_t>{0}));
  EXPECT_EQ(vec(none.out_ptr), (std::vector<int32_t>{0}));
  EXPECT_EQ(none.src.shape(), (Shape{0}));

  CooOptions o;
  o.make_undirected = true;
  o.duplicates = DuplicateEdges::Drop;
  const Tensor ef = Tensor::zeros({0, 4});
  const Tensor nf = Tensor::zeros({5, 2});
  const Graph isolated = graph_from_coo(5, {}, {}, o, ef, nf);
  isolated.validate();
  EXPECT_EQ(isolated.num_edges, 0);
  EXPECT_EQ(vec(isolated.in_ptr), (std::vector<int32_t>(6, 0)));
  EXPECT_EQ(vec(isolated.out_ptr), (std::vector<int32_t>(6, 0)));
  EXPECT_EQ(isolated.edge_features.shape(), (Shape{0, 4}));
  EXPECT_EQ(isolated.node_features.shape(), (Shape{5, 2}));

  // Only self loops, removed: E = 0 again.
  CooOptions loops;
  loops.remove_self_loops = true;
  const Graph g = graph_from_coo(3, {0, 1, 2}, {0, 1, 2}, loops);
  g.validate();
  EXPECT_EQ(g.num_edges, 0);
}

TEST(Graph, BuilderErrorsNamePositionAndValue) {
  expect_error_mentions([] { graph_from_coo(3, {0, 1, 7}, {1, 2, 0}); },
                        {"graph_from_coo", "src[2] = 7", "3 nodes"});
  expect_error_mentions([] { graph_from_coo(3, {0, 1}, {1, -1}); },
                        {"graph_from_coo", "dst[1] = -1"});
  expect_error_mentions([] { graph_from_coo(0, {0}, {0}); }, {"src[0] = 0", "0 nodes"});
  expect_error_mentions([] { graph_from_coo(3, {0, 1}, {1}); }, {"src has 2", "dst has 1"});
  expect_error_mentions([] { graph_from_coo(-1, {}, {}); }, {"num_nodes", "-1"});
  expect_error_mentions(
      [] { graph_from_coo(3, {0, 1}, {1, 2}, {}, Tensor::zeros({3, 2})); },
      {"edge_features", "[3, 2]"});
  expect_error_mentions(
      [] { graph_from_coo(3, {0, 1}, {1, 2}, {}, {}, Tensor::zeros({4, 2})); },
      {"node_features", "[4, 2]"});
}

TEST(Graph, ValidateNamesTheBrokenInvariant) {
  const Graph good = graph_from_coo(4, {0, 1, 2, 3, 0}, {1, 2, 3, 0, 2});
  good.validate();

  Graph g = good;
  g.src = Tensor::from_vector<int32_t>({3, 0, 0, 1, 9}, {5});  // good: {3, 0, 0, 1, 2}
  expect_error_mentions([&] { g.validate(); }, {"Graph::validate", "src[4] = 9"});

  g = good;  // dst[0] disagrees with in_ptr
  g.dst = Tensor::from_vector<int32_t>({1, 1, 2, 2, 3}, {5});
  expect_error_mentions([&] { g.validate(); }, {"dst[0] = 1", "node 0"});

  g = good;  // node 2 has incoming from 0 and 1; unsort them
  {
    auto s = vec(good.src);
    std::swap(s[2], s[3]);
    g.src = Tensor::from_vector<int32_t>(s, {5});
  }
  expect_error_mentions([&] { g.validate(); }, {"not sorted by source"});

  g = good;
  {
    auto oe = vec(good.out_edge);
    oe[1] = oe[0];
    g.out_edge = Tensor::from_vector<int32_t>(oe, {5});
  }
  expect_error_mentions([&] { g.validate(); }, {"out_edge"});

  g = good;
  {
    auto od = vec(good.out_dst);
    od[0] = (od[0] + 1) % 4;
    g.out_dst = Tensor::from_vector<int32_t>(od, {5});
  }
  expect_error_mentions([&] { g.validate(); }, {"out_dst[0]"});

  g = good;
  g.in_ptr = Tensor::from_vector<int32_t>({0, 1, 2, 4, 4}, {5});
  expect_error_mentions([&] { g.validate(); }, {"in_ptr[N] = 4", "num_edges = 5"});

  g = good;
  g.src = g.src.to(Dtype::I64);
  expect_error_mentions([&] { g.validate(); }, {"src must be i32"});

  g = good;
  g.out_ptr = Tensor();
  expect_error_mentions([&] { g.validate(); }, {"out_ptr is undefined"});

  g = good;
  g.edge_features = Tensor::zeros({4, 2});
  expect_error_mentions([&] { g.validate(); }, {"edge_features", "5 rows"});

  g = good;
  g.node_features = Tensor::zeros({5, 2});
  expect_error_mentions([&] { g.validate(); }, {"node_features", "4 rows"});
}

TEST(Graph, ToCpuSharesTensors) {
  const Graph g = graph_from_coo(3, {0, 1}, {1, 2});
  const Graph h = g.to(Device::cpu());
  EXPECT_EQ(h.src.data<int32_t>(), g.src.data<int32_t>());
  EXPECT_NE(g.describe().find("N=3"), std::string::npos);
}

TEST(GraphCuda, RoundTripAndValidateOnDevice) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  Generator gen(3);
  std::vector<int32_t> src, dst;
  for (int i = 0; i < 100; ++i) {
    src.push_back(static_cast<int32_t>(gen.uniform() * 33));
    dst.push_back(static_cast<int32_t>(gen.uniform() * 33));
  }
  const Graph g = graph_from_coo(33, src, dst, {}, Tensor::randn({100, 4}, gen),
                                 Tensor::randn({33, 2}, gen));
  const Graph d = g.to(Device::cuda());
  EXPECT_TRUE(d.device().is_cuda());
  EXPECT_TRUE(d.src.is_cuda() && d.out_edge.is_cuda() && d.edge_features.is_cuda() &&
              d.node_features.is_cuda());
  d.validate();
  const Graph back = d.to(Device::cpu());
  EXPECT_EQ(vec(back.in_ptr), vec(g.in_ptr));
  EXPECT_EQ(vec(back.src), vec(g.src));
  EXPECT_EQ(vec(back.out_edge), vec(g.out_edge));
  EXPECT_TRUE(::lapis::testing::bitwise_equal(back.edge_features, g.edge_features));
  // A graph with mixed devices is invalid.
  Graph mixed = d;
  mixed.src = g.src;
  expect_error_mentions([&] { mixed.validate(); }, {"src is on cpu"});
}

}  // namespace
}  // namespace graph
}  // namespace lapis
