// Loader for the TUDataset text format (Morris et al. 2020, https://chrsmrrs.github.io/datasets),
// for any folder in that format, not only the datasets it was tested on.
//
// Files, for a dataset prefix DS (each may also be gzipped as NAME.gz):
//   DS_A.txt                 required  "row, col" per directed edge, global 1-based node ids
//   DS_graph_indicator.txt   required  graph id (1-based) of node i on line i
//   DS_graph_labels.txt      one of    integer class of graph g on line g -> classification
//   DS_graph_attributes.txt  these     floats of graph g on line g -> regression when no labels
//   DS_node_labels.txt       optional  one integer per node
//   DS_node_attributes.txt   optional  D floats per node
//   DS_edge_labels.txt       optional  one integer per line of DS_A.txt
//   DS_edge_attributes.txt   optional  D floats per line of DS_A.txt
// Numbers may be separated by commas and/or whitespace. Errors (missing file, non-numeric token,
// id out of range, edge across graphs, line counts that disagree) name the file and the line.
//
// What a sample holds (see graph/dataset.h for the shared conventions):
//  * graph: the edges exactly as listed (each undirected edge appears twice in TU files), node
//    ids local to the graph (0-based, in increasing global id order);
//  * labels (graph, node, edge) are remapped to dense indices 0..K-1 in increasing order of
//    their raw values (MUTAG's -1/1 become 0/1); TuInfo keeps the raw values;
//  * node_features i32 [N, 1] = node label index (when node labels exist);
//    node_extras[0] f32 [N, D] = node attributes (when they exist);
//  * edge_features: i32 [E, 1] edge label index when only edge labels exist; f32 [E, D] edge
//    attributes when only those exist; f32 [E, 1 + D] (column 0 = label index) when both do;
//  * y: i32 [1] class index, or f32 [A] graph attributes when there are no graph labels.
// TU datasets have no standard split: every graph goes to train unless fractions are given.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "graph/dataset.h"

namespace lapis {
namespace graph {

struct TuOptions {
  std::string name;            // the file prefix DS; empty: the folder's name, else the one *_A.txt
  double val_fraction = 0.0;   // seeded random split of the graphs (0, 0: all in train)
  double test_fraction = 0.0;
  uint64_t seed = 0;
};

// Raw facts about the files, for reports and checks.
struct TuInfo {
  std::string prefix;                      // the DS prefix used
  int64_t num_graphs = 0, num_nodes = 0;
  int64_t num_edge_lines = 0;              // lines of DS_A.txt (directed edge entries)
  std::vector<int64_t> graph_label_values; // raw label value of each class index
  std::vector<int64_t> node_label_values;
  std::vector<int64_t> edge_label_values;
  int64_t graph_attr_dim = 0;
  std::vector<std::string> files;          // the files read
};

GraphDataset load_tu_dataset(const std::string& folder, const TuOptions& options = {},
                             TuInfo* info = nullptr);

}  // namespace graph
}  // namespace lapis
