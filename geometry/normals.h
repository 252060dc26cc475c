// PCA normals: for each point, the covariance of its k nearest neighbours, the unit eigenvector
// of the smallest eigenvalue (closed-form 3x3 solve, geometry/pca3.h) and the surface
// variation curvature = lambda0 / (lambda0 + lambda1 + lambda2). Normals are unoriented (sign
// arbitrary but deterministic); see orientation.h. Degenerate neighbourhoods (fewer than 3
// points, all coincident, or collinear) give a NaN normal and curvature and valid = 0.
#pragma once

#include <Eigen/Core>

#include <cstdint>
#include <vector>

#include "geometry/knn.h"
#include "geometry/point_cloud.h"

namespace lapis {
namespace geometry {

struct NormalOptions {
  int k = 10;                 // neighbours per point (the point itself counts when include_self)
  bool include_self = true;   // PCL and Open3D include the query point
  int num_threads = 0;        // CPU threads, 0 = hardware concurrency
  SearchDevice device = SearchDevice::CPU;
};

struct NormalEstimate {
  Points normals;                // P x 3, unit length, NaN where invalid
  Eigen::VectorXf curvature;     // P, NaN where invalid
  std::vector<uint8_t> valid;    // P, 1 = normal defined
};

// kNN (CPU grid or KD-tree, CUDA grid) fused with the PCA. On CUDA the whole pipeline stays on
// the device (one upload of the points, one download of the normals).
NormalEstimate estimate_normals_pca(const Points& points, const NormalOptions& options = {});

// PCA over given neighbourhoods: row i of `neighbors` (P x k) lists the neighbours of point i;
// entries < 0 are ignored (padding), entries >= P throw.
NormalEstimate normals_from_neighbors(const Points& points, const IndexMatrix& neighbors,
                                      int num_threads = 0,
                                      SearchDevice device = SearchDevice::CPU);

// Fills cloud.normals (NaN where undefined) and cloud.valid (0 where undefined). The cloud must
// have no invalid points (use PointCloud::compacted() first); returns the curvature.
Eigen::VectorXf estimate_normals(PointCloud& cloud, const NormalOptions& options = {});

}  // namespace geometry
}  // namespace lapis
