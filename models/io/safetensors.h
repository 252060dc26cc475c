// Reading and writing the safetensors format (https://github.com/huggingface/safetensors):
//   8 bytes: N, the header length (u64, little-endian)
//   N bytes: JSON {"<name>": {"dtype": "F32"|"F64"|"I32"|"I64", "shape": [...],
//                             "data_offsets": [begin, end]}, ...,
//                  "__metadata__": {"<key>": "<value>", ...}}   (padded with spaces to 8k bytes)
//   then the raw little-endian data; offsets are relative to the start of the data.
// Lapis writes tensors sorted by name, contiguously, without gaps.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace lapis {
namespace io {

// Writes the tensors (any devices: CUDA tensors are copied to the host) and string metadata.
// Atomic: writes a temporary file in the same directory, flushes and fsyncs it, then renames it
// over path; on any failure the temporary file is removed and path is left untouched.
// Names must be non-empty, unique and not "__metadata__".
void save_safetensors(const std::string& path,
                      const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

struct SafetensorsFile {
  std::map<std::string, Tensor> tensors;  // CPU tensors
  std::map<std::string, std::string> metadata;
};

// Reads a whole file. Throws lapis::Error naming the file and the problem on: a missing or
// unreadable file, a file shorter than its header, bad header JSON, an unknown dtype, a shape
// whose size does not match its offsets, offsets out of range, overlapping or leaving gaps
// (e.g. a truncated file), bad metadata.
SafetensorsFile load_safetensors(const std::string& path);

}  // namespace io
}  // namespace lapis
