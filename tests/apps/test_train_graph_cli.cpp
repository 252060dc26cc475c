// `lapis train-graph` and `lapis eval-graph` run as programs (path from CMake: LAPIS_BINARY):
// help, a tiny training run on the shipped ZINC bundle, evaluation of its checkpoint, and
// one-line errors (exit 2 for usage, 1 at run time).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tests/apps/cli_runner.h"

namespace {

namespace fs = std::filesystem;

using lapis::testing::cli::contains;
using lapis::testing::cli::is_one_line_error;
using lapis::testing::cli::run_lapis;
using lapis::testing::cli::RunOptions;
using lapis::testing::cli::RunResult;
using lapis::testing::cli::TempDir;

TEST(TrainGraphCli, HelpListsTheOptions) {
  const RunResult top = run_lapis("--help");
  EXPECT_TRUE(contains(top.out, "train-graph")) << top.out;
  EXPECT_TRUE(contains(top.out, "eval-graph")) << top.out;

  const RunResult train = run_lapis("train-graph --help");
  EXPECT_EQ(train.exit_code, 0) << train.err;
  EXPECT_TRUE(train.err.empty()) << train.err;
  EXPECT_TRUE(contains(train.out, "Usage")) << train.out;
  for (const char* option :
       {"--dataset", "--config", "--overrides", "--device", "--epochs", "--batch-size", "--lr",
        "--layers", "--hidden", "--seed", "--max-train-graphs", "--max-eval-graphs", "--out",
        "--resume", "--cache-dir", "--data", "--quiet"}) {
    EXPECT_TRUE(contains(train.out, option)) << option;
  }

  const RunResult eval = run_lapis("eval-graph --help");
  EXPECT_EQ(eval.exit_code, 0) << eval.err;
  EXPECT_TRUE(eval.err.empty()) << eval.err;
  for (const char* option : {"--checkpoint", "--dataset", "--split", "--device"}) {
    EXPECT_TRUE(contains(eval.out, option)) << option;
  }
}

// A one-epoch run of a one-layer model on 32 ZINC graphs, then eval-graph on its checkpoint.
TEST(TrainGraphCli, TinyRunAndEvaluation) {
  TempDir tmp;
  const std::string out = tmp.path() + "/run";
  const std::string cache = tmp.path() + "/cache";
  const RunResult r = run_lapis("train-graph --dataset zinc --max-train-graphs 32 "
                                "--max-eval-graphs 16 --epochs 1 --layers 1 --hidden 16 --out '" +
                                out + "' --cache-dir '" + cache + "' --quiet");
  ASSERT_EQ(r.exit_code, 0) << r.err << "\n" << r.out;
  EXPECT_TRUE(contains(r.out, "\nfinal: best epoch 1, val MAE ")) << r.out;
  EXPECT_TRUE(contains(r.out, "32 train / 16 val / 16 test")) << r.out;
  for (const char* file : {"log.jsonl", "log.csv", "curves.svg", "checkpoint_best.safetensors",
                           "checkpoint_last.safetensors"}) {
    EXPECT_TRUE(fs::exists(out + "/" + file)) << file;
  }

  // eval-graph takes the cache folder from the environment (it is not in the saved config).
  const RunResult e = run_lapis(
      "eval-graph --checkpoint '" + out + "/checkpoint_best.safetensors' --split val",
      RunOptions().with_env("LAPIS_CACHE_DIR='" + cache + "'"));
  ASSERT_EQ(e.exit_code, 0) << e.err << "\n" << e.out;
  EXPECT_TRUE(contains(e.out, "val: 16 graphs, loss ")) << e.out;
  EXPECT_TRUE(contains(e.out, "MAE")) << e.out;
}

TEST(TrainGraphCli, RunTimeErrorsAreOneLineWithExitCode1) {
  TempDir tmp;
  const std::string cache = " --cache-dir '" + tmp.path() + "' --quiet";
  struct Case {
    std::string args;
    std::vector<std::string> mentions;
  };
  const std::vector<Case> cases = {
      {"train-graph --dataset qm9" + cache, {"dataset", "qm9"}},
      {"train-graph --dataset qm9 --config zinc" + cache, {"unknown dataset", "qm9"}},
      // The zinc config has 8 heads: 30 channels cannot be split among them.
      {"train-graph --dataset zinc --hidden 30" + cache, {"hidden", "30", "heads", "8"}},
      {"train-graph --dataset zinc --config " + tmp.path() + "/missing.json" + cache,
       {"missing.json"}},
      {"train-graph --dataset zinc --resume" + cache, {"resume", "out"}},
  };
  for (const Case& c : cases) {
    const RunResult r = run_lapis(c.args);
    EXPECT_EQ(r.exit_code, 1) << c.args << "\n" << r.err;
    EXPECT_TRUE(is_one_line_error(r)) << c.args;
    for (const std::string& m : c.mentions) EXPECT_TRUE(contains(r.err, m)) << c.args << ": " << m;
  }
  // A bad overrides file names the offending key.
  const std::string overrides = tmp.path() + "/overrides.json";
  std::ofstream(overrides) << R"({"model": {"layers": 2, "widht": 32}})";
  const RunResult r =
      run_lapis("train-graph --dataset zinc --overrides '" + overrides + "'" + cache);
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_TRUE(is_one_line_error(r));
  EXPECT_TRUE(contains(r.err, "model.widht")) << r.err;
}

TEST(TrainGraphCli, UsageErrorsAreOneLineWithExitCode2) {
  struct Case {
    const char* args;
    const char* mentions;
  };
  for (const Case& c : {Case{"train-graph", "--dataset"},
                        Case{"train-graph --dataset zinc --epochs 0", "epochs"},
                        Case{"train-graph --dataset zinc --device gpu", "gpu"},
                        Case{"train-graph --dataset zinc --bogus", "--bogus"},
                        Case{"eval-graph", "--checkpoint"},
                        Case{"eval-graph --checkpoint /nonexistent/x.safetensors", "x.safetensors"},
                        Case{"eval-graph --checkpoint /dev/null --split dev", "dev"}}) {
    const RunResult r = run_lapis(c.args);
    EXPECT_EQ(r.exit_code, 2) << c.args << "\n" << r.err;
    EXPECT_TRUE(is_one_line_error(r)) << c.args;
    EXPECT_TRUE(contains(r.err, c.mentions)) << c.args << ": " << r.err;
  }
}

}  // namespace
