// Consistent orientation of unoriented normals.
//
// orient_normals_mst is Hoppe et al. 1992: the Riemannian graph is the symmetrised kNN graph
// with edge weights 1 - |n_i . n_j|; its minimum spanning forest (Kruskal, Boost.Graph) is
// traversed breadth-first from the highest point (max z) of each connected component, whose
// normal is first turned to point +z; a child is flipped when n_parent . n_child < 0. Points
// whose normal is not finite (NaN from a degenerate neighbourhood) are left out and unchanged.
#pragma once

#include <Eigen/Core>

#include <cstdint>

#include "geometry/knn.h"
#include "geometry/point_cloud.h"

namespace lapis {
namespace geometry {

struct OrientationStats {
  int64_t components = 0;  // connected components of the Riemannian graph (valid points)
  int64_t flipped = 0;     // normals whose sign changed
  int64_t edges = 0;       // edges of the Riemannian graph
};

// neighbors: P x k kNN indices (entries < 0 and self loops are ignored). normals: P x 3,
// flipped in place.
OrientationStats orient_normals_mst(const Points& points, Points& normals,
                                    const IndexMatrix& neighbors);
// Same, computing the kNN graph (k neighbours besides the point itself) on the CPU.
OrientationStats orient_normals_mst(const Points& points, Points& normals, int k,
                                    int num_threads = 0);

// Flips each normal so that it points toward the viewpoint: (viewpoint - p) . n >= 0.
int64_t orient_normals_toward_viewpoint(const Points& points, Points& normals,
                                        const Eigen::Vector3f& viewpoint);

}  // namespace geometry
}  // namespace lapis
