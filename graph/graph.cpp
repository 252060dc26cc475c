// Graph builders (counting sorts, O(N + E)), validation and device moves.
#include "graph/graph.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <sstream>

#include "core/check.h"

namespace lapis {
namespace graph {

namespace {

constexpr int64_t kMaxId = std::numeric_limits<int32_t>::max();

Tensor i32_tensor(const std::vector<int32_t>& v) {
  return Tensor::from_vector<int32_t>(v, {static_cast<int64_t>(v.size())});
}

// Copies rows rows[i] of `table` ([R, ...], any dtype, CPU) into a new [rows.size(), ...] tensor.
Tensor gather_rows(const Tensor& table, const std::vector<int32_t>& rows) {
  Shape shape = table.shape();
  shape[0] = static_cast<int64_t>(rows.size());
  Tensor out = Tensor::empty(shape, table.dtype(), Device::cpu());
  const int64_t r = table.shape()[0];
  const size_t row_bytes = r > 0 ? table.nbytes() / static_cast<size_t>(r) : 0;
  if (rows.empty() || row_bytes == 0) return out;
  const char* in = static_cast<const char*>(table.raw_data());
  char* o = static_cast<char*>(out.raw_data());
  for (size_t i = 0; i < rows.size(); ++i) {
    std::memcpy(o + i * row_bytes, in + static_cast<size_t>(rows[i]) * row_bytes, row_bytes);
  }
  return out;
}

}  // namespace

Device Graph::device() const { return in_ptr.defined() ? in_ptr.device() : Device::cpu(); }

Graph Graph::to(Device device) const {
  Graph g = *this;
  for (Tensor* t : {&g.in_ptr, &g.src, &g.dst, &g.out_ptr, &g.out_edge, &g.out_dst,
                    &g.node_features, &g.edge_features}) {
    if (t->defined()) *t = t->to(device);
  }
  return g;
}

void build_out_index(Graph& g) {
  const char* op = "build_out_index";
  LAPIS_CHECK(g.src.defined() && g.dst.defined(), op, "src/dst are undefined");
  const std::vector<int32_t> src = g.src.to_vector<int32_t>();
  const std::vector<int32_t> dst = g.dst.to_vector<int32_t>();
  const int64_t n = g.num_nodes;
  // Counting sort of edge ids by source; scanning e in increasing order keeps it stable, so the
  // outgoing edges of a node are in increasing edge id. Reads are sequential.
  std::vector<int32_t> out_ptr(static_cast<size_t>(n) + 1, 0);
  for (int32_t s : src) ++out_ptr[static_cast<size_t>(s) + 1];
  for (int64_t v = 0; v < n; ++v) out_ptr[v + 1] += out_ptr[v];
  std::vector<int32_t> next(out_ptr.begin(), out_ptr.end() - 1);
  std::vector<int32_t> out_edge(src.size()), out_dst(src.size());
  for (size_t e = 0; e < src.size(); ++e) {
    const size_t pos = static_cast<size_t>(next[src[e]]++);
    out_edge[pos] = static_cast<int32_t>(e);
    out_dst[pos] = dst[e];
  }
  const Device device = g.src.device();
  g.out_ptr = i32_tensor(out_ptr).to(device);
  g.out_edge = i32_tensor(out_edge).to(device);
  g.out_dst = i32_tensor(out_dst).to(device);
}

Graph graph_from_coo(int64_t num_nodes, const std::vector<int32_t>& src,
                     const std::vector<int32_t>& dst, const CooOptions& options,
                     const Tensor& edge_features, const Tensor& node_features) {
  const char* op = "graph_from_coo";
  LAPIS_CHECK(num_nodes >= 0 && num_nodes <= kMaxId, op,
              "num_nodes must be in [0, 2^31-1], got ", num_nodes);
  LAPIS_CHECK(src.size() == dst.size(), op, "src has ", src.size(), " entries but dst has ",
              dst.size());
  const int64_t e_in = static_cast<int64_t>(src.size());
  for (int64_t i = 0; i < e_in; ++i) {
    LAPIS_CHECK(src[i] >= 0 && src[i] < num_nodes, op, "src[", i, "] = ", src[i],
                " is out of range for ", num_nodes, " nodes");
    LAPIS_CHECK(dst[i] >= 0 && dst[i] < num_nodes, op, "dst[", i, "] = ", dst[i],
                " is out of range for ", num_nodes, " nodes");
  }
  if (edge_features.defined()) {
    LAPIS_CHECK(edge_features.dim() >= 1 && edge_features.size(0) == e_in, op,
                "edge_features must have one row per input edge (", e_in, "), got ",
                edge_features.describe());
    LAPIS_CHECK(edge_features.device().is_cpu(), op, "edge_features must be on the CPU, got ",
                edge_features.describe());
  }
  if (node_features.defined()) {
    LAPIS_CHECK(node_features.dim() >= 1 && node_features.size(0) == num_nodes, op,
                "node_features must have one row per node (", num_nodes, "), got ",
                node_features.describe());
    LAPIS_CHECK(node_features.device().is_cpu(), op, "node_features must be on the CPU, got ",
                node_features.describe());
  }

  // Candidate edges: the kept originals first, then their reverses (so that with Drop an input
  // edge wins over a synthesized reverse of another input edge). `origin` = input position.
  std::vector<int32_t> cs, cd, origin;
  const bool twice = options.make_undirected;
  cs.reserve(static_cast<size_t>(twice ? 2 * e_in : e_in));
  cd.reserve(cs.capacity());
  origin.reserve(cs.capacity());
  for (int64_t i = 0; i < e_in; ++i) {
    if (options.remove_self_loops && src[i] == dst[i]) continue;
    cs.push_back(src[i]);
    cd.push_back(dst[i]);
    origin.push_back(static_cast<int32_t>(i));
  }
  if (twice) {
    const size_t kept = cs.size();
    for (size_t k = 0; k < kept; ++k) {
      if (cs[k] == cd[k]) continue;  // a self loop is its own reverse
      cs.push_back(cd[k]);
      cd.push_back(cs[k]);
      origin.push_back(origin[k]);
    }
  }
  LAPIS_CHECK(static_cast<int64_t>(cs.size()) <= kMaxId, op, "too many edges for int32 ids: ",
              cs.size());

  // LSD radix sort, keys carried along so that every pass reads sequentially: stable by src,
  // then stable by dst -> sorted by (dst, src), ties in candidate-list order.
  const size_t m = cs.size();
  std::vector<int32_t> in_ptr(static_cast<size_t>(num_nodes) + 1, 0);
  std::vector<int32_t> s(m), d(m), ids(m);
  {
    std::vector<int64_t> start(static_cast<size_t>(num_nodes) + 1, 0);
    for (int32_t v : cs) ++start[static_cast<size_t>(v) + 1];
    for (int64_t v = 0; v < num_nodes; ++v) start[v + 1] += start[v];
    std::vector<int32_t> t_id(m), t_s(m), t_d(m);
    for (size_t k = 0; k < m; ++k) {
      const size_t pos = static_cast<size_t>(start[cs[k]]++);
      t_id[pos] = static_cast<int32_t>(k);
      t_s[pos] = cs[k];
      t_d[pos] = cd[k];
    }
    for (int32_t v : t_d) ++in_ptr[static_cast<size_t>(v) + 1];
    for (int64_t v = 0; v < num_nodes; ++v) in_ptr[v + 1] += in_ptr[v];
    std::vector<int32_t> next(in_ptr.begin(), in_ptr.end() - 1);
    for (size_t k = 0; k < m; ++k) {
      const size_t pos = static_cast<size_t>(next[t_d[k]]++);
      ids[pos] = t_id[k];
      s[pos] = t_s[k];
      d[pos] = t_d[k];
    }
  }

  if (options.duplicates == DuplicateEdges::Drop) {
    // Equal pairs are adjacent and in list order: keep the first of each run, compact in place.
    size_t kept = 0;
    for (size_t k = 0; k < m; ++k) {
      if (kept > 0 && s[kept - 1] == s[k] && d[kept - 1] == d[k]) continue;
      s[kept] = s[k];
      d[kept] = d[k];
      ids[kept] = ids[k];
      ++kept;
    }
    s.resize(kept);
    d.resize(kept);
    ids.resize(kept);
    std::fill(in_ptr.begin(), in_ptr.end(), 0);
    for (int32_t v : d) ++in_ptr[static_cast<size_t>(v) + 1];
    for (int64_t v = 0; v < num_nodes; ++v) in_ptr[v + 1] += in_ptr[v];
  }
  const size_t e = s.size();

  Graph g;
  g.num_nodes = num_nodes;
  g.num_edges = static_cast<int64_t>(e);
  g.in_ptr = i32_tensor(in_ptr);
  g.src = i32_tensor(s);
  g.dst = i32_tensor(d);
  build_out_index(g);
  if (edge_features.defined()) {
    std::vector<int32_t> rows(e);  // input row of each final edge
    for (size_t k = 0; k < e; ++k) rows[k] = origin[ids[k]];
    g.edge_features = gather_rows(edge_features, rows);
  }
  if (node_features.defined()) g.node_features = node_features;
  return g;
}

void Graph::validate() const {
  const char* op = "Graph::validate";
  LAPIS_CHECK(num_nodes >= 0 && num_nodes <= kMaxId, op, "num_nodes = ", num_nodes,
              " is not in [0, 2^31-1]");
  LAPIS_CHECK(num_edges >= 0 && num_edges <= kMaxId, op, "num_edges = ", num_edges,
              " is not in [0, 2^31-1]");
  const int64_t n = num_nodes, e = num_edges;
  struct Index {
    const char* name;
    const Tensor* t;
    int64_t len;
  };
  const Index index[] = {{"in_ptr", &in_ptr, n + 1},    {"src", &src, e},
                         {"dst", &dst, e},              {"out_ptr", &out_ptr, n + 1},
                         {"out_edge", &out_edge, e},    {"out_dst", &out_dst, e}};
  const Device device = in_ptr.defined() ? in_ptr.device() : Device::cpu();
  for (const Index& ix : index) {
    LAPIS_CHECK(ix.t->defined(), op, ix.name, " is undefined");
    LAPIS_CHECK(ix.t->dtype() == Dtype::I32, op, ix.name, " must be i32, got ",
                ix.t->describe());
    LAPIS_CHECK(ix.t->shape() == Shape{ix.len}, op, ix.name, " must have shape [", ix.len,
                "], got ", ix.t->describe());
    LAPIS_CHECK(ix.t->device() == device, op, ix.name, " is on ", ix.t->device().to_string(),
                " but in_ptr is on ", device.to_string());
  }
  if (node_features.defined()) {
    LAPIS_CHECK(node_features.dim() >= 1 && node_features.size(0) == n, op,
                "node_features must have ", n, " rows, got ", node_features.describe());
    LAPIS_CHECK(node_features.device() == device, op, "node_features is on ",
                node_features.device().to_string(), " but the graph is on ", device.to_string());
  }
  if (edge_features.defined()) {
    LAPIS_CHECK(edge_features.dim() >= 1 && edge_features.size(0) == e, op,
                "edge_features must have ", e, " rows, got ", edge_features.describe());
    LAPIS_CHECK(edge_features.device() == device, op, "edge_features is on ",
                edge_features.device().to_string(), " but the graph is on ", device.to_string());
  }

  const std::vector<int32_t> ip = in_ptr.to_vector<int32_t>();
  const std::vector<int32_t> s = src.to_vector<int32_t>();
  const std::vector<int32_t> d = dst.to_vector<int32_t>();
  const std::vector<int32_t> op_ = out_ptr.to_vector<int32_t>();
  const std::vector<int32_t> oe = out_edge.to_vector<int32_t>();
  const std::vector<int32_t> od = out_dst.to_vector<int32_t>();

  LAPIS_CHECK(ip[0] == 0, op, "in_ptr[0] = ", ip[0], ", expected 0");
  LAPIS_CHECK(ip[n] == e, op, "in_ptr[N] = ", ip[n], ", expected num_edges = ", e);
  LAPIS_CHECK(op_[0] == 0, op, "out_ptr[0] = ", op_[0], ", expected 0");
  LAPIS_CHECK(op_[n] == e, op, "out_ptr[N] = ", op_[n], ", expected num_edges = ", e);
  for (int64_t v = 0; v < n; ++v) {
    LAPIS_CHECK(ip[v] <= ip[v + 1], op, "in_ptr is decreasing at node ", v, ": ", ip[v], " > ",
                ip[v + 1]);
    LAPIS_CHECK(op_[v] <= op_[v + 1], op, "out_ptr is decreasing at node ", v, ": ", op_[v],
                " > ", op_[v + 1]);
  }
  std::vector<int64_t> out_count(static_cast<size_t>(n), 0);
  for (int64_t v = 0; v < n; ++v) {
    for (int32_t k = ip[v]; k < ip[v + 1]; ++k) {
      LAPIS_CHECK(d[k] == v, op, "dst[", k, "] = ", d[k], " but edge ", k,
                  " lies in the in_ptr range of node ", v);
      LAPIS_CHECK(s[k] >= 0 && s[k] < n, op, "src[", k, "] = ", s[k], " is out of range for ",
                  n, " nodes");
      LAPIS_CHECK(k == ip[v] || s[k - 1] <= s[k], op, "edges of node ", v,
                  " are not sorted by source at edge ", k, ": ", s[k - 1], " > ", s[k]);
      ++out_count[s[k]];
    }
  }
  for (int64_t u = 0; u < n; ++u) {
    LAPIS_CHECK(op_[u + 1] - op_[u] == out_count[u], op, "out_ptr gives node ", u, " ",
                op_[u + 1] - op_[u], " outgoing edges but src has ", out_count[u]);
  }
  std::vector<char> seen(static_cast<size_t>(e), 0);
  for (int64_t u = 0; u < n; ++u) {
    for (int32_t k = op_[u]; k < op_[u + 1]; ++k) {
      const int32_t id = oe[k];
      LAPIS_CHECK(id >= 0 && id < e, op, "out_edge[", k, "] = ", id, " is not an edge id (E = ",
                  e, ")");
      LAPIS_CHECK(!seen[id], op, "out_edge is not a permutation: edge ", id, " appears twice");
      seen[id] = 1;
      LAPIS_CHECK(s[id] == u, op, "out_edge[", k, "] = ", id, " has src ", s[id],
                  " but lies in the out_ptr range of node ", u);
      LAPIS_CHECK(od[k] == d[id], op, "out_dst[", k, "] = ", od[k], " but dst[out_edge[", k,
                  "]] = ", d[id]);
      LAPIS_CHECK(k == op_[u] || oe[k - 1] < id, op, "outgoing edges of node ", u,
                  " are not in increasing edge id at position ", k);
    }
  }
}

Tensor Graph::in_degree() const {
  const std::vector<int32_t> ip = in_ptr.to_vector<int32_t>();
  std::vector<int32_t> deg(static_cast<size_t>(num_nodes));
  for (int64_t v = 0; v < num_nodes; ++v) deg[v] = ip[v + 1] - ip[v];
  return i32_tensor(deg);
}

Tensor Graph::out_degree() const {
  const std::vector<int32_t> p = out_ptr.to_vector<int32_t>();
  std::vector<int32_t> deg(static_cast<size_t>(num_nodes));
  for (int64_t v = 0; v < num_nodes; ++v) deg[v] = p[v + 1] - p[v];
  return i32_tensor(deg);
}

std::string Graph::describe() const {
  std::ostringstream os;
  os << "Graph(N=" << num_nodes << ", E=" << num_edges;
  if (node_features.defined()) os << ", node_features " << node_features.describe();
  if (edge_features.defined()) os << ", edge_features " << edge_features.describe();
  os << ", on " << device().to_string() << ")";
  return os.str();
}

}  // namespace graph
}  // namespace lapis
