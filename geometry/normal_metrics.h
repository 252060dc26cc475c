// Normal estimation metrics as in PCPNet / SHS-Net (test.py::normal_RMSE).
//
// Per point, with both normals normalised: unoriented error = acos(|n . g|) in degrees (0..90),
// oriented error = acos(n . g) (0..180). Oriented RMSE first applies the whole-shape flip rule:
// when more than half of the points have an oriented error above 90 degrees, every prediction is
// flipped (error -> 180 - error). RMSE = sqrt(mean(error^2)). PGP-a = percentage (0..100) of
// points whose unoriented error is below a degrees. A zero-length prediction or ground truth
// normal counts as 90 degrees in both errors (it cannot be normalised).
#pragma once

#include <vector>

#include "geometry/point_cloud.h"

namespace lapis {
namespace geometry {

struct NormalMetrics {
  int64_t count = 0;                // points evaluated
  double unoriented_rmse_deg = 0;
  double oriented_rmse_deg = 0;
  double pgp5 = 0;                  // percent of points with unoriented error < 5 degrees
  double pgp10 = 0;                 // ... < 10 degrees
  bool flipped = false;             // the whole-shape flip was applied for the oriented RMSE
};

// pred and gt are #P x 3. `subset` (optional, e.g. a PCPNet .pidx) selects the points; empty =
// all points. Throws when the shapes differ, an index is out of range, a value is not finite,
// or nothing is evaluated.
NormalMetrics normal_metrics(const Points& pred, const Points& gt, const Indices& subset = {});

// Per-point errors in degrees over the subset (same order): unoriented and oriented (before
// any flip).
std::vector<double> unoriented_angles_deg(const Points& pred, const Points& gt,
                                          const Indices& subset = {});
std::vector<double> oriented_angles_deg(const Points& pred, const Points& gt,
                                        const Indices& subset = {});

// Ground truth normals from a mesh: for each point, the unit normal of the nearest face (exact
// point-triangle distance; a KD-tree over face centroids gives candidates, and a radius search
// bounded by the largest centroid-to-vertex distance makes the answer exact). `face_ids`
// (optional) receives the nearest face per point. Throws for a mesh without faces.
Points nearest_face_normals(const TriangleMesh& mesh, const Points& points,
                            Indices* face_ids = nullptr, int num_threads = 0);

}  // namespace geometry
}  // namespace lapis
