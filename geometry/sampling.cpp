#include "geometry/sampling.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include <Eigen/Geometry>

#include "core/check.h"
#include "core/random.h"

namespace lapis {
namespace geometry {
namespace {

// Uniform in [0, 1) with 53 random bits (face choice needs more than 24 bits for big meshes).
double uniform_double(uint64_t seed, uint64_t counter) {
  return static_cast<double>(random_bits(seed, counter) >> 11) * (1.0 / 9007199254740992.0);
}

// Independent streams derived from one user seed.
constexpr uint64_t kFaceStream = 0x1111;
constexpr uint64_t kBaryStream = 0x2222;
constexpr uint64_t kAcceptStream = 0x3333;
constexpr uint64_t kNoiseStream = 0x4444;

uint64_t stream_seed(uint64_t seed, uint64_t stream) { return mix64(seed ^ mix64(stream)); }

}  // namespace

PointCloud sample_mesh(const TriangleMesh& mesh, const SampleOptions& options,
                       Indices* face_ids) {
  const char* op = "sample_mesh";
  LAPIS_CHECK(options.num_points >= 0, op, "num_points must be >= 0, got ", options.num_points);
  mesh.validate(op);
  const Eigen::VectorXd area = mesh.face_areas();
  std::vector<double> cdf(static_cast<size_t>(area.size()));
  double total = 0;
  for (Eigen::Index f = 0; f < area.size(); ++f) {
    total += std::isfinite(area[f]) ? area[f] : 0.0;
    cdf[static_cast<size_t>(f)] = total;
  }
  LAPIS_CHECK(total > 0, op, "the mesh has no face of positive area (", mesh.num_faces(),
              " faces, ", mesh.num_vertices(), " vertices)");
  const Points face_normal = mesh.face_normals();

  // Density weight along the longest bounding-box axis.
  const DensityVariant variant = options.density;
  double min_density = options.min_density;
  if (min_density < 0) min_density = variant == DensityVariant::striped ? 0.2 : 0.1;
  LAPIS_CHECK(variant == DensityVariant::uniform || (min_density > 0 && min_density <= 1), op,
              "min_density must be in (0, 1], got ", min_density);
  LAPIS_CHECK(options.num_stripes > 0, op, "num_stripes must be > 0, got ", options.num_stripes);
  int axis = 0;
  double lo = 0, extent = 1;
  if (mesh.num_vertices() > 0) {
    const Eigen::RowVector3d vmin = mesh.vertices.colwise().minCoeff().cast<double>();
    const Eigen::RowVector3d vmax = mesh.vertices.colwise().maxCoeff().cast<double>();
    (vmax - vmin).maxCoeff(&axis);
    lo = vmin[axis];
    extent = std::max(vmax[axis] - vmin[axis], 1e-30);
  }
  auto weight = [&](double coord) {
    const double t = std::min(std::max((coord - lo) / extent, 0.0), 1.0);
    if (variant == DensityVariant::gradient) return 1.0 - (1.0 - min_density) * t;
    const int band = std::min(static_cast<int>(t * options.num_stripes), options.num_stripes - 1);
    return band % 2 == 0 ? 1.0 : min_density;
  };

  const uint64_t face_seed = stream_seed(options.seed, kFaceStream);
  const uint64_t bary_seed = stream_seed(options.seed, kBaryStream);
  const uint64_t accept_seed = stream_seed(options.seed, kAcceptStream);
  PointCloud cloud;
  const int64_t n = options.num_points;
  cloud.positions.resize(n, 3);
  cloud.normals.resize(n, 3);
  if (face_ids) face_ids->assign(static_cast<size_t>(n), 0);
  int64_t kept = 0;
  for (uint64_t candidate = 0; kept < n; ++candidate) {
    // Face by area: first face whose cumulative area exceeds u * total.
    const double u = uniform_double(face_seed, candidate) * total;
    size_t f = static_cast<size_t>(std::upper_bound(cdf.begin(), cdf.end(), u) - cdf.begin());
    f = std::min(f, cdf.size() - 1);
    while (area[static_cast<Eigen::Index>(f)] <= 0 && f > 0) --f;  // never a zero-area face
    // Uniform point in the triangle: p = (1 - s) a + s (1 - r2) b + s r2 c, s = sqrt(r1).
    const double r1 = uniform_double(bary_seed, 2 * candidate);
    const double r2 = uniform_double(bary_seed, 2 * candidate + 1);
    const double s = std::sqrt(r1);
    const auto F = static_cast<Eigen::Index>(f);
    const Eigen::RowVector3d a = mesh.vertices.row(mesh.faces(F, 0)).cast<double>();
    const Eigen::RowVector3d b = mesh.vertices.row(mesh.faces(F, 1)).cast<double>();
    const Eigen::RowVector3d c = mesh.vertices.row(mesh.faces(F, 2)).cast<double>();
    const Eigen::RowVector3d p = (1 - s) * a + s * (1 - r2) * b + s * r2 * c;
    if (variant != DensityVariant::uniform &&
        uniform_double(accept_seed, candidate) >= weight(p[axis])) {
      continue;
    }
    cloud.positions.row(kept) = p.cast<float>();
    cloud.normals.row(kept) = face_normal.row(F);
    if (face_ids) (*face_ids)[static_cast<size_t>(kept)] = static_cast<int64_t>(f);
    ++kept;
  }
  return cloud;
}

PointCloud sample_mesh_uniform(const TriangleMesh& mesh, int64_t num_points, uint64_t seed,
                               Indices* face_ids) {
  SampleOptions o;
  o.num_points = num_points;
  o.seed = seed;
  return sample_mesh(mesh, o, face_ids);
}

PointCloud add_gaussian_noise(const PointCloud& cloud, double sigma_fraction, uint64_t seed) {
  LAPIS_CHECK(std::isfinite(sigma_fraction) && sigma_fraction >= 0, "add_gaussian_noise",
              "sigma_fraction must be finite and >= 0, got ", sigma_fraction);
  PointCloud out = cloud;
  const double sigma = sigma_fraction * bounding_box_diagonal(cloud.compacted().positions);
  const uint64_t s = stream_seed(seed, kNoiseStream);
  for (Eigen::Index i = 0; i < out.positions.rows(); ++i) {
    for (int k = 0; k < 3; ++k) {
      const double z = normal01(s, static_cast<uint64_t>(3 * i + k));
      out.positions(i, k) = static_cast<float>(out.positions(i, k) + sigma * z);
    }
  }
  return out;
}

Indices choose_evaluation_subset(int64_t num_points, int64_t count, uint64_t seed) {
  LAPIS_CHECK(num_points >= 0 && count >= 0, "choose_evaluation_subset",
              "num_points and count must be >= 0, got ", num_points, " and ", count);
  Indices all(static_cast<size_t>(num_points));
  std::iota(all.begin(), all.end(), int64_t{0});
  if (num_points <= count) return all;
  const uint64_t s = stream_seed(seed, 0x5555);
  for (int64_t i = 0; i < count; ++i) {
    const uint64_t span = static_cast<uint64_t>(num_points - i);
    const int64_t j = i + static_cast<int64_t>(random_bits(s, static_cast<uint64_t>(i)) % span);
    std::swap(all[static_cast<size_t>(i)], all[static_cast<size_t>(j)]);
  }
  all.resize(static_cast<size_t>(count));
  std::sort(all.begin(), all.end());
  return all;
}

}  // namespace geometry
}  // namespace lapis
