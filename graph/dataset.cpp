#include "graph/dataset.h"

#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdlib>

#include "core/check.h"
#include "graph/dataset_io.h"

namespace lapis {
namespace graph {

SplitStats split_stats(const std::vector<GraphSample>& samples) {
  SplitStats s;
  s.graphs = static_cast<int64_t>(samples.size());
  if (samples.empty()) return s;
  s.min_nodes = s.min_edges = INT64_MAX;
  for (const GraphSample& sample : samples) {
    const int64_t n = sample.graph.num_nodes, e = sample.graph.num_edges;
    s.nodes += n;
    s.edges += e;
    s.min_nodes = std::min(s.min_nodes, n);
    s.max_nodes = std::max(s.max_nodes, n);
    s.min_edges = std::min(s.min_edges, e);
    s.max_edges = std::max(s.max_edges, e);
  }
  return s;
}

std::vector<int64_t> class_counts(const std::vector<GraphSample>& samples, int64_t num_classes) {
  std::vector<int64_t> counts(static_cast<size_t>(std::max<int64_t>(num_classes, 0)), 0);
  for (const GraphSample& sample : samples) {
    if (!sample.y.defined() || sample.y.dtype() != Dtype::I32) continue;
    const int32_t* y = sample.y.data<int32_t>();
    for (int64_t i = 0; i < sample.y.numel(); ++i) {
      if (y[i] >= 0 && y[i] < num_classes) counts[y[i]]++;
    }
  }
  return counts;
}

namespace {

void check_categorical(const char* op, const std::string& where, const char* what,
                       const Tensor& t, int64_t rows, int64_t vocab) {
  LAPIS_CHECK(t.dtype() == Dtype::I32 && t.dim() == 2 && t.size(0) == rows && t.size(1) == 1, op,
              where, ": ", what, " must be i32 [", rows, ", 1], got ", t.describe());
  const int32_t* v = t.data<int32_t>();
  for (int64_t i = 0; i < rows; ++i) {
    LAPIS_CHECK(v[i] >= 0 && v[i] < vocab, op, where, ": ", what, " row ", i, " is ", v[i],
                ", outside [0, ", vocab, ")");
  }
}

void validate_split(const GraphDataset& d, const std::vector<GraphSample>& split,
                    const char* split_name) {
  const char* op = "validate_dataset";
  for (size_t i = 0; i < split.size(); ++i) {
    const GraphSample& s = split[i];
    const std::string where = str_cat(d.name, " ", split_name, "[", i, "]");
    const Graph& g = s.graph;
    try {
      g.validate();
    } catch (const Error& e) {
      LAPIS_FAIL(op, where, ": ", e.what());
    }
    if (d.num_node_types > 0) {
      check_categorical(op, where, "node_features", g.node_features, g.num_nodes,
                        d.num_node_types);
    }
    if (d.num_edge_types > 0 && d.edge_attr_dim == 0) {
      check_categorical(op, where, "edge_features", g.edge_features, g.num_edges,
                        d.num_edge_types);
    }
    if (d.node_attr_dim > 0) {
      LAPIS_CHECK(!s.node_extras.empty() && s.node_extras[0].dim() == 2 &&
                      s.node_extras[0].size(0) == g.num_nodes &&
                      s.node_extras[0].size(1) == d.node_attr_dim,
                  op, where, ": node_extras[0] must be [", g.num_nodes, ", ", d.node_attr_dim,
                  "]");
    }
    LAPIS_CHECK(s.y.defined(), op, where, ": y is not set");
    if (d.num_classes > 0) {
      const int64_t rows = d.task == TaskLevel::Node ? g.num_nodes : 1;
      LAPIS_CHECK(s.y.dtype() == Dtype::I32 && s.y.dim() == 1 && s.y.size(0) == rows, op, where,
                  ": y must be i32 [", rows, "], got ", s.y.describe());
      const int32_t* y = s.y.data<int32_t>();
      for (int64_t k = 0; k < rows; ++k) {
        LAPIS_CHECK(y[k] >= 0 && y[k] < d.num_classes, op, where, ": label ", y[k],
                    " outside [0, ", d.num_classes, ")");
      }
    } else {
      LAPIS_CHECK(s.y.dtype() == Dtype::F32 && s.y.dim() == 1 && s.y.size(0) == d.num_targets,
                  op, where, ": y must be f32 [", d.num_targets, "], got ", s.y.describe());
      const float* y = s.y.data<float>();
      for (int64_t k = 0; k < d.num_targets; ++k) {
        LAPIS_CHECK(std::isfinite(y[k]), op, where, ": target ", k, " is ", y[k]);
      }
    }
  }
}

std::string dirname_of(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? std::string(".") : path.substr(0, slash);
}

}  // namespace

void validate_dataset(const GraphDataset& dataset) {
  validate_split(dataset, dataset.train, "train");
  validate_split(dataset, dataset.val, "val");
  validate_split(dataset, dataset.test, "test");
}

std::string find_data_file(const std::string& relative, const std::string& explicit_dir) {
  std::vector<std::string> dirs;
  if (!explicit_dir.empty()) {
    // An explicit folder is the only place looked at: a typo must not silently fall back.
    const std::string path = explicit_dir + "/" + relative;
    LAPIS_CHECK(file_exists(path), "find_data_file", "'", path,
                "' does not exist (from the data folder given: '", explicit_dir, "')");
    return path;
  }
  if (const char* env = std::getenv("LAPIS_DATA_DIR")) dirs.push_back(env);
#ifdef LAPIS_DATA_DIR
  dirs.push_back(LAPIS_DATA_DIR);
#endif
  if (const char* env = std::getenv("LAPIS_SOURCE_DIR")) dirs.push_back(std::string(env) + "/data");
  // Walk up from the current directory and from the program's folder (build trees live inside
  // the repository: <repo>/build/bin/lapis finds <repo>/data).
  std::vector<std::string> starts;
  char buf[4096];
  if (::getcwd(buf, sizeof(buf))) starts.push_back(buf);
  const ssize_t len = ::readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (len > 0) {
    buf[len] = '\0';
    starts.push_back(dirname_of(buf));
  }
  for (std::string dir : starts) {
    for (int up = 0; up < 6 && !dir.empty(); ++up) {
      dirs.push_back(dir + "/data");
      if (dir == "/") break;
      dir = dirname_of(dir);
      if (dir.empty()) dir = "/";
    }
  }
  std::string tried;
  for (const std::string& dir : dirs) {
    const std::string path = dir + "/" + relative;
    if (file_exists(path)) return path;
    tried += (tried.empty() ? "" : ", ") + path;
  }
  LAPIS_FAIL("find_data_file", "cannot find '", relative,
             "' (set LAPIS_DATA_DIR or pass --data); tried: ", tried);
}

}  // namespace graph
}  // namespace lapis
