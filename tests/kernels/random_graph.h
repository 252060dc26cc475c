// Small random graphs for the sparse kernel tests, built directly as CsrGraphView tensors (no
// dependency on graph/): CSR by destination (edge id = CSR position) and the CSC by source with
// the permutation, listing each source's outgoing edges in increasing edge id.
#pragma once

#include <algorithm>
#include <cstdint>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "kernels/graph_view.h"

namespace lapis {
namespace testing {

// edges: (src, dst) pairs in any order; duplicates and self-loops are kept.
inline CsrGraphView graph_from_edges(int64_t n, std::vector<std::pair<int32_t, int32_t>> edges,
                                     Device device = Device::cpu()) {
  std::stable_sort(edges.begin(), edges.end(),
                   [](const auto& a, const auto& b) { return a.second < b.second; });
  const int64_t e = static_cast<int64_t>(edges.size());
  std::vector<int32_t> in_ptr(n + 1, 0), src(e), out_ptr(n + 1, 0), out_edge(e), out_dst(e);
  for (int64_t k = 0; k < e; ++k) {
    src[k] = edges[k].first;
    in_ptr[edges[k].second + 1]++;
    out_ptr[edges[k].first + 1]++;
  }
  for (int64_t i = 0; i < n; ++i) {
    in_ptr[i + 1] += in_ptr[i];
    out_ptr[i + 1] += out_ptr[i];
  }
  std::vector<int32_t> fill(out_ptr.begin(), out_ptr.end() - 1);  // next free CSC slot
  for (int64_t k = 0; k < e; ++k) {  // k increasing: outgoing edges in edge-id order
    const int32_t j = edges[k].first;
    out_edge[fill[j]] = static_cast<int32_t>(k);
    out_dst[fill[j]] = edges[k].second;
    ++fill[j];
  }
  auto t = [&](const std::vector<int32_t>& v) {
    return Tensor::from_vector<int32_t>(v, {static_cast<int64_t>(v.size())}).to(device);
  };
  return make_graph_view(t(in_ptr), t(src), t(out_ptr), t(out_edge), t(out_dst));
}

// n nodes, about avg_degree * n random edges among the first ~3/4 of the nodes (the rest are
// isolated), plus one self-loop and one duplicated edge when n allows, and optionally a hub
// (node 0) with hub_in_edges incoming edges from random sources.
inline CsrGraphView random_graph(int64_t n, double avg_degree, uint64_t seed,
                                 int64_t hub_in_edges = 0, Device device = Device::cpu()) {
  std::mt19937_64 rng(seed);
  std::vector<std::pair<int32_t, int32_t>> edges;
  if (n > 0) {
    const int64_t active = std::max<int64_t>(1, (3 * n + 3) / 4);
    std::uniform_int_distribution<int32_t> pick(0, static_cast<int32_t>(active - 1));
    const int64_t m = static_cast<int64_t>(avg_degree * static_cast<double>(n));
    for (int64_t k = 0; k < m; ++k) edges.emplace_back(pick(rng), pick(rng));
    edges.emplace_back(0, 0);                            // self-loop
    if (!edges.empty()) edges.push_back(edges.front());  // duplicate edge
    std::uniform_int_distribution<int32_t> any(0, static_cast<int32_t>(n - 1));
    for (int64_t k = 0; k < hub_in_edges; ++k) edges.emplace_back(any(rng), 0);
    std::shuffle(edges.begin(), edges.end(), rng);
  }
  return graph_from_edges(n, std::move(edges), device);
}

// g on device. A device view's degree bounds are unknown (-1) unless given (>= 0): the CUDA
// kernels then take their hub-splitting path.
inline CsrGraphView graph_to(const CsrGraphView& g, Device device, int64_t max_in_degree = -1,
                             int64_t max_out_degree = -1) {
  CsrGraphView d = make_graph_view(g.in_ptr.to(device), g.src.to(device), g.out_ptr.to(device),
                                   g.out_edge.to(device), g.out_dst.to(device));
  if (max_in_degree >= 0) d.max_in_degree = max_in_degree;
  if (max_out_degree >= 0) d.max_out_degree = max_out_degree;
  return d;
}

// Host graph g with field[position] = value, e.g. with_corrupt_index(g, &CsrGraphView::src, p,
// n): a malformed graph for the CUDA kernels' own index checks (check_graph_view checks the
// values of CPU views only).
inline CsrGraphView with_corrupt_index(const CsrGraphView& g, Tensor CsrGraphView::*field,
                                       int64_t position, int32_t value) {
  CsrGraphView bad = g;
  bad.*field = (g.*field).clone();
  (bad.*field).data<int32_t>()[position] = value;
  return bad;
}

// First row of ptr [n + 1] with between 1 and max_len entries (-1: none).
inline int64_t short_row(const Tensor& ptr, int64_t max_len) {
  const int32_t* p = ptr.data<int32_t>();
  for (int64_t r = 0; r + 1 < ptr.numel(); ++r) {
    if (p[r + 1] > p[r] && p[r + 1] - p[r] <= max_len) return r;
  }
  return -1;
}

struct CorruptGraph {
  CsrGraphView graph;
  std::string what;  // e.g. "src[417] = -1"
};

// Copies of g (heavy_row_graph: destination hub 9, source hub 21) with one index out of range:
// a source, a CSC destination and a CSC edge id, in a light row and inside a hub row.
inline std::vector<CorruptGraph> corrupt_index_graphs(const CsrGraphView& g) {
  const int64_t n = g.num_nodes, e = g.num_edges;
  const int32_t* in_ptr = g.in_ptr.data<int32_t>();
  const int32_t* out_ptr = g.out_ptr.data<int32_t>();
  const int64_t light_in = in_ptr[short_row(g.in_ptr, 8)];
  const int64_t light_out = out_ptr[short_row(g.out_ptr, 8)];
  struct Case {
    Tensor CsrGraphView::*field;
    const char* name;
    int64_t position, value;
  };
  const Case cases[] = {{&CsrGraphView::src, "src", light_in, n},
                        {&CsrGraphView::src, "src", in_ptr[9] + 500, -1},
                        {&CsrGraphView::out_dst, "out_dst", light_out, n + 3},
                        {&CsrGraphView::out_dst, "out_dst", out_ptr[21] + 250, -2},
                        {&CsrGraphView::out_edge, "out_edge", out_ptr[21] + 100, e}};
  std::vector<CorruptGraph> out;
  for (const Case& c : cases) {
    out.push_back({with_corrupt_index(g, c.field, c.position, static_cast<int32_t>(c.value)),
                   std::string(c.name) + "[" + std::to_string(c.position) +
                       "] = " + std::to_string(c.value)});
  }
  return out;
}

// n nodes with 2n random background edges, then in_hubs (node, in-degree) and out_hubs (node,
// out-degree) with random other ends, all in shuffled order.
inline CsrGraphView graph_with_hubs(int32_t n, uint64_t seed,
                                    const std::vector<std::pair<int32_t, int>>& in_hubs,
                                    const std::vector<std::pair<int32_t, int>>& out_hubs) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int32_t> any(0, n - 1);
  std::vector<std::pair<int32_t, int32_t>> edges;
  for (int k = 0; k < 2 * n; ++k) edges.emplace_back(any(rng), any(rng));
  for (auto [node, degree] : in_hubs) {
    for (int k = 0; k < degree; ++k) edges.emplace_back(any(rng), node);
  }
  for (auto [node, degree] : out_hubs) {
    for (int k = 0; k < degree; ++k) edges.emplace_back(node, any(rng));
  }
  std::shuffle(edges.begin(), edges.end(), rng);
  return graph_from_edges(n, std::move(edges));
}

// Rows longer than the CUDA kernels' split length (128 edges) are reduced in pieces by several
// thread groups and combined in order: destination hubs of in-degree 128 (not split), 129, 257,
// 300 and 1000 next to each other (windows holding pieces of two heavy rows), source hubs of
// out-degree 129 and 500 (the CSC pass), sparse background edges. Unknown and exact degree
// bounds take the split path (same bits); a bound that wrongly claims short rows takes the
// unsplit path, which must still be right (graph_to's bounds arguments).
inline CsrGraphView heavy_row_graph(uint64_t seed) {
  return graph_with_hubs(300, seed, {{5, 128}, {6, 129}, {7, 257}, {8, 300}, {9, 1000}},
                         {{20, 129}, {21, 500}});
}

// Hubs of so many pieces that their partials are combined in several runs (kernels/cuda/
// heavy_row_schedule.h: runs of 32 pieces of 128 edges, then the runs): destination hubs of
// in-degree 4200 (2 runs), 9000 (3 runs) and 300 next to each other, a source hub of out-degree
// 4500, sparse background edges.
inline CsrGraphView long_hub_graph(uint64_t seed) {
  return graph_with_hubs(400, seed, {{5, 4200}, {6, 9000}, {7, 300}}, {{20, 4500}});
}

}  // namespace testing
}  // namespace lapis
