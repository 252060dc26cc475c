#include "graph/sbm.h"

#include <chrono>
#include <cstdio>
#include <numeric>

#include "core/check.h"
#include "core/random.h"
#include "graph/dataset_cache.h"

namespace lapis {
namespace graph {
namespace {

constexpr uint32_t kPayloadVersion = 1;
enum : uint64_t { kTagPattern = 1, kTagCluster = 2, kTagInstance = 3 };

// A counter-based stream of random numbers for one graph (or one pattern instance).
class Stream {
 public:
  Stream(uint64_t seed, uint64_t tag, uint64_t a, uint64_t b)
      : key_(mix64(mix64(mix64(seed) ^ (tag * 0x9E3779B97F4A7C15ull)) ^ a) ^ (b + 0x632BE5ABull)) {}
  uint64_t bits() { return random_bits(key_, counter_++); }
  double uniform() { return static_cast<double>(bits() >> 11) * (1.0 / 9007199254740992.0); }
  // Uniform integer in [lo, hi] (modulo bias below 2^-50 for these tiny ranges).
  int64_t randint(int64_t lo, int64_t hi) {
    return lo + static_cast<int64_t>(bits() % static_cast<uint64_t>(hi - lo + 1));
  }

 private:
  uint64_t key_;
  uint64_t counter_ = 0;
};

struct PatternInstance {
  int64_t size = 0;
  std::vector<int32_t> feature;
  std::vector<uint8_t> adjacency;  // size x size, symmetric
};

PatternInstance make_instance(uint64_t seed, int64_t instance) {
  Stream s(seed, kTagInstance, static_cast<uint64_t>(instance), 0);
  PatternInstance p;
  p.size = s.randint(kPatternParams.min_size, kPatternParams.max_size);
  p.adjacency.assign(p.size * p.size, 0);
  for (int64_t i = 0; i < p.size; ++i) {
    for (int64_t j = i + 1; j < p.size; ++j) {
      const uint8_t e = s.uniform() < kPatternInternalP;
      p.adjacency[i * p.size + j] = p.adjacency[j * p.size + i] = e;
    }
  }
  p.feature.resize(p.size);
  for (auto& f : p.feature) f = static_cast<int32_t>(s.randint(0, 2));
  return p;
}

// Blocks of random sizes with SBM edges; fills block ids and the dense adjacency of the first
// `n0` nodes inside a matrix of side `n` (n >= n0, room for appended nodes).
int64_t draw_blocks(Stream& s, const SbmParams& params, std::vector<int32_t>& block) {
  for (int b = 0; b < params.num_blocks; ++b) {
    const int64_t size = s.randint(params.min_size, params.max_size);
    block.insert(block.end(), size, b);
  }
  return static_cast<int64_t>(block.size());
}

void draw_sbm_edges(Stream& s, const SbmParams& params, const std::vector<int32_t>& block,
                    int64_t n0, int64_t n, std::vector<uint8_t>& adj) {
  for (int64_t i = 0; i < n0; ++i) {
    for (int64_t j = i + 1; j < n0; ++j) {
      const double prob = block[i] == block[j] ? params.p : params.q;
      const uint8_t e = s.uniform() < prob;
      adj[i * n + j] = adj[j * n + i] = e;
    }
  }
}

// Random relabelling of the nodes (the benchmark shuffles so that blocks are not contiguous).
SbmGraph shuffled(Stream& s, int64_t n, const std::vector<int32_t>& block,
                  const std::vector<int32_t>& feature, const std::vector<int32_t>& label,
                  const std::vector<uint8_t>& adj) {
  std::vector<int64_t> perm(n);  // new node k is old node perm[k]
  std::iota(perm.begin(), perm.end(), 0);
  for (int64_t i = n - 1; i > 0; --i) std::swap(perm[i], perm[s.randint(0, i)]);
  SbmGraph g;
  g.num_nodes = n;
  g.block.resize(n);
  g.feature.resize(n);
  g.label.resize(n);
  g.adjacency.assign(n * n, 0);
  for (int64_t k = 0; k < n; ++k) {
    g.block[k] = block[perm[k]];
    g.feature[k] = feature[perm[k]];
    g.label[k] = label[perm[k]];
    for (int64_t l = 0; l < n; ++l) g.adjacency[k * n + l] = adj[perm[k] * n + perm[l]];
  }
  return g;
}

int64_t standard_size(const std::string& name, SbmSplit split) {
  if (split == SbmSplit::Train) return 10000;
  return name == "pattern" ? 2000 : 1000;
}

int64_t split_size(const std::string& name, const SbmOptions& o, SbmSplit split) {
  const int64_t v = split == SbmSplit::Train ? o.train : split == SbmSplit::Val ? o.val : o.test;
  LAPIS_CHECK(v >= -1, "load_" + name, "split size ", v, " (use -1 for the standard size)");
  return v < 0 ? standard_size(name, split) : v;
}

std::string cache_key(const std::string& name, const SbmOptions& o) {
  return str_cat(name, " seed=", o.seed, " train=", split_size(name, o, SbmSplit::Train),
                 " val=", split_size(name, o, SbmSplit::Val),
                 " test=", split_size(name, o, SbmSplit::Test));
}

// Payload: per split u32 G; per graph u32 N, u8 feature[N], u8 label[N], upper-triangle
// adjacency bits (i < j, row-major) packed LSB first into ceil(N(N-1)/2 / 8) bytes.
void encode_graph(std::string& out, const SbmGraph& g) {
  const int64_t n = g.num_nodes;
  put_u32(out, static_cast<uint32_t>(n));
  for (int64_t i = 0; i < n; ++i) out.push_back(static_cast<char>(g.feature[i]));
  for (int64_t i = 0; i < n; ++i) out.push_back(static_cast<char>(g.label[i]));
  const size_t pairs = static_cast<size_t>(n * (n - 1) / 2);
  std::string bits((pairs + 7) / 8, '\0');
  size_t k = 0;
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = i + 1; j < n; ++j, ++k) {
      if (g.edge(i, j)) bits[k >> 3] = static_cast<char>(bits[k >> 3] | (1 << (k & 7)));
    }
  }
  out += bits;
}

SbmGraph decode_graph(PayloadReader& r, int64_t num_features, int64_t num_classes) {
  SbmGraph g;
  const int64_t n = r.u32("node count");
  LAPIS_CHECK(n >= 0 && n <= 100000, "read_cache_file", "'", r.name(),
              "' is corrupt: graph with ", n, " nodes; delete it to regenerate");
  g.num_nodes = n;
  const uint8_t* f = r.take(n, "features");
  const uint8_t* l = r.take(n, "labels");
  g.feature.assign(f, f + n);
  g.label.assign(l, l + n);
  for (int64_t i = 0; i < n; ++i) {
    LAPIS_CHECK(g.feature[i] < num_features && g.label[i] < num_classes, "read_cache_file", "'",
                r.name(), "' is corrupt: feature ", g.feature[i], " or label ", g.label[i],
                " out of range; delete it to regenerate");
  }
  const size_t pairs = static_cast<size_t>(n * (n - 1) / 2);
  const uint8_t* bits = r.take((pairs + 7) / 8, "adjacency");
  g.adjacency.assign(n * n, 0);
  size_t k = 0;
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = i + 1; j < n; ++j, ++k) {
      const uint8_t e = (bits[k >> 3] >> (k & 7)) & 1;
      g.adjacency[i * n + j] = g.adjacency[j * n + i] = e;
    }
  }
  return g;
}

