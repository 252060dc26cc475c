#include "geometry/point_cloud.h"

#include <cmath>

#include <Eigen/Geometry>

#include "core/check.h"

namespace lapis {
namespace geometry {

int64_t PointCloud::count_valid() const {
  if (valid.empty()) return size();
  int64_t n = 0;
  for (uint8_t v : valid) n += v != 0;
  return n;
}

void PointCloud::validate(const std::string& what) const {
  const int64_t n = size();
  LAPIS_CHECK(normals.rows() == 0 || normals.rows() == n, what, "cloud has ", n,
              " points but ", normals.rows(), " normals");
  LAPIS_CHECK(colors.rows() == 0 || colors.rows() == n, what, "cloud has ", n, " points but ",
              colors.rows(), " colors");
  LAPIS_CHECK(valid.empty() || static_cast<int64_t>(valid.size()) == n, what, "cloud has ", n,
              " points but ", valid.size(), " validity flags");
  for (int64_t i = 0; i < n; ++i) {
    if (!is_valid(i)) continue;
    for (int c = 0; c < 3; ++c) {
      const float x = positions(i, c);
      LAPIS_CHECK(std::isfinite(x), what, "point ", i, " has a non-finite coordinate ", x,
                  " (column ", c, ")");
      if (has_normals()) {
        const float m = normals(i, c);
        LAPIS_CHECK(std::isfinite(m), what, "point ", i, " has a non-finite normal component ",
                    m, " (column ", c, ")");
      }
    }
  }
}

PointCloud PointCloud::compacted() const {
  if (valid.empty()) return *this;
  PointCloud out;
  const int64_t m = count_valid();
  out.positions.resize(m, 3);
  if (has_normals()) out.normals.resize(m, 3);
  if (has_colors()) out.colors.resize(m, 3);
  int64_t j = 0;
  for (int64_t i = 0; i < size(); ++i) {
    if (!is_valid(i)) continue;
    out.positions.row(j) = positions.row(i);
    if (has_normals()) out.normals.row(j) = normals.row(i);
    if (has_colors()) out.colors.row(j) = colors.row(i);
    ++j;
  }
  return out;
}

Points TriangleMesh::face_normals() const {
  Points n(faces.rows(), 3);
  for (Eigen::Index f = 0; f < faces.rows(); ++f) {
    // Double precision: thin triangles lose their normal in float cross products.
    const Eigen::Vector3d a = vertices.row(faces(f, 0)).cast<double>().transpose();
    const Eigen::Vector3d b = vertices.row(faces(f, 1)).cast<double>().transpose();
    const Eigen::Vector3d c = vertices.row(faces(f, 2)).cast<double>().transpose();
    Eigen::Vector3d cr = (b - a).cross(c - a);
    const double len = cr.norm();
    if (len > 0) cr /= len; else cr.setZero();
    n.row(f) = cr.cast<float>().transpose();
  }
  return n;
}

Eigen::VectorXd TriangleMesh::face_areas() const {
  Eigen::VectorXd area(faces.rows());
  for (Eigen::Index f = 0; f < faces.rows(); ++f) {
    const Eigen::Vector3d a = vertices.row(faces(f, 0)).cast<double>().transpose();
    const Eigen::Vector3d b = vertices.row(faces(f, 1)).cast<double>().transpose();
    const Eigen::Vector3d c = vertices.row(faces(f, 2)).cast<double>().transpose();
    area[f] = 0.5 * (b - a).cross(c - a).norm();
  }
  return area;
}

void TriangleMesh::validate(const std::string& what) const {
  const int64_t nv = num_vertices();
  for (int64_t i = 0; i < nv; ++i) {
    for (int c = 0; c < 3; ++c) {
      LAPIS_CHECK(std::isfinite(vertices(i, c)), what, "vertex ", i,
                  " has a non-finite coordinate ", vertices(i, c));
    }
  }
  for (int64_t f = 0; f < num_faces(); ++f) {
    for (int c = 0; c < 3; ++c) {
      const int32_t v = faces(f, c);
      LAPIS_CHECK(v >= 0 && v < nv, what, "face ", f, " refers to vertex ", v, " but the mesh has ",
                  nv, " vertices");
    }
  }
}

double bounding_box_diagonal(const Points& points) {
  if (points.rows() == 0) return 0.0;
  const Eigen::RowVector3d lo = points.colwise().minCoeff().cast<double>();
  const Eigen::RowVector3d hi = points.colwise().maxCoeff().cast<double>();
  return (hi - lo).norm();
}

}  // namespace geometry
}  // namespace lapis
