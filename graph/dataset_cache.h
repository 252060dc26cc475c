// On-disk cache files for generated or preprocessed datasets: one payload (bytes laid out by
// the dataset that owns it) in a small versioned, checksummed container, written atomically.
//
// Container (little endian): magic "LAPISDSC", u32 container version (1), u32 length + kind
// (e.g. "sbm-pattern"), u32 payload format version, u32 length + key (the parameters that made
// the payload, e.g. "seed=0 train=10000 val=2000 test=2000"), u64 payload size, u32 CRC-32 of
// the payload, then the payload.
//
// Reading distinguishes three cases:
//  * no file: std::nullopt (the caller generates and writes);
//  * a valid file made for another kind, payload version or key: std::nullopt too (stale; the
//    caller regenerates and overwrites);
//  * a damaged file (bad magic, truncated, checksum mismatch, trailing bytes): lapis::Error
//    naming the path and what is wrong, and saying to delete the file to regenerate it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace lapis {
namespace graph {

void write_cache_file(const std::string& path, const std::string& kind, uint32_t version,
                      const std::string& key, const std::string& payload);

std::optional<std::string> read_cache_file(const std::string& path, const std::string& kind,
                                           uint32_t version, const std::string& key);

// The folder for cache files: `explicit_dir` when not empty, else $LAPIS_CACHE_DIR, else
// $XDG_CACHE_HOME/lapis, else $HOME/.cache/lapis, else /tmp/lapis-cache. Created when missing
// (throws lapis::Error when it cannot be).
std::string cache_dir(const std::string& explicit_dir = "");

// Little-endian append/read helpers for payloads.
void put_u32(std::string& out, uint32_t v);
void put_u64(std::string& out, uint64_t v);

class PayloadReader {
 public:
  PayloadReader(const std::string& bytes, std::string name) : bytes_(bytes), name_(std::move(name)) {}
  // Throws lapis::Error "<name> is corrupt: truncated ..." when fewer than n bytes are left.
  const uint8_t* take(size_t n, const char* what);
  uint32_t u32(const char* what);
  uint64_t u64(const char* what);
  bool done() const { return pos_ == bytes_.size(); }
  size_t pos() const { return pos_; }
  const std::string& name() const { return name_; }

 private:
  const std::string& bytes_;
  std::string name_;
  size_t pos_ = 0;
};

}  // namespace graph
}  // namespace lapis
