#include "graph/tu_dataset.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <numeric>

#include "core/check.h"
#include "core/random.h"
#include "graph/dataset_io.h"

namespace lapis {
namespace graph {
namespace {

constexpr const char* kOp = "load_tu_dataset";

struct Labels {
  std::vector<int32_t> index;   // dense index per line
  std::vector<int64_t> values;  // raw value per dense index (sorted)
};

// Dense indices 0..K-1 in increasing raw-value order.
Labels remap(const std::vector<int64_t>& raw) {
  Labels l;
  l.values = raw;
  std::sort(l.values.begin(), l.values.end());
  l.values.erase(std::unique(l.values.begin(), l.values.end()), l.values.end());
  l.index.resize(raw.size());
  for (size_t i = 0; i < raw.size(); ++i) {
    l.index[i] = static_cast<int32_t>(
        std::lower_bound(l.values.begin(), l.values.end(), raw[i]) - l.values.begin());
  }
  return l;
}

class TuReader {
 public:
  TuReader(std::string folder, std::string prefix, TuInfo& info)
      : folder_(std::move(folder)), prefix_(std::move(prefix)), info_(info) {}

  // "" when the optional file is absent.
  std::string path(const char* suffix) const {
    return find_maybe_gz(folder_ + "/" + prefix_ + "_" + suffix + ".txt");
  }

  NumberLines open(const char* suffix, bool required) {
    const std::string p = path(suffix);
    if (p.empty()) {
      LAPIS_CHECK(!required, kOp, "missing file '", folder_, "/", prefix_, "_", suffix,
                  ".txt' (required in a TU dataset folder)");
      return NumberLines("", "", kOp);
    }
    info_.files.push_back(p);
    return NumberLines(p, read_maybe_gz(p, kOp), kOp);
  }

  // One integer per line.
  std::vector<int64_t> ints(NumberLines& f, const char* what) {
    std::vector<int64_t> out;
    while (f.next()) {
      f.expect_tokens(1, what);
      out.push_back(f.integer(0));
    }
    return out;
  }

  // D floats per line (D from the first line, the same on every line). Returns row-major values.
  std::vector<float> reals(NumberLines& f, int64_t& dim, int64_t& rows) {
    std::vector<float> out;
    dim = 0;
    rows = 0;
    while (f.next()) {
      if (rows == 0) dim = static_cast<int64_t>(f.size());
      LAPIS_CHECK(static_cast<int64_t>(f.size()) == dim, kOp, f.where(), ": expected ", dim,
                  " values (as on line 1), found ", f.size());
      for (size_t k = 0; k < f.size(); ++k) out.push_back(static_cast<float>(f.real(k)));
      ++rows;
    }
    return out;
  }

  void check_rows(const NumberLines& f, int64_t rows, int64_t expected, const char* per) {
    LAPIS_CHECK(rows == expected, kOp, f.name(), " has ", rows, " lines but there are ", expected,
                " ", per, " (one line each)");
  }

