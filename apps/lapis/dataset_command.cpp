// `lapis dataset info NAME`: loads a dataset (zinc, pattern, cluster, tu:PATH) and prints its
// split sizes, node and edge counts, feature and label cardinalities, and how long loading and
// the Laplacian positional encodings took.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "apps/lapis/commands.h"
#include "core/check.h"
#include "graph/dataset.h"
#include "graph/sbm.h"
#include "graph/tu_dataset.h"
#include "graph/zinc.h"

#if __has_include("graph/encoding_cache.h")
#include "graph/encoding_cache.h"
#define LAPIS_DATASET_HAS_LAPPE 1
#endif

namespace lapis {
namespace apps {
namespace {

struct DatasetInfoOptions {
  std::string name;
  std::string data_dir;
  std::string cache_dir;
  uint64_t seed = 0;
  int64_t count = -1;
  bool no_cache = false;
  int pe = -1;  // -1: the dataset's benchmark k
  int threads = 0;
  bool quiet = false;
};

std::string format(const char* fmt, double a) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), fmt, a);
  return buf;
}

std::string check_dataset_name(const std::string& name) {
  if (name == "zinc" || name == "pattern" || name == "cluster") return "";
  if (name.rfind("tu:", 0) == 0 && name.size() > 3) return "";
  return "unknown dataset '" + name + "' (expected zinc, pattern, cluster or tu:PATH)";
}

void print_row(const char* split, const graph::SplitStats& s) {
  char buf[200];
  std::snprintf(buf, sizeof(buf), "  %-6s %8lld %10lld %8.2f %5lld %5lld %11lld %8.2f %6lld %6lld\n",
                split, static_cast<long long>(s.graphs), static_cast<long long>(s.nodes),
                s.mean_nodes(), static_cast<long long>(s.min_nodes),
                static_cast<long long>(s.max_nodes), static_cast<long long>(s.edges),
                s.mean_edges(), static_cast<long long>(s.min_edges),
                static_cast<long long>(s.max_edges));
  std::cout << buf;
}

std::string join(const std::vector<int64_t>& v) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) out += (i ? " " : "") + std::to_string(v[i]);
  return out;
}

