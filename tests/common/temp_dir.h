// A private scratch directory for tests.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <string>
#include <system_error>

namespace lapis {
namespace testing {

// A private scratch directory under /tmp, removed with its content when this goes out of scope.
// path() is "" if it could not be created (the test then fails on its first file access).
class TempDir {
 public:
  TempDir() {
    char pattern[] = "/tmp/lapis_test_XXXXXX";
    const char* dir = mkdtemp(pattern);
    if (dir) path_ = dir;
  }
  ~TempDir() {
    std::error_code ec;  // best effort: a failed cleanup must not throw from a destructor
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;  // one owner, one removal
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

}  // namespace testing
}  // namespace lapis
