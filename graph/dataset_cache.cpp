#include "graph/dataset_cache.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "core/check.h"
#include "graph/dataset_io.h"

namespace lapis {
namespace graph {
namespace {

constexpr char kMagic[8] = {'L', 'A', 'P', 'I', 'S', 'D', 'S', 'C'};
constexpr uint32_t kContainerVersion = 1;

void put_string(std::string& out, const std::string& s) {
  put_u32(out, static_cast<uint32_t>(s.size()));
  out += s;
}

void make_dirs(const std::string& dir) {
  std::string partial;
  size_t pos = 0;
  while (pos != std::string::npos) {
    pos = dir.find('/', pos + 1);
    partial = dir.substr(0, pos);
    if (partial.empty()) continue;
    if (::mkdir(partial.c_str(), 0755) != 0 && errno != EEXIST) {
      LAPIS_FAIL("cache_dir", "cannot create folder '", partial, "' (", std::strerror(errno), ")");
    }
  }
}

}  // namespace

void put_u32(std::string& out, uint32_t v) {
  for (int k = 0; k < 4; ++k) out.push_back(static_cast<char>((v >> (8 * k)) & 0xff));
}

void put_u64(std::string& out, uint64_t v) {
  for (int k = 0; k < 8; ++k) out.push_back(static_cast<char>((v >> (8 * k)) & 0xff));
}

const uint8_t* PayloadReader::take(size_t n, const char* what) {
  LAPIS_CHECK(n <= bytes_.size() - pos_, "read_cache_file", "'", name_,
              "' is corrupt: truncated while reading ", what, " at byte ", pos_, " (", n,
              " bytes needed, ", bytes_.size() - pos_, " left); delete it to regenerate");
  const uint8_t* p = reinterpret_cast<const uint8_t*>(bytes_.data()) + pos_;
  pos_ += n;
  return p;
}

uint32_t PayloadReader::u32(const char* what) {
  const uint8_t* p = take(4, what);
  uint32_t v = 0;
  for (int k = 0; k < 4; ++k) v |= static_cast<uint32_t>(p[k]) << (8 * k);
  return v;
}

uint64_t PayloadReader::u64(const char* what) {
  const uint8_t* p = take(8, what);
  uint64_t v = 0;
  for (int k = 0; k < 8; ++k) v |= static_cast<uint64_t>(p[k]) << (8 * k);
  return v;
}

void write_cache_file(const std::string& path, const std::string& kind, uint32_t version,
                      const std::string& key, const std::string& payload) {
  std::string out(kMagic, sizeof(kMagic));
  put_u32(out, kContainerVersion);
  put_string(out, kind);
  put_u32(out, version);
  put_string(out, key);
  put_u64(out, payload.size());
  put_u32(out, crc32(payload.data(), payload.size()));
  out.reserve(out.size() + payload.size());
  out += payload;
  write_file_atomic(path, out, "write_cache_file");
}

std::optional<std::string> read_cache_file(const std::string& path, const std::string& kind,
                                           uint32_t version, const std::string& key) {
  if (!file_exists(path)) return std::nullopt;
  const std::string bytes = read_file_bytes(path, "read_cache_file");
  PayloadReader r(bytes, path);
  const char* op = "read_cache_file";
  LAPIS_CHECK(bytes.size() >= sizeof(kMagic) && std::memcmp(bytes.data(), kMagic, 8) == 0, op,
              "'", path, "' is corrupt or not a Lapis cache file (bad magic); delete it to "
              "regenerate");
  r.take(8, "magic");
  const uint32_t container = r.u32("container version");
  if (container != kContainerVersion) return std::nullopt;  // other Lapis version: stale
  const uint32_t kind_len = r.u32("kind length");
  LAPIS_CHECK(kind_len < 4096, op, "'", path, "' is corrupt: kind length ", kind_len,
              "; delete it to regenerate");
  const std::string file_kind(reinterpret_cast<const char*>(r.take(kind_len, "kind")), kind_len);
  const uint32_t file_version = r.u32("payload version");
  const uint32_t key_len = r.u32("key length");
  LAPIS_CHECK(key_len < (1u << 20), op, "'", path, "' is corrupt: key length ", key_len,
              "; delete it to regenerate");
  const std::string file_key(reinterpret_cast<const char*>(r.take(key_len, "key")), key_len);
  const uint64_t size = r.u64("payload size");
  const uint32_t crc = r.u32("checksum");
  LAPIS_CHECK(size == bytes.size() - r.pos(), op, "'", path, "' is corrupt: header says ", size,
              " payload bytes, the file has ", bytes.size() - r.pos(),
              " (truncated or appended to); delete it to regenerate");
  const std::string payload = bytes.substr(r.pos());
  LAPIS_CHECK(crc32(payload.data(), payload.size()) == crc, op, "'", path,
              "' is corrupt: checksum mismatch; delete it to regenerate");
  if (file_kind != kind || file_version != version || file_key != key) return std::nullopt;
  return payload;
}

std::string cache_dir(const std::string& explicit_dir) {
  std::string dir;
  if (!explicit_dir.empty()) {
    dir = explicit_dir;
  } else if (const char* env = std::getenv("LAPIS_CACHE_DIR"); env && *env) {
    dir = env;
  } else if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg) {
    dir = std::string(xdg) + "/lapis";
  } else if (const char* home = std::getenv("HOME"); home && *home) {
    dir = std::string(home) + "/.cache/lapis";
  } else {
    dir = "/tmp/lapis-cache";
  }
  make_dirs(dir);
  return dir;
}

}  // namespace graph
}  // namespace lapis
