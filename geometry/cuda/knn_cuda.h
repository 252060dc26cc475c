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

// Largest k the grid kernels support (the per-thread candidate list lives in registers/local).
constexpr int kMaxCudaKnnK = 128;

// Host pointers. points: n x 3 row-major; queries: m x 3, or nullptr for self queries (m == n,
// query i is point i; include_self=false skips index i). Writes m x k indices and squared
// distances (host). Requires 1 <= k <= kMaxCudaKnnK and k <= n (k <= n - 1 without self).
void knn_cuda(const float* points, int64_t n, const float* queries, int64_t m, int k,
              bool include_self, int32_t* indices, float* sq_distances);

// Same on device pointers (d_queries == nullptr for self queries); outputs stay on the device.
// Runs on lapis::cuda::stream().
void knn_cuda_device(const float* d_points, int64_t n, const float* d_queries, int64_t m, int k,
                     bool include_self, int32_t* d_indices, float* d_sq_distances);

}  // namespace cuda
}  // namespace geometry
}  // namespace lapis
