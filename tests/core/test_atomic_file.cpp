#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/atomic_file.h"
#include "core/check.h"
#include "tests/common/test_util.h"

namespace lapis {
namespace {

namespace fs = std::filesystem;

std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

struct ScratchDir {
  ScratchDir() {
    char pattern[] = "/tmp/lapis_atomic_XXXXXX";
    path = mkdtemp(pattern);
  }
  ~ScratchDir() { fs::remove_all(path); }
  size_t entries() const { return static_cast<size_t>(std::distance(fs::directory_iterator(path), fs::directory_iterator())); }
  fs::path path;
};

TEST(AtomicFile, WritesAndReplaces) {
  ScratchDir dir;
  const std::string file = (dir.path / "a.bin").string();
  write_file_atomic(file, std::string("first\0bytes", 11), "test");
  EXPECT_EQ(read_all(file), std::string("first\0bytes", 11));
  write_file_atomic(file, "", "test");
  EXPECT_EQ(read_all(file), "");
  EXPECT_EQ(dir.entries(), 1u);  // no temporary file left behind
}

TEST(AtomicFile, FailedWriteKeepsTheOldFileAndRemovesTheTemporary) {
  ScratchDir dir;
  const std::string file = (dir.path / "keep.txt").string();
  write_file_atomic(file, "old", "test");
  EXPECT_THROW(replace_file_atomic(
                   file,
                   [](const std::string& tmp) {
                     std::ofstream(tmp) << "half written";
                     LAPIS_FAIL("writer", "simulated failure");
                   },
                   "test"),
               Error);
  EXPECT_EQ(read_all(file), "old");
  EXPECT_EQ(dir.entries(), 1u);
}

TEST(AtomicFile, MissingDirectoryNamesOpAndFile) {
  testing::expect_error_mentions(
      [] { write_file_atomic("/nonexistent_lapis_dir/x.bin", "data", "my_op"); },
      {"my_op", "/nonexistent_lapis_dir/x.bin"});
}

}  // namespace
}  // namespace lapis
