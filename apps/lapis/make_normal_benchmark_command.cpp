// `lapis make-normal-benchmark MESH_DIR OUT_DIR [--points N] [--eval-points M] [--seed S]`
//
// Builds a PCPNet-style normal estimation benchmark from the meshes (.ply/.off with faces,
// searched recursively) in MESH_DIR. Per mesh <stem>, with NAME = <stem><N/1000>k (e.g.
// fandisk100k), it writes NAME<variant>.xyz / .normals / .pidx in OUT_DIR, PCPNet's names:
//   NAME                               clean, N points uniform by area, exact face normals
//   NAME_noise_white_1.00e-02          + Gaussian noise, sigma 0.12 % of the bbox diagonal
//   NAME_noise_white_5.00e-02          + sigma 0.6 %
//   NAME_noise_white_1.00e-01          + sigma 1.2 %   (PCPNet's tags: the same 1:5:10 ratio)
//   NAME_ddist_minmax                  gradient density (geometry/sampling.h)
//   NAME_ddist_minmax_layers           striped density
// The clean and noisy clouds share points and the .pidx (M indices, seeded); the density
// variants have their own. Lists as in PCPNet: testset_no_noise.txt, testset_low_noise.txt,
// testset_med_noise.txt, testset_high_noise.txt, testset_vardensity_striped.txt,
// testset_vardensity_gradient.txt, testset_all.txt, and a README.txt with the parameters.
// Everything is deterministic for a seed; files are written atomically.
#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "apps/lapis/commands.h"
#include "core/check.h"
#include "core/random.h"
#include "geometry/io.h"
#include "geometry/io_util.h"
#include "geometry/sampling.h"

