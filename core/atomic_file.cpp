#include "core/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "core/check.h"

namespace lapis {

namespace {

std::string errno_text(int err) { return std::strerror(err); }

// Unique per process and call, so concurrent writers (threads or processes) never share a
// temporary file.
std::string temporary_path(const std::string& path) {
  static std::atomic<uint64_t> counter{0};
  return str_cat(path, ".tmp.", static_cast<long>(::getpid()), ".", counter.fetch_add(1));
}

// fsync of a finished file (by path) and, best effort, of its directory after the rename: some
// file systems refuse fsync on directories.
void sync_file(const std::string& tmp, const std::string& op) {
  const int fd = ::open(tmp.c_str(), O_RDONLY);
  LAPIS_CHECK(fd >= 0, op, "cannot reopen '", tmp, "' to flush it: ", errno_text(errno));
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  LAPIS_CHECK(rc == 0, op, "fsync of '", tmp, "' failed: ", errno_text(err));
}

void sync_directory_of(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  const std::string dir =
      slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd >= 0) {
    (void)::fsync(fd);
    ::close(fd);
  }
}

}  // namespace

void replace_file_atomic(const std::string& path,
                         const std::function<void(const std::string& tmp_path)>& write,
                         const std::string& op) {
  const std::string tmp = temporary_path(path);
  try {
    write(tmp);
    sync_file(tmp, op);
    if (std::rename(tmp.c_str(), path.c_str()) != 0) {
      LAPIS_FAIL(op, "cannot rename '", tmp, "' to '", path, "': ", errno_text(errno));
    }
  } catch (...) {
    std::remove(tmp.c_str());
    throw;
  }
  sync_directory_of(path);
}

void write_file_atomic(const std::string& path, const std::string& bytes, const std::string& op) {
  replace_file_atomic(
      path,
      [&](const std::string& tmp) {
        std::FILE* f = std::fopen(tmp.c_str(), "wb");
        LAPIS_CHECK(f != nullptr, op, "cannot create '", tmp, "' (for '", path, "'): ",
                    errno_text(errno));
        const size_t written = bytes.empty() ? 0 : std::fwrite(bytes.data(), 1, bytes.size(), f);
        const int write_err = errno;
        const bool closed = std::fclose(f) == 0;
        LAPIS_CHECK(written == bytes.size() && closed, op, "cannot write '", tmp, "' (",
                    written, " of ", bytes.size(), " bytes; disk full?): ",
                    errno_text(write_err));
      },
      op);
}

}  // namespace lapis
