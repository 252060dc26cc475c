// GraphDataset: a named dataset of GraphSamples in train/val/test splits, plus what a model needs
// to size its input embeddings and output head.
//
// Conventions shared by every loader in graph/ (zinc.h, tu_dataset.h, sbm.h):
//  * categorical node features: graph.node_features i32 [N, 1] with values in
//    [0, num_node_types) (reshape to [N] for an Embedding);
//  * categorical edge features: graph.edge_features i32 [E, 1] in [0, num_edge_types);
//  * continuous node attributes (TU node_attributes): node_extras[0], f32 [N, D];
//  * graph classification: y i32 [1] in [0, num_classes); graph regression: y f32 [T] (T >= 1);
//    node classification: y i32 [N] in [0, num_classes).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "graph/sample.h"

namespace lapis {
namespace graph {

enum class TaskLevel { Graph, Node };

struct GraphDataset {
  std::string name;
  std::vector<GraphSample> train, val, test;
  int64_t num_node_types = 0;  // vocabulary of the categorical node feature (0: none)
  int64_t num_edge_types = 0;  // vocabulary of the categorical edge feature (0: none)
  int64_t num_classes = 0;     // 0 = regression
  int64_t num_targets = 1;     // regression: width T of y; classification: 1
  TaskLevel task = TaskLevel::Graph;
  int64_t node_attr_dim = 0;   // width of continuous node attributes in node_extras[0] (0: none)
  int64_t edge_attr_dim = 0;   // width of continuous edge attributes (TU only; see tu_dataset.h)

  int64_t size() const { return static_cast<int64_t>(train.size() + val.size() + test.size()); }
};

// Summary statistics of one split (or the whole dataset), for `lapis dataset info` and checks.
struct SplitStats {
  int64_t graphs = 0;
  int64_t nodes = 0, min_nodes = 0, max_nodes = 0;  // totals and extremes over graphs
  int64_t edges = 0, min_edges = 0, max_edges = 0;  // directed edges
  double mean_nodes() const { return graphs ? static_cast<double>(nodes) / graphs : 0.0; }
  double mean_edges() const { return graphs ? static_cast<double>(edges) / graphs : 0.0; }
};
SplitStats split_stats(const std::vector<GraphSample>& samples);

// Class histogram over y of every sample (graph or node level; i32 labels). Size num_classes.
std::vector<int64_t> class_counts(const std::vector<GraphSample>& samples, int64_t num_classes);

// Checks the dataset's conventions above for every sample (feature dtypes and ranges, label
// ranges, y shapes, finite regression targets) and every graph's invariants. Throws lapis::Error
// naming the split and the sample index. O(total size).
void validate_dataset(const GraphDataset& dataset);

// Where shipped data lives (the repository's data/ folder). Tried in order: `explicit_dir` when
// not empty; $LAPIS_DATA_DIR; the compile-time LAPIS_DATA_DIR definition when the build sets
// one; $LAPIS_SOURCE_DIR/data; then data/ in the current directory, the running program's folder
// and their parents. Returns the first folder holding `relative` (e.g. "zinc/zinc_subset.bin.gz");
// throws lapis::Error listing the places it tried otherwise.
std::string find_data_file(const std::string& relative, const std::string& explicit_dir = "");

}  // namespace graph
}  // namespace lapis
