// Runs the built `lapis` program (path from CMake: LAPIS_BINARY) and checks its exit codes and
// messages: --help everywhere, one-line errors with exit code 2 for usage and 1 at run time.
#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "core/device.h"
#include "tests/apps/cli_runner.h"

namespace {

using lapis::testing::cli::contains;
using lapis::testing::cli::count_lines;
using lapis::testing::cli::is_one_line_error;
using lapis::testing::cli::run_lapis;
using lapis::testing::cli::RunResult;
using lapis::testing::cli::TempDir;

TEST(LapisCli, HelpOnEveryCommandExitsZero) {
  for (const std::string args : {"--help", "info --help", "train-mlp --help", "-h"}) {
    const RunResult r = run_lapis(args);
    EXPECT_EQ(r.exit_code, 0) << args << "\n" << r.err;
    EXPECT_TRUE(contains(r.out, "Usage")) << args << "\n" << r.out;
    EXPECT_TRUE(r.err.empty()) << args << "\n" << r.err;
  }
  const RunResult top = run_lapis("--help");
  EXPECT_TRUE(contains(top.out, "info"));
  EXPECT_TRUE(contains(top.out, "train-mlp"));
  const RunResult train = run_lapis("train-mlp --help");
  for (const char* option : {"--epochs", "--batch-size", "--lr", "--hidden", "--dropout",
                             "--weight-decay", "--device", "--seed", "--data", "--checkpoint",
                             "--quiet"}) {
    EXPECT_TRUE(contains(train.out, option)) << option;
  }
}

TEST(LapisCli, VersionAndInfo) {
  const RunResult version = run_lapis("--version");
  EXPECT_EQ(version.exit_code, 0);
  EXPECT_TRUE(contains(version.out, "lapis ")) << version.out;

  const RunResult info = run_lapis("info");
  EXPECT_EQ(info.exit_code, 0) << info.err;
  EXPECT_TRUE(contains(info.out, "CUDA built:")) << info.out;
  EXPECT_TRUE(contains(info.out, "CUDA available:")) << info.out;
  EXPECT_TRUE(contains(info.out, lapis::built_with_cuda() ? "CUDA built:     yes"
                                                          : "CUDA built:     no"))
      << info.out;
  EXPECT_TRUE(contains(info.out, "digits.csv (264712 bytes)")) << info.out;
}

TEST(LapisCli, UsageErrorsAreOneLineWithExitCode2) {
  struct Case {
    const char* args;
    const char* mentions;
  };
  for (const Case& c : {Case{"train-mlp --bogus", "--bogus"}, Case{"", "subcommand"},
                        Case{"no-such-command", "no-such-command"},
                        Case{"train-mlp --epochs abc", "abc"},
                        Case{"train-mlp --epochs 0", "epochs"},
                        Case{"train-mlp --dropout 1.5", "dropout"},
                        Case{"train-mlp --device gpu", "gpu"}}) {
    const RunResult r = run_lapis(c.args);
    EXPECT_EQ(r.exit_code, 2) << c.args << "\n" << r.err;
    EXPECT_TRUE(is_one_line_error(r)) << c.args;
    EXPECT_TRUE(contains(r.err, c.mentions)) << c.args << ": " << r.err;
    EXPECT_TRUE(r.out.empty()) << c.args << ": " << r.out;
  }
}

TEST(LapisCli, CudaDeviceWithoutCudaIsAClearError) {
  if (lapis::cuda_available()) GTEST_SKIP() << "CUDA is available here; the error cannot occur";
  const RunResult r = run_lapis("train-mlp --device cuda --epochs 1");
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_TRUE(is_one_line_error(r));
  EXPECT_TRUE(contains(r.err, "--device cuda")) << r.err;
  EXPECT_TRUE(contains(r.err, lapis::built_with_cuda() ? "no CUDA device" : "built without CUDA"))
      << r.err;
}

TEST(LapisCli, MissingOrMalformedDataIsARuntimeError) {
  const RunResult missing = run_lapis("train-mlp --epochs 1 --data /nonexistent/digits.csv");
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_TRUE(is_one_line_error(missing));
  EXPECT_TRUE(contains(missing.err, "cannot open '/nonexistent/digits.csv'")) << missing.err;

  TempDir dir;
  const std::string path = dir.path() + "/bad.csv";
  {
    std::ofstream f(path);
    for (int row = 0; row < 2; ++row) {
      const int n = row == 0 ? 64 : 63;  // the second line misses a pixel
      for (int j = 0; j < n; ++j) f << "1,";
      f << "3\n";
    }
  }
  const RunResult bad = run_lapis("train-mlp --epochs 1 --data '" + path + "'");
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_TRUE(is_one_line_error(bad));
  EXPECT_TRUE(contains(bad.err, "line 2")) << bad.err;
}

TEST(LapisCli, TrainsQuietlyAndSavesACheckpoint) {
  TempDir dir;
  const std::string ckpt = dir.path() + "/mlp.safetensors";
  const RunResult r = run_lapis("train-mlp --epochs 2 --quiet --checkpoint '" + ckpt + "'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(count_lines(r.out), 1) << r.out;  // only the final line
  EXPECT_TRUE(contains(r.out, "final: train_loss")) << r.out;
  std::ifstream f(ckpt, std::ios::binary);
  EXPECT_TRUE(f.good()) << "no checkpoint at " << ckpt;

  const RunResult verbose = run_lapis("train-mlp --epochs 2");
  ASSERT_EQ(verbose.exit_code, 0) << verbose.err;
  // 2 header lines, column names, 2 epoch lines and the final line.
  EXPECT_EQ(count_lines(verbose.out), 6) << verbose.out;
  EXPECT_TRUE(contains(verbose.out, "test_acc")) << verbose.out;
}

}  // namespace
