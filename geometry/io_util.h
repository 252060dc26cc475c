// Internal helpers shared by the readers and writers in geometry/io_*.cpp (not installed API).
//
// TextFile holds a whole file in memory and hands out lines with their 1-based numbers so that
// every parse error can say "<file>:<line>: ..."; write_file_atomic writes a temporary file next
// to the target and renames it, so a reader never sees half a file.
#pragma once

#include <cstdint>
#include <string>

#include "core/atomic_file.h"

namespace lapis {
namespace geometry {
namespace detail {
using lapis::write_file_atomic;  // core/atomic_file.h

// Reads a whole file as bytes; throws lapis::Error("<op>: cannot open '<path>' ...") if it fails.
std::string read_file_bytes(const std::string& path, const std::string& op);

// write_file_atomic: see core/atomic_file.h (used by every writer here).

bool file_exists(const std::string& path);

// Lower-case extension including the dot (".ply"), or "" when there is none.
std::string lower_extension(const std::string& path);

// Path with its extension replaced: replace_extension("a/b.xyz", ".normals") = "a/b.normals".
std::string replace_extension(const std::string& path, const std::string& ext);

class TextFile {
 public:
  // Loads `path`; errors name `op` and the path.
  TextFile(const std::string& path, const std::string& op);
  // Wraps already loaded bytes (used by the PLY reader after the header).
  TextFile(std::string bytes, const std::string& path, const std::string& op);

  // Advances to the next line; false at the end of the file. The line excludes "\r\n".
  bool next_line();
  // Like next_line, but skips lines that are blank or start with '#' (after spaces).
  bool next_content_line();
  int64_t line_number() const { return line_no_; }
  std::string line() const { return std::string(line_begin_, cur_end_); }
  size_t offset_after_line() const { return next_pos_; }
  const std::string& bytes() const { return data_; }
  const std::string& path() const { return path_; }

  // Token access within the current line.
  bool at_line_end();                      // skips spaces/tabs first
  int remaining_tokens();                  // counts without consuming
  std::string next_token();                // throws when the line has no more tokens
  double next_double(const char* what);    // throws on a missing or non-numeric token
  double next_finite(const char* what);    // like next_double, also rejects NaN/inf
  int64_t next_int(const char* what);      // integer token (no fraction)
  void expect_line_end(const char* what);  // throws when tokens are left

  [[noreturn]] void fail(const std::string& message) const;

 private:
  std::string data_;
  std::string path_;
  std::string op_;
  size_t next_pos_ = 0;          // start of the next line in data_
  const char* line_begin_ = nullptr;
  const char* cur_ = nullptr;    // cursor within the current line
  const char* cur_end_ = nullptr;
  int64_t line_no_ = 0;
};

// "%.9g": the shortest printf format that round-trips every float.
void append_float(std::string& out, float value);
void append_int(std::string& out, int64_t value);

}  // namespace detail
}  // namespace geometry
}  // namespace lapis
