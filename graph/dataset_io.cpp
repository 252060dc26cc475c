#include "graph/dataset_io.h"

#include <sys/stat.h>

#include <array>
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
namespace graph {

std::string read_file_bytes(const std::string& path, const char* op) {
  std::ifstream in(path, std::ios::binary);
  LAPIS_CHECK(in.good(), op, "cannot open '", path, "' (", std::strerror(errno), ")");
  std::ostringstream ss;
  ss << in.rdbuf();
  LAPIS_CHECK(!in.bad(), op, "error while reading '", path, "'");
  return ss.str();
}

bool file_exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::string find_maybe_gz(const std::string& path) {
  if (file_exists(path)) return path;
  if (file_exists(path + ".gz")) return path + ".gz";
  return "";
}

std::string read_maybe_gz(const std::string& path, const char* op) {
  std::string bytes = read_file_bytes(path, op);
  if (bytes.size() >= 2 && static_cast<uint8_t>(bytes[0]) == 0x1f &&
      static_cast<uint8_t>(bytes[1]) == 0x8b) {
    return gunzip(bytes, path);
  }
  return bytes;
}

// ---- inflate (after Mark Adler's puff.c: canonical Huffman decoding one bit at a time) ----
namespace {

constexpr int kMaxBits = 15;

struct Huffman {
  std::array<int16_t, kMaxBits + 1> count{};
  std::vector<int16_t> symbol;
};

class Inflater {
 public:
  Inflater(const uint8_t* in, size_t size, const std::string& name)
      : in_(in), size_(size), name_(name) {}

  [[noreturn]] void fail(const std::string& what) const {
    LAPIS_FAIL("gunzip", "'", name_, "' is corrupt: ", what, " (at byte ", pos_, ")");
  }

  int bits(int need) {
    uint32_t val = bitbuf_;
    while (bitcnt_ < need) {
      if (pos_ >= size_) fail("unexpected end of data");
      val |= static_cast<uint32_t>(in_[pos_++]) << bitcnt_;
      bitcnt_ += 8;
    }
    bitbuf_ = val >> need;
    bitcnt_ -= need;
    return static_cast<int>(val & ((1u << need) - 1u));
  }

  // Returns a non-negative "left" count: 0 complete, > 0 incomplete; < 0 over-subscribed.
  static int construct(Huffman& h, const int16_t* length, int n) {
    h.count.fill(0);
    h.symbol.assign(n, 0);
    for (int s = 0; s < n; ++s) h.count[length[s]]++;
    if (h.count[0] == n) return 0;
    int left = 1;
    for (int len = 1; len <= kMaxBits; ++len) {
      left <<= 1;
      left -= h.count[len];
      if (left < 0) return left;
    }
    std::array<int16_t, kMaxBits + 1> offs{};
    for (int len = 1; len < kMaxBits; ++len) offs[len + 1] = offs[len] + h.count[len];
    for (int s = 0; s < n; ++s) {
      if (length[s] != 0) h.symbol[offs[length[s]]++] = static_cast<int16_t>(s);
    }
    return left;
  }

  int decode(const Huffman& h) {
    int code = 0, first = 0, index = 0;
    for (int len = 1; len <= kMaxBits; ++len) {
      code |= bits(1);
      const int count = h.count[len];
      if (code - count < first) return h.symbol[index + (code - first)];
      index += count;
      first += count;
      first <<= 1;
      code <<= 1;
    }
    fail("invalid Huffman code");
  }

  void stored(std::string& out) {
    bitbuf_ = 0;
    bitcnt_ = 0;
    if (pos_ + 4 > size_) fail("truncated stored block");
    const unsigned len = in_[pos_] | (in_[pos_ + 1] << 8);
    const unsigned nlen = in_[pos_ + 2] | (in_[pos_ + 3] << 8);
    pos_ += 4;
    if (len != (~nlen & 0xffffu)) fail("stored block length does not match its complement");
    if (pos_ + len > size_) fail("truncated stored block");
    out.append(reinterpret_cast<const char*>(in_ + pos_), len);
    pos_ += len;
  }

