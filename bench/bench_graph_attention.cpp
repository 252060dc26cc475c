// bench_graph_attention: forward + backward time of the fused graph-transformer attention
// (kernels/graph_attention.h) and of the unfused SDDMM -> segment softmax -> SpMM path, on
//   (a) a ZINC-like batch: 128 molecule-like graphs (~23 nodes, ~50 directed edges each), and
//   (b) a large random graph (default 1M nodes, 10M edges), H = 8, D = 8 and 16, and
//   (c) a power-law graph of the same size (skewed in-degrees: hubs), H = 8, D = 8,
// plus the single-head SpMM and SDDMM forwards, native kernels vs cuSPARSE (the Auto choices), next
// to a copy-bandwidth ceiling measured in the same run (Tensor::copy_from of 1 GiB on CUDA).
//
//   bench_graph_attention [--device cpu|cuda] [--nodes N] [--edges E] [--zinc-graphs B]
//                         [--repeats R] [--copy-mib M] [--cases zinc random power-law]
//                         [--dims 8 16] (head dims of the random graph)
//
// Times: median of R runs after warmup, cuda_synchronize() around each. Bytes are minimal: every
// input read once, every output written once (the graph's index arrays included), so GB/s is a
// lower bound on the traffic really done. The unfused path computes a max-subtracted softmax
// without edge features (the generic building blocks), so it is a cost comparison, not the
// same numbers.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>

#include "core/check.h"
#include "core/device.h"
#include "core/random.h"
#include "core/tensor.h"
#include "kernels/graph_attention.h"
#include "kernels/graph_view.h"
#include "kernels/sddmm.h"
#include "kernels/segment_softmax.h"
#include "kernels/spmm.h"