GraphDataset load_sbm(const std::string& name, const SbmOptions& o) {
  const bool pattern = name == "pattern";
  const int64_t num_features = pattern ? 3 : 7, num_classes = pattern ? 2 : 6;
  GraphDataset d;
  d.name = name;
  d.task = TaskLevel::Node;
  d.num_node_types = num_features;
  d.num_edge_types = 0;
  d.num_classes = num_classes;
  std::vector<GraphSample>* splits[3] = {&d.train, &d.val, &d.test};
  const std::string key = cache_key(name, o);
  auto say = [&](const std::string& line) {
    if (o.progress) o.progress(line);
  };

  std::string path;
  if (o.use_cache) {
    path = sbm_cache_path(name, o);
    if (auto payload = read_cache_file(path, "sbm-" + name, kPayloadVersion, key)) {
      PayloadReader r(*payload, path);
      for (auto* split : splits) {
        const uint32_t count = r.u32("graph count");
        split->reserve(count);
        for (uint32_t i = 0; i < count; ++i) {
          split->push_back(sbm_to_sample(decode_graph(r, num_features, num_classes)));
        }
      }
      LAPIS_CHECK(r.done(), "read_cache_file", "'", path,
                  "' is corrupt: unexpected trailing bytes; delete it to regenerate");
      say(str_cat(name, ": loaded from cache ", path));
      return d;
    }
  }

  const auto start = std::chrono::steady_clock::now();
  int64_t total = 0, done = 0;
  for (int s = 0; s < 3; ++s) total += split_size(name, o, static_cast<SbmSplit>(s));
  std::string payload;
  for (int s = 0; s < 3; ++s) {
    const SbmSplit split = static_cast<SbmSplit>(s);
    const int64_t count = split_size(name, o, split);
    put_u32(payload, static_cast<uint32_t>(count));
    splits[s]->reserve(count);
    for (int64_t i = 0; i < count; ++i) {
      const SbmGraph g = pattern
          ? generate_pattern_graph(o.seed, split, i, i * kPatternInstances / count)
          : generate_cluster_graph(o.seed, split, i);
      if (o.use_cache) encode_graph(payload, g);
      splits[s]->push_back(sbm_to_sample(g));
      ++done;
      if (done % 1000 == 0 || done == total) {
        const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                                          start).count();
        char buf[160];
        std::snprintf(buf, sizeof(buf), "%s: generated %lld/%lld graphs (%.1f s)", name.c_str(),
                      static_cast<long long>(done), static_cast<long long>(total), secs);
        say(buf);
      }
    }
  }
  if (o.use_cache) {
    write_cache_file(path, "sbm-" + name, kPayloadVersion, key, payload);
    say(str_cat(name, ": wrote cache ", path, " (", payload.size() / 1024, " KiB)"));
  }
  return d;
}

}  // namespace

