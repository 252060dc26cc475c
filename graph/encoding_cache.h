// Dataset-level encodings: computed in parallel over graphs and cached on disk.
//
// Independent of any dataset class: callers pass graph pointers. The cache is one binary file
// (little-endian): magic "LAPISENC", format version, encoding kind and parameter, a 64-bit key
// hashing every graph's structure (N, E, src, dst) together with the kind, the parameter and the
// method version (kLapPEMethodVersion / kRwseMethodVersion: bumped whenever the numbers change),
// the per-graph shapes, the f32 data, and a trailing 64-bit checksum of everything before it.
// It is written atomically (temp file + rename). On load, a file that is missing, truncated,
// corrupted (checksum), of another version or for other graphs/parameters is NOT an error: it is
// ignored, the encodings are recomputed and the file is rewritten; `CacheInfo` says what happened.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "graph/graph.h"
#include "graph/laplacian_pe.h"

namespace lapis {
namespace graph {

constexpr uint32_t kLapPEMethodVersion = 1;
constexpr uint32_t kRwseMethodVersion = 1;

// Called as graphs finish: (done, total). From worker threads, serialised by a mutex.
using ProgressFn = std::function<void(size_t done, size_t total)>;

struct CacheInfo {
  bool loaded = false;  // true: results came from the file
  std::string reason;   // why the file was not used ("missing", "checksum mismatch", ...)
};

// Parallel over graphs on num_threads threads (0: hardware_concurrency); each graph's
// computation is single-threaded and deterministic, so the results do not depend on threads.
std::vector<LapPE> compute_laplacian_pe(const std::vector<const Graph*>& graphs,
                                        const LapPEOptions& options, int num_threads = 0,
                                        const ProgressFn& progress = {});
std::vector<Tensor> compute_random_walk_se(const std::vector<const Graph*>& graphs, int K,
                                           int num_threads = 0, const ProgressFn& progress = {});

// LapPE vectors (f32 [N_g, k] each) with default options and k, through the cache file.
std::vector<Tensor> laplacian_pe_cached(const std::vector<const Graph*>& graphs, int k,
                                        const std::string& cache_path,
                                        const ProgressFn& progress = {},
                                        CacheInfo* info = nullptr, int num_threads = 0);
// RWSE (f32 [N_g, K] each) through the cache file.
std::vector<Tensor> random_walk_se_cached(const std::vector<const Graph*>& graphs, int K,
                                          const std::string& cache_path,
                                          const ProgressFn& progress = {},
                                          CacheInfo* info = nullptr, int num_threads = 0);

// The structural key used above (exposed for tests).
uint64_t structure_hash(const std::vector<const Graph*>& graphs, uint32_t kind, uint32_t param,
                        uint32_t version);

}  // namespace graph
}  // namespace lapis
