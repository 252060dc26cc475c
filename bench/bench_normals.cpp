// bench_normals: PCA normals (k = 10) and MST orientation, Lapis next to PCL
// (NormalEstimationOMP) and Open3D (EstimateNormals + OrientNormalsConsistentTangentPlane), on
// the same clouds, same machine, same run. Prints a markdown table of median times and
// unoriented / oriented RMSE (degrees, on each cloud's 5000-point evaluation subset).
//
//   bench_normals [--pcpnet DIR] [--mesh FILE]... [--points N] [--k K] [--threads T]
//                 [--repeats R] [--cuda-points N...] [--cuda-only] [--cloud sphere|copies]...
//                 [--check-rows C]
//
// Clouds: the PCPNet armadillo (DIR/armadillo100k.xyz[.gz] + .normals[.gz] + .pidx; gzipped
// files are decompressed to /tmp first) and N points sampled uniformly (seed 1) from each mesh,
// with exact face normals as ground truth and a seeded 5000-point evaluation subset.
// Times: Lapis "PCA normals" = KD-tree + kNN + PCA; Lapis "orientation" = its own kNN graph +
// MST + propagation (the same work Open3D's OrientNormalsConsistentTangentPlane(k) does);
// PCL = NormalEstimationOMP::compute with a KdTree (tree build included); Open3D =
// EstimateNormals(KNN(k)) and OrientNormalsConsistentTangentPlane(k). Conversions to the
// peers' types are not timed.
//
// CUDA rows (with a GPU), on each --cuda-points size of each CUDA cloud: the kNN alone, the PCA
// from the kNN matrix alone, both unfused, the fused kNN + PCA, all on device-resident data
// (no transfers), then the fused path and the kNN from host memory (transfers included) and the
// public API (Eigen in and out, argument checks, transfers). Each note gives M points/s; the
// kNN and fused rows add the grid (cells, points per occupied cell, sorts, device ms of build
// and search). Checks printed with them: --check-rows random rows of the CUDA kNN equal a CPU
// brute-force scan, and the fused normals equal the unfused ones.
// CUDA clouds: "sphere" = N points uniform on the unit sphere; "copies" = copies of a
// 100k-point sample of a torus mesh (or, without --cuda-only, of the last loaded cloud) on a
// compact 3-D lattice; --cuda-only skips the CPU and peer rows and reads no files, so the GPU
// run needs no data (bench_normals_gpu, built without the peers, defaults to it).
#include <sys/stat.h>

#include <CLI/CLI.hpp>
#include <Eigen/Geometry>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "core/check.h"
#include "core/cuda_api.h"
#include "core/device.h"
#include "core/parallel.h"
#include "geometry/cuda/knn_cuda.h"
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

using geometry::DistanceMatrix;
using geometry::IndexMatrix;
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

// ---- CUDA rows ----------------------------------------------------------------------------

// N points uniform on the unit sphere (normalised Gaussian vectors, seed 1); the normal of a
// point is its position.
Shape unit_sphere(int64_t n) {
  Shape shape;
  shape.name = "unit sphere";
  shape.cloud.positions.resize(n, 3);
  std::mt19937_64 rng(1);
  std::normal_distribution<float> g;
  for (int64_t i = 0; i < n; ++i) {
    Eigen::Vector3f v(g(rng), g(rng), g(rng));
    while (!(v.norm() > 1e-6f)) v = Eigen::Vector3f(g(rng), g(rng), g(rng));
    shape.cloud.positions.row(i) = v.normalized().transpose();
  }
  shape.cloud.normals = shape.cloud.positions;
  shape.eval = geometry::choose_evaluation_subset(n, 5000, 1);
  return shape;
}

