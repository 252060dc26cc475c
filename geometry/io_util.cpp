#include "geometry/io_util.h"


#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "core/check.h"

namespace lapis {
namespace geometry {
namespace detail {

std::string read_file_bytes(const std::string& path, const std::string& op) {
  std::ifstream in(path, std::ios::binary);
  LAPIS_CHECK(in.good(), op, "cannot open '", path, "' for reading (", std::strerror(errno), ")");
  std::ostringstream ss;
  ss << in.rdbuf();
  LAPIS_CHECK(!in.bad(), op, "error while reading '", path, "'");
  return ss.str();
}

bool file_exists(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return in.good();
}

std::string lower_extension(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  const size_t dot = path.find_last_of('.');
  if (dot == std::string::npos || (slash != std::string::npos && dot < slash)) return "";
  std::string ext = path.substr(dot);
  for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return ext;
}

std::string replace_extension(const std::string& path, const std::string& ext) {
  const size_t slash = path.find_last_of('/');
  const size_t dot = path.find_last_of('.');
  if (dot == std::string::npos || (slash != std::string::npos && dot < slash)) return path + ext;
  return path.substr(0, dot) + ext;
}

TextFile::TextFile(const std::string& path, const std::string& op)
    : data_(read_file_bytes(path, op)), path_(path), op_(op) {}

TextFile::TextFile(std::string bytes, const std::string& path, const std::string& op)
    : data_(std::move(bytes)), path_(path), op_(op) {}

bool TextFile::next_line() {
  if (next_pos_ >= data_.size()) {
    line_begin_ = cur_ = cur_end_ = data_.data() + data_.size();
    return false;
  }
  const char* begin = data_.data() + next_pos_;
  const char* end_all = data_.data() + data_.size();
  const char* nl = static_cast<const char*>(std::memchr(begin, '\n', end_all - begin));
  const char* end = nl ? nl : end_all;
  next_pos_ = static_cast<size_t>((nl ? nl + 1 : end_all) - data_.data());
  if (end > begin && end[-1] == '\r') --end;
  line_begin_ = cur_ = begin;
  cur_end_ = end;
  ++line_no_;
  return true;
}

bool TextFile::next_content_line() {
  while (next_line()) {
    if (at_line_end()) continue;
    if (*cur_ == '#') continue;
    return true;
  }
  return false;
}

bool TextFile::at_line_end() {
  while (cur_ < cur_end_ && (*cur_ == ' ' || *cur_ == '\t' || *cur_ == '\v' || *cur_ == '\f')) {
    ++cur_;
  }
  return cur_ >= cur_end_;
}

int TextFile::remaining_tokens() {
  const char* save = cur_;
  int n = 0;
  while (!at_line_end()) {
    ++n;
    while (cur_ < cur_end_ && !std::isspace(static_cast<unsigned char>(*cur_))) ++cur_;
  }
  cur_ = save;
  return n;
}

std::string TextFile::next_token() {
  if (at_line_end()) fail("unexpected end of line (a value is missing)");
  const char* b = cur_;
  while (cur_ < cur_end_ && !std::isspace(static_cast<unsigned char>(*cur_))) ++cur_;
  return std::string(b, cur_);
}

double TextFile::next_double(const char* what) {
  if (at_line_end()) fail(str_cat("missing ", what, " (the line ends early)"));
  const char* b = cur_;
  const char* e = b;
  while (e < cur_end_ && !std::isspace(static_cast<unsigned char>(*e))) ++e;
  // strtod needs a terminated string; tokens are short, copy to a local buffer.
  char buf[64];
  const size_t len = static_cast<size_t>(e - b);
  if (len >= sizeof(buf)) fail(str_cat("expected ", what, ", found '", std::string(b, e), "'"));
  std::memcpy(buf, b, len);
  buf[len] = '\0';
  char* stop = nullptr;
  const double v = std::strtod(buf, &stop);
  if (len == 0 || stop != buf + len) {
    fail(str_cat("expected ", what, " (a number), found '", std::string(b, e), "'"));
  }
  cur_ = e;
  return v;
}

double TextFile::next_finite(const char* what) {
  const double v = next_double(what);
  if (!std::isfinite(v)) fail(str_cat(what, " is not finite (", v, ")"));
  return v;
}

int64_t TextFile::next_int(const char* what) {
  const double v = next_double(what);
  if (!std::isfinite(v) || v != std::floor(v) || std::fabs(v) > 9.0e15) {
    fail(str_cat("expected ", what, " (an integer), found ", v));
  }
  return static_cast<int64_t>(v);
}

void TextFile::expect_line_end(const char* what) {
  if (!at_line_end()) {
    fail(str_cat("unexpected extra value '", next_token(), "' after the ", what,
                 " values (the header or the counts do not match the data)"));
  }
}

void TextFile::fail(const std::string& message) const {
  LAPIS_FAIL(op_, path_, ":", line_no_, ": ", message);
}

void append_float(std::string& out, float value) {
  char buf[32];
  const int n = std::snprintf(buf, sizeof(buf), "%.9g", static_cast<double>(value));
  out.append(buf, static_cast<size_t>(n));
}

void append_int(std::string& out, int64_t value) {
  char buf[32];
  const int n = std::snprintf(buf, sizeof(buf), "%lld", static_cast<long long>(value));
  out.append(buf, static_cast<size_t>(n));
}

}  // namespace detail
}  // namespace geometry
}  // namespace lapis
