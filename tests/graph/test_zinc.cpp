// ZINC 12k bundle shipped in data/zinc: counts, the first graph, conventions, and errors for a
// missing or damaged bundle. Found through $LAPIS_SOURCE_DIR (set by ctest) or the build tree.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <string>

#include "core/check.h"
#include "graph/dataset.h"
#include "graph/dataset_io.h"
#include "graph/zinc.h"
#include "tests/common/test_util.h"

namespace lapis {
namespace graph {
namespace {

using lapis::testing::expect_error_mentions;

const GraphDataset& zinc() {
  static const GraphDataset d = load_zinc();
  return d;
}

TEST(Zinc, SplitSizesAndTotals) {
  const GraphDataset& d = zinc();
  EXPECT_EQ(d.name, "zinc");
  EXPECT_EQ(d.train.size(), 10000u);
  EXPECT_EQ(d.val.size(), 1000u);
  EXPECT_EQ(d.test.size(), 1000u);
  EXPECT_EQ(d.num_node_types, 28);
  EXPECT_EQ(d.num_edge_types, 4);
  EXPECT_EQ(d.num_classes, 0);
  EXPECT_EQ(d.task, TaskLevel::Graph);
  const SplitStats tr = split_stats(d.train), va = split_stats(d.val), te = split_stats(d.test);
  EXPECT_EQ(tr.nodes + va.nodes + te.nodes, 277864);
  EXPECT_EQ(tr.edges + va.edges + te.edges, 2 * 298985);
  // Per split, as in shared/data/README.md.
  EXPECT_EQ(tr.nodes, 231664);
  EXPECT_EQ(tr.edges, 498558);
  EXPECT_EQ(va.nodes, 23083);
  EXPECT_EQ(te.edges, 49720);
  EXPECT_EQ(std::min({tr.min_nodes, va.min_nodes, te.min_nodes}), 9);
  EXPECT_EQ(std::max({tr.max_nodes, va.max_nodes, te.max_nodes}), 37);
}

TEST(Zinc, FirstGraphAndTargets) {
  const GraphDataset& d = zinc();
  const GraphSample& g = d.train[0];
  EXPECT_EQ(g.graph.num_nodes, 29);
  EXPECT_EQ(g.graph.num_edges, 64);
  // Targets as exported (graph_attributes line 1 of each split), stored as f32.
  EXPECT_FLOAT_EQ(g.y.to_vector<float>()[0], 0.8373207654f);
  EXPECT_FLOAT_EQ(d.val[0].y.to_vector<float>()[0], 0.6299157739f);
  EXPECT_FLOAT_EQ(d.test[0].y.to_vector<float>()[0], 1.997325778f);
  double sum = 0;
  for (const GraphSample& s : d.train) {
    const float y = s.y.to_vector<float>()[0];
    ASSERT_TRUE(std::isfinite(y));
    sum += y;
  }
  EXPECT_NEAR(sum / d.train.size(), 0.0, 0.2);  // README: target mean ~0.02, sd ~2
}

TEST(Zinc, ConventionsHold) {
  const GraphDataset& d = zinc();
  validate_dataset(d);  // node types in [0, 28), edge types in [0, 4), finite f32 [1] targets
  // Bonds are 1..3 (no 0 on a sparse edge), every edge has its reverse with the same type, and
  // there are no self loops.
  for (const GraphSample& s : d.val) {
    const auto src = s.graph.src.to_vector<int32_t>(), dst = s.graph.dst.to_vector<int32_t>();
    const auto t = s.graph.edge_features.to_vector<int32_t>();
    for (size_t e = 0; e < src.size(); ++e) {
      ASSERT_NE(src[e], dst[e]);
      ASSERT_GE(t[e], 1);
      ASSERT_LE(t[e], 3);
      bool found = false;
      for (size_t f = 0; f < src.size() && !found; ++f) {
        found = src[f] == dst[e] && dst[f] == src[e] && t[f] == t[e];
      }
      ASSERT_TRUE(found) << "edge " << src[e] << "->" << dst[e] << " has no reverse";
    }
  }
}

TEST(Zinc, MissingOrDamagedBundle) {
  expect_error_mentions([] { load_zinc("/nonexistent/zinc_data"); },
                        {"/nonexistent/zinc_data/zinc/zinc_subset.bin.gz", "does not exist"});
  const std::string bundle = find_data_file(kZincBundle);
  const std::string bytes = read_file_bytes(bundle);
  char pattern[] = "/tmp/lapis_zinc_test_XXXXXX";
  ASSERT_NE(mkdtemp(pattern), nullptr);
  const std::string dir = pattern;
  const std::string truncated = dir + "/truncated.bin.gz";
  write_file_atomic(truncated, bytes.substr(0, bytes.size() / 2), "test");
  expect_error_mentions([&] { load_zinc(truncated); }, {"truncated.bin.gz", "corrupt"});
  const std::string wrong = dir + "/wrong.bin.gz";
  write_file_atomic(wrong, "not gzip at all", "test");
  expect_error_mentions([&] { load_zinc(wrong); }, {"wrong.bin.gz", "not a gzip stream"});
  std::system(("rm -rf '" + dir + "'").c_str());
}

}  // namespace
}  // namespace graph
}  // namespace lapis