// 100k points sampled from a torus mesh (radii 1 and 0.35, 96 x 48 quads, seed 1), with the
// exact face normals: a curved closed surface that needs no data file.
Shape torus_sample() {
  const int nu = 96, nv = 48;
  geometry::TriangleMesh mesh;
  mesh.vertices.resize(nu * nv, 3);
  mesh.faces.resize(2 * nu * nv, 3);
  for (int i = 0; i < nu; ++i) {
    for (int j = 0; j < nv; ++j) {
      const double u = 2.0 * M_PI * i / nu, v = 2.0 * M_PI * j / nv;
      mesh.vertices.row(i * nv + j) << static_cast<float>((1.0 + 0.35 * std::cos(v)) * std::cos(u)),
          static_cast<float>((1.0 + 0.35 * std::cos(v)) * std::sin(u)),
          static_cast<float>(0.35 * std::sin(v));
    }
  }
  for (int i = 0; i < nu; ++i) {
    for (int j = 0; j < nv; ++j) {
      const int a = i * nv + j, b = ((i + 1) % nu) * nv + j, c = ((i + 1) % nu) * nv + (j + 1) % nv,
                d = i * nv + (j + 1) % nv;
      mesh.faces.row(2 * (i * nv + j)) << a, b, c;  // counter-clockwise seen from outside
      mesh.faces.row(2 * (i * nv + j) + 1) << a, c, d;
    }
  }
  Shape shape;
  shape.name = "torus";
  shape.cloud = geometry::sample_mesh_uniform(mesh, 100000, 1);
  return shape;
}

// n points: copies of the base cloud on a compact 3-D lattice (spacing 1.25 x the base's box
// along each axis), the last copy cut short. A uniform grid has at most 1024 cells per axis,
// so copies far apart (the old 1000-unit rows) would leave a whole copy in a few cells.
Shape copies_of(const Shape& base, int64_t n) {
  const int64_t m = base.cloud.size();
  const int64_t copies = (n + m - 1) / m;
  int64_t side = 1;
  while (side * side * side < copies) ++side;
  const Eigen::RowVector3f lo = base.cloud.positions.colwise().minCoeff();
  const Eigen::RowVector3f hi = base.cloud.positions.colwise().maxCoeff();
  const Eigen::RowVector3f step = 1.25f * (hi - lo).cwiseMax(1e-3f * (hi - lo).maxCoeff());
  Shape shape;
  shape.name = "copies of " + base.name;
  shape.cloud.positions.resize(n, 3);
  shape.cloud.normals.resize(n, 3);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t c = i / m;
    const Eigen::RowVector3f offset(static_cast<float>(c % side) * step(0),
                                    static_cast<float>((c / side) % side) * step(1),
                                    static_cast<float>(c / (side * side)) * step(2));
    shape.cloud.positions.row(i) = base.cloud.positions.row(i % m) + offset;
    shape.cloud.normals.row(i) = base.cloud.normals.row(i % m);
  }
  shape.eval = geometry::choose_evaluation_subset(n, 5000, 1);
  return shape;
}

// Device memory for the benchmark, freed on scope exit.
struct DeviceArray {
  void* ptr = nullptr;
  explicit DeviceArray(size_t bytes) : ptr(cuda::device_alloc(std::max<size_t>(bytes, 1))) {}
  ~DeviceArray() { cuda::device_free(ptr); }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
  template <typename T>
  T* as() const {
    return static_cast<T*>(ptr);
  }
};

// Median of `repeats` runs after one untimed warm-up run (first launches, allocator cache).
double cuda_median_seconds(int repeats, const std::function<void()>& fn) {
  fn();
  return median_seconds(repeats, fn);
}

std::string throughput(int64_t n, double seconds) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.1f M points/s", static_cast<double>(n) / seconds / 1e6);
  return buf;
}

std::string grid_note(const geometry::cuda::KnnGridStats& st, int64_t n) {
  char buf[256];
  std::snprintf(buf, sizeof(buf),
                "; grid %d x %d x %d, cell %.3g, %.1f points per occupied cell, %d sort(s); "
                "device ms: build %.2f + search %.2f",
                st.dims[0], st.dims[1], st.dims[2], st.cell,
                st.occupied_cells > 0 ? static_cast<double>(n) / st.occupied_cells : -1.0, st.sorts,
                st.build_ms, st.search_ms);
  return buf;
}