SbmGraph generate_pattern_graph(uint64_t seed, SbmSplit split, int64_t index, int64_t instance) {
  LAPIS_CHECK(instance >= 0 && instance < kPatternInstances, "generate_pattern_graph",
              "instance ", instance, " outside [0, ", kPatternInstances, ")");
  // The pattern instance is its own stream, so every graph of an instance embeds the same P.
  const PatternInstance p = make_instance(seed, instance);
  Stream s(seed, kTagPattern, static_cast<uint64_t>(split), static_cast<uint64_t>(index));
  std::vector<int32_t> block;
  const int64_t n0 = draw_blocks(s, kPatternParams, block);
  const int64_t n = n0 + p.size;
  std::vector<uint8_t> adj(n * n, 0);
  draw_sbm_edges(s, kPatternParams, block, n0, n, adj);
  std::vector<int32_t> feature(n), label(n, 0);
  for (int64_t i = 0; i < n0; ++i) feature[i] = static_cast<int32_t>(s.randint(0, 2));
  for (int64_t a = 0; a < p.size; ++a) {
    const int64_t i = n0 + a;
    block.push_back(kPatternParams.num_blocks);
    feature[i] = p.feature[a];
    label[i] = 1;
    for (int64_t b = 0; b < p.size; ++b) adj[i * n + n0 + b] = p.adjacency[a * p.size + b];
  }
  for (int64_t i = 0; i < n0; ++i) {
    for (int64_t a = 0; a < p.size; ++a) {
      const uint8_t e = s.uniform() < kPatternJoinP;
      adj[i * n + n0 + a] = adj[(n0 + a) * n + i] = e;
    }
  }
  return shuffled(s, n, block, feature, label, adj);
}

SbmGraph generate_cluster_graph(uint64_t seed, SbmSplit split, int64_t index) {
  Stream s(seed, kTagCluster, static_cast<uint64_t>(split), static_cast<uint64_t>(index));
  std::vector<int32_t> block;
  const int64_t n = draw_blocks(s, kClusterParams, block);
  std::vector<uint8_t> adj(n * n, 0);
  draw_sbm_edges(s, kClusterParams, block, n, n, adj);
  std::vector<int32_t> feature(n, 0), label(block);
  int64_t first = 0;
  for (int r = 0; r < kClusterParams.num_blocks; ++r) {
    int64_t size = 0;
    while (first + size < n && block[first + size] == r) ++size;
    feature[first + s.randint(0, size - 1)] = r + 1;  // one labelled node per cluster
    first += size;
  }
  return shuffled(s, n, block, feature, label, adj);
}

GraphSample sbm_to_sample(const SbmGraph& g) {
  const int64_t n = g.num_nodes;
  std::vector<int32_t> src, dst;
  // Emitted in (dst, src) order, which is the CSR order graph_from_coo produces anyway.
  for (int64_t v = 0; v < n; ++v) {
    for (int64_t u = 0; u < n; ++u) {
      if (g.adjacency[v * n + u]) {
        src.push_back(static_cast<int32_t>(u));
        dst.push_back(static_cast<int32_t>(v));
      }
    }
  }
  GraphSample sample;
  Tensor features = Tensor::from_vector<int32_t>(g.feature, {n, 1});
  sample.graph = graph_from_coo(n, src, dst, CooOptions{}, Tensor(), features);
  sample.y = Tensor::from_vector<int32_t>(g.label, {n});
  return sample;
}

std::string sbm_cache_path(const std::string& name, const SbmOptions& o) {
  return str_cat(cache_dir(o.cache_dir), "/", name, "_seed", o.seed, "_",
                 split_size(name, o, SbmSplit::Train), "_", split_size(name, o, SbmSplit::Val),
                 "_", split_size(name, o, SbmSplit::Test), ".lapiscache");
}

GraphDataset load_pattern(const SbmOptions& options) { return load_sbm("pattern", options); }
GraphDataset load_cluster(const SbmOptions& options) { return load_sbm("cluster", options); }

}  // namespace graph
}  // namespace lapis
