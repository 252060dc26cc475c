// PATTERN and CLUSTER: the stochastic-block-model node classification datasets of the
// benchmarking-gnns suite, regenerated with the parameters of its June-2020 ("v2") notebooks
// data/SBMs/generate_SBM_{PATTERN,CLUSTER}.ipynb (the ones Dwivedi & Bresson's graph transformer
// used). The published pickles were made without a seed; ours are seeded and reproducible.
//
// PATTERN (2 classes): a graph G of 5 communities of 5..34 nodes each, edge probability p = 0.5
// inside a community and q = 0.35 across, node features uniform in {0, 1, 2}; plus a pattern P
// of 5..34 nodes with internal edge probability 0.5 and fixed features (one P per pattern
// instance, 100 instances), every (P node, G node) pair joined with probability 0.5. Nodes are
// shuffled; label 1 for P's nodes. Splits 10,000 / 2,000 / 2,000 (each instance gives 100 / 20
// / 20 graphs).
// CLUSTER (6 classes): 6 clusters of 5..34 nodes, p = 0.55, q = 0.25; every feature is 0 except
// one random node per cluster r, which gets r + 1 (vocabulary 7); label = cluster id. Nodes are
// shuffled. Splits 10,000 / 1,000 / 1,000.
//
// Graphs are undirected (each edge both ways), without self loops or edge features. Samples
// follow graph/dataset.h: node_features i32 [N, 1], y i32 [N] (node level).
//
// Every graph comes from its own counter-based random stream (seed, dataset, split, index), so a
// graph does not depend on how many others are generated. The full sets take a few seconds and
// are cached on disk (graph/dataset_cache.h; ~12 MB for PATTERN as packed adjacency bits).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "graph/dataset.h"

namespace lapis {
namespace graph {

// One generated SBM graph before conversion, with its block structure (for statistics).
struct SbmGraph {
  int64_t num_nodes = 0;
  std::vector<int32_t> block;     // community of each node; PATTERN: 0..4 for G, 5 for P
  std::vector<int32_t> feature;   // categorical node feature
  std::vector<int32_t> label;     // node class
  std::vector<uint8_t> adjacency; // dense symmetric 0/1, N x N row-major, zero diagonal

  bool edge(int64_t i, int64_t j) const { return adjacency[i * num_nodes + j] != 0; }
};

struct SbmParams {
  int num_blocks;        // communities (PATTERN) or clusters (CLUSTER)
  int min_size, max_size;  // block sizes uniform in [min_size, max_size]
  double p, q;           // intra- and inter-block edge probabilities
};
constexpr SbmParams kPatternParams{5, 5, 34, 0.5, 0.35};
constexpr SbmParams kClusterParams{6, 5, 34, 0.55, 0.25};
constexpr double kPatternInternalP = 0.5;  // edges inside the pattern
constexpr double kPatternJoinP = 0.5;      // pattern node - graph node pairs
constexpr int kPatternInstances = 100;

enum class SbmSplit { Train = 0, Val = 1, Test = 2 };

// Graph `index` of `split`; PATTERN also takes the pattern instance it embeds (0..99).
SbmGraph generate_pattern_graph(uint64_t seed, SbmSplit split, int64_t index, int64_t instance);
SbmGraph generate_cluster_graph(uint64_t seed, SbmSplit split, int64_t index);

// Converts to a sample (node_features i32 [N, 1], y i32 [N]).
GraphSample sbm_to_sample(const SbmGraph& g);

struct SbmOptions {
  uint64_t seed = 0;
  // Split sizes; -1 = the standard size (PATTERN 10k/2k/2k, CLUSTER 10k/1k/1k). Small sizes are
  // for tests and quick looks; PATTERN spreads a split's graphs evenly over the 100 instances.
  int64_t train = -1, val = -1, test = -1;
  bool use_cache = true;   // read the cache file when present, write it after generating
  std::string cache_dir;   // "" = graph::cache_dir() default
  // Called with a progress line now and then during generation (library code never prints).
  std::function<void(const std::string&)> progress;
};

GraphDataset load_pattern(const SbmOptions& options = {});
GraphDataset load_cluster(const SbmOptions& options = {});

// The cache file load_pattern / load_cluster use for these options ("pattern" or "cluster").
std::string sbm_cache_path(const std::string& name, const SbmOptions& options);

}  // namespace graph
}  // namespace lapis