// check_rows random rows (and the first and last) of the CUDA kNN (indices, sq_distances)
// against a brute-force scan on the CPU; returns a note.
std::string check_knn_rows(const Points& pts, const IndexMatrix& idx, const DistanceMatrix& d2,
                           int k, int check_rows, int threads) {
  const int64_t n = pts.rows();
  std::vector<int64_t> rows = {0, n - 1};
  std::mt19937_64 rng(7);
  std::uniform_int_distribution<int64_t> pick(0, n - 1);
  for (int r = 0; r < check_rows; ++r) rows.push_back(pick(rng));
  std::vector<int> bad(rows.size(), 0);
  lapis::parallel_chunks(
      static_cast<int64_t>(rows.size()), threads,
      [&](int64_t b, int64_t e) {
        for (int64_t r = b; r < e; ++r) {
          const int64_t row = rows[static_cast<size_t>(r)];
          const Points q = pts.row(row);
          const geometry::KnnResult ref = geometry::knn_brute_force(pts, q, k);
          for (int c = 0; c < k; ++c) {
            if (ref.indices(0, c) != idx(row, c) || ref.sq_distances(0, c) != d2(row, c)) {
              bad[static_cast<size_t>(r)] = 1;
            }
          }
        }
      },
      1);
  int64_t wrong = 0;
  for (int b : bad) wrong += b;
  return "; kNN check: " + std::to_string(rows.size() - static_cast<size_t>(wrong)) + "/" +
         std::to_string(rows.size()) + " rows equal brute force";
}

// Fused normals against the unfused ones (PCA of the kNN matrix): valid flags, largest angle
// and curvature difference.
std::string compare_normals(const Points& a, const std::vector<float>& ca,
                            const std::vector<uint8_t>& va, const Points& b,
                            const std::vector<float>& cb, const std::vector<uint8_t>& vb) {
  int64_t flag_diff = 0;
  double worst_deg = 0.0, worst_curv = 0.0;
  for (int64_t i = 0; i < a.rows(); ++i) {
    const size_t u = static_cast<size_t>(i);
    if (va[u] != vb[u]) {
      ++flag_diff;
      continue;
    }
    if (!va[u]) continue;
    // atan2(|a x b|, |a . b|) in double: exact down to identical vectors (acos of a float dot
    // product bottoms out at ~0.03 degrees).
    const Eigen::Vector3d x = a.row(i).cast<double>().transpose();
    const Eigen::Vector3d y = b.row(i).cast<double>().transpose();
    const double angle = std::atan2(x.cross(y).norm(), std::fabs(x.dot(y)));
    worst_deg = std::max(worst_deg, angle * 180.0 / M_PI);
    worst_curv = std::max(worst_curv, static_cast<double>(std::fabs(ca[u] - cb[u])));
  }
  char buf[160];
  std::snprintf(buf, sizeof(buf),
                "; fused vs unfused: %lld valid-flag differences, max %.2g deg, max curvature "
                "diff %.2g",
                static_cast<long long>(flag_diff), worst_deg, worst_curv);
  return buf;
}

