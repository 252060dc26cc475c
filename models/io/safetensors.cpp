// safetensors reader and writer (format in safetensors.h). The JSON header is handled with
// nlohmann::json, which stays private to this file.
#include "models/io/safetensors.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <set>

#include <nlohmann/json.hpp>

#include "core/atomic_file.h"

namespace lapis {
namespace io {
namespace {

constexpr const char* kMetadataKey = "__metadata__";
// Like the reference implementation, refuse absurd headers before allocating for them.
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

const char* safetensors_dtype_name(Dtype d) {
  switch (d) {
    case Dtype::F32: return "F32";
    case Dtype::F64: return "F64";
    case Dtype::I32: return "I32";
    case Dtype::I64: return "I64";
  }
  return "?";
}

bool parse_safetensors_dtype(const std::string& s, Dtype* out) {
  if (s == "F32") { *out = Dtype::F32; return true; }
  if (s == "F64") { *out = Dtype::F64; return true; }
  if (s == "I32") { *out = Dtype::I32; return true; }
  if (s == "I64") { *out = Dtype::I64; return true; }
  return false;
}

// Files are little-endian; Lapis targets little-endian hosts only (x86-64, aarch64).
bool host_is_little_endian() {
  const uint16_t probe = 1;
  unsigned char first;
  std::memcpy(&first, &probe, 1);
  return first == 1;
}

std::string errno_text() { return std::strerror(errno); }

// Writes all bytes or throws.
void write_all(std::FILE* f, const void* data, size_t n, const std::string& tmp) {
  if (n == 0) return;
  LAPIS_CHECK(std::fwrite(data, 1, n, f) == n, "save_safetensors",
              "writing '", tmp, "' failed: ", errno_text());
}

}  // namespace

void save_safetensors(const std::string& path,
                      const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  const char* op = "save_safetensors";
  LAPIS_CHECK(host_is_little_endian(), op, "big-endian hosts are not supported");
  LAPIS_CHECK(!path.empty(), op, "empty path");

  // Sort by name (the file layout is then independent of the caller's order).
  std::vector<const std::pair<std::string, Tensor>*> order;
  order.reserve(tensors.size());
  for (const auto& nt : tensors) order.push_back(&nt);
  std::sort(order.begin(), order.end(),
            [](const auto* a, const auto* b) { return a->first < b->first; });
  for (size_t i = 0; i < order.size(); ++i) {
    const std::string& name = order[i]->first;
    LAPIS_CHECK(!name.empty(), op, "'", path, "': empty tensor name");
    LAPIS_CHECK(name != kMetadataKey, op, "'", path, "': tensor name '", name, "' is reserved");
    LAPIS_CHECK(i == 0 || order[i - 1]->first != name, op, "'", path,
                "': duplicate tensor name '", name, "'");
    LAPIS_CHECK(order[i]->second.defined(), op, "'", path, "': tensor '", name,
                "' is undefined");
  }

  // Header: offsets in name order, data contiguous.
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) {
    nlohmann::json meta = nlohmann::json::object();
    for (const auto& kv : metadata) meta[kv.first] = kv.second;
    header[kMetadataKey] = meta;
  }
  uint64_t offset = 0;
  for (const auto* nt : order) {
    const Tensor& t = nt->second;
    nlohmann::json entry = nlohmann::json::object();
    entry["dtype"] = safetensors_dtype_name(t.dtype());
    entry["shape"] = t.shape();
    entry["data_offsets"] = {offset, offset + t.nbytes()};
    header[nt->first] = entry;
    offset += t.nbytes();
  }
  std::string header_text;
  try {
    header_text = header.dump();
  } catch (const std::exception& e) {  // invalid UTF-8 in a name or metadata value
    LAPIS_FAIL(op, "'", path, "': cannot encode header: ", e.what());
  }
  header_text.append((8 - header_text.size() % 8) % 8, ' ');
  const uint64_t header_len = header_text.size();
  unsigned char len_bytes[8];
  for (int i = 0; i < 8; ++i) len_bytes[i] = static_cast<unsigned char>(header_len >> (8 * i));

