// File helpers shared by the dataset loaders: whole-file reads with transparent gzip, a strict
// line/number reader for the TU text format, and atomic writes.
//
// gzip is decoded by a small built-in inflater (RFC 1950/1951/1952, CRC-32 and size checked), so
// the graph library needs no zlib at link time. It decodes about 30-60 MB/s, plenty for the
// dataset files (the ZINC bundle is ~0.5 MB compressed).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/atomic_file.h"

namespace lapis {
namespace graph {
using lapis::write_file_atomic;  // core/atomic_file.h

// The bytes of `path`. Throws lapis::Error "<op>: cannot open '<path>'" when it cannot be read.
std::string read_file_bytes(const std::string& path, const char* op = "read_file");

// Decompresses a gzip stream (one or more members). `name` is used in error messages.
std::string gunzip(const std::string& compressed, const std::string& name);

// CRC-32 (the gzip / zlib polynomial) of `size` bytes.
uint32_t crc32(const void* data, size_t size);

// true when `path` names an existing regular file.
bool file_exists(const std::string& path);

// Finds `path` or `path.gz`; returns the existing one or "" when neither exists.
std::string find_maybe_gz(const std::string& path);

// Reads `path` (decompressing when it ends in .gz or starts with the gzip magic bytes).
std::string read_maybe_gz(const std::string& path, const char* op);

// Atomic writes: write_file_atomic from core/atomic_file.h.

// Reads a text file one line at a time, splitting each line on whitespace and commas, and
// parsing numbers strictly: every error names the file and the 1-based line. Blank lines are
// allowed only at the end of the file (in the TU format, line i belongs to node/graph/edge i).
class NumberLines {
 public:
  NumberLines(std::string display_name, std::string content, const char* op);

  // Advances to the next line; false at the end (trailing blank lines are skipped). Throws on a
  // blank line followed by more data.
  bool next();
  int64_t line() const { return line_; }
  size_t size() const { return tokens_.size(); }
  // Token i as an integer (accepts "3", "-1", "+2", "2.0"); throws naming file, line and token.
  int64_t integer(size_t i) const;
  // Token i as a finite float; NaN and infinity are errors.
  double real(size_t i) const;
  // Throws unless the line has exactly n tokens.
  void expect_tokens(size_t n, const char* what) const;
  // "<file>, line <n>" for messages.
  std::string where() const;
  const std::string& name() const { return name_; }

 private:
  std::string name_, content_;
  const char* op_;
  size_t pos_ = 0;
  int64_t line_ = 0;
  std::vector<std::string> tokens_;
};

}  // namespace graph
}  // namespace lapis