void run_cuda(const Shape& s, int k, int repeats, int check_rows, int threads,
              std::vector<Row>& rows) {
  namespace gc = geometry::cuda;
  const int64_t n = s.cloud.size();
  const Points& pts = s.cloud.positions;
  std::fprintf(stderr, "bench_normals: CUDA, %s (%lld points)\n", s.name.c_str(),
               static_cast<long long>(n));
  const size_t pbytes = static_cast<size_t>(n) * 3 * sizeof(float);
  const size_t nk = static_cast<size_t>(n) * static_cast<size_t>(k);
  DeviceArray d_points(pbytes), d_idx(nk * 4), d_d2(nk * 4);
  DeviceArray d_normals(pbytes), d_curv(static_cast<size_t>(n) * 4),
      d_valid(static_cast<size_t>(n));
  DeviceArray u_normals(pbytes), u_curv(static_cast<size_t>(n) * 4),
      u_valid(static_cast<size_t>(n));
  cuda::copy_host_to_device(d_points.ptr, pts.data(), pbytes);
  [[maybe_unused]] const float* dp = d_points.as<float>();  // unused in CPU-only builds
  auto add = [&](const std::string& method, double t, double rmse, const std::string& extra) {
    add_row(rows, {s.name, method, n, t, rmse, -1, throughput(n, t) + extra});
  };

  // Device-resident data, no transfers.
  const double t_knn = cuda_median_seconds(repeats, [&] {
    LAPIS_CUDA_CALL(gc::knn_cuda_device, dp, n, nullptr, n, k, true, d_idx.as<int32_t>(),
                    d_d2.as<float>());
  });
  gc::KnnGridStats knn_stats;
  LAPIS_CUDA_CALL(gc::knn_cuda_device, dp, n, nullptr, n, k, true, d_idx.as<int32_t>(),
                  d_d2.as<float>(), &knn_stats);
  add("Lapis CUDA kNN (device data)", t_knn, -1, grid_note(knn_stats, n));
  const double t_pca = cuda_median_seconds(repeats, [&] {
    LAPIS_CUDA_CALL(gc::normals_from_neighbors_cuda_device, dp, n, d_idx.as<int32_t>(), k,
                    u_normals.as<float>(), u_curv.as<float>(), u_valid.as<uint8_t>());
  });
  add("Lapis CUDA PCA from the kNN matrix (device data)", t_pca, -1, "");
  const double t_unfused = cuda_median_seconds(repeats, [&] {
    LAPIS_CUDA_CALL(gc::estimate_normals_pca_cuda_device, dp, n, k, true, d_idx.as<int32_t>(),
                    d_d2.as<float>(), u_normals.as<float>(), u_curv.as<float>(),
                    u_valid.as<uint8_t>());
  });
  add("Lapis CUDA kNN + PCA, unfused (device data)", t_unfused, -1, "");
  const double t_fused = cuda_median_seconds(repeats, [&] {
    LAPIS_CUDA_CALL(gc::estimate_normals_pca_cuda_device_fused, dp, n, k, true,
                    d_normals.as<float>(), d_curv.as<float>(), d_valid.as<uint8_t>());
  });
  gc::KnnGridStats fused_stats;
  LAPIS_CUDA_CALL(gc::estimate_normals_pca_cuda_device_fused, dp, n, k, true, d_normals.as<float>(),
                  d_curv.as<float>(), d_valid.as<uint8_t>(), &fused_stats);
  // Results of the device runs, for the checks.
  Points fused(n, 3), unfused(n, 3);
  std::vector<float> fused_curv(static_cast<size_t>(n)), unfused_curv(static_cast<size_t>(n));
  std::vector<uint8_t> fused_valid(static_cast<size_t>(n)), unfused_valid(static_cast<size_t>(n));
  cuda::copy_device_to_host(fused.data(), d_normals.ptr, pbytes);
  cuda::copy_device_to_host(fused_curv.data(), d_curv.ptr, static_cast<size_t>(n) * 4);
  cuda::copy_device_to_host(fused_valid.data(), d_valid.ptr, static_cast<size_t>(n));
  cuda::copy_device_to_host(unfused.data(), u_normals.ptr, pbytes);
  cuda::copy_device_to_host(unfused_curv.data(), u_curv.ptr, static_cast<size_t>(n) * 4);
  cuda::copy_device_to_host(unfused_valid.data(), u_valid.ptr, static_cast<size_t>(n));
  const double rmse = metrics(s, fused).unoriented_rmse_deg;
  add("Lapis CUDA PCA normals, fused kNN + PCA (device data)", t_fused, rmse,
      grid_note(fused_stats, n) +
          compare_normals(fused, fused_curv, fused_valid, unfused, unfused_curv, unfused_valid));

  // Host memory in and out: transfers included.
  Points normals(n, 3);
  std::vector<float> curv(static_cast<size_t>(n));
  std::vector<uint8_t> valid(static_cast<size_t>(n));
  const double t_fused_host = cuda_median_seconds(repeats, [&] {
    LAPIS_CUDA_CALL(gc::estimate_normals_pca_cuda, pts.data(), n, k, true, normals.data(),
                    curv.data(), valid.data());
  });
  add("Lapis CUDA PCA normals, fused (host data, transfers included)", t_fused_host,
      metrics(s, normals).unoriented_rmse_deg, "");
  geometry::NormalOptions o;
  o.k = k;
  o.device = geometry::SearchDevice::CUDA;
  const double t_api =
      cuda_median_seconds(repeats, [&] { geometry::estimate_normals_pca(pts, o); });
  add("Lapis CUDA PCA normals, estimate_normals_pca (Eigen in/out, checks, transfers)", t_api, -1,
      "");
  IndexMatrix idx(n, k);
  DistanceMatrix d2(n, k);
  const double t_knn_host = cuda_median_seconds(repeats, [&] {
    LAPIS_CUDA_CALL(gc::knn_cuda, pts.data(), n, nullptr, n, k, true, idx.data(), d2.data());
  });
  add("Lapis CUDA kNN (host data, transfers included)", t_knn_host, -1,
      check_rows > 0 ? check_knn_rows(pts, idx, d2, k, check_rows, threads) : "");
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
#if defined(LAPIS_BENCH_GPU_ONLY)
  bool cuda_only = true;  // bench_normals_gpu: built without the peers, GPU rows by default
#else
  bool cuda_only = false;
#endif
  CLI::App app{"PCA normals and MST orientation: Lapis vs PCL vs Open3D", "bench_normals"};
  std::string pcpnet = "/work/shared/data/pointclouds/pcpnet";
  std::vector<std::string> meshes = {"/work/shared/data/meshes/cgal_debian/fandisk.off",
                                     "/work/shared/data/meshes/cgal_debian/armadillo.off"};
  int64_t points = 100000;
  std::vector<int64_t> cuda_points = {1000000, 4000000, 16000000};
  std::vector<std::string> clouds;
  int k = 10, threads = 0, repeats = 3, check_rows = 64;
  bool open3d_orient = true;
  app.add_option("--pcpnet", pcpnet,
                 "Folder with armadillo100k.xyz/.normals/.pidx (or .gz); '' skips");
  app.add_option("--mesh", meshes, "Meshes (.off/.ply, or path without .gz) to sample");
  app.add_option("--points", points, "Points sampled per mesh");
  app.add_option("--k", k, "Neighbours");
  app.add_option("--threads", threads, "CPU threads (0 = all cores)");
  app.add_option("--repeats", repeats, "Runs per measurement (median)");
  app.add_option("--cuda-points", cuda_points, "Cloud sizes for the CUDA rows (with a GPU)");
  app.add_flag("--cuda-only,!--with-cpu", cuda_only,
               "Only the CUDA rows, on synthetic clouds (no CPU or peer rows, no files)");
  app.add_option("--cloud", clouds,
                 "CUDA clouds: sphere (uniform on the unit sphere) and/or copies (copies of a "
                 "sampled torus, or of the last loaded cloud); default with --cuda-only: both")
      ->check(CLI::IsMember({"sphere", "copies"}));
  app.add_option("--check-rows", check_rows,
                 "Random rows of each CUDA kNN checked against a CPU brute-force scan (0: none)");
  app.add_flag("!--no-open3d-orient", open3d_orient,
               "Skip Open3D's orientation (its qhull step can take many minutes on CAD shapes)");
  CLI11_PARSE(app, argc, argv);
  try {
    LAPIS_CHECK(k >= 1, "bench_normals", "--k must be at least 1, got ", k);
    LAPIS_CHECK(repeats >= 1, "bench_normals", "--repeats must be at least 1, got ", repeats);
    threads = geometry::resolve_threads(threads);
    std::vector<Shape> shapes;
    std::vector<Row> rows;
    if (!cuda_only) {
      if (!pcpnet.empty()) shapes.push_back(load_pcpnet(pcpnet, "armadillo100k"));
      for (const std::string& m : meshes) shapes.push_back(load_mesh(m, points));
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
    }
    if (cuda_only && clouds.empty()) clouds = {"sphere", "copies"};
    const bool copies_of_loaded = !cuda_only && !shapes.empty();
    if (cuda_only) {
      LAPIS_CHECK(cuda_available(), "bench_normals", "--cuda-only needs a CUDA device");
    }
    if (cuda_available()) {
      const Shape base = copies_of_loaded ? shapes.back() : torus_sample();
      for (const int64_t n : cuda_points) {
        LAPIS_CHECK(n > k, "bench_normals", "--cuda-points ", n, " must exceed k = ", k);
        if (copies_of_loaded) run_cuda(copies_of(base, n), k, repeats, check_rows, threads, rows);
        for (const std::string& c : clouds) {
          if (c == "sphere") run_cuda(unit_sphere(n), k, repeats, check_rows, threads, rows);
          if (c == "copies" && !copies_of_loaded) {
            run_cuda(copies_of(base, n), k, repeats, check_rows, threads, rows);
          }
        }
      }
    }
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
    if (!cuda_only) {
#if !defined(LAPIS_BENCH_WITH_PCL)
      std::printf("\n(PCL rows missing: built without PCL)\n");
#endif
#if !defined(LAPIS_BENCH_WITH_OPEN3D)
      std::printf("\n(Open3D rows missing: built without Open3D)\n");
#endif
    }
  } catch (const lapis::Error& e) {
    std::fprintf(stderr, "bench_normals: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
