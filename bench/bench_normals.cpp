// bench_normals: PCA normals (k = 10) and MST orientation, Lapis next to PCL
// (NormalEstimationOMP) and Open3D (EstimateNormals + OrientNormalsConsistentTangentPlane), on
// the same clouds, same machine, same run. Prints a markdown table of median times and
// unoriented / oriented RMSE (degrees, on each cloud's 5000-point evaluation subset).
//
//   bench_normals [--pcpnet DIR] [--mesh FILE]... [--points N] [--k K] [--threads T]
//                 [--repeats R] [--cuda-points N]
//
// Clouds: the PCPNet armadillo (DIR/armadillo100k.xyz[.gz] + .normals[.gz] + .pidx; gzipped
// files are decompressed to /tmp first) and N points sampled uniformly (seed 1) from each mesh,
// with exact face normals as ground truth and a seeded 5000-point evaluation subset.
// Times: Lapis "PCA normals" = KD-tree + kNN + PCA; Lapis "orientation" = its own kNN graph +
// MST + propagation (the same work Open3D's OrientNormalsConsistentTangentPlane(k) does);
// PCL = NormalEstimationOMP::compute with a KdTree (tree build included); Open3D =
// EstimateNormals(KNN(k)) and OrientNormalsConsistentTangentPlane(k). Conversions to the
// peers' types are not timed. With a GPU, a CUDA row gives PCA normals throughput on
// --cuda-points points, with and without host<->device transfers.
#include <sys/stat.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "core/check.h"
#include "core/cuda_api.h"
#include "core/device.h"
#include "geometry/cuda/normals_cuda.h"
#include "geometry/io.h"
#include "geometry/knn.h"
#include "geometry/normal_metrics.h"
#include "geometry/normals.h"
#include "geometry/orientation.h"
#include "geometry/sampling.h"

#if defined(LAPIS_BENCH_WITH_PCL)
#include <pcl/features/normal_3d_omp.h>
#include <pcl/point_cloud.h>
#include <pcl/point_types.h>
#include <pcl/search/kdtree.h>
#endif
#if defined(LAPIS_BENCH_WITH_OPEN3D)
#include <open3d/geometry/KDTreeSearchParam.h>
#include <open3d/geometry/PointCloud.h>
#endif

