// Point clouds and triangle meshes: the data types every geometry routine works on.
//
// Positions, normals and colors are row-major #P x 3 Eigen matrices so that a row is one point
// and the whole block can be handed to PCL/Open3D/CUDA without reshuffling (x0 y0 z0 x1 ...).
#pragma once

#include <Eigen/Core>

#include <cstdint>
#include <string>
#include <vector>

namespace lapis {
namespace geometry {

using Points = Eigen::Matrix<float, Eigen::Dynamic, 3, Eigen::RowMajor>;       // #P x 3
using Colors = Eigen::Matrix<uint8_t, Eigen::Dynamic, 3, Eigen::RowMajor>;     // #P x 3 (RGB)
using Faces = Eigen::Matrix<int32_t, Eigen::Dynamic, 3, Eigen::RowMajor>;      // #F x 3
using Indices = std::vector<int64_t>;

struct PointCloud {
  Points positions;           // #P x 3
  Points normals;             // 0 rows or #P x 3 (unit length where known)
  Colors colors;              // 0 rows or #P x 3
  std::vector<uint8_t> valid; // empty = all valid; else #P entries, 0 = invalid (e.g. PCL NaN)

  int64_t size() const { return static_cast<int64_t>(positions.rows()); }
  bool empty() const { return positions.rows() == 0; }
  bool has_normals() const { return normals.rows() > 0; }
  bool has_colors() const { return colors.rows() > 0; }
  bool has_validity() const { return !valid.empty(); }
  bool is_valid(int64_t i) const { return valid.empty() || valid[static_cast<size_t>(i)] != 0; }
  // Number of valid points (== size() when `valid` is empty).
  int64_t count_valid() const;

  // Throws lapis::Error("<what>: ...") when the optional arrays have the wrong row count, or a
  // valid point has a NaN/inf coordinate or normal (names the point index and the value).
  void validate(const std::string& what) const;

  // A cloud with only the valid points (positions, normals and colors kept in order);
  // `valid` of the result is empty.
  PointCloud compacted() const;
};

struct TriangleMesh {
  Points vertices;  // #V x 3
  Faces faces;      // #F x 3, 0-based vertex indices, counter-clockwise = outward

  int64_t num_vertices() const { return static_cast<int64_t>(vertices.rows()); }
  int64_t num_faces() const { return static_cast<int64_t>(faces.rows()); }

  // Unit face normals (#F x 3), (v1 - v0) x (v2 - v0) normalised; degenerate faces give 0.
  Points face_normals() const;
  // Face areas (#F).
  Eigen::VectorXd face_areas() const;
  // Throws lapis::Error("<what>: ...") for out-of-range face indices or NaN/inf vertices.
  void validate(const std::string& what) const;
};

// Axis-aligned bounding box diagonal length of the points (0 for an empty set).
double bounding_box_diagonal(const Points& points);

}  // namespace geometry
}  // namespace lapis
