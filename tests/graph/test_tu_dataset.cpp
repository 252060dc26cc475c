// TU-format loader: small synthetic folders written here (plus malformed variants), the gzip
// reader, and a dev-only check of the real MUTAG/PROTEINS/NCI1/ENZYMES counts (skipped unless
// LAPIS_SHARED_DATA points at shared/data).
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "core/check.h"
#include "graph/dataset.h"
#include "graph/dataset_io.h"
#include "graph/tu_dataset.h"
#include "tests/common/test_util.h"
#include "tests/common/temp_dir.h"

namespace lapis {
namespace graph {
namespace {

using lapis::testing::TempDir;

using lapis::testing::expect_error_mentions;


void write(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary);
  f << text;
}

// TOY: graph 1 = triangle on nodes 1..3, graph 2 = edge 4-5, graph 3 = isolated node 6. Mixed
// separators, CRLF endings and a trailing blank line on purpose.
std::map<std::string, std::string> toy_files() {
  return {
      {"A", "1, 2\n2,1\r\n2 3\n3\t2\n1 , 3\n3, 1\n4, 5\n5, 4\n\n"},
      {"graph_indicator", "1\n1\n1\n2\n2\n3\n"},
      {"graph_labels", "-1\n1\n-1\n"},
      {"node_labels", "7\n5\n7\n9\n5\n7\n"},
      {"edge_labels", "2\n2\n1\n1\n3\n3\n1\n1\n"},
      {"node_attributes", "0.5, 1\n1.5, 2\n2.5, 3\n3.5, 4\n4.5, 5\n5.5, 6\n"},
  };
}

void write_dataset(const std::string& dir, const std::string& prefix,
                   const std::map<std::string, std::string>& files) {
  for (const auto& [suffix, text] : files) write(dir + "/" + prefix + "_" + suffix + ".txt", text);
}

std::vector<int32_t> ints(const Tensor& t) { return t.to_vector<int32_t>(); }

TEST(TuDataset, LoadsSyntheticFolder) {
  TempDir dir;
  const std::string folder = dir.path() + "/TOY";
  ASSERT_EQ(::mkdir(folder.c_str(), 0755), 0);
  write_dataset(folder, "TOY", toy_files());
  TuInfo info;
  const GraphDataset d = load_tu_dataset(folder, {}, &info);
  EXPECT_EQ(d.name, "TOY");
  EXPECT_EQ(info.num_graphs, 3);
  EXPECT_EQ(info.num_nodes, 6);
  EXPECT_EQ(info.num_edge_lines, 8);
  ASSERT_EQ(d.train.size(), 3u);
  EXPECT_TRUE(d.val.empty() && d.test.empty());
  EXPECT_EQ(d.num_classes, 2);
  EXPECT_EQ(d.num_node_types, 3);
  EXPECT_EQ(d.num_edge_types, 3);
  EXPECT_EQ(d.node_attr_dim, 2);
  EXPECT_EQ(info.graph_label_values, (std::vector<int64_t>{-1, 1}));
  EXPECT_EQ(info.node_label_values, (std::vector<int64_t>{5, 7, 9}));
  EXPECT_EQ(info.edge_label_values, (std::vector<int64_t>{1, 2, 3}));
  validate_dataset(d);

  const GraphSample& g0 = d.train[0];
  EXPECT_EQ(g0.graph.num_nodes, 3);
  EXPECT_EQ(g0.graph.num_edges, 6);
  EXPECT_EQ(ints(g0.y), (std::vector<int32_t>{0}));
  EXPECT_EQ(ints(g0.graph.node_features), (std::vector<int32_t>{1, 0, 1}));  // 7 5 7
  // CSR by destination: (dst, src) sorted: 1->0, 2->0, 0->1, 2->1, 0->2, 1->2.
  EXPECT_EQ(ints(g0.graph.src), (std::vector<int32_t>{1, 2, 0, 2, 0, 1}));
  EXPECT_EQ(ints(g0.graph.dst), (std::vector<int32_t>{0, 0, 1, 1, 2, 2}));
  // Edge labels follow their edges: 2->1 and 1->2 had label 2 (index 1); 1<->3 label 3 (2);
  // 2<->3 label 1 (0).
  EXPECT_EQ(ints(g0.graph.edge_features), (std::vector<int32_t>{1, 2, 1, 0, 2, 0}));
  ASSERT_EQ(g0.node_extras.size(), 1u);
  EXPECT_EQ(g0.node_extras[0].to_vector<float>(),
            (std::vector<float>{0.5f, 1, 1.5f, 2, 2.5f, 3}));

  const GraphSample& g1 = d.train[1];
  EXPECT_EQ(g1.graph.num_nodes, 2);
  EXPECT_EQ(g1.graph.num_edges, 2);
  EXPECT_EQ(ints(g1.y), (std::vector<int32_t>{1}));
  EXPECT_EQ(g1.node_extras[0].to_vector<float>(), (std::vector<float>{3.5f, 4, 4.5f, 5}));

  const GraphSample& g2 = d.train[2];  // isolated node, no edges
  EXPECT_EQ(g2.graph.num_nodes, 1);
  EXPECT_EQ(g2.graph.num_edges, 0);

  const SplitStats s = split_stats(d.train);
  EXPECT_EQ(s.nodes, 6);
  EXPECT_EQ(s.edges, 8);
  EXPECT_EQ(s.min_nodes, 1);
  EXPECT_EQ(s.max_edges, 6);
  EXPECT_EQ(class_counts(d.train, 2), (std::vector<int64_t>{2, 1}));
}

TEST(TuDataset, MinimalFolderAndPrefixDetection) {
  // Only the required files, in a folder whose name differs from the prefix.
  TempDir dir;
  write(dir.path() + "/OTHER_A.txt", "1,2\n2,1\n");
  write(dir.path() + "/OTHER_graph_indicator.txt", "1\n1\n2\n");
  write(dir.path() + "/OTHER_graph_labels.txt", "3\n4\n");
  const GraphDataset d = load_tu_dataset(dir.path());
  EXPECT_EQ(d.name, "OTHER");
  ASSERT_EQ(d.train.size(), 2u);
  EXPECT_EQ(d.num_node_types, 0);
  EXPECT_EQ(d.num_edge_types, 0);
  EXPECT_FALSE(d.train[0].graph.node_features.defined());
  EXPECT_FALSE(d.train[0].graph.edge_features.defined());
  EXPECT_EQ(d.train[1].graph.num_nodes, 1);
  validate_dataset(d);
}

TEST(TuDataset, RegressionFromGraphAttributesAndEdgeAttributes) {
  TempDir dir;
  write(dir.path() + "/R_A.txt", "1,2\n2,1\n");
  write(dir.path() + "/R_graph_indicator.txt", "1\n1\n");
  write(dir.path() + "/R_graph_attributes.txt", "0.25, -1.5\n");
  write(dir.path() + "/R_edge_attributes.txt", "1.0\n2.0\n");
  write(dir.path() + "/R_edge_labels.txt", "4\n6\n");
  const GraphDataset d = load_tu_dataset(dir.path(), TuOptions{"R"});
  EXPECT_EQ(d.num_classes, 0);
  EXPECT_EQ(d.num_targets, 2);
  EXPECT_EQ(d.train[0].y.to_vector<float>(), (std::vector<float>{0.25f, -1.5f}));
  // Both edge labels and attributes: f32 [E, 1 + D], column 0 = label index.
  const Tensor& ef = d.train[0].graph.edge_features;
  EXPECT_EQ(ef.dtype(), Dtype::F32);
  EXPECT_EQ(ef.shape(), (Shape{2, 2}));
  // CSR order: edge 2->1 (line 2) first.
  EXPECT_EQ(ef.to_vector<float>(), (std::vector<float>{1, 2, 0, 1}));
  validate_dataset(d);
}

TEST(TuDataset, SeededSplit) {
  TempDir dir;
  std::string ind, labels;
  for (int g = 1; g <= 20; ++g) {
    ind += std::to_string(g) + "\n";
    labels += std::to_string(g % 3) + "\n";
  }
  write(dir.path() + "/S_A.txt", "");
  write(dir.path() + "/S_graph_indicator.txt", ind);
  write(dir.path() + "/S_graph_labels.txt", labels);
  TuOptions o;
  o.val_fraction = 0.2;
  o.test_fraction = 0.1;
  o.seed = 7;
  const GraphDataset a = load_tu_dataset(dir.path(), o), b = load_tu_dataset(dir.path(), o);
  EXPECT_EQ(a.train.size(), 14u);
  EXPECT_EQ(a.val.size(), 4u);
  EXPECT_EQ(a.test.size(), 2u);
  for (size_t i = 0; i < a.val.size(); ++i) {
    EXPECT_EQ(ints(a.val[i].y), ints(b.val[i].y));
  }
  o.val_fraction = 0.7;
  o.test_fraction = 0.4;
  expect_error_mentions([&] { load_tu_dataset(dir.path(), o); }, {"fractions"});
}

TEST(TuDataset, ReadsGzippedFiles) {
  // python3: gzip.compress(b'1, 2\n2, 1\n2, 3\n3, 2\n1, 3\n3, 1\n4, 5\n5, 4\n', 9, mtime=0)
  const std::string hex =
      "1f8b080000000000020333d45130e232d251300411c65cc620ae219465c865a2a360ca65aaa360c20500ecc476"
      "b828000000";
  std::string gz;
  for (size_t i = 0; i < hex.size(); i += 2) {
    gz.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  }
  EXPECT_EQ(gunzip(gz, "test"), "1, 2\n2, 1\n2, 3\n3, 2\n1, 3\n3, 1\n4, 5\n5, 4\n");
  TempDir dir;
  auto files = toy_files();
  files.erase("A");
  write_dataset(dir.path(), "TOY", files);
  write(dir.path() + "/TOY_A.txt.gz", gz);
  const GraphDataset d = load_tu_dataset(dir.path(), TuOptions{"TOY"});
  EXPECT_EQ(split_stats(d.train).edges, 8);

  std::string bad = gz;
  bad[bad.size() - 9] ^= 0x55;  // inside the trailer's CRC
  expect_error_mentions([&] { gunzip(bad, "x.gz"); }, {"x.gz", "corrupt"});
  expect_error_mentions([&] { gunzip(gz.substr(0, 20), "y.gz"); }, {"y.gz", "corrupt"});
}

struct BadCase {
  const char* file;      // suffix to replace (or remove, when text is null)
  const char* text;
  std::vector<std::string> mentions;
};

TEST(TuDataset, MalformedFilesNameFileAndLine) {
  const std::vector<BadCase> cases = {
      {"A", nullptr, {"TOY_A.txt", "missing"}},
      {"graph_indicator", nullptr, {"TOY_graph_indicator.txt", "missing"}},
      {"graph_labels", nullptr, {"TOY_graph_labels.txt", "missing"}},
      {"A", "1, 2\n2, x\n", {"TOY_A.txt, line 2", "'x'", "not an integer"}},
      {"A", "1, 2\n2, 1\n2, 9\n", {"TOY_A.txt, line 3", "node id 9", "out of range"}},
      {"A", "1, 2\n0, 1\n", {"TOY_A.txt, line 2", "node id 0"}},
      {"A", "1, 2, 3\n", {"TOY_A.txt, line 1", "expected 2 values", "found 3"}},
      {"A", "1, 4\n", {"TOY_A.txt, line 1", "joins graph 1 and graph 2"}},
      {"A", "1, 2\n\n2, 1\n", {"TOY_A.txt, line 2", "blank line"}},
      {"graph_indicator", "1\n1\n1\n2\n2\n", {"TOY_graph_labels.txt", "3 lines", "is 2"}},
      {"graph_indicator", "1\n1\n1\n2\n2\n4\n", {"TOY_graph_indicator.txt", "graph 4"}},
      {"graph_indicator", "1\n1\n1\n2\n-2\n3\n", {"TOY_graph_indicator.txt, line 5", "-2"}},
      {"graph_labels", "-1\n1\n-1\n1\n", {"TOY_graph_labels.txt", "4 lines", "largest graph id"}},
      {"graph_labels", "-1\n1.5\n-1\n", {"TOY_graph_labels.txt, line 2", "'1.5'"}},
      {"node_labels", "7\n5\n7\n9\n5\n", {"TOY_node_labels.txt", "5 lines", "6 nodes"}},
      {"edge_labels", "2\n2\n1\n", {"TOY_edge_labels.txt", "3 lines", "8 edges"}},
      {"node_attributes", "0.5, 1\n1.5\n2.5, 3\n3.5, 4\n4.5, 5\n5.5, 6\n",
       {"TOY_node_attributes.txt, line 2", "expected 2 values"}},
      {"node_attributes", "0.5, 1\n1.5, nan\n2.5, 3\n3.5, 4\n4.5, 5\n5.5, 6\n",
       {"TOY_node_attributes.txt, line 2", "not finite"}},
  };
  for (const BadCase& c : cases) {
    TempDir dir;
    auto files = toy_files();
    if (c.text) {
      files[c.file] = c.text;
    } else {
      files.erase(c.file);
    }
    write_dataset(dir.path(), "TOY", files);
    SCOPED_TRACE(std::string(c.file) + ": " + (c.text ? c.text : "(removed)"));
    expect_error_mentions([&] { load_tu_dataset(dir.path(), TuOptions{"TOY"}); }, c.mentions);
  }
  expect_error_mentions([] { load_tu_dataset("/nonexistent/TU_FOLDER"); },
                        {"/nonexistent/TU_FOLDER", "not a folder"});
  TempDir empty;
  expect_error_mentions([&] { load_tu_dataset(empty.path()); }, {"_A.txt", "missing"});
}

// Dev-only: the real datasets in ../shared/data/tu against the TUDataset statistics (graphs,
// nodes, directed edge lines in DS_A.txt, classes). CI has no shared/ folder, so this skips.
TEST(TuDatasetShared, PublishedCounts) {
  const char* shared = std::getenv("LAPIS_SHARED_DATA");
  if (!shared || !*shared) {
    GTEST_SKIP() << "LAPIS_SHARED_DATA is not set (path of shared/data); dev-only check";
  }
  struct Expected {
    const char* name;
    int64_t graphs, nodes, edges, classes;
  };
  for (const Expected& e : {Expected{"MUTAG", 188, 3371, 7442, 2},
                            Expected{"PROTEINS", 1113, 43471, 162088, 2},
                            Expected{"NCI1", 4110, 122747, 265506, 2},
                            Expected{"ENZYMES", 600, 19580, 74564, 6}}) {
    SCOPED_TRACE(e.name);
    TuInfo info;
    const GraphDataset d =
        load_tu_dataset(std::string(shared) + "/tu/" + e.name, {}, &info);
    const SplitStats s = split_stats(d.train);
    EXPECT_EQ(s.graphs, e.graphs);
    EXPECT_EQ(s.nodes, e.nodes);
    EXPECT_EQ(s.edges, e.edges);
    EXPECT_EQ(info.num_edge_lines, e.edges);
    EXPECT_EQ(d.num_classes, e.classes);
    validate_dataset(d);
  }
}

}  // namespace
}  // namespace graph
}  // namespace lapis
