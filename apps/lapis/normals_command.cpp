// `lapis normals INPUT -o OUTPUT [--method pca|mst] [--k K] [--device cpu|cuda]
//                 [--viewpoint x,y,z] [--threads N]`
//
// Reads a point cloud (any format geometry/io.h reads), estimates PCA normals over k
// neighbours, orients them (mst: Hoppe's minimum spanning tree; pca with --viewpoint: toward the
// viewpoint; pca alone: unoriented) and writes the cloud with normals (PLY for .ply outputs).
// Prints the time of each stage. Undefined normals (degenerate neighbourhoods) are written as
// (0, 0, 0) and counted.
#include <chrono>
#include <cstdio>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "apps/lapis/commands.h"
#include "core/check.h"
#include "geometry/io.h"
#include "geometry/knn.h"
#include "geometry/normals.h"
#include "geometry/orientation.h"

namespace lapis {
namespace apps {
namespace {

struct NormalsArgs {
  std::string input;
  std::string output;
  std::string method = "pca";
  int k = 10;
  std::string device = "cpu";
  std::string viewpoint;
  int threads = 0;
};

Eigen::Vector3f parse_viewpoint(const std::string& text) {
  std::vector<float> v;
  std::stringstream ss(text);
  std::string part;
  while (std::getline(ss, part, ',')) {
    try {
      size_t used = 0;
      v.push_back(std::stof(part, &used));
      LAPIS_CHECK(used == part.size(), "normals", "--viewpoint: '", part, "' is not a number");
    } catch (const std::logic_error&) {
      LAPIS_FAIL("normals", "--viewpoint: '", part, "' is not a number");
    }
  }
  LAPIS_CHECK(v.size() == 3, "normals", "--viewpoint needs x,y,z (3 numbers), got '", text, "'");
  return Eigen::Vector3f(v[0], v[1], v[2]);
}

class StageTimer {
 public:
  void start() { t0_ = std::chrono::steady_clock::now(); }
  double stop(const std::string& stage) {
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
    std::printf("  %-12s %9.3f s\n", stage.c_str(), s);
    std::fflush(stdout);
    total_ += s;
    return s;
  }
  double total() const { return total_; }

 private:
  std::chrono::steady_clock::time_point t0_;
  double total_ = 0.0;
};

int run_normals(const NormalsArgs& args) {
  using namespace geometry;
  LAPIS_CHECK(args.k >= 1, "normals", "--k must be at least 1, got ", args.k);
  const bool cuda = args.device == "cuda";
  const bool have_viewpoint = !args.viewpoint.empty();
  LAPIS_CHECK(!(have_viewpoint && args.method == "mst"), "normals",
              "--viewpoint orients the pca normals; it cannot be combined with --method mst");
  const Eigen::Vector3f viewpoint =
      have_viewpoint ? parse_viewpoint(args.viewpoint) : Eigen::Vector3f::Zero();
  const SearchDevice device = cuda ? SearchDevice::CUDA : SearchDevice::CPU;

  StageTimer timer;
  std::printf("lapis normals: %s -> %s (method %s, k %d, device %s)\n", args.input.c_str(),
              args.output.c_str(), args.method.c_str(), args.k, args.device.c_str());
  timer.start();
  PointCloud cloud = read_point_cloud(args.input);
  if (cloud.has_validity()) cloud = cloud.compacted();
  timer.stop("read");
  std::printf("  %lld points\n", static_cast<long long>(cloud.size()));
  LAPIS_CHECK(cloud.size() > args.k, "normals", "--k ", args.k, " needs more than ", args.k,
              " points, ", args.input, " has ", cloud.size());

  KnnResult neighbours;
  NormalEstimate est;
  if (args.method == "mst") {
    // The orientation walks the kNN graph, so the neighbours are kept.
    timer.start();
    KnnOptions options;
    options.k = args.k;
    options.num_threads = args.threads;
    options.device = device;
    neighbours = knn(cloud.positions, options);
    timer.stop(cuda ? "kNN (cuda)" : "kNN");
    timer.start();
    est = normals_from_neighbors(cloud.positions, neighbours.indices, args.threads, device);
    timer.stop(cuda ? "PCA (cuda)" : "PCA");
  } else {
    // kNN and PCA in one pass (on CUDA one kernel; no k neighbours per point stored).
    timer.start();
    NormalOptions options;
    options.k = args.k;
    options.num_threads = args.threads;
    options.device = device;
    est = estimate_normals_pca(cloud.positions, options);
    timer.stop(cuda ? "kNN + PCA (cuda)" : "kNN + PCA");
  }

  if (args.method == "mst") {
    timer.start();
    const OrientationStats stats =
        orient_normals_mst(cloud.positions, est.normals, neighbours.indices);
    timer.stop("orientation");
    std::printf("  MST orientation: %lld component%s, %lld edges, %lld flipped\n",
                static_cast<long long>(stats.components), stats.components == 1 ? "" : "s",
                static_cast<long long>(stats.edges), static_cast<long long>(stats.flipped));
  } else if (have_viewpoint) {
    timer.start();
    orient_normals_toward_viewpoint(cloud.positions, est.normals, viewpoint);
    timer.stop("orientation");
  }

  int64_t undefined = 0;
  for (int64_t i = 0; i < cloud.size(); ++i) {
    if (!est.valid[static_cast<size_t>(i)]) {
      est.normals.row(i).setZero();
      ++undefined;
    }
  }
  if (undefined > 0) {
    std::printf("  %lld points have no defined normal (degenerate neighbourhood): written as 0\n",
                static_cast<long long>(undefined));
  }
  cloud.normals = std::move(est.normals);
  cloud.valid.clear();

  timer.start();
  write_point_cloud(args.output, cloud);
  timer.stop("write");
  std::printf("  %-12s %9.3f s\n", "total", timer.total());
  return 0;
}

}  // namespace

Subcommand add_normals_command(CLI::App& parent) {
  auto args = std::make_shared<NormalsArgs>();
  CLI::App* app = parent.add_subcommand(
      "normals", "Estimate point-cloud normals (PCA over k neighbours, optional orientation)");
  app->add_option("input", args->input, "Input cloud (.ply, .off, .xyz/PCPNet)")
      ->required()
      ->check(CLI::ExistingFile);
  app->add_option("-o,--output", args->output, "Output cloud with normals (.ply recommended)")
      ->required();
  app->add_option("--method", args->method,
                  "pca: unoriented (or toward --viewpoint); mst: Hoppe MST orientation")
      ->check(CLI::IsMember({"pca", "mst"}))
      ->capture_default_str();
  app->add_option("--k", args->k, "Neighbours per point (the point itself included)")
      ->check(CLI::Range(1, 1 << 20))
      ->capture_default_str();
  app->add_option("--device", args->device, "cpu or cuda")
      ->check(CLI::IsMember({"cpu", "cuda"}))
      ->capture_default_str();
  app->add_option("--viewpoint", args->viewpoint, "x,y,z: flip pca normals to face this point");
  app->add_option("--threads", args->threads, "CPU threads (0 = all cores)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  return {app, [args] { return run_normals(*args); }};
}

}  // namespace apps
}  // namespace lapis