  void codes(std::string& out, const Huffman& lencode, const Huffman& distcode) {
    static const int16_t lbase[29] = {3,  4,  5,  6,  7,  8,  9,  10,  11,  13,  15,  17,  19,  23, 27,
                                      31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
    static const int16_t lext[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2,
                                     2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
    static const int16_t dbase[30] = {1,    2,    3,    4,    5,    7,     9,     13,    17,  25,
                                      33,   49,   65,   97,   129,  193,   257,   385,   513, 769,
                                      1025, 1537, 2049, 3073, 4097, 6145,  8193,  12289, 16385,
                                      24577};
    static const int16_t dext[30] = {0, 0, 0, 0, 1, 1, 2, 2,  3,  3,  4,  4,  5,  5,  6,
                                     6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};
    for (;;) {
      const int symbol = decode(lencode);
      if (symbol < 256) {
        out.push_back(static_cast<char>(symbol));
        continue;
      }
      if (symbol == 256) return;
      const int ls = symbol - 257;
      if (ls >= 29) fail("invalid length symbol");
      const size_t len = lbase[ls] + bits(lext[ls]);
      const int ds = decode(distcode);
      if (ds >= 30) fail("invalid distance symbol");
      const size_t dist = dbase[ds] + bits(dext[ds]);
      if (dist > out.size()) fail("distance too far back");
      const size_t from = out.size() - dist;
      for (size_t k = 0; k < len; ++k) out.push_back(out[from + k]);  // may overlap: byte-wise
    }
  }

  void fixed(std::string& out) {
    static Huffman lencode, distcode;
    static bool built = [] {
      int16_t lengths[288];
      int s = 0;
      for (; s < 144; ++s) lengths[s] = 8;
      for (; s < 256; ++s) lengths[s] = 9;
      for (; s < 280; ++s) lengths[s] = 7;
      for (; s < 288; ++s) lengths[s] = 8;
      construct(lencode, lengths, 288);
      for (s = 0; s < 30; ++s) lengths[s] = 5;
      construct(distcode, lengths, 30);
      return true;
    }();
    (void)built;
    codes(out, lencode, distcode);
  }

  void dynamic(std::string& out) {
    static const int16_t order[19] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15};
    const int nlen = bits(5) + 257, ndist = bits(5) + 1, ncode = bits(4) + 4;
    if (nlen > 286 || ndist > 30) fail("bad counts in a dynamic block header");
    int16_t lengths[286 + 30] = {};
    for (int i = 0; i < ncode; ++i) lengths[order[i]] = static_cast<int16_t>(bits(3));
    Huffman lencode, distcode;
    if (construct(lencode, lengths, 19) != 0) fail("incomplete code-length code");
    int index = 0;
    while (index < nlen + ndist) {
      int symbol = decode(lencode);
      if (symbol < 16) {
        lengths[index++] = static_cast<int16_t>(symbol);
        continue;
      }
      int16_t len = 0;
      if (symbol == 16) {
        if (index == 0) fail("repeat with no previous length");
        len = lengths[index - 1];
        symbol = 3 + bits(2);
      } else if (symbol == 17) {
        symbol = 3 + bits(3);
      } else {
        symbol = 11 + bits(7);
      }
      if (index + symbol > nlen + ndist) fail("too many code lengths");
      while (symbol--) lengths[index++] = len;
    }
    if (lengths[256] == 0) fail("no end-of-block code");
    int err = construct(lencode, lengths, nlen);
    if (err < 0 || (err > 0 && nlen - lencode.count[0] != 1)) fail("bad literal/length code");
    err = construct(distcode, lengths + nlen, ndist);
    if (err < 0 || (err > 0 && ndist - distcode.count[0] != 1)) fail("bad distance code");
    codes(out, lencode, distcode);
  }

  // Inflates one raw deflate stream starting at the current byte; leaves pos_ after it.
  void inflate(std::string& out) {
    bitbuf_ = 0;
    bitcnt_ = 0;
    int last = 0;
    do {
      last = bits(1);
      const int type = bits(2);
      if (type == 0) {
        stored(out);
      } else if (type == 1) {
        fixed(out);
      } else if (type == 2) {
        dynamic(out);
      } else {
        fail("invalid block type 3");
      }
    } while (!last);
    bitbuf_ = 0;
    bitcnt_ = 0;  // the rest of the last byte is padding
  }

  size_t pos_ = 0;
  const uint8_t* in_;
  size_t size_;

 private:
  const std::string& name_;
  uint32_t bitbuf_ = 0;
  int bitcnt_ = 0;
};

}  // namespace

uint32_t crc32(const void* data, size_t size) {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t n = 0; n < 256; ++n) {
      uint32_t c = n;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[n] = c;
    }
    return t;
  }();
  const uint8_t* p = static_cast<const uint8_t*>(data);
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < size; ++i) c = table[(c ^ p[i]) & 0xff] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