  // Streamed into the temporary file (tensors can be large), then renamed over `path`.
  replace_file_atomic(
      path,
      [&](const std::string& tmp) {
        std::FILE* f = std::fopen(tmp.c_str(), "wb");
        LAPIS_CHECK(f != nullptr, op, "cannot create '", tmp, "' (for '", path, "'): ",
                    errno_text());
        try {
          write_all(f, len_bytes, 8, tmp);
          write_all(f, header_text.data(), header_text.size(), tmp);
          for (const auto* nt : order) {
            const Tensor host = nt->second.to(Device::cpu());
            if (host.numel() > 0) write_all(f, host.raw_data(), host.nbytes(), tmp);
          }
        } catch (...) {
          std::fclose(f);
          throw;
        }
        LAPIS_CHECK(std::fclose(f) == 0, op, "closing '", tmp, "' failed: ", errno_text());
      },
      op);
}

SafetensorsFile load_safetensors(const std::string& path) {
  const char* op = "load_safetensors";
  LAPIS_CHECK(host_is_little_endian(), op, "big-endian hosts are not supported");

  // Read the whole file.
  std::FILE* f = std::fopen(path.c_str(), "rb");
  LAPIS_CHECK(f != nullptr, op, "cannot open '", path, "': ", errno_text());
  std::vector<unsigned char> bytes;
  {
    unsigned char buf[1 << 16];
    size_t got;
    while ((got = std::fread(buf, 1, sizeof(buf), f)) > 0) bytes.insert(bytes.end(), buf, buf + got);
    const bool failed = std::ferror(f) != 0;
    std::fclose(f);
    LAPIS_CHECK(!failed, op, "reading '", path, "' failed");
  }
  const uint64_t file_size = bytes.size();
  LAPIS_CHECK(file_size >= 8, op, "'", path, "' is ", file_size,
              " bytes, too short for the 8-byte header length (truncated file?)");
  uint64_t header_len = 0;
  for (int i = 0; i < 8; ++i) header_len |= static_cast<uint64_t>(bytes[i]) << (8 * i);
  LAPIS_CHECK(header_len <= file_size - 8, op, "'", path, "': header length ", header_len,
              " exceeds the ", file_size - 8, " bytes after the length field (truncated file?)");
  LAPIS_CHECK(header_len <= kMaxHeaderBytes, op, "'", path, "': header length ", header_len,
              " is larger than the limit of ", kMaxHeaderBytes, " bytes");

  nlohmann::json header;
  try {
    header = nlohmann::json::parse(bytes.begin() + 8, bytes.begin() + 8 + header_len);
  } catch (const std::exception& e) {
    LAPIS_FAIL(op, "'", path, "': bad header JSON: ", e.what());
  }
  LAPIS_CHECK(header.is_object(), op, "'", path, "': bad header JSON: expected an object, got ",
              header.type_name());

  const uint64_t data_begin = 8 + header_len;
  const uint64_t data_size = file_size - data_begin;
  SafetensorsFile out;
  struct Span {
    uint64_t begin, end;
    std::string name;
  };
  std::vector<Span> spans;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const nlohmann::json& v = it.value();
    if (name == kMetadataKey) {
      LAPIS_CHECK(v.is_object(), op, "'", path, "': bad metadata: __metadata__ is not an object");
      for (auto m = v.begin(); m != v.end(); ++m) {
        LAPIS_CHECK(m.value().is_string(), op, "'", path, "': bad metadata: value of '",
                    m.key(), "' is not a string");
        out.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const std::string where = str_cat("'", path, "': tensor '", name, "'");
    LAPIS_CHECK(v.is_object() && v.contains("dtype") && v.contains("shape") &&
                    v.contains("data_offsets"),
                op, where, " needs dtype, shape and data_offsets, got ", v.dump());
    LAPIS_CHECK(v["dtype"].is_string(), op, where, " has a non-string dtype ", v["dtype"].dump());
    Dtype dtype;
    const std::string dtype_text = v["dtype"].get<std::string>();
    LAPIS_CHECK(parse_safetensors_dtype(dtype_text, &dtype), op, where, " has unknown dtype '",
                dtype_text, "' (supported: F32, F64, I32, I64)");
    const nlohmann::json& js = v["shape"];
    LAPIS_CHECK(js.is_array(), op, where, " has a bad shape ", js.dump());
    Shape shape;
    uint64_t numel = 1;
    for (const auto& e : js) {
      LAPIS_CHECK(e.is_number_unsigned(), op, where, " has a bad shape ", js.dump());
      const uint64_t extent = e.get<uint64_t>();
      LAPIS_CHECK(extent <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) &&
                      (extent == 0 || numel <= std::numeric_limits<uint64_t>::max() / 16 / extent),
                  op, where, " has a shape too large: ", js.dump());
      numel *= extent;
      shape.push_back(static_cast<int64_t>(extent));
    }
    const nlohmann::json& jo = v["data_offsets"];
    LAPIS_CHECK(jo.is_array() && jo.size() == 2 && jo[0].is_number_unsigned() &&
                    jo[1].is_number_unsigned(),
                op, where, " has bad data_offsets ", jo.dump(), " (expected [begin, end])");
    const uint64_t begin = jo[0].get<uint64_t>(), end = jo[1].get<uint64_t>();
    LAPIS_CHECK(begin <= end, op, where, " has data_offsets [", begin, ", ", end,
                "] with begin > end");
    LAPIS_CHECK(end <= data_size, op, where, " has data_offsets [", begin, ", ", end,
                "] out of bounds: the data section is only ", data_size,
                " bytes (truncated file or bad offsets)");
    const uint64_t expected = numel * dtype_size(dtype);
    LAPIS_CHECK(end - begin == expected, op, where, " size mismatch: shape ",
                shape_to_string(shape), " of ", dtype_text, " needs ", expected,
                " bytes but data_offsets [", begin, ", ", end, "] hold ", end - begin);
    Tensor t = Tensor::empty(shape, dtype, Device::cpu());
    if (expected > 0) std::memcpy(t.raw_data(), bytes.data() + data_begin + begin, expected);
    out.tensors.emplace(name, t);
    spans.push_back({begin, end, name});
  }

  // The tensors must tile the data section exactly: no overlap, no gap, nothing after the end
  // (as the reference implementation requires).
  std::sort(spans.begin(), spans.end(), [](const Span& a, const Span& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t covered = 0;
  for (const Span& s : spans) {
    LAPIS_CHECK(s.begin >= covered, op, "'", path, "': tensor '", s.name, "' data_offsets [",
                s.begin, ", ", s.end, "] overlap the previous tensor (which ends at ", covered,
                ")");
    LAPIS_CHECK(s.begin == covered, op, "'", path, "': gap in the data section before tensor '",
                s.name, "' (bytes ", covered, " .. ", s.begin, ")");
    covered = s.end;
  }
  LAPIS_CHECK(covered == data_size, op, "'", path, "': the data section is ", data_size,
              " bytes but the tensors cover only ", covered, " (bad offsets or trailing bytes)");
  return out;
}

}  // namespace io
}  // namespace lapis
