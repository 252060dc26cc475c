// Shared helpers for the tests that run the built `lapis` program as a child process: a scratch
// directory, run_lapis() capturing stdout/stderr and the exit code, and small text checks.
//
// Header-only and test-only. The including test must be built with LAPIS_BINARY (the path of the
// `lapis` program) defined; tests/apps/hook.cmake does that for every tests/apps/test_*.cpp.
// (Not named test_*.h so that the tests/apps glob does not treat it as a test.)
#pragma once

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <system_error>
#include "tests/common/temp_dir.h"

#ifndef LAPIS_BINARY
#error "LAPIS_BINARY must be defined by CMake (path to the lapis program)"
#endif

namespace lapis {
namespace testing {
namespace cli {

using ::lapis::testing::TempDir;  // tests name it cli::TempDir

// What one run of the program left behind. The program runs under /bin/sh, so a program killed
// by signal N reads as exit code 128 + N; -1 only if the shell itself did not exit normally.
struct RunResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// The whole content of a file, or "" when it cannot be opened.
inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}


// How to run the program. All empty by default: a fresh scratch directory for the captured
// output, the test's working directory and its environment.
struct RunOptions {
  // Where the "stdout" and "stderr" capture files are written (overwritten on each run and left
  // there); empty: a scratch directory removed when run_lapis returns.
  std::string capture_dir;
  // The directory the program runs in; empty: the test's own working directory.
  std::string working_dir;
  // Extra environment assignments passed through env(1), e.g. "LAPIS_CACHE_DIR='/x' A=1".
  std::string env;

  RunOptions& capture_in(const std::string& dir) {
    capture_dir = dir;
    return *this;
  }
  RunOptions& run_in(const std::string& dir) {
    working_dir = dir;
    return *this;
  }
  RunOptions& with_env(const std::string& assignments) {
    env = assignments;
    return *this;
  }
};

// Runs `lapis args` through the shell (args is shell text: quote paths with '...') and returns
// its exit code and captured stdout and stderr.
inline RunResult run_lapis(const std::string& args, const RunOptions& options = {}) {
  TempDir scratch;  // only used when no capture_dir is given
  const std::string dir = options.capture_dir.empty() ? scratch.path() : options.capture_dir;
  const std::string out = dir + "/stdout";
  const std::string err = dir + "/stderr";
  std::string command;
  if (!options.working_dir.empty()) command += "cd '" + options.working_dir + "' && ";
  if (!options.env.empty()) command += "env " + options.env + " ";
  command += std::string("'") + LAPIS_BINARY + "' " + args + " >'" + out + "' 2>'" + err + "'";
  const int status = std::system(command.c_str());
  RunResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = read_file(out);
  r.err = read_file(err);
  return r;
}

inline bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// Number of '\n' in text.
inline int count_lines(const std::string& text) {
  int lines = 0;
  for (char c : text) lines += c == '\n' ? 1 : 0;
  return lines;
}

// Exactly one line on stderr, starting with "lapis: error: ".
inline ::testing::AssertionResult is_one_line_error(const RunResult& r) {
  if (count_lines(r.err) != 1 || r.err.rfind("lapis: error: ", 0) != 0) {
    return ::testing::AssertionFailure() << "expected one 'lapis: error: ...' line, stderr was:\n"
                                         << r.err;
  }
  return ::testing::AssertionSuccess();
}

}  // namespace cli
}  // namespace testing
}  // namespace lapis
