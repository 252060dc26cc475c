#include "graph/encoding_cache.h"

#include <atomic>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <mutex>
#include <thread>

#include "core/atomic_file.h"
#include "graph/random_walk_se.h"

namespace lapis {
namespace graph {
namespace {

constexpr char kMagic[8] = {'L', 'A', 'P', 'I', 'S', 'E', 'N', 'C'};
constexpr uint32_t kFormatVersion = 1;
constexpr uint32_t kKindLapPE = 1, kKindRwse = 2;

uint64_t hash_bytes(uint64_t h, const void* data, size_t n) {
  // FNV-1a over bytes, then a SplitMix finaliser per call: cheap and stable across machines.
  const unsigned char* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < n; ++i) { h ^= p[i]; h *= 0x100000001b3ull; }
  return h;
}
template <class T> uint64_t hash_value(uint64_t h, T v) { return hash_bytes(h, &v, sizeof(v)); }

template <class Fn>
void parallel_graphs(size_t count, int num_threads, const ProgressFn& progress, const Fn& fn) {
  int threads = num_threads > 0 ? num_threads
                                : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  threads = static_cast<int>(std::min<size_t>(threads, std::max<size_t>(count, 1)));
  std::atomic<size_t> next{0}, done{0};
  std::mutex mu;
  std::exception_ptr error;
  auto worker = [&]() {
    for (size_t i = next++; i < count; i = next++) {
      try {
        fn(i);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mu);
        if (!error) error = std::current_exception();
        next = count;
        return;
      }
      const size_t d = ++done;
      if (progress && (d % 256 == 0 || d == count)) {
        std::lock_guard<std::mutex> lock(mu);
        progress(d, count);
      }
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(worker);
  worker();
  for (auto& th : pool) th.join();
  if (error) std::rethrow_exception(error);
}

bool load_cache(const std::string& path, uint64_t key, uint32_t kind, uint32_t param,
                size_t count, std::vector<Tensor>& out, std::string& reason) {
  std::ifstream f(path, std::ios::binary);
  if (!f) { reason = "missing"; return false; }
  std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  const size_t header = 8 + 4 * 3 + 8 + 8;
  if (bytes.size() < header + 8) { reason = "truncated"; return false; }
  uint64_t stored_sum;
  std::memcpy(&stored_sum, bytes.data() + bytes.size() - 8, 8);
  if (hash_bytes(0xcbf29ce484222325ull, bytes.data(), bytes.size() - 8) != stored_sum) {
    reason = "checksum mismatch (corrupted or truncated)";
    return false;
  }
  size_t pos = 0;
  auto rd = [&](void* dst, size_t n) {
    if (pos + n > bytes.size() - 8) return false;
    std::memcpy(dst, bytes.data() + pos, n);
    pos += n;
    return true;
  };
  char magic[8];
  uint32_t version, k, p;
  uint64_t stored_key, n;
  rd(magic, 8); rd(&version, 4); rd(&k, 4); rd(&p, 4); rd(&stored_key, 8); rd(&n, 8);
  if (std::memcmp(magic, kMagic, 8) != 0) { reason = "not a lapis encoding cache"; return false; }
  if (version != kFormatVersion) { reason = "format version differs"; return false; }
  if (k != kind || p != param || stored_key != key || n != count) {
    reason = "made for other graphs or parameters";
    return false;
  }
  out.clear();
  for (uint64_t g = 0; g < n; ++g) {
    int64_t rows, cols;
    if (!rd(&rows, 8) || !rd(&cols, 8) || rows < 0 || cols < 0) {
      reason = "truncated";
      return false;
    }
    Tensor t = Tensor::empty({rows, cols}, Dtype::F32);
    if (!rd(t.raw_data(), t.nbytes())) { reason = "truncated"; return false; }
    out.push_back(t);
  }
  return true;
}

void save_cache(const std::string& path, uint64_t key, uint32_t kind, uint32_t param,
                const std::vector<Tensor>& data) {
  std::string bytes(kMagic, 8);
  auto wr = [&](const void* src, size_t n) { bytes.append(static_cast<const char*>(src), n); };
  const uint64_t n = data.size();
  wr(&kFormatVersion, 4); wr(&kind, 4); wr(&param, 4); wr(&key, 8); wr(&n, 8);
  for (const Tensor& t : data) {
    const int64_t rows = t.size(0), cols = t.size(1);
    wr(&rows, 8); wr(&cols, 8);
    wr(t.raw_data(), t.nbytes());
  }
  const uint64_t sum = hash_bytes(0xcbf29ce484222325ull, bytes.data(), bytes.size());
  wr(&sum, 8);
  write_file_atomic(path, bytes, "encoding_cache");
}

std::vector<Tensor> cached(const std::vector<const Graph*>& graphs, uint32_t kind, uint32_t param,
                           uint32_t version, const std::string& path, CacheInfo* info,
                           const std::function<std::vector<Tensor>()>& compute) {
  const uint64_t key = structure_hash(graphs, kind, param, version);
  std::vector<Tensor> out;
  std::string reason;
  if (load_cache(path, key, kind, param, graphs.size(), out, reason)) {
    if (info) *info = CacheInfo{true, ""};
    return out;
  }
  out = compute();
  save_cache(path, key, kind, param, out);
  if (info) *info = CacheInfo{false, reason};
  return out;
}

}  // namespace

uint64_t structure_hash(const std::vector<const Graph*>& graphs, uint32_t kind, uint32_t param,
                        uint32_t version) {
  uint64_t h = 0xcbf29ce484222325ull;
  h = hash_value(h, kind);
  h = hash_value(h, param);
  h = hash_value(h, version);
  h = hash_value(h, static_cast<uint64_t>(graphs.size()));
  for (const Graph* g : graphs) {
    LAPIS_CHECK(g != nullptr, "structure_hash", "null graph pointer");
    h = hash_value(h, g->num_nodes);
    h = hash_value(h, g->num_edges);
    const auto s = g->src.to_vector<int32_t>(), d = g->dst.to_vector<int32_t>();
    h = hash_bytes(h, s.data(), s.size() * 4);
    h = hash_bytes(h, d.data(), d.size() * 4);
  }
  return h;
}

std::vector<LapPE> compute_laplacian_pe(const std::vector<const Graph*>& graphs,
                                        const LapPEOptions& options, int num_threads,
                                        const ProgressFn& progress) {
  std::vector<LapPE> out(graphs.size());
  LapPEOptions o = options;
  // Parallelism is over graphs; a large graph alone still uses its own threads.
  if (graphs.size() > 1 && o.num_threads == 0) o.num_threads = 1;
  parallel_graphs(graphs.size(), num_threads, progress,
                  [&](size_t i) { out[i] = laplacian_pe(*graphs[i], o); });
  return out;
}

std::vector<Tensor> compute_random_walk_se(const std::vector<const Graph*>& graphs, int K,
                                           int num_threads, const ProgressFn& progress) {
  std::vector<Tensor> out(graphs.size());
  parallel_graphs(graphs.size(), num_threads, progress,
                  [&](size_t i) { out[i] = random_walk_se(*graphs[i], K); });
  return out;
}

std::vector<Tensor> laplacian_pe_cached(const std::vector<const Graph*>& graphs, int k,
                                        const std::string& cache_path,
                                        const ProgressFn& progress, CacheInfo* info,
                                        int num_threads) {
  LAPIS_CHECK(k >= 1, "laplacian_pe_cached", "k must be >= 1, got ", k);
  return cached(graphs, kKindLapPE, static_cast<uint32_t>(k), kLapPEMethodVersion, cache_path,
                info, [&]() {
                  LapPEOptions o;
                  o.k = k;
                  auto pe = compute_laplacian_pe(graphs, o, num_threads, progress);
                  std::vector<Tensor> v;
                  for (auto& p : pe) v.push_back(p.vectors);
                  return v;
                });
}

std::vector<Tensor> random_walk_se_cached(const std::vector<const Graph*>& graphs, int K,
                                          const std::string& cache_path,
                                          const ProgressFn& progress, CacheInfo* info,
                                          int num_threads) {
  LAPIS_CHECK(K >= 1, "random_walk_se_cached", "K must be >= 1, got ", K);
  return cached(graphs, kKindRwse, static_cast<uint32_t>(K), kRwseMethodVersion, cache_path,
                info, [&]() { return compute_random_walk_se(graphs, K, num_threads, progress); });
}

}  // namespace graph
}  // namespace lapis