 private:
  std::string folder_, prefix_;
  TuInfo& info_;
};

std::string find_prefix(const std::string& folder, const std::string& requested) {
  namespace fs = std::filesystem;
  std::error_code ec;
  LAPIS_CHECK(fs::is_directory(folder, ec), kOp, "'", folder, "' is not a folder");
  if (!requested.empty()) return requested;
  std::string base = fs::path(folder).lexically_normal().filename().string();
  if (base.empty()) base = fs::path(folder).lexically_normal().parent_path().filename().string();
  if (!find_maybe_gz(folder + "/" + base + "_A.txt").empty()) return base;
  std::vector<std::string> found;
  for (const auto& entry : fs::directory_iterator(folder, ec)) {
    const std::string name = entry.path().filename().string();
    for (const char* suffix : {"_A.txt", "_A.txt.gz"}) {
      const std::string s(suffix);
      if (name.size() > s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0) {
        found.push_back(name.substr(0, name.size() - s.size()));
      }
    }
  }
  std::sort(found.begin(), found.end());
  found.erase(std::unique(found.begin(), found.end()), found.end());
  LAPIS_CHECK(!found.empty(), kOp, "missing file '", folder, "/", base,
              "_A.txt' (no *_A.txt in the folder either: is it a TU dataset?)");
  LAPIS_CHECK(found.size() == 1, kOp, "'", folder, "' holds several datasets (", found[0], ", ",
              found[1], "): name one");
  return found[0];
}

}  // namespace

GraphDataset load_tu_dataset(const std::string& folder, const TuOptions& options,
                             TuInfo* info_out) {
  TuInfo info;
  info.prefix = find_prefix(folder, options.name);
  TuReader reader(folder, info.prefix, info);

  // Nodes and their graphs.
  NumberLines ind = reader.open("graph_indicator", true);
  std::vector<int64_t> graph_of;
  while (ind.next()) {
    ind.expect_tokens(1, "a graph id");
    const int64_t g = ind.integer(0);
    LAPIS_CHECK(g >= 1, kOp, ind.where(), ": graph id ", g, " (ids start at 1)");
    graph_of.push_back(g - 1);
  }
  const int64_t num_nodes = static_cast<int64_t>(graph_of.size());
  LAPIS_CHECK(num_nodes > 0, kOp, ind.name(), " is empty");
  LAPIS_CHECK(num_nodes < INT32_MAX, kOp, ind.name(), ": too many nodes (", num_nodes, ")");
  const int64_t max_graph = *std::max_element(graph_of.begin(), graph_of.end()) + 1;

  // Graph targets: labels (classification) or attributes (regression).
  NumberLines glab = reader.open("graph_labels", false);
  NumberLines gattr = reader.open("graph_attributes", false);
  LAPIS_CHECK(!glab.name().empty() || !gattr.name().empty(), kOp, "missing file '", folder, "/",
              info.prefix, "_graph_labels.txt' (nor is there a ", info.prefix,
              "_graph_attributes.txt)");
  Labels graph_labels;
  std::vector<float> graph_attrs;
  int64_t num_graphs = 0;
  if (!glab.name().empty()) {
    graph_labels = remap(reader.ints(glab, "a graph label"));
    num_graphs = static_cast<int64_t>(graph_labels.index.size());
  }
  if (!gattr.name().empty()) {
    int64_t rows = 0;
    graph_attrs = reader.reals(gattr, info.graph_attr_dim, rows);
    if (glab.name().empty()) num_graphs = rows;
    reader.check_rows(gattr, rows, num_graphs, "graphs");
  }
  const NumberLines& gfile = glab.name().empty() ? gattr : glab;
  LAPIS_CHECK(max_graph <= num_graphs, kOp, ind.name(), " names graph ", max_graph, " but ",
              gfile.name(), " has only ", num_graphs, " lines");
  LAPIS_CHECK(max_graph == num_graphs, kOp, gfile.name(), " has ", num_graphs,
              " lines but the largest graph id in ", ind.name(), " is ", max_graph);

  // Local node ids: rank of the node among its graph's nodes.
  std::vector<int64_t> graph_size(num_graphs, 0);
  std::vector<int32_t> local(num_nodes);
  for (int64_t i = 0; i < num_nodes; ++i) local[i] = static_cast<int32_t>(graph_size[graph_of[i]]++);

  // Node labels and attributes.
  NumberLines nlab = reader.open("node_labels", false);
  Labels node_labels;
  if (!nlab.name().empty()) {
    node_labels = remap(reader.ints(nlab, "a node label"));
    reader.check_rows(nlab, static_cast<int64_t>(node_labels.index.size()), num_nodes,
                      "nodes in the graph indicator");
  }
  NumberLines nattr = reader.open("node_attributes", false);
  std::vector<float> node_attrs;
  int64_t node_dim = 0;
  if (!nattr.name().empty()) {
    int64_t rows = 0;
    node_attrs = reader.reals(nattr, node_dim, rows);
    reader.check_rows(nattr, rows, num_nodes, "nodes in the graph indicator");
  }

  // Edges.
  NumberLines a = reader.open("A", true);
  std::vector<int32_t> esrc, edst;
  std::vector<int64_t> egraph;
  while (a.next()) {
    a.expect_tokens(2, "a source and a destination node id");
    const int64_t u = a.integer(0), v = a.integer(1);
    for (int64_t id : {u, v}) {
      LAPIS_CHECK(id >= 1 && id <= num_nodes, kOp, a.where(), ": node id ", id,
                  " out of range [1, ", num_nodes, "] (", ind.name(), " has ", num_nodes,
                  " lines)");
    }
    LAPIS_CHECK(graph_of[u - 1] == graph_of[v - 1], kOp, a.where(), ": edge ", u, " -> ", v,
                " joins graph ", graph_of[u - 1] + 1, " and graph ", graph_of[v - 1] + 1);
    esrc.push_back(local[u - 1]);
    edst.push_back(local[v - 1]);
    egraph.push_back(graph_of[u - 1]);
  }
  const int64_t num_edges = static_cast<int64_t>(esrc.size());
  info.num_edge_lines = num_edges;

  NumberLines elab = reader.open("edge_labels", false);
  Labels edge_labels;
  if (!elab.name().empty()) {
    edge_labels = remap(reader.ints(elab, "an edge label"));
    reader.check_rows(elab, static_cast<int64_t>(edge_labels.index.size()), num_edges,
                      str_cat("edges in ", a.name()).c_str());
  }
  NumberLines eattr = reader.open("edge_attributes", false);
  std::vector<float> edge_attrs;
  int64_t edge_dim = 0;
  if (!eattr.name().empty()) {
    int64_t rows = 0;
    edge_attrs = reader.reals(eattr, edge_dim, rows);
    reader.check_rows(eattr, rows, num_edges, str_cat("edges in ", a.name()).c_str());
  }
  const bool has_elab = !edge_labels.index.empty() || (!elab.name().empty());
  const int64_t edge_width = (has_elab ? 1 : 0) + edge_dim;

  // Group nodes and edges by graph (stable: input order within a graph).
  std::vector<std::vector<int64_t>> nodes_of(num_graphs), edges_of(num_graphs);
  for (int64_t i = 0; i < num_nodes; ++i) nodes_of[graph_of[i]].push_back(i);
  for (int64_t e = 0; e < num_edges; ++e) edges_of[egraph[e]].push_back(e);

  GraphDataset d;
  d.name = info.prefix;
  d.task = TaskLevel::Graph;
  d.num_node_types = static_cast<int64_t>(node_labels.values.size());
  d.num_edge_types = static_cast<int64_t>(edge_labels.values.size());
  d.node_attr_dim = node_dim;
  d.edge_attr_dim = edge_dim;
  if (!graph_labels.index.empty()) {
    d.num_classes = static_cast<int64_t>(graph_labels.values.size());
    d.num_targets = 1;
  } else {
    d.num_classes = 0;
    d.num_targets = info.graph_attr_dim;
  }

  std::vector<GraphSample> all(num_graphs);
  for (int64_t g = 0; g < num_graphs; ++g) {
    const std::vector<int64_t>& nodes = nodes_of[g];
    const std::vector<int64_t>& edges = edges_of[g];
    const int64_t n = static_cast<int64_t>(nodes.size()), m = static_cast<int64_t>(edges.size());
    std::vector<int32_t> s(m), t(m);
    for (int64_t k = 0; k < m; ++k) {
      s[k] = esrc[edges[k]];
      t[k] = edst[edges[k]];
    }
    Tensor node_features, edge_features;
    if (!node_labels.index.empty()) {
      node_features = Tensor::empty({n, 1}, Dtype::I32);
      int32_t* p = node_features.data<int32_t>();
      for (int64_t k = 0; k < n; ++k) p[k] = node_labels.index[nodes[k]];
    }
    if (edge_width > 0) {
      if (edge_dim == 0) {
        edge_features = Tensor::empty({m, 1}, Dtype::I32);
        int32_t* p = edge_features.data<int32_t>();
        for (int64_t k = 0; k < m; ++k) p[k] = edge_labels.index[edges[k]];
      } else {
        edge_features = Tensor::empty({m, edge_width}, Dtype::F32);
        float* p = edge_features.data<float>();
        for (int64_t k = 0; k < m; ++k) {
          float* row = p + k * edge_width;
          int64_t c = 0;
          if (has_elab) row[c++] = static_cast<float>(edge_labels.index[edges[k]]);
          for (int64_t j = 0; j < edge_dim; ++j) row[c++] = edge_attrs[edges[k] * edge_dim + j];
        }
      }
    }
    GraphSample& sample = all[g];
    sample.graph = graph_from_coo(n, s, t, CooOptions{}, edge_features, node_features);
    if (node_dim > 0) {
      Tensor attrs = Tensor::empty({n, node_dim}, Dtype::F32);
      float* p = attrs.data<float>();
      for (int64_t k = 0; k < n; ++k) {
        std::copy_n(node_attrs.data() + nodes[k] * node_dim, node_dim, p + k * node_dim);
      }
      sample.node_extras.push_back(attrs);
    }
    if (d.num_classes > 0) {
      sample.y = Tensor::from_vector<int32_t>({graph_labels.index[g]}, {1});
    } else {
      std::vector<float> y(graph_attrs.begin() + g * d.num_targets,
                           graph_attrs.begin() + (g + 1) * d.num_targets);
      sample.y = Tensor::from_vector<float>(y, {d.num_targets});
    }
  }

  // Optional seeded split.
  LAPIS_CHECK(options.val_fraction >= 0 && options.test_fraction >= 0 &&
                  options.val_fraction + options.test_fraction < 1.0,
              kOp, "split fractions must be >= 0 and sum to less than 1, got val ",
              options.val_fraction, " test ", options.test_fraction);
  std::vector<int64_t> order(num_graphs);
  std::iota(order.begin(), order.end(), 0);
  if (options.val_fraction > 0 || options.test_fraction > 0) {
    Generator gen(options.seed);
    for (int64_t i = num_graphs - 1; i > 0; --i) {  // Fisher-Yates
      const int64_t j = static_cast<int64_t>(random_bits(gen.seed(), gen.advance(1)) %
                                             static_cast<uint64_t>(i + 1));
      std::swap(order[i], order[j]);
    }
  }
  const int64_t n_val = static_cast<int64_t>(options.val_fraction * num_graphs);
  const int64_t n_test = static_cast<int64_t>(options.test_fraction * num_graphs);
  const int64_t n_train = num_graphs - n_val - n_test;
  for (int64_t k = 0; k < num_graphs; ++k) {
    auto& split = k < n_train ? d.train : (k < n_train + n_val ? d.val : d.test);
    split.push_back(std::move(all[order[k]]));
  }

  info.num_graphs = num_graphs;
  info.num_nodes = num_nodes;
  info.graph_label_values = graph_labels.values;
  info.node_label_values = node_labels.values;
  info.edge_label_values = edge_labels.values;
  if (info_out) *info_out = std::move(info);
  return d;
}

}  // namespace graph
}  // namespace lapis
