// CUDA kNN over 3-D points (host-only declarations; no CUDA types). Implemented in
// knn_cuda.cu with a uniform grid: points sorted by cell, each query scans rings of cells around
// its own until k are found and the next ring cannot hold anything closer. Results equal the
// brute-force reference: rows sorted by (squared distance, index), distances computed as
// ((dx*dx + dy*dy) + dz*dz) in float without fused multiply-add.
#pragma once

#include <cstdint>

namespace lapis {
namespace geometry {
namespace cuda {

// Largest k the grid kernels support (k <= 32: candidate list in registers; above: in local
// memory).
constexpr int kMaxCudaKnnK = 128;

// What one grid search did (for benchmarks and diagnostics). The device times are measured
// with CUDA events only when a stats pointer is passed (that adds one host wait).
struct KnnGridStats {
  double cell = 0.0;           // cell edge
  int dims[3] = {0, 0, 0};     // cells along x, y, z
  int64_t occupied_cells = 0;  // non-empty cells of the grid used
  int sorts = 0;               // sorts of the points by cell (one per candidate edge)
  float build_ms = 0.f;        // bounding box, cell-size search, sorts, cell table
  float search_ms = 0.f;       // query sort (external queries), search (+ PCA when fused)
};

// Host pointers. points: n x 3 row-major; queries: m x 3, or nullptr for self queries (m == n,
// query i is point i; include_self=false skips index i). Writes m x k indices and squared
// distances (host). Requires 1 <= k <= kMaxCudaKnnK and k <= n (k <= n - 1 without self).
void knn_cuda(const float* points, int64_t n, const float* queries, int64_t m, int k,
              bool include_self, int32_t* indices, float* sq_distances);

// Same on device pointers (d_queries == nullptr for self queries); outputs stay on the device.
// Runs on lapis::cuda::stream(); waits on the host only for a few small readbacks (bounding
// box, occupied-cell counts). Points must be finite (checked on the device: lapis::Error);
// queries too (not checked: a NaN query gets rows of index -1, distance +inf).
void knn_cuda_device(const float* d_points, int64_t n, const float* d_queries, int64_t m, int k,
                     bool include_self, int32_t* d_indices, float* d_sq_distances,
                     KnnGridStats* stats = nullptr);

// Self kNN fused with the PCA normal of each neighbourhood (device pointers): the same
// neighbours as knn_cuda_device(..., nullptr, n, ...) and the same double-precision arithmetic
// as geometry/pca3.h pca_normal, without writing the n x k neighbour matrix. Writes normals
// (n x 3; NaN where undefined), curvature (n) and valid (n, 0/1).
void knn_pca_normals_cuda_device(const float* d_points, int64_t n, int k, bool include_self,
                                 float* d_normals, float* d_curvature, uint8_t* d_valid,
                                 KnnGridStats* stats = nullptr);

}  // namespace cuda
}  // namespace geometry
}  // namespace lapis