namespace lapis {
namespace {

using geometry::Indices;
using geometry::NormalMetrics;
using geometry::PointCloud;
using geometry::Points;

struct Shape {
  std::string name;
  PointCloud cloud;  // positions + ground-truth normals
  Indices eval;      // evaluation subset
};

struct Row {
  std::string shape, method;
  int64_t points;
  double seconds;
  double unoriented = -1, oriented = -1;  // RMSE in degrees, < 0 = not applicable
  std::string note;
};

std::string fmt_deg(double v);

// Appends a row and echoes it to stderr at once, so a long run keeps its partial results.
void add_row(std::vector<Row>& rows, const Row& r) {
  std::fprintf(stderr, "  %s | %s | %.4f s | %s | %s | %s\n", r.shape.c_str(), r.method.c_str(),
               r.seconds, fmt_deg(r.unoriented).c_str(), fmt_deg(r.oriented).c_str(),
               r.note.c_str());
  rows.push_back(r);
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Median of `repeats` runs of fn (fn is timed as a whole; `setup` runs untimed before each).
double median_seconds(
    int repeats, const std::function<void()>& fn, const std::function<void()>& setup = [] {}) {
  std::vector<double> s;
  for (int r = 0; r < repeats; ++r) {
    setup();
    cuda_synchronize();
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    cuda_synchronize();
    s.push_back(seconds_since(t0));
  }
  std::sort(s.begin(), s.end());
  return s[s.size() / 2];
}

bool file_exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

// path or path.gz; a gzipped file is decompressed into /tmp/lapis_bench_normals/.
std::string plain_file(const std::string& path) {
  if (file_exists(path)) return path;
  const std::string gz = path + ".gz";
  LAPIS_CHECK(file_exists(gz), "bench_normals", "neither ", path, " nor ", gz, " exists");
  const std::string dir = "/tmp/lapis_bench_normals";
  ::mkdir(dir.c_str(), 0755);
  const std::string out = dir + "/" + path.substr(path.find_last_of('/') + 1);
  if (!file_exists(out)) {
    const std::string tmp = out + ".part";
    const std::string cmd =
        "gzip -dc '" + gz + "' > '" + tmp + "' && mv '" + tmp + "' '" + out + "'";
    LAPIS_CHECK(std::system(cmd.c_str()) == 0, "bench_normals", "could not decompress ", gz);
  }
  return out;
}

Shape load_pcpnet(const std::string& dir, const std::string& stem) {
  const std::string xyz = plain_file(dir + "/" + stem + ".xyz");
  plain_file(dir + "/" + stem + ".normals");  // next to the .xyz in /tmp when gzipped
  const std::string pidx_src = dir + "/" + stem + ".pidx";
  if (xyz.rfind("/tmp/lapis_bench_normals/", 0) == 0 && file_exists(pidx_src)) {
    const std::string dst = "/tmp/lapis_bench_normals/" + stem + ".pidx";
    if (!file_exists(dst)) std::system(("cp '" + pidx_src + "' '" + dst + "'").c_str());
  }
  geometry::PcpnetShape s = geometry::read_pcpnet(xyz);
  Shape shape{"pcpnet " + stem, std::move(s.cloud), std::move(s.eval_indices)};
  if (shape.eval.empty())
    shape.eval = geometry::choose_evaluation_subset(shape.cloud.size(), 5000, 1);
  return shape;
}

Shape load_mesh(const std::string& path, int64_t points) {
  const std::string file = plain_file(path);
  const geometry::TriangleMesh mesh = geometry::read_triangle_mesh(file);
  Shape shape;
  shape.name = file.substr(file.find_last_of('/') + 1) + " (sampled)";
  shape.cloud = geometry::sample_mesh_uniform(mesh, points, 1);
  shape.eval = geometry::choose_evaluation_subset(shape.cloud.size(), 5000, 1);
  return shape;
}

// NaN normals (undefined) count as 90 degrees: replace them by zero vectors for the metrics.
NormalMetrics metrics(const Shape& s, Points pred) {
  for (int64_t i = 0; i < pred.rows(); ++i) {
    if (!pred.row(i).allFinite()) pred.row(i).setZero();
  }
  return geometry::normal_metrics(pred, s.cloud.normals, s.eval);
}

void run_lapis(const Shape& s, int k, int threads, int repeats, std::vector<Row>& rows) {
  geometry::NormalOptions o;
  o.k = k;
  o.num_threads = threads;
  geometry::NormalEstimate est;
  const double t_pca =
      median_seconds(repeats, [&] { est = geometry::estimate_normals_pca(s.cloud.positions, o); });
  const NormalMetrics m = metrics(s, est.normals);
  add_row(rows, {s.name, "Lapis PCA normals (CPU)", s.cloud.size(), t_pca, m.unoriented_rmse_deg,
                 -1, ""});
  Points oriented;
  geometry::OrientationStats stats;
  const double t_orient = median_seconds(
      repeats,
      [&] { stats = geometry::orient_normals_mst(s.cloud.positions, oriented, k, threads); },
      [&] { oriented = est.normals; });
  const NormalMetrics mo = metrics(s, oriented);
  add_row(rows, {s.name, "Lapis MST orientation", s.cloud.size(), t_orient, mo.unoriented_rmse_deg,
                 mo.oriented_rmse_deg,
                 std::to_string(stats.components) + " component(s)" +
                     (mo.flipped ? ", whole-shape flip" : "")});
}

#if defined(LAPIS_BENCH_WITH_PCL)
void run_pcl(const Shape& s, int k, int threads, int repeats, std::vector<Row>& rows) {
  pcl::PointCloud<pcl::PointXYZ>::Ptr cloud(new pcl::PointCloud<pcl::PointXYZ>);
  cloud->resize(static_cast<size_t>(s.cloud.size()));
  for (int64_t i = 0; i < s.cloud.size(); ++i) {
    (*cloud)[static_cast<size_t>(i)] =
        pcl::PointXYZ(s.cloud.positions(i, 0), s.cloud.positions(i, 1), s.cloud.positions(i, 2));
  }
  pcl::PointCloud<pcl::Normal> normals;
  const double t = median_seconds(repeats, [&] {
    pcl::NormalEstimationOMP<pcl::PointXYZ, pcl::Normal> ne(static_cast<unsigned>(threads));
    ne.setInputCloud(cloud);
    ne.setSearchMethod(
        pcl::search::KdTree<pcl::PointXYZ>::Ptr(new pcl::search::KdTree<pcl::PointXYZ>));
    ne.setKSearch(k);
    ne.compute(normals);
  });
  Points pred(s.cloud.size(), 3);
  for (int64_t i = 0; i < s.cloud.size(); ++i) {
    const pcl::Normal& n = normals[static_cast<size_t>(i)];
    pred.row(i) << n.normal_x, n.normal_y, n.normal_z;
  }
  const NormalMetrics m = metrics(s, pred);
  add_row(rows, {s.name, "PCL NormalEstimationOMP", s.cloud.size(), t, m.unoriented_rmse_deg, -1,
                 "flipped toward viewpoint (0,0,0)"});
}
#endif

#if defined(LAPIS_BENCH_WITH_OPEN3D)
void run_open3d(const Shape& s, int k, int repeats, bool orient, std::vector<Row>& rows) {
  open3d::geometry::PointCloud pc;
  pc.points_.resize(static_cast<size_t>(s.cloud.size()));
  for (int64_t i = 0; i < s.cloud.size(); ++i) {
    pc.points_[static_cast<size_t>(i)] = s.cloud.positions.row(i).cast<double>().transpose();
  }
  const double t = median_seconds(
      repeats, [&] { pc.EstimateNormals(open3d::geometry::KDTreeSearchParamKNN(k), true); },
      [&] { pc.normals_.clear(); });
  auto to_points = [&] {
    Points pred(s.cloud.size(), 3);
    for (int64_t i = 0; i < s.cloud.size(); ++i) {
      pred.row(i) = pc.normals_[static_cast<size_t>(i)].cast<float>().transpose();
    }
    return pred;
  };
  const Points unoriented = to_points();
  const NormalMetrics m = metrics(s, unoriented);
  add_row(rows,
          {s.name, "Open3D EstimateNormals", s.cloud.size(), t, m.unoriented_rmse_deg, -1, ""});
  if (!orient) return;
  const std::vector<Eigen::Vector3d> estimated = pc.normals_;
  const double t_orient = median_seconds(
      repeats, [&] { pc.OrientNormalsConsistentTangentPlane(static_cast<size_t>(k)); },
      [&] { pc.normals_ = estimated; });
  const NormalMetrics mo = metrics(s, to_points());
  add_row(rows,
          {s.name, "Open3D OrientNormalsConsistentTangentPlane", s.cloud.size(), t_orient,
           mo.unoriented_rmse_deg, mo.oriented_rmse_deg, mo.flipped ? "whole-shape flip" : ""});
}
#endif

void run_cuda(const Shape& s, int64_t points, int k, int repeats, std::vector<Row>& rows) {
  // A large cloud: the shape's points repeated with small offsets is enough for throughput.
  const int64_t n = points;
  Points big(n, 3);
  const int64_t base = s.cloud.size();
  for (int64_t i = 0; i < n; ++i) {
    const int64_t copy = i / base;
    big.row(i) = s.cloud.positions.row(i % base);
    big(i, 0) += 1000.f * static_cast<float>(copy % 64);
    big(i, 1) += 1000.f * static_cast<float>(copy / 64);
  }
  geometry::NormalOptions o;
  o.k = k;
  o.device = geometry::SearchDevice::CUDA;
  const double t_all = median_seconds(repeats, [&] { geometry::estimate_normals_pca(big, o); });
  add_row(rows, {"copies of " + s.name, "Lapis PCA normals (CUDA, transfers included)", n, t_all,
                 -1, -1, std::to_string(static_cast<int64_t>(n / t_all / 1e6)) + " M points/s"});
  const size_t nk = static_cast<size_t>(n) * static_cast<size_t>(k);
  void* d_points = cuda::device_alloc(static_cast<size_t>(n) * 12);
  void* d_idx = cuda::device_alloc(nk * 4);
  void* d_d2 = cuda::device_alloc(nk * 4);
  void* d_normals = cuda::device_alloc(static_cast<size_t>(n) * 12);
  void* d_curv = cuda::device_alloc(static_cast<size_t>(n) * 4);
  void* d_valid = cuda::device_alloc(static_cast<size_t>(n));
  cuda::copy_host_to_device(d_points, big.data(), static_cast<size_t>(n) * 12);
  const double t_dev = median_seconds(repeats, [&] {
    LAPIS_CUDA_CALL(geometry::cuda::estimate_normals_pca_cuda_device,
                    static_cast<const float*>(d_points), n, k, true, static_cast<int32_t*>(d_idx),
                    static_cast<float*>(d_d2), static_cast<float*>(d_normals),
                    static_cast<float*>(d_curv), static_cast<uint8_t*>(d_valid));
  });
  add_row(rows, {"copies of " + s.name, "Lapis PCA normals (CUDA, on device)", n, t_dev, -1, -1,
                 std::to_string(static_cast<int64_t>(n / t_dev / 1e6)) + " M points/s"});
  for (void* p : {d_points, d_idx, d_d2, d_normals, d_curv, d_valid}) cuda::device_free(p);
}

std::string fmt_deg(double v) {
  if (v < 0) return "-";
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.2f", v);
  return buf;
}

}  // namespace
}  // namespace lapis

int main(int argc, char** argv) {
  using namespace lapis;
  CLI::App app{"PCA normals and MST orientation: Lapis vs PCL vs Open3D", "bench_normals"};
  std::string pcpnet = "/work/shared/data/pointclouds/pcpnet";
  std::vector<std::string> meshes = {"/work/shared/data/meshes/cgal_debian/fandisk.off",
                                     "/work/shared/data/meshes/cgal_debian/armadillo.off"};
  int64_t points = 100000, cuda_points = 10000000;
  int k = 10, threads = 0, repeats = 3;
  bool open3d_orient = true;
  app.add_option("--pcpnet", pcpnet,
                 "Folder with armadillo100k.xyz/.normals/.pidx (or .gz); '' skips");
  app.add_option("--mesh", meshes, "Meshes (.off/.ply, or path without .gz) to sample");
  app.add_option("--points", points, "Points sampled per mesh");
  app.add_option("--k", k, "Neighbours");
  app.add_option("--threads", threads, "CPU threads (0 = all cores)");
  app.add_option("--repeats", repeats, "Runs per measurement (median)");
  app.add_option("--cuda-points", cuda_points, "Points for the CUDA throughput row (with a GPU)");
  app.add_flag("!--no-open3d-orient", open3d_orient,
               "Skip Open3D's orientation (its qhull step can take many minutes on CAD shapes)");
  CLI11_PARSE(app, argc, argv);
  try {
    threads = geometry::resolve_threads(threads);
    std::vector<Shape> shapes;
    if (!pcpnet.empty()) shapes.push_back(load_pcpnet(pcpnet, "armadillo100k"));
    for (const std::string& m : meshes) shapes.push_back(load_mesh(m, points));
    std::vector<Row> rows;
    for (const Shape& s : shapes) {
      std::fprintf(stderr, "bench_normals: %s (%lld points)\n", s.name.c_str(),
                   static_cast<long long>(s.cloud.size()));
      run_lapis(s, k, threads, repeats, rows);
#if defined(LAPIS_BENCH_WITH_PCL)
      run_pcl(s, k, threads, repeats, rows);
#endif
#if defined(LAPIS_BENCH_WITH_OPEN3D)
      run_open3d(s, k, repeats, open3d_orient, rows);
#endif
    }
    if (cuda_available() && !shapes.empty()) run_cuda(shapes.back(), cuda_points, k, repeats, rows);
    std::printf(
        "k = %d, %d CPU threads, median of %d runs; RMSE in degrees on the 5000-point "
        "evaluation subset\n\n",
        k, threads, repeats);
    std::printf("| cloud | points | method | time s | unoriented RMSE | oriented RMSE | note |\n");
    std::printf("|---|---:|---|---:|---:|---:|---|\n");
    for (const Row& r : rows) {
      std::printf("| %s | %lld | %s | %.4f | %s | %s | %s |\n", r.shape.c_str(),
                  static_cast<long long>(r.points), r.method.c_str(), r.seconds,
                  fmt_deg(r.unoriented).c_str(), fmt_deg(r.oriented).c_str(), r.note.c_str());
    }
#if !defined(LAPIS_BENCH_WITH_PCL)
    std::printf("\n(PCL rows missing: built without PCL)\n");
#endif
#if !defined(LAPIS_BENCH_WITH_OPEN3D)
    std::printf("\n(Open3D rows missing: built without Open3D)\n");
#endif
  } catch (const lapis::Error& e) {
    std::fprintf(stderr, "bench_normals: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