std::string gunzip(const std::string& compressed, const std::string& name) {
  const uint8_t* in = reinterpret_cast<const uint8_t*>(compressed.data());
  const size_t size = compressed.size();
  Inflater z(in, size, name);
  std::string out;
  auto u32_at = [&](size_t p) {
    return static_cast<uint32_t>(in[p]) | (static_cast<uint32_t>(in[p + 1]) << 8) |
           (static_cast<uint32_t>(in[p + 2]) << 16) | (static_cast<uint32_t>(in[p + 3]) << 24);
  };
  size_t pos = 0;
  do {
    if (pos + 10 > size || in[pos] != 0x1f || in[pos + 1] != 0x8b) {
      z.pos_ = pos;
      z.fail("not a gzip stream (bad magic bytes)");
    }
    if (in[pos + 2] != 8) {
      z.pos_ = pos;
      z.fail("unknown compression method");
    }
    const uint8_t flags = in[pos + 3];
    pos += 10;
    if (flags & 4) {  // FEXTRA
      if (pos + 2 > size) z.fail("truncated header");
      pos += 2 + (in[pos] | (in[pos + 1] << 8));
    }
    for (int bit : {8, 16}) {  // FNAME, FCOMMENT: zero-terminated
      if (flags & bit) {
        while (pos < size && in[pos] != 0) ++pos;
        ++pos;
      }
    }
    if (flags & 2) pos += 2;  // FHCRC
    if (pos > size) z.fail("truncated header");
    const size_t begin = out.size();
    z.pos_ = pos;
    z.inflate(out);
    pos = z.pos_;
    if (pos + 8 > size) z.fail("missing CRC-32 and size trailer");
    if (u32_at(pos) != crc32(out.data() + begin, out.size() - begin)) z.fail("CRC-32 mismatch");
    if (u32_at(pos + 4) != static_cast<uint32_t>(out.size() - begin)) z.fail("size mismatch");
    pos += 8;
    while (pos < size && in[pos] == 0) ++pos;  // some tools pad with zeros
  } while (pos < size);
  return out;
}

// ---- NumberLines ----

NumberLines::NumberLines(std::string display_name, std::string content, const char* op)
    : name_(std::move(display_name)), content_(std::move(content)), op_(op) {}

bool NumberLines::next() {
  tokens_.clear();
  const size_t n = content_.size();
  while (pos_ < n) {
    size_t end = content_.find('\n', pos_);
    if (end == std::string::npos) end = n;
    ++line_;
    // Split on whitespace and commas.
    size_t i = pos_;
    while (i < end) {
      while (i < end && (std::isspace(static_cast<unsigned char>(content_[i])) || content_[i] == ','))
        ++i;
      const size_t start = i;
      while (i < end && !std::isspace(static_cast<unsigned char>(content_[i])) && content_[i] != ',')
        ++i;
      if (i > start) tokens_.emplace_back(content_, start, i - start);
    }
    pos_ = end + 1;
    if (!tokens_.empty()) return true;
    // A blank line: fine at the end of the file, an error before more data.
    const int64_t blank_line = line_;
    size_t k = pos_;
    while (k < n && (std::isspace(static_cast<unsigned char>(content_[k])) || content_[k] == ','))
      ++k;
    if (k >= n) {
      pos_ = n;
      return false;
    }
    LAPIS_FAIL(op_, name_, ", line ", blank_line,
               ": blank line before more data (line i must describe item i)");
  }
  return false;
}

std::string NumberLines::where() const { return str_cat(name_, ", line ", line_); }

void NumberLines::expect_tokens(size_t n, const char* what) const {
  LAPIS_CHECK(tokens_.size() == n, op_, where(), ": expected ", n, " value", n == 1 ? "" : "s",
              " (", what, "), found ", tokens_.size());
}

int64_t NumberLines::integer(size_t i) const {
  LAPIS_CHECK(i < tokens_.size(), op_, where(), ": expected at least ", i + 1, " values, found ",
              tokens_.size());
  const std::string& t = tokens_[i];
  errno = 0;
  char* end = nullptr;
  const long long v = std::strtoll(t.c_str(), &end, 10);
  if (end != t.c_str() && *end == '\0' && errno == 0) return v;
  // Tolerate integral floats such as "2.0" (some exports write labels that way).
  const double d = std::strtod(t.c_str(), &end);
  LAPIS_CHECK(end != t.c_str() && *end == '\0' && std::isfinite(d) && d == std::floor(d) &&
                  std::fabs(d) < 9.0e15,
              op_, where(), ": '", t, "' is not an integer");
  return static_cast<int64_t>(d);
}

double NumberLines::real(size_t i) const {
  LAPIS_CHECK(i < tokens_.size(), op_, where(), ": expected at least ", i + 1, " values, found ",
              tokens_.size());
  const std::string& t = tokens_[i];
  char* end = nullptr;
  const double d = std::strtod(t.c_str(), &end);
  LAPIS_CHECK(end != t.c_str() && *end == '\0', op_, where(), ": '", t, "' is not a number");
  LAPIS_CHECK(std::isfinite(d), op_, where(), ": '", t, "' is not finite");
  return d;
}

}  // namespace graph
}  // namespace lapis