int run_dataset_info(const DatasetInfoOptions& o) {
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  graph::GraphDataset d;
  graph::TuInfo tu;
  bool is_tu = false;
  int default_k = 8;
  if (o.name == "zinc") {
    d = graph::load_zinc(o.data_dir);
  } else if (o.name == "pattern" || o.name == "cluster") {
    graph::SbmOptions so;
    so.seed = o.seed;
    if (o.count >= 0) so.train = so.val = so.test = o.count;
    so.use_cache = !o.no_cache;
    so.cache_dir = o.cache_dir;
    if (!o.quiet) so.progress = [](const std::string& line) { std::cout << line << std::endl; };
    d = o.name == "pattern" ? graph::load_pattern(so) : graph::load_cluster(so);
    default_k = o.name == "pattern" ? 2 : 10;
  } else {
    d = graph::load_tu_dataset(o.name.substr(3), {}, &tu);
    is_tu = true;
  }
  const double load_s = std::chrono::duration<double>(Clock::now() - start).count();

  std::cout << "dataset: " << d.name << "\n";
  const char* level = d.task == graph::TaskLevel::Node ? "node" : "graph";
  if (d.num_classes > 0) {
    std::cout << "task:    " << level << " classification, " << d.num_classes << " classes\n";
  } else {
    std::cout << "task:    " << level << " regression, " << d.num_targets << " target"
              << (d.num_targets == 1 ? "" : "s") << "\n";
  }
  std::cout << "splits:  train " << d.train.size() << ", val " << d.val.size() << ", test "
            << d.test.size() << " graphs\n";
  std::cout << "  split    graphs      nodes     mean   min   max       edges     mean    min"
               "    max\n";
  std::vector<graph::GraphSample> none;
  print_row("train", graph::split_stats(d.train));
  if (!d.val.empty()) print_row("val", graph::split_stats(d.val));
  if (!d.test.empty()) print_row("test", graph::split_stats(d.test));
  {
    graph::SplitStats all = graph::split_stats(d.train), v = graph::split_stats(d.val),
                      t = graph::split_stats(d.test);
    for (const graph::SplitStats* s : {&v, &t}) {
      if (s->graphs == 0) continue;
      all.min_nodes = all.graphs ? std::min(all.min_nodes, s->min_nodes) : s->min_nodes;
      all.min_edges = all.graphs ? std::min(all.min_edges, s->min_edges) : s->min_edges;
      all.max_nodes = std::max(all.max_nodes, s->max_nodes);
      all.max_edges = std::max(all.max_edges, s->max_edges);
      all.graphs += s->graphs;
      all.nodes += s->nodes;
      all.edges += s->edges;
    }
    print_row("all", all);
  }
  std::cout << "(edges are directed entries: an undirected edge counts twice)\n";
  std::cout << "node types:      "
            << (d.num_node_types ? std::to_string(d.num_node_types) + " (node_features i32 [N, 1])"
                                 : std::string("none"))
            << "\n";
  std::cout << "edge types:      "
            << (d.num_edge_types ? std::to_string(d.num_edge_types) : std::string("none"))
            << "\n";
  if (d.node_attr_dim) std::cout << "node attributes: " << d.node_attr_dim << " floats\n";
  if (d.edge_attr_dim) std::cout << "edge attributes: " << d.edge_attr_dim << " floats\n";
  if (d.num_classes > 0) {
    std::cout << "class counts:    train " << join(graph::class_counts(d.train, d.num_classes));
    if (!d.val.empty()) std::cout << " | val " << join(graph::class_counts(d.val, d.num_classes));
    if (!d.test.empty()) {
      std::cout << " | test " << join(graph::class_counts(d.test, d.num_classes));
    }
    std::cout << "\n";
  }
  if (is_tu) {
    std::cout << "raw labels:      graph [" << join(tu.graph_label_values) << "] node ["
              << join(tu.node_label_values) << "] edge [" << join(tu.edge_label_values)
              << "] (mapped to 0..K-1 in this order)\n";
  }
  std::cout << "load time:       " << format("%.3f s", load_s) << "\n";

#ifdef LAPIS_DATASET_HAS_LAPPE
  const int k = o.pe < 0 ? default_k : o.pe;
  if (k > 0) {
    std::vector<const graph::Graph*> graphs;
    for (const auto* split : {&d.train, &d.val, &d.test}) {
      for (const graph::GraphSample& s : *split) graphs.push_back(&s.graph);
    }
    graph::LapPEOptions pe;
    pe.k = k;
    const int threads =
        o.threads > 0 ? o.threads : std::max(1u, std::thread::hardware_concurrency());
    const auto t0 = Clock::now();
    graph::compute_laplacian_pe(graphs, pe, threads);
    const double pe_s = std::chrono::duration<double>(Clock::now() - t0).count();
    std::cout << "LapPE (k=" << k << "):     " << format("%.3f s", pe_s) << " for "
              << graphs.size() << " graphs on " << threads << " thread"
              << (threads == 1 ? "" : "s") << "\n";
  }
#endif
  return 0;
}

}  // namespace

Subcommand add_dataset_command(CLI::App& parent) {
  CLI::App* app = parent.add_subcommand("dataset", "Inspect graph datasets");
  app->require_subcommand(1);
  auto options = std::make_shared<DatasetInfoOptions>();
  CLI::App* info = app->add_subcommand(
      "info", "Print split sizes, node/edge counts, feature and label cardinalities and timings");
  info->add_option("name", options->name, "zinc, pattern, cluster or tu:PATH (a TU folder)")
      ->required()
      ->check(CLI::Validator(check_dataset_name, "DATASET"));
  info->add_option("--data", options->data_dir,
                   "zinc: the bundle file or a data folder holding zinc/zinc_subset.bin.gz");
  info->add_option("--seed", options->seed, "pattern/cluster: generator seed (default 0)");
  info->add_option("--count", options->count,
                   "pattern/cluster: graphs per split instead of the standard sizes")
      ->check(CLI::NonNegativeNumber);
  info->add_flag("--no-cache", options->no_cache,
                 "pattern/cluster: generate without reading or writing the cache file");
  info->add_option("--cache-dir", options->cache_dir,
                   "pattern/cluster: cache folder (default $LAPIS_CACHE_DIR or ~/.cache/lapis)");
  info->add_option("--pe", options->pe,
                   "LapPE k to time (default: the benchmark's k; 0 skips)")
      ->check(CLI::Range(-1, 1000));
  info->add_option("--threads", options->threads, "threads for LapPE (default: all cores)")
      ->check(CLI::NonNegativeNumber);
  info->add_flag("--quiet", options->quiet, "no progress lines while generating");
  return {app, [options]() { return run_dataset_info(*options); }};
}

}  // namespace apps
}  // namespace lapis