namespace lapis {
namespace {

double time_ms(int warmup, int repeats, const std::function<void()>& fn) {
  for (int i = 0; i < warmup; ++i) fn();
  cuda_synchronize();
  std::vector<double> ms;
  for (int i = 0; i < repeats; ++i) {
    cuda_synchronize();
    const auto start = std::chrono::steady_clock::now();
    fn();
    cuda_synchronize();
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
                     .count());
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

// CSR by destination + CSC by source from (src, dst) pairs (counting sort, host).
CsrGraphView build_graph(int64_t n, const std::vector<std::pair<int32_t, int32_t>>& edges,
                         Device dev) {
  const int64_t e = static_cast<int64_t>(edges.size());
  std::vector<int32_t> in_ptr(n + 1, 0), src(e), out_ptr(n + 1, 0), out_edge(e), out_dst(e);
  for (const auto& [s, d] : edges) {
    in_ptr[d + 1]++;
    out_ptr[s + 1]++;
  }
  for (int64_t i = 0; i < n; ++i) {
    in_ptr[i + 1] += in_ptr[i];
    out_ptr[i + 1] += out_ptr[i];
  }
  std::vector<int32_t> dst_of(e);
  {
    std::vector<int32_t> fill(in_ptr.begin(), in_ptr.end() - 1);
    for (const auto& [s, d] : edges) {
      src[fill[d]] = s;
      dst_of[fill[d]] = d;
      ++fill[d];
    }
  }
  {
    std::vector<int32_t> fill(out_ptr.begin(), out_ptr.end() - 1);
    for (int64_t k = 0; k < e; ++k) {
      const int32_t s = src[k];
      out_edge[fill[s]] = static_cast<int32_t>(k);
      out_dst[fill[s]] = dst_of[k];
      ++fill[s];
    }
  }
  auto host = [&](const std::vector<int32_t>& v) {
    return Tensor::from_vector<int32_t>(v, {static_cast<int64_t>(v.size())});
  };
  auto t = [&](const std::vector<int32_t>& v) { return host(v).to(dev); };
  CsrGraphView g = make_graph_view(t(in_ptr), t(src), t(out_ptr), t(out_edge), t(out_dst));
  set_degree_bounds(g, host(in_ptr), host(out_ptr));  // as a user with the graph on the host
  return g;
}

// Molecule-like graphs: a random tree of 9..37 nodes plus a ring closure every ~8 nodes, both
// directions (ZINC averages ~23 nodes and ~50 directed edges).
CsrGraphView zinc_like(int64_t graphs, Device dev, int64_t& n_out) {
  std::mt19937 rng(1);
  std::vector<std::pair<int32_t, int32_t>> edges;
  int32_t base = 0;
  for (int64_t b = 0; b < graphs; ++b) {
    const int32_t n = std::uniform_int_distribution<int32_t>(9, 37)(rng);
    for (int32_t i = 1; i < n; ++i) {
      const int32_t p = std::uniform_int_distribution<int32_t>(std::max(0, i - 3), i - 1)(rng);
      edges.emplace_back(base + i, base + p);
      edges.emplace_back(base + p, base + i);
    }
    for (int32_t r = 0; r < n / 8; ++r) {
      const int32_t i = std::uniform_int_distribution<int32_t>(0, n - 1)(rng);
      const int32_t j = std::uniform_int_distribution<int32_t>(0, n - 1)(rng);
      if (i == j) continue;
      edges.emplace_back(base + i, base + j);
      edges.emplace_back(base + j, base + i);
    }
    base += n;
  }
  n_out = base;
  return build_graph(base, edges, dev);
}

CsrGraphView random_large(int64_t n, int64_t e, Device dev) {
  std::mt19937_64 rng(2);
  std::uniform_int_distribution<int32_t> pick(0, static_cast<int32_t>(n - 1));
  std::vector<std::pair<int32_t, int32_t>> edges(e);
  for (auto& p : edges) p = {pick(rng), pick(rng)};
  return build_graph(n, edges, dev);
}

// Skewed degrees: destinations drawn from a Zipf-like law (P(node i) ~ 1 / (i + 1)^0.9 over a
// random relabelling), sources uniform, so a few hubs receive a large share of the edges (the
// largest in-degree is printed). Load balance of the row-per-group kernels shows here.
CsrGraphView power_law_large(int64_t n, int64_t e, Device dev, int64_t& max_in_degree) {
  std::mt19937_64 rng(4);
  std::vector<double> cdf(static_cast<size_t>(n));
  double acc = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    acc += std::pow(static_cast<double>(i + 1), -0.9);
    cdf[static_cast<size_t>(i)] = acc;
  }
  std::vector<int32_t> label(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) label[static_cast<size_t>(i)] = static_cast<int32_t>(i);
  std::shuffle(label.begin(), label.end(), rng);
  std::uniform_real_distribution<double> u(0.0, acc);
  std::uniform_int_distribution<int32_t> pick(0, static_cast<int32_t>(n - 1));
  std::vector<std::pair<int32_t, int32_t>> edges(static_cast<size_t>(e));
  std::vector<int64_t> in_degree(static_cast<size_t>(n), 0);
  for (auto& p : edges) {
    const auto it = std::lower_bound(cdf.begin(), cdf.end(), u(rng));
    const int64_t rank = std::min<int64_t>(it - cdf.begin(), n - 1);
    p = {pick(rng), label[static_cast<size_t>(rank)]};
    ++in_degree[static_cast<size_t>(p.second)];
  }
  max_in_degree = *std::max_element(in_degree.begin(), in_degree.end());
  return build_graph(n, edges, dev);
}

struct Row {
  std::string graph, path, shape;
  double ms, bytes;
};

void bench_case(std::vector<Row>& rows, const std::string& name, const CsrGraphView& g, int64_t h,
                int64_t d, Device dev, int warmup, int repeats) {
  Generator gen(3);
  const int64_t n = g.num_nodes, e = g.num_edges, hd = h * d;
  const double f = 4.0, nf = static_cast<double>(n), ef = static_cast<double>(e);
  const double graph_csr = 4.0 * (nf + 1 + ef), graph_csc = 4.0 * (nf + 1 + 2 * ef);
  const std::string shape = "N=" + std::to_string(n) + " E=" + std::to_string(e) +
                            " H=" + std::to_string(h) + " D=" + std::to_string(d);
  auto rnd = [&](Shape s, double sd) { return Tensor::randn(s, gen, Dtype::F32, dev, 0.0, sd); };
  Tensor q = rnd({n, h, d}, 0.5), k = rnd({n, h, d}, 0.5), v = rnd({n, h, d}, 1.0);
  Tensor ep = rnd({e, h, d}, 1.0), go = rnd({n, h, d}, 1.0), gt = rnd({e, h, d}, 1.0);
  Tensor out = Tensor::empty({n, h, d}, Dtype::F32, dev), eo = Tensor::empty({e, h, d}, Dtype::F32, dev);
  Tensor dq = out.clone(), dk = out.clone(), dv = out.clone(), de = eo.clone();
  GraphAttentionContext ctx = make_graph_attention_context(n, e, h, Dtype::F32, dev);

  // Fused, with edge features. Forward: read Q, K, V, E, CSR; write out, edge_out, score, z.
  const double fwd_bytes = f * (3 * nf * hd + ef * hd) + graph_csr + f * (nf * hd + ef * hd + ef * h + nf * h);
  // Backward: read dout, dedge_out, out, Q, K, V, E, score, z, CSR + CSC; write dQ, dK, dV, dE.
  const double bwd_bytes = f * (6 * nf * hd + 2 * ef * hd + ef * h + nf * h) + graph_csr +
                           graph_csc + f * (3 * nf * hd + ef * hd);
  rows.push_back({name, "fused fwd", shape,
                  time_ms(warmup, repeats, [&] { graph_attention_forward(out, eo, ctx, g, q, k, v, ep); }),
                  fwd_bytes});
  rows.push_back({name, "fused bwd", shape, time_ms(warmup, repeats, [&] {
                    graph_attention_backward(dq, dk, dv, de, go, gt, g, q, k, v, ep, out, ctx);
                  }), bwd_bytes});
  rows.push_back({name, "fused fwd+bwd", shape, time_ms(warmup, repeats, [&] {
                    graph_attention_forward(out, eo, ctx, g, q, k, v, ep);
                    graph_attention_backward(dq, dk, dv, de, go, gt, g, q, k, v, ep, out, ctx);
                  }), fwd_bytes + bwd_bytes});

  // Unfused: score = SDDMM(Q, K) / sqrt(D); alpha = segment_softmax; out = SpMM(alpha, V).
  Tensor score = Tensor::empty({e, h}, Dtype::F32, dev), alpha = score.clone();
  Tensor dalpha = score.clone(), dscore = score.clone();
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
  const double uf_fwd = (f * 2 * nf * hd + graph_csr + f * ef * h) + (2 * f * ef * h + 4 * (nf + 1)) +
                        (f * (ef * h + nf * hd) + graph_csr + f * nf * hd);
  const double uf_bwd = (f * (2 * nf * hd + ef * h) + graph_csr + graph_csc + f * (ef * h + nf * hd)) +
                        (3 * f * ef * h + 4 * (nf + 1)) +
                        (f * (ef * h + 2 * nf * hd) + graph_csr + graph_csc + f * 2 * nf * hd);
  rows.push_back({name, "unfused fwd+bwd", shape, time_ms(warmup, repeats, [&] {
                    sddmm_forward(score, g, q, k, scale);
                    segment_softmax_forward(alpha, score, g.in_ptr, g.max_in_degree);
                    spmm_forward(out, g, alpha, v);
                    spmm_backward(dalpha, dv, go, g, alpha, v);
                    segment_softmax_backward(dscore, dalpha, alpha, g.in_ptr, g.max_in_degree);
                    sddmm_backward(dq, dk, dscore, g, q, k, scale);
                  }), uf_fwd + uf_bwd});

  // Single-head scalar-weight SpMM forward over C = H*D columns: native vs cuSPARSE.
  if (d == 8) {
    Tensor x1 = v.reshape({n, 1, hd}), o1 = out.reshape({n, 1, hd});
    Tensor w1 = rnd({e, 1}, 1.0);
    const double b1 = f * (ef + 2 * nf * hd) + graph_csr;
    const std::string s1 = "N=" + std::to_string(n) + " E=" + std::to_string(e) + " H=1 D=" +
                           std::to_string(hd);
    rows.push_back({name, "spmm H=1 native", s1, time_ms(warmup, repeats, [&] {
                      spmm_forward(o1, g, w1, x1, SpmmAlgo::Native);
                    }), b1});
    if (dev.is_cuda()) {
      rows.push_back({name, "spmm H=1 cusparse", s1, time_ms(warmup, repeats, [&] {
                        spmm_forward(o1, g, w1, x1, SpmmAlgo::CuSparse);
                      }), b1});
    }
    // Single-head SDDMM over D = H*D columns: native vs cuSPARSE. Reads A, B, CSR; writes [E].
    Tensor a1 = q.reshape({n, 1, hd}), s1e = Tensor::empty({e, 1}, Dtype::F32, dev);
    const double bs = f * (2 * nf * hd + ef) + graph_csr;
    rows.push_back({name, "sddmm H=1 native", s1, time_ms(warmup, repeats, [&] {
                      sddmm_forward(s1e, g, a1, x1, scale, SddmmAlgo::Native);
                    }), bs});
    if (dev.is_cuda()) {
      rows.push_back({name, "sddmm H=1 cusparse", s1, time_ms(warmup, repeats, [&] {
                        sddmm_forward(s1e, g, a1, x1, scale, SddmmAlgo::CuSparse);
                      }), bs});
    }
  }
}

int run(int argc, char** argv) {
  CLI::App app{"Times the sparse graph-attention kernels against a copy-bandwidth ceiling",
               "bench_graph_attention"};
  std::string device_name = "cuda";
  int64_t nodes = 1000000, edges = 10000000, zinc_graphs = 128, copy_mib = -1;
  int repeats = -1;
  std::vector<std::string> cases = {"zinc", "random", "power-law"};
  std::vector<int64_t> dims = {8, 16};
  app.add_option("--device", device_name, "cpu or cuda")->capture_default_str();
  app.add_option("--cases", cases, "Cases to run: zinc, random, power-law")
      ->check(CLI::IsMember({"zinc", "random", "power-law"}))
      ->capture_default_str();
  app.add_option("--dims", dims, "Head dims D of the large random graph (H = 8)")
      ->check(CLI::Range(1, 128))
      ->capture_default_str();
  app.add_option("--nodes", nodes, "Nodes of the large random graph (0 skips it)")->capture_default_str();
  app.add_option("--edges", edges, "Edges of the large random graph")->capture_default_str();
  app.add_option("--zinc-graphs", zinc_graphs, "Graphs in the ZINC-like batch")->capture_default_str();
  app.add_option("--repeats", repeats, "Timed runs per case, median reported (default 20 / 3)");
  app.add_option("--copy-mib", copy_mib, "Size of the copy ceiling (default 1024 / 256)");
  CLI11_PARSE(app, argc, argv);
  const Device dev = Device::parse(device_name);
  const bool gpu = dev.is_cuda();
  if (repeats < 1) repeats = gpu ? 20 : 3;
  if (copy_mib < 1) copy_mib = gpu ? 1024 : 256;
  const int warmup = gpu ? 3 : 1;
  LAPIS_CHECK(!gpu || cuda_available(), "bench_graph_attention", "no CUDA device");
  if (gpu) std::printf("device: %s\n", cuda_device_description(0).c_str());

  const int64_t copy_elems = copy_mib * (int64_t{1} << 18);
  double copy_gbs = 0;
  {
    Tensor src = Tensor::full({copy_elems}, 1.0, Dtype::F32, dev);
    Tensor dst = Tensor::empty({copy_elems}, Dtype::F32, dev);
    const double ms = time_ms(warmup, repeats, [&] { dst.copy_from(src); });
    copy_gbs = 2.0 * static_cast<double>(src.nbytes()) / (ms * 1e-3) / 1e9;
  }
  std::printf("copy ceiling (%lld MiB, %s): %.1f GB/s (read + write)\n\n",
              static_cast<long long>(copy_mib), gpu ? "device to device" : "host", copy_gbs);

  // Rows are printed as each case finishes (a long case or a time limit keeps the earlier rows).
  std::printf("| graph | path | shape | time (ms) | GB/s (minimal bytes) | %% of copy |\n");
  std::printf("|---|---|---|---:|---:|---:|\n");
  std::fflush(stdout);
  std::vector<Row> rows;
  size_t printed = 0;
  auto print_new_rows = [&] {
    for (; printed < rows.size(); ++printed) {
      const Row& r = rows[printed];
      const double gbs = r.bytes / (r.ms * 1e-3) / 1e9;
      std::printf("| %s | %s | %s | %.4f | %.1f | %.1f |\n", r.graph.c_str(), r.path.c_str(),
                  r.shape.c_str(), r.ms, gbs, 100.0 * gbs / copy_gbs);
    }
    std::fflush(stdout);
  };
  auto wanted = [&](const char* name) {
    return std::find(cases.begin(), cases.end(), name) != cases.end();
  };
  if (wanted("zinc")) {
    int64_t zn = 0;
    const CsrGraphView zinc = zinc_like(zinc_graphs, dev, zn);
    bench_case(rows, "zinc-like", zinc, 8, 8, dev, warmup, repeats);
    print_new_rows();
  }
  if (nodes > 0 && wanted("random")) {
    std::fprintf(stderr, "building the large graph (%lld nodes, %lld edges)...\n",
                 static_cast<long long>(nodes), static_cast<long long>(edges));
    const CsrGraphView big = random_large(nodes, edges, dev);
    for (int64_t d : dims) {
      bench_case(rows, "large random", big, 8, d, dev, warmup, repeats);
      print_new_rows();
    }
  }
  if (nodes > 0 && wanted("power-law")) {
    int64_t max_in = 0;
    const CsrGraphView skewed = power_law_large(nodes, edges, dev, max_in);
    std::fprintf(stderr, "power-law graph: largest in-degree %lld\n",
                 static_cast<long long>(max_in));
    bench_case(rows, "large power-law (max in-degree " + std::to_string(max_in) + ")", skewed, 8,
               8, dev, warmup, repeats);
    print_new_rows();
  }
  return 0;
}

}  // namespace
}  // namespace lapis

int main(int argc, char** argv) {
  try {
    return lapis::run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_graph_attention: %s\n", e.what());
    return 1;
  }
}
