// PATTERN / CLUSTER generators (block sizes, edge probabilities, labels, seeding) and the
// dataset cache container (round trip, stale keys, corruption errors).
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "core/check.h"
#include "graph/dataset_cache.h"
#include "graph/dataset_io.h"
#include "graph/sbm.h"
#include "tests/common/test_util.h"
#include "tests/common/temp_dir.h"

namespace lapis {
namespace graph {
namespace {

using lapis::testing::TempDir;

using lapis::testing::expect_error_mentions;


struct PairCounts {
  int64_t edges = 0, pairs = 0;
  double rate() const { return pairs ? static_cast<double>(edges) / pairs : 0.0; }
};

// Edge rate among pairs (i < j) for which pick(block_i, block_j) is true.
template <typename Pick>
PairCounts pair_rate(const std::vector<SbmGraph>& graphs, Pick pick) {
  PairCounts c;
  for (const SbmGraph& g : graphs) {
    for (int64_t i = 0; i < g.num_nodes; ++i) {
      for (int64_t j = i + 1; j < g.num_nodes; ++j) {
        if (!pick(g.block[i], g.block[j])) continue;
        ++c.pairs;
        c.edges += g.edge(i, j);
      }
    }
  }
  return c;
}

void check_structure(const SbmGraph& g, int num_blocks) {
  std::vector<int64_t> size(num_blocks, 0);
  for (int32_t b : g.block) {
    ASSERT_GE(b, 0);
    ASSERT_LT(b, num_blocks);
    size[b]++;
  }
  for (int64_t s : size) {
    EXPECT_GE(s, 5);
    EXPECT_LE(s, 34);
  }
  for (int64_t i = 0; i < g.num_nodes; ++i) {
    ASSERT_FALSE(g.edge(i, i));
    for (int64_t j = 0; j < g.num_nodes; ++j) ASSERT_EQ(g.edge(i, j), g.edge(j, i));
  }
}

// Tolerances: with ~2e4 .. 1e5 pairs per class the standard error of a rate is below 0.004;
// 0.02 is 5+ sigma.
TEST(Sbm, ClusterStatistics) {
  std::vector<SbmGraph> graphs;
  for (int i = 0; i < 40; ++i) graphs.push_back(generate_cluster_graph(3, SbmSplit::Train, i));
  std::vector<int64_t> label_counts(6, 0);
  int64_t nodes = 0;
  for (const SbmGraph& g : graphs) {
    check_structure(g, 6);
    // Features: 0 except exactly one node per cluster r, with value r + 1.
    std::vector<int> marked(6, 0);
    for (int64_t i = 0; i < g.num_nodes; ++i) {
      EXPECT_EQ(g.label[i], g.block[i]);
      if (g.feature[i] != 0) {
        EXPECT_EQ(g.feature[i], g.block[i] + 1);
        marked[g.block[i]]++;
      }
      label_counts[g.label[i]]++;
    }
    EXPECT_EQ(marked, std::vector<int>(6, 1));
    nodes += g.num_nodes;
  }
  const PairCounts intra = pair_rate(graphs, [](int a, int b) { return a == b; });
  const PairCounts inter = pair_rate(graphs, [](int a, int b) { return a != b; });
  EXPECT_NEAR(intra.rate(), kClusterParams.p, 0.02) << intra.pairs << " pairs";
  EXPECT_NEAR(inter.rate(), kClusterParams.q, 0.02) << inter.pairs << " pairs";
  for (int64_t c : label_counts) {  // balanced classes: 1/6 each on average
    EXPECT_NEAR(static_cast<double>(c) / nodes, 1.0 / 6.0, 0.05);
  }
}

TEST(Sbm, PatternStatistics) {
  std::vector<SbmGraph> graphs;
  for (int i = 0; i < 40; ++i) {
    graphs.push_back(generate_pattern_graph(5, SbmSplit::Train, i, i % 4));
  }
  int64_t nodes = 0, positives = 0;
  for (const SbmGraph& g : graphs) {
    check_structure(g, 6);  // 5 communities + the pattern (block 5)
    for (int64_t i = 0; i < g.num_nodes; ++i) {
      EXPECT_EQ(g.label[i], g.block[i] == 5 ? 1 : 0);
      EXPECT_GE(g.feature[i], 0);
      EXPECT_LE(g.feature[i], 2);
      positives += g.label[i];
    }
    nodes += g.num_nodes;
  }
  auto graph_block = [](int b) { return b < 5; };
  const PairCounts intra = pair_rate(
      graphs, [&](int a, int b) { return graph_block(a) && a == b; });
  const PairCounts inter = pair_rate(
      graphs, [&](int a, int b) { return graph_block(a) && graph_block(b) && a != b; });
  const PairCounts pattern = pair_rate(graphs, [](int a, int b) { return a == 5 && b == 5; });
  const PairCounts join = pair_rate(graphs, [](int a, int b) { return (a == 5) != (b == 5); });
  EXPECT_NEAR(intra.rate(), kPatternParams.p, 0.02);
  EXPECT_NEAR(inter.rate(), kPatternParams.q, 0.02);
  EXPECT_NEAR(pattern.rate(), kPatternInternalP, 0.05);  // only 4 instances: fewer pairs
  EXPECT_NEAR(join.rate(), kPatternJoinP, 0.02);
  // Pattern nodes are about 19.5 / 117 = 1/6 of all nodes.
  EXPECT_NEAR(static_cast<double>(positives) / nodes, 1.0 / 6.0, 0.07);

  // Graphs of one instance embed the same pattern: same size and feature multiset.
  auto pattern_features = [](const SbmGraph& g) {
    std::vector<int> counts(3, 0);
    for (int64_t i = 0; i < g.num_nodes; ++i) {
      if (g.label[i]) counts[g.feature[i]]++;
    }
    return counts;
  };
  EXPECT_EQ(pattern_features(graphs[0]), pattern_features(graphs[4]));
  EXPECT_EQ(pattern_features(graphs[1]), pattern_features(graphs[5]));
}

TEST(Sbm, SeededAndIndependentOfCount) {
  const SbmGraph a = generate_cluster_graph(11, SbmSplit::Val, 3);
  const SbmGraph b = generate_cluster_graph(11, SbmSplit::Val, 3);
  const SbmGraph c = generate_cluster_graph(12, SbmSplit::Val, 3);
  const SbmGraph d = generate_cluster_graph(11, SbmSplit::Test, 3);
  EXPECT_EQ(a.adjacency, b.adjacency);
  EXPECT_EQ(a.feature, b.feature);
  EXPECT_NE(a.adjacency, c.adjacency);
  EXPECT_NE(a.adjacency, d.adjacency);

  SbmOptions o;
  o.use_cache = false;
  o.seed = 4;
  o.train = 3;
  o.val = o.test = 1;
  const GraphDataset small = load_cluster(o);
  o.train = 6;
  const GraphDataset larger = load_cluster(o);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(small.train[i].graph.src.to_vector<int32_t>(),
              larger.train[i].graph.src.to_vector<int32_t>());
  }
}

TEST(Sbm, SmallDatasetsFollowConventions) {
  SbmOptions o;
  o.use_cache = false;
  o.train = 5;
  o.val = 2;
  o.test = 3;
  const GraphDataset p = load_pattern(o);
  EXPECT_EQ(p.train.size(), 5u);
  EXPECT_EQ(p.val.size(), 2u);
  EXPECT_EQ(p.test.size(), 3u);
  EXPECT_EQ(p.task, TaskLevel::Node);
  EXPECT_EQ(p.num_classes, 2);
  EXPECT_EQ(p.num_node_types, 3);
  validate_dataset(p);
  const GraphDataset c = load_cluster(o);
  EXPECT_EQ(c.num_classes, 6);
  EXPECT_EQ(c.num_node_types, 7);
  validate_dataset(c);
  // Undirected: every edge has its reverse.
  const Graph& g = c.train[0].graph;
  EXPECT_EQ(g.in_degree().to_vector<int32_t>(), g.out_degree().to_vector<int32_t>());
}

TEST(Sbm, CacheRoundTripAndCorruption) {
  TempDir dir;
  SbmOptions o;
  o.cache_dir = dir.path();
  o.train = 4;
  o.val = o.test = 2;
  std::vector<std::string> lines;
  o.progress = [&](const std::string& line) { lines.push_back(line); };
  const GraphDataset first = load_pattern(o);
  const std::string path = sbm_cache_path("pattern", o);
  ASSERT_TRUE(file_exists(path)) << path;
  ASSERT_FALSE(lines.empty());
  EXPECT_NE(lines.back().find("wrote cache"), std::string::npos) << lines.back();
  lines.clear();
  const GraphDataset second = load_pattern(o);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_NE(lines[0].find("loaded from cache"), std::string::npos) << lines[0];
  ASSERT_EQ(second.test.size(), 2u);
  for (size_t i = 0; i < first.train.size(); ++i) {
    const GraphSample &a = first.train[i], &b = second.train[i];
    EXPECT_EQ(a.graph.src.to_vector<int32_t>(), b.graph.src.to_vector<int32_t>());
    EXPECT_EQ(a.graph.dst.to_vector<int32_t>(), b.graph.dst.to_vector<int32_t>());
    EXPECT_EQ(a.graph.node_features.to_vector<int32_t>(),
              b.graph.node_features.to_vector<int32_t>());
    EXPECT_EQ(a.y.to_vector<int32_t>(), b.y.to_vector<int32_t>());
  }

  // A flipped payload byte, a truncation and garbage are errors naming the file.
  const std::string bytes = read_file_bytes(path);
  std::string flipped = bytes;
  flipped[bytes.size() - 10] ^= 0x40;
  write_file_atomic(path, flipped, "test");
  expect_error_mentions([&] { load_pattern(o); }, {path, "checksum", "delete it"});
  write_file_atomic(path, bytes.substr(0, bytes.size() - 100), "test");
  expect_error_mentions([&] { load_pattern(o); }, {path, "corrupt"});
  write_file_atomic(path, "garbage", "test");
  expect_error_mentions([&] { load_pattern(o); }, {path, "bad magic"});

  // A valid file for other parameters (stale) is regenerated and overwritten silently.
  write_cache_file(path, "sbm-pattern", 1, "some other key", "xyz");
  const GraphDataset third = load_pattern(o);
  EXPECT_EQ(third.train[0].graph.src.to_vector<int32_t>(),
            first.train[0].graph.src.to_vector<int32_t>());
  EXPECT_TRUE(read_cache_file(path, "sbm-pattern", 1, "pattern seed=0 train=4 val=2 test=2"));
}

TEST(DatasetCache, Container) {
  TempDir dir;
  const std::string path = dir.path() + "/x.lapiscache";
  EXPECT_FALSE(read_cache_file(path, "k", 1, "key"));  // missing: not an error
  write_cache_file(path, "k", 1, "key", std::string("a\0b", 3));
  const auto payload = read_cache_file(path, "k", 1, "key");
  ASSERT_TRUE(payload);
  EXPECT_EQ(*payload, std::string("a\0b", 3));
  EXPECT_FALSE(read_cache_file(path, "other", 1, "key"));
  EXPECT_FALSE(read_cache_file(path, "k", 2, "key"));
  EXPECT_FALSE(read_cache_file(path, "k", 1, "other"));
  std::string grown = read_file_bytes(path) + "extra";
  write_file_atomic(path, grown, "test");
  expect_error_mentions([&] { read_cache_file(path, "k", 1, "key"); }, {path, "corrupt"});
}

}  // namespace
}  // namespace graph
}  // namespace lapis
