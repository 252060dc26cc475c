// The ZINC 12k subset of the benchmarking-gnns suite (Dwivedi et al.), shipped compactly in the
// repository as data/zinc/zinc_subset.bin.gz (329 KB; see data/zinc/PROVENANCE.md and
// scripts/make_zinc_bundle.py for its sources and layout).
//
// 10,000 / 1,000 / 1,000 molecules (train / val / test), 277,864 atoms, 298,985 bonds. Each
// sample (conventions of graph/dataset.h):
//  * node_features i32 [N, 1]: atom type in [0, 28) (benchmarking-gnns' atom_dict);
//  * edge_features i32 [E, 1]: bond type 1 single, 2 double, 3 triple. The vocabulary is 4, as in
//    the benchmark (`num_bond_type = 4`, Embedding(4, d)): index 0 means "no bond" in its dense
//    adjacency and never occurs on a sparse edge. We keep 1..3 rather than shifting to 0..2 so
//    that embedding tables and checkpoints line up with the reference implementation;
//  * every bond as two directed edges (E = 2 x bonds), no self loops;
//  * y f32 [1]: the normalised penalised logP (val/test: the published values; train:
//    recomputed with RDKit, see PROVENANCE.md). Regression: num_classes = 0.
#pragma once

#include <string>

#include "graph/dataset.h"

namespace lapis {
namespace graph {

// Relative path of the bundle inside a data folder.
constexpr const char* kZincBundle = "zinc/zinc_subset.bin.gz";

// Loads the bundle at `path`: a file, a data folder holding zinc/zinc_subset.bin.gz, or "" to
// search the usual places (find_data_file). Throws lapis::Error naming the file when it is
// missing or corrupt (bad magic, version, truncated, counts out of range, non-finite target).
GraphDataset load_zinc(const std::string& path = "");

}  // namespace graph
}  // namespace lapis
