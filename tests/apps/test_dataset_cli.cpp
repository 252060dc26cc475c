// `lapis dataset info`: runs the built program (LAPIS_BINARY) on the shipped ZINC bundle, a small
// generated CLUSTER set, a synthetic TU folder, and error cases.
#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "tests/apps/cli_runner.h"

namespace {

using lapis::testing::cli::contains;
using lapis::testing::cli::is_one_line_error;
using lapis::testing::cli::run_lapis;
using lapis::testing::cli::RunResult;
using lapis::testing::cli::TempDir;

TEST(DatasetCli, Help) {
  const RunResult r = run_lapis("dataset info --help");
  EXPECT_EQ(r.exit_code, 0);
  for (const char* part : {"zinc", "tu:PATH", "--count", "--pe", "--data"}) {
    EXPECT_TRUE(contains(r.out, part)) << part << "\n" << r.out;
  }
}

TEST(DatasetCli, Zinc) {
  const RunResult r = run_lapis("dataset info zinc --pe 0");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "train 10000, val 1000, test 1000 graphs")) << r.out;
  EXPECT_TRUE(contains(r.out, "277864")) << r.out;      // nodes, all splits
  EXPECT_TRUE(contains(r.out, "597970")) << r.out;      // directed edges, all splits
  EXPECT_TRUE(contains(r.out, "graph regression")) << r.out;
  EXPECT_TRUE(contains(r.out, "node types:      28")) << r.out;
  EXPECT_TRUE(contains(r.out, "edge types:      4")) << r.out;
  EXPECT_TRUE(contains(r.out, "load time:")) << r.out;
}

TEST(DatasetCli, SmallClusterWithLapPE) {
  TempDir cache;
  const RunResult r = run_lapis("dataset info cluster --count 4 --quiet --pe 3 --threads 1 "
                                "--cache-dir '" + cache.path() + "'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "train 4, val 4, test 4 graphs")) << r.out;
  EXPECT_TRUE(contains(r.out, "node classification, 6 classes")) << r.out;
  EXPECT_TRUE(contains(r.out, "class counts:")) << r.out;
  EXPECT_FALSE(contains(r.out, "generated")) << r.out;  // --quiet
}

TEST(DatasetCli, TuFolder) {
  TempDir dir;
  auto write = [&](const std::string& name, const std::string& text) {
    std::ofstream(dir.path() + "/" + name) << text;
  };
  write("SYN_A.txt", "1, 2\n2, 1\n3, 4\n4, 3\n4, 5\n5, 4\n");
  write("SYN_graph_indicator.txt", "1\n1\n2\n2\n2\n");
  write("SYN_graph_labels.txt", "1\n2\n");
  write("SYN_node_labels.txt", "0\n1\n0\n1\n2\n");
  const RunResult r = run_lapis("dataset info 'tu:" + dir.path() + "' --pe 0");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "dataset: SYN")) << r.out;
  EXPECT_TRUE(contains(r.out, "train 2, val 0, test 0 graphs")) << r.out;
  EXPECT_TRUE(contains(r.out, "graph classification, 2 classes")) << r.out;
  EXPECT_TRUE(contains(r.out, "node types:      3")) << r.out;
}

TEST(DatasetCli, Errors) {
  const RunResult missing = run_lapis("dataset info tu:/nonexistent/folder");
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_TRUE(is_one_line_error(missing)) << missing.err;
  EXPECT_TRUE(contains(missing.err, "/nonexistent/folder")) << missing.err;

  TempDir dir;
  std::ofstream(dir.path() + "/BAD_A.txt") << "1, 2\n2, one\n";
  std::ofstream(dir.path() + "/BAD_graph_indicator.txt") << "1\n1\n";
  std::ofstream(dir.path() + "/BAD_graph_labels.txt") << "1\n";
  const RunResult bad = run_lapis("dataset info 'tu:" + dir.path() + "'");
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_TRUE(is_one_line_error(bad)) << bad.err;
  EXPECT_TRUE(contains(bad.err, "BAD_A.txt, line 2")) << bad.err;

  const RunResult unknown = run_lapis("dataset info mnist");
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_TRUE(is_one_line_error(unknown)) << unknown.err;
  EXPECT_TRUE(contains(unknown.err, "mnist")) << unknown.err;

  const RunResult no_zinc = run_lapis("dataset info zinc --data /nonexistent/data");
  EXPECT_EQ(no_zinc.exit_code, 1);
  EXPECT_TRUE(contains(no_zinc.err, "/nonexistent/data")) << no_zinc.err;
}

}  // namespace
