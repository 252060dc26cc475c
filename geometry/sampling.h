// Point sampling on triangle meshes, noise and density variants: what builds a PCPNet-style
// normal benchmark from meshes (see `lapis make-normal-benchmark`).
//
// All functions are deterministic for a given seed (counter-based random numbers from
// core/random.h, independent of threads). Normals are the exact unit normals of the face each
// point was sampled from (oriented as the face winding: counter-clockwise = outward).
//
// Density variants (our definitions; PCPNet's "_ddist_minmax" and "_ddist_minmax_layers"
// describe the same idea without a published formula). Let t in [0, 1] be a point's coordinate
// along the longest axis of the mesh's bounding box (0 at the minimum). A candidate point drawn
// uniformly by area is kept with probability w(t), until N points are kept:
//   gradient: w(t) = 1 - (1 - min_density) * t          (density falls linearly along the axis)
//   striped:  w(t) = 1 if floor(t * num_stripes) is even, min_density otherwise
//             (num_stripes bands of equal width; dense and sparse bands alternate)
// Defaults: min_density = 0.1 (gradient) and 0.2 (striped), num_stripes = 10.
#pragma once

#include <cstdint>

#include "geometry/point_cloud.h"

namespace lapis {
namespace geometry {

enum class DensityVariant { uniform, gradient, striped };

struct SampleOptions {
  int64_t num_points = 100000;
  uint64_t seed = 0;
  DensityVariant density = DensityVariant::uniform;
  double min_density = -1;  // < 0: the default of the variant (0.1 gradient, 0.2 striped)
  int num_stripes = 10;
};

// N points on the mesh surface, uniform by area (or with the density variant), with exact face
// normals. `face_ids` (optional) receives the face of each point. Throws for a mesh with no
// faces of positive area, invalid faces, or num_points < 0.
PointCloud sample_mesh(const TriangleMesh& mesh, const SampleOptions& options,
                       Indices* face_ids = nullptr);

// Convenience: uniform sampling.
PointCloud sample_mesh_uniform(const TriangleMesh& mesh, int64_t num_points, uint64_t seed,
                               Indices* face_ids = nullptr);

// A copy with Gaussian noise of standard deviation sigma_fraction * (bounding-box diagonal of the
// cloud) added to every coordinate independently; normals are kept (they stay the clean surface
// normals, as in PCPNet). Point order is unchanged, so evaluation indices stay valid.
PointCloud add_gaussian_noise(const PointCloud& cloud, double sigma_fraction, uint64_t seed);

// `count` distinct indices in [0, num_points), uniformly chosen (seeded partial Fisher-Yates),
// sorted ascending; all indices when num_points <= count.
Indices choose_evaluation_subset(int64_t num_points, int64_t count, uint64_t seed);

}  // namespace geometry
}  // namespace lapis
