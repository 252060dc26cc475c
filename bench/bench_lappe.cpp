// LapPE benchmark: (a) k=8 on all 12k ZINC subset graphs (TU text files), (b) k=10 on a grid
// plus random extra edges. Prints a markdown table. Side-by-side scipy: bench/lappe_vs_scipy.py.
//   bench_lappe zinc --dir /work/shared/data/zinc/derived --threads 2
//   bench_lappe grid --side 1000 --extra 1000000 --threads 2 [--method lanczos|spectra] [--cuda]
#include <sys/resource.h>
#include <zlib.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "graph/encoding_cache.h"
#include "graph/laplacian_pe.h"

using namespace lapis;
using namespace lapis::graph;

namespace {

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
double peak_mb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss / 1024.0;
}

// Reads a text file, plain or gzipped (`path` or `path.gz`), into lines.
std::vector<std::string> read_lines(const std::string& path) {
  std::string p = path;
  if (!std::ifstream(p).good()) p = path + ".gz";
  gzFile f = gzopen(p.c_str(), "rb");
  if (!f) throw std::runtime_error("cannot open " + path);
  std::string all;
  char buf[1 << 16];
  int n;
  while ((n = gzread(f, buf, sizeof(buf))) > 0) all.append(buf, n);
  gzclose(f);
  std::vector<std::string> lines;
  std::istringstream is(all);
  std::string line;
  while (std::getline(is, line)) if (!line.empty()) lines.push_back(line);
  return lines;
}

// Tiny TU reader: DS_A.txt ("u, v" 1-based) + DS_graph_indicator.txt -> per-graph graphs.
std::vector<Graph> read_tu(const std::string& dir, const std::string& name) {
  const auto ind = read_lines(dir + "/" + name + "_graph_indicator.txt");
  const auto A = read_lines(dir + "/" + name + "_A.txt");
  std::vector<int> gid(ind.size());
  int ng = 0;
  for (size_t i = 0; i < ind.size(); ++i) { gid[i] = std::stoi(ind[i]) - 1; ng = std::max(ng, gid[i] + 1); }
  std::vector<int> first(ng, -1), count(ng, 0);
  for (size_t i = 0; i < gid.size(); ++i) { if (first[gid[i]] < 0) first[gid[i]] = int(i); ++count[gid[i]]; }
  std::vector<std::vector<int32_t>> s(ng), d(ng);
  for (const auto& l : A) {
    const auto c = l.find(',');
    const int u = std::stoi(l.substr(0, c)) - 1, v = std::stoi(l.substr(c + 1)) - 1;
    const int g = gid[u];
    s[g].push_back(u - first[g]);
    d[g].push_back(v - first[g]);
  }
  std::vector<Graph> out;
  for (int g = 0; g < ng; ++g) out.push_back(graph_from_coo(count[g], s[g], d[g]));
  return out;
}

int run(bool zinc_case, const std::string& dir, int k_zinc, int side, int64_t extra, int k_grid,
        const std::string& method, double tol, int degree, bool use_cuda, int threads);

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"LapPE benchmark"};
  app.require_subcommand(1);
  int threads = 2;
  app.add_option("--threads", threads, "threads");
  std::string dir = "/work/shared/data/zinc/derived";
  int k_zinc = 8;
  auto* zinc = app.add_subcommand("zinc", "k=8 on the 12k ZINC subset graphs");
  zinc->add_option("--dir", dir);
  zinc->add_option("--k", k_zinc);
  int side = 1000, k_grid = 10;
  int64_t extra = 1000000;
  std::string method = "lanczos";
  double tol = 1e-5;
  auto* grid = app.add_subcommand("grid", "k=10 on a side x side grid + random extra edges");
  grid->add_option("--side", side);
  grid->add_option("--extra", extra);
  grid->add_option("--k", k_grid);
  grid->add_option("--method", method, "lanczos | spectra | dense");
  grid->add_option("--tol", tol);
  int degree = 12;
  bool use_cuda = false;
  grid->add_option("--degree", degree, "Chebyshev filter degree of the Lanczos path");
  grid->add_flag("--cuda", use_cuda,
                 "Lanczos on the GPU (LapPEOptions::cuda); the CUDA context is created by a "
                 "small untimed warm-up solve first");
  CLI11_PARSE(app, argc, argv);
  try {
    return run(zinc->parsed(), dir, k_zinc, side, extra, k_grid, method, tol, degree, use_cuda,
               threads);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_lappe: %s\n", e.what());
    return 1;
  }
}