namespace lapis {
namespace apps {
namespace {

namespace fs = std::filesystem;

struct BenchArgs {
  std::string mesh_dir;
  std::string out_dir;
  int64_t points = 100000;
  int64_t eval_points = 5000;
  uint64_t seed = 2024;
};

uint64_t hash_name(const std::string& s) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

std::string join_lines(const std::vector<std::string>& v) {
  std::string out;
  for (const std::string& s : v) out += s + "\n";
  return out;
}

int run_make_normal_benchmark(const BenchArgs& args) {
  using namespace lapis::geometry;
  const char* op = "make-normal-benchmark";
  LAPIS_CHECK(args.points > 0, op, "--points must be > 0, got ", args.points);
  LAPIS_CHECK(args.eval_points > 0, op, "--eval-points must be > 0, got ", args.eval_points);
  std::error_code ec;
  LAPIS_CHECK(fs::is_directory(args.mesh_dir, ec), op, "'", args.mesh_dir,
              "' is not a directory");
  std::vector<fs::path> meshes;
  for (const auto& entry : fs::recursive_directory_iterator(args.mesh_dir, ec)) {
    if (!entry.is_regular_file()) continue;
    const std::string ext = geometry::detail::lower_extension(entry.path().string());
    if (ext == ".ply" || ext == ".off") {
      meshes.push_back(entry.path());
    } else if (ext == ".gz") {
      std::printf("skipping %s (compressed: gunzip it first)\n", entry.path().c_str());
    }
  }
  std::sort(meshes.begin(), meshes.end());
  LAPIS_CHECK(!meshes.empty(), op, "no .ply or .off meshes in '", args.mesh_dir, "'");
  fs::create_directories(args.out_dir, ec);
  LAPIS_CHECK(fs::is_directory(args.out_dir), op, "cannot create '", args.out_dir, "' (",
              ec.message(), ")");

  const std::string size_tag = args.points % 1000 == 0
                                   ? std::to_string(args.points / 1000) + "k"
                                   : std::to_string(args.points);
  struct Noise { const char* tag; double sigma; };
  const Noise noises[3] = {{"_noise_white_1.00e-02", 0.0012},
                           {"_noise_white_5.00e-02", 0.006},
                           {"_noise_white_1.00e-01", 0.012}};
  std::vector<std::string> clean, low, med, high, striped, gradient, all_names;
  std::vector<std::string> used_names;
  const auto t_all = std::chrono::steady_clock::now();
  for (const fs::path& path : meshes) {
    const auto t0 = std::chrono::steady_clock::now();
    const TriangleMesh mesh = read_triangle_mesh(path.string());
    if (mesh.num_faces() == 0) {
      std::printf("skipping %s (no faces)\n", path.c_str());
      continue;
    }
    std::string name = path.stem().string() + size_tag;
    for (char& c : name) {
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-') c = '_';
    }
    LAPIS_CHECK(std::find(used_names.begin(), used_names.end(), name) == used_names.end(), op,
                "two meshes give the shape name '", name, "' (rename one of them)");
    used_names.push_back(name);
    const uint64_t shape_seed = mix64(args.seed ^ hash_name(path.stem().string()));
    const std::string base = (fs::path(args.out_dir) / name).string();

    SampleOptions o;
    o.num_points = args.points;
    o.seed = shape_seed;
    const PointCloud c = sample_mesh(mesh, o);
    const Indices pidx = choose_evaluation_subset(c.size(), args.eval_points, shape_seed + 1);
    write_pcpnet(base + ".xyz", c, pidx);
    clean.push_back(name);
    for (int k = 0; k < 3; ++k) {
      const PointCloud noisy = add_gaussian_noise(c, noises[k].sigma, shape_seed + 10 + k);
      write_pcpnet(base + noises[k].tag + ".xyz", noisy, pidx);
      (k == 0 ? low : k == 1 ? med : high).push_back(name + noises[k].tag);
    }
    for (int v = 0; v < 2; ++v) {
      SampleOptions d = o;
      d.density = v == 0 ? DensityVariant::gradient : DensityVariant::striped;
      d.seed = shape_seed + 20 + v;
      const PointCloud dc = sample_mesh(mesh, d);
      const Indices dp = choose_evaluation_subset(dc.size(), args.eval_points, d.seed + 1);
      const std::string tag = v == 0 ? "_ddist_minmax" : "_ddist_minmax_layers";
      write_pcpnet(base + tag + ".xyz", dc, dp);
      (v == 0 ? gradient : striped).push_back(name + tag);
    }
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("%-28s %7lld vertices %7lld faces -> 6 clouds of %lld points  %.2f s\n",
                name.c_str(), static_cast<long long>(mesh.num_vertices()),
                static_cast<long long>(mesh.num_faces()), static_cast<long long>(args.points),
                secs);
    std::fflush(stdout);
  }
  LAPIS_CHECK(!clean.empty(), op, "no mesh with faces in '", args.mesh_dir, "'");
  auto list = [&](const char* file, const std::vector<std::string>& names) {
    geometry::detail::write_file_atomic((fs::path(args.out_dir) / file).string(),
                                        join_lines(names), op);
    all_names.insert(all_names.end(), names.begin(), names.end());
  };
  list("testset_no_noise.txt", clean);
  list("testset_low_noise.txt", low);
  list("testset_med_noise.txt", med);
  list("testset_high_noise.txt", high);
  list("testset_vardensity_striped.txt", striped);
  list("testset_vardensity_gradient.txt", gradient);
  geometry::detail::write_file_atomic((fs::path(args.out_dir) / "testset_all.txt").string(),
                                      join_lines(all_names), op);
  const std::string readme = str_cat(
      "PCPNet-style normal benchmark built by `lapis make-normal-benchmark`.\n"
      "meshes: ", args.mesh_dir, "\npoints per cloud: ", args.points,
      "\nevaluation points (.pidx): ", args.eval_points, "\nseed: ", args.seed,
      "\nnoise: Gaussian, sigma = 0.12% / 0.6% / 1.2% of the bounding-box diagonal "
      "(_noise_white_1.00e-02 / 5.00e-02 / 1.00e-01)\n"
      "density: _ddist_minmax = gradient (w = 1 - 0.9 t along the longest bbox axis), "
      "_ddist_minmax_layers = striped (10 bands, density 1 / 0.2)\n"
      "normals: exact face normals of the sampled face (noise does not change them)\n");
  geometry::detail::write_file_atomic((fs::path(args.out_dir) / "README.txt").string(), readme,
                                      op);
  const double total =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t_all).count();
  std::printf("wrote %zu clouds for %zu shapes to %s in %.2f s\n", all_names.size(),
              clean.size(), args.out_dir.c_str(), total);
  return 0;
}

}  // namespace

Subcommand add_make_normal_benchmark_command(CLI::App& parent) {
  auto args = std::make_shared<BenchArgs>();
  CLI::App* app = parent.add_subcommand(
      "make-normal-benchmark",
      "Build a PCPNet-style normal benchmark (.xyz/.normals/.pidx: clean, 3 noise levels, "
      "striped and gradient density) from the meshes in a directory");
  app->add_option("MESH_DIR", args->mesh_dir, "Directory with .ply/.off meshes (recursive)")
      ->required();
  app->add_option("OUT_DIR", args->out_dir, "Output directory (created)")->required();
  app->add_option("--points", args->points, "Points per cloud")->capture_default_str();
  app->add_option("--eval-points", args->eval_points, "Evaluation subset size (.pidx)")
      ->capture_default_str();
  app->add_option("--seed", args->seed, "Seed of every random choice")->capture_default_str();
  return {app, [args] { return run_make_normal_benchmark(*args); }};
}

}  // namespace apps
}  // namespace lapis
