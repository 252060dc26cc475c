// Block-diagonal batching of graphs and samples, and splitting batch rows back per graph.
#include "graph/batch.h"

#include <cstring>
#include <limits>

#include "core/check.h"

namespace lapis {
namespace graph {

namespace {

Tensor i32_tensor(const std::vector<int32_t>& v) {
  return Tensor::from_vector<int32_t>(v, {static_cast<int64_t>(v.size())});
}

Shape trailing(const Tensor& t) { return Shape(t.shape().begin() + 1, t.shape().end()); }

// Concatenates CPU tensors [R_i, ...] with equal dtype and trailing shape along axis 0.
// `what(i)` names part i in errors. At least one part.
template <typename Name>
Tensor concat_rows(const std::vector<Tensor>& parts, const char* op, Name what) {
  const Tensor& first = parts.front();
  int64_t rows = 0;
  for (size_t i = 0; i < parts.size(); ++i) {
    const Tensor& p = parts[i];
    LAPIS_CHECK(p.device().is_cpu(), op, what(i), " must be on the CPU, got ", p.describe());
    LAPIS_CHECK(p.dim() >= 1, op, what(i), " must have at least one axis, got ", p.describe());
    LAPIS_CHECK(p.dtype() == first.dtype() && trailing(p) == trailing(first), op, what(i), " is ",
                p.describe(), " but ", what(0), " is ", first.describe(),
                " (dtype and trailing shape must agree)");
    rows += p.size(0);
  }
  Shape shape = first.shape();
  shape[0] = rows;
  Tensor out = Tensor::empty(shape, first.dtype(), Device::cpu());
  char* o = static_cast<char*>(out.raw_data());
  size_t at = 0;
  for (const Tensor& p : parts) {
    if (p.nbytes()) std::memcpy(o + at, p.raw_data(), p.nbytes());
    at += p.nbytes();
  }
  return out;
}

// Concatenates optional per-graph features with `rows(i)` rows each: all graphs that have rows
// must define them, or none may; graphs without rows may omit them.
template <typename Rows>
Tensor concat_optional(const std::vector<const Tensor*>& feats, Rows rows, const char* op,
                       const char* name) {
  int64_t first_defined = -1;
  for (size_t i = 0; i < feats.size(); ++i) {
    if (feats[i]->defined()) {
      first_defined = static_cast<int64_t>(i);
      break;
    }
  }
  if (first_defined < 0) return Tensor();
  std::vector<Tensor> parts;
  std::vector<size_t> where;
  for (size_t i = 0; i < feats.size(); ++i) {
    if (!feats[i]->defined()) {
      LAPIS_CHECK(rows(i) == 0, op, "graph ", i, " has no ", name, " but graph ", first_defined,
                  " has ", feats[first_defined]->describe(),
                  " (features must be present in every graph or in none)");
      continue;
    }
    parts.push_back(*feats[i]);
    where.push_back(i);
  }
  return concat_rows(parts, op, [&](size_t k) { return str_cat(name, " of graph ", where[k]); });
}

// Rows ptr[b] .. ptr[b+1]-1 of x as separate tensors on x's device.
std::vector<Tensor> split_rows(const Tensor& x, const Tensor& ptr_tensor, int64_t total,
                               const char* op, const char* what) {
  check_defined(op, "x", x);
  LAPIS_CHECK(x.dim() >= 1 && x.size(0) == total, op, "x must have one row per batch ", what,
              " (", total, "), got ", x.describe());
  const std::vector<int32_t> ptr = ptr_tensor.to_vector<int32_t>();
  const Tensor host = x.to(Device::cpu());
  const size_t row_bytes = total > 0 ? host.nbytes() / static_cast<size_t>(total) : 0;
  std::vector<Tensor> out;
  out.reserve(ptr.size() > 0 ? ptr.size() - 1 : 0);
  for (size_t b = 0; b + 1 < ptr.size(); ++b) {
    Shape shape = x.shape();
    shape[0] = ptr[b + 1] - ptr[b];
    Tensor part = Tensor::empty(shape, x.dtype(), Device::cpu());
    if (part.nbytes()) {
      std::memcpy(part.raw_data(),
                  static_cast<const char*>(host.raw_data()) + static_cast<size_t>(ptr[b]) *
                                                                  row_bytes,
                  part.nbytes());
    }
    out.push_back(part.to(x.device()));
  }
  return out;
}

}  // namespace

GraphBatch GraphBatch::to(Device device) const {
  GraphBatch b = *this;
  b.graph = graph.to(device);
  for (Tensor* t : {&b.node_graph, &b.node_ptr, &b.edge_ptr, &b.y}) {
    if (t->defined()) *t = t->to(device);
  }
  for (Tensor& t : b.node_extras) {
    if (t.defined()) t = t.to(device);
  }
  return b;
}

GraphBatch batch_graphs(const std::vector<const Graph*>& graphs) {
  const char* op = "batch_graphs";
  const size_t nb = graphs.size();
  int64_t total_n = 0, total_e = 0;
  for (size_t b = 0; b < nb; ++b) {
    LAPIS_CHECK(graphs[b] != nullptr, op, "graph ", b, " is null");
    const Graph& g = *graphs[b];
    LAPIS_CHECK(g.in_ptr.defined() && g.src.defined() && g.out_ptr.defined(), op, "graph ", b,
                " is not built (in_ptr/src/out_ptr undefined)");
    LAPIS_CHECK(g.device().is_cpu(), op, "graph ", b, " must be on the CPU, got ",
                g.describe());
    total_n += g.num_nodes;
    total_e += g.num_edges;
  }
  constexpr int64_t kMax = std::numeric_limits<int32_t>::max();
  LAPIS_CHECK(total_n <= kMax && total_e <= kMax, op, "batch too large for int32 ids: ", total_n,
              " nodes, ", total_e, " edges");

  std::vector<int32_t> in_ptr(static_cast<size_t>(total_n) + 1, 0), out_ptr(in_ptr.size(), 0);
  std::vector<int32_t> src(static_cast<size_t>(total_e)), dst(src.size()), out_edge(src.size()),
      out_dst(src.size());
  std::vector<int32_t> node_graph(static_cast<size_t>(total_n)), node_ptr(nb + 1, 0),
      edge_ptr(nb + 1, 0);
  int32_t n0 = 0, e0 = 0;
  for (size_t b = 0; b < nb; ++b) {
    const Graph& g = *graphs[b];
    const int32_t n = static_cast<int32_t>(g.num_nodes), e = static_cast<int32_t>(g.num_edges);
    const int32_t* gip = g.in_ptr.data<int32_t>();
    const int32_t* gop = g.out_ptr.data<int32_t>();
    const int32_t* gs = g.src.data<int32_t>();
    const int32_t* gd = g.dst.data<int32_t>();
    const int32_t* goe = g.out_edge.data<int32_t>();
    const int32_t* god = g.out_dst.data<int32_t>();
    for (int32_t v = 0; v < n; ++v) {
      in_ptr[n0 + v + 1] = e0 + gip[v + 1];
      out_ptr[n0 + v + 1] = e0 + gop[v + 1];
      node_graph[n0 + v] = static_cast<int32_t>(b);
    }
    for (int32_t k = 0; k < e; ++k) {
      src[e0 + k] = n0 + gs[k];
      dst[e0 + k] = n0 + gd[k];
      out_edge[e0 + k] = e0 + goe[k];
      out_dst[e0 + k] = n0 + god[k];
    }
    n0 += n;
    e0 += e;
    node_ptr[b + 1] = n0;
    edge_ptr[b + 1] = e0;
  }

  GraphBatch batch;
  batch.num_graphs = static_cast<int64_t>(nb);
  Graph& out = batch.graph;
  out.num_nodes = total_n;
  out.num_edges = total_e;
  out.in_ptr = i32_tensor(in_ptr);
  out.out_ptr = i32_tensor(out_ptr);
  out.src = i32_tensor(src);
  out.dst = i32_tensor(dst);
  out.out_edge = i32_tensor(out_edge);
  out.out_dst = i32_tensor(out_dst);
  std::vector<const Tensor*> nf(nb), ef(nb);
  for (size_t b = 0; b < nb; ++b) {
    nf[b] = &graphs[b]->node_features;
    ef[b] = &graphs[b]->edge_features;
  }
  out.node_features =
      concat_optional(nf, [&](size_t b) { return graphs[b]->num_nodes; }, op, "node_features");
  out.edge_features =
      concat_optional(ef, [&](size_t b) { return graphs[b]->num_edges; }, op, "edge_features");
  batch.node_graph = i32_tensor(node_graph);
  batch.node_ptr = i32_tensor(node_ptr);
  batch.edge_ptr = i32_tensor(edge_ptr);
  return batch;
}

GraphBatch batch_samples(const std::vector<const GraphSample*>& samples) {
  const char* op = "batch_samples";
  std::vector<const Graph*> graphs(samples.size());
  for (size_t b = 0; b < samples.size(); ++b) {
    LAPIS_CHECK(samples[b] != nullptr, op, "sample ", b, " is null");
    graphs[b] = &samples[b]->graph;
  }
  GraphBatch batch = batch_graphs(graphs);
  if (samples.empty()) return batch;

  // Targets: all or none; 0-d scalars count as [1].
  const bool has_y = samples[0]->y.defined();
  std::vector<Tensor> ys;
  for (size_t b = 0; b < samples.size(); ++b) {
    const Tensor& y = samples[b]->y;
    LAPIS_CHECK(y.defined() == has_y, op, "sample ", b, (y.defined() ? " has" : " has no"),
                " target y but sample 0", (has_y ? " has one" : " has none"));
    if (has_y) ys.push_back(y.dim() == 0 ? y.reshape({1}) : y);
  }
  if (has_y) {
    batch.y = concat_rows(ys, op, [](size_t b) { return str_cat("y of sample ", b); });
  }

  const size_t num_extras = samples[0]->node_extras.size();
  for (size_t b = 0; b < samples.size(); ++b) {
    LAPIS_CHECK(samples[b]->node_extras.size() == num_extras, op, "sample ", b, " has ",
                samples[b]->node_extras.size(), " node_extras but sample 0 has ", num_extras);
  }
  for (size_t k = 0; k < num_extras; ++k) {
    std::vector<Tensor> parts;
    for (size_t b = 0; b < samples.size(); ++b) {
      const Tensor& t = samples[b]->node_extras[k];
      LAPIS_CHECK(t.defined(), op, "node_extras[", k, "] of sample ", b, " is undefined");
      LAPIS_CHECK(t.dim() >= 1 && t.size(0) == samples[b]->graph.num_nodes, op, "node_extras[",
                  k, "] of sample ", b, " must have one row per node (",
                  samples[b]->graph.num_nodes, "), got ", t.describe());
      parts.push_back(t);
    }
    batch.node_extras.push_back(concat_rows(
        parts, op, [&](size_t b) { return str_cat("node_extras[", k, "] of sample ", b); }));
  }
  return batch;
}

std::vector<Tensor> split_node_rows(const Tensor& x, const GraphBatch& batch) {
  return split_rows(x, batch.node_ptr, batch.graph.num_nodes, "split_node_rows", "node");
}

std::vector<Tensor> split_edge_rows(const Tensor& x, const GraphBatch& batch) {
  return split_rows(x, batch.edge_ptr, batch.graph.num_edges, "split_edge_rows", "edge");
}

}  // namespace graph
}  // namespace lapis