namespace {

int run(bool zinc_case, const std::string& dir, int k_zinc, int side, int64_t extra, int k_grid,
        const std::string& method, double tol, int degree, bool use_cuda, int threads) {
  if (zinc_case) {
    double t0 = now();
    std::vector<Graph> graphs;
    for (const char* split : {"train", "val", "test"}) {
      const std::string name = std::string("ZINC_subset_") + split;
      auto g = read_tu(dir + "/" + name, name);
      for (auto& x : g) graphs.push_back(std::move(x));
    }
    const double t_load = now() - t0;
    std::vector<const Graph*> ptrs;
    for (auto& g : graphs) ptrs.push_back(&g);
    LapPEOptions o;
    o.k = k_zinc;
    t0 = now();
    auto pe = compute_laplacian_pe(ptrs, o, threads);
    const double t_pe = now() - t0;
    double maxres = 0.0;
    for (auto& p : pe) maxres = std::max(maxres, p.max_residual);
    std::printf("| case | graphs | threads | load s | LapPE s | max residual | peak MB |\n");
    std::printf("|---|---|---|---|---|---|---|\n");
    std::printf("| ZINC k=%d | %zu | %d | %.3f | %.3f | %.1e | %.0f |\n", k_zinc, graphs.size(),
                threads, t_load, t_pe, maxres, peak_mb());
    return 0;
  }
  // Grid + extra edges, the same generator as bench/lappe_vs_scipy.py (SplitMix64 stream).
  const int64_t N = int64_t(side) * side;
  std::vector<int32_t> s, d;
  for (int i = 0; i < side; ++i) {
    for (int j = 0; j < side; ++j) {
      const int32_t v = i * side + j;
      if (j + 1 < side) { s.push_back(v); d.push_back(v + 1); }
      if (i + 1 < side) { s.push_back(v); d.push_back(v + side); }
    }
  }
  for (int64_t e = 0; e < extra; ++e) {
    s.push_back(static_cast<int32_t>(random_bits(12345, 2 * e) % uint64_t(N)));
    d.push_back(static_cast<int32_t>(random_bits(12345, 2 * e + 1) % uint64_t(N)));
  }
  LapPEOptions o;
  o.k = k_grid;
  o.tol = tol;
  o.num_threads = threads;
  o.filter_degree = degree;
  o.method = method == "spectra" ? EigenMethod::Spectra
             : method == "dense" ? EigenMethod::Dense : EigenMethod::Lanczos;
  o.cuda = use_cuda;
  if (use_cuda) {
    // Untimed warm-up: context creation and cuSPARSE/cuBLAS handles (about a second) are not
    // part of the solve.
    // A random 4-regular-ish graph on 5000 nodes: a well-separated spectrum, so it converges
    // in a few restarts.
    const int64_t wn = 5000;
    std::vector<int32_t> ws, wd;
    for (int64_t e = 0; e < 4 * wn; ++e) {
      ws.push_back(static_cast<int32_t>(e % wn));
      wd.push_back(static_cast<int32_t>(random_bits(777, uint64_t(e)) % uint64_t(wn)));
    }
    LapPEOptions wo = o;
    wo.method = EigenMethod::Lanczos;
    laplacian_pe(wn, ws, wd, wo);
  }
  const double t0 = now();
  LapPE pe = laplacian_pe(N, s, d, o);
  const double t = now() - t0;
  std::printf("| case | N | method | threads | time s | matvecs | max residual | peak MB |\n");
  std::printf("|---|---|---|---|---|---|---|---|\n");
  std::printf("| grid %dx%d + %lld edges, k=%d | %lld | %s | %d | %.2f | %lld | %.1e | %.0f |\n",
              side, side, (long long)extra, k_grid, (long long)N,
              (method + (use_cuda ? " (CUDA)" : "")).c_str(), threads, t,
              (long long)pe.matvecs, pe.max_residual, peak_mb());
  std::printf("eigenvalues:");
  for (double l : pe.eigenvalues) std::printf(" %.6f", l);
  std::printf("\n");
  return 0;
}

}  // namespace
