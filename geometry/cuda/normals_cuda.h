// CUDA PCA normals (host-only declarations; no CUDA types). Same arithmetic as the CPU path
// (geometry/pca3.h, double precision covariance and eigen solve).
#pragma once

#include <cstdint>

#include "geometry/cuda/knn_cuda.h"

namespace lapis {
namespace geometry {
namespace cuda {

// Host pointers. points n x 3; neighbors n x k (entries < 0 ignored, all < n). Writes normals
// (n x 3), curvature (n) and valid (n).
void normals_from_neighbors_cuda(const float* points, int64_t n, const int32_t* neighbors, int k,
                                 float* normals, float* curvature, uint8_t* valid);

// Same on device pointers (no transfers); runs on lapis::cuda::stream() without waiting.
void normals_from_neighbors_cuda_device(const float* d_points, int64_t n,
                                        const int32_t* d_neighbors, int k, float* d_normals,
                                        float* d_curvature, uint8_t* d_valid);

// Host pointers: fused grid kNN + PCA on the device (no n x k neighbour matrix), transfers
// included.
void estimate_normals_pca_cuda(const float* points, int64_t n, int k, bool include_self,
                               float* normals, float* curvature, uint8_t* valid);

// Device pointers, no transfers; runs on lapis::cuda::stream() and waits only for the grid
// build's small readbacks. kNN into d_indices (n x k int32, row i = neighbours of point i) and
// d_sq_distances (n x k), then PCA from them: for callers that also want the neighbours.
void estimate_normals_pca_cuda_device(const float* d_points, int64_t n, int k, bool include_self,
                                      int32_t* d_indices, float* d_sq_distances, float* d_normals,
                                      float* d_curvature, uint8_t* d_valid);

// Device pointers, kNN fused with PCA (knn_pca_normals_cuda_device): the same normals without
// the n x k neighbour matrix; the fastest path when only normals are needed.
void estimate_normals_pca_cuda_device_fused(const float* d_points, int64_t n, int k,
                                            bool include_self, float* d_normals, float* d_curvature,
                                            uint8_t* d_valid, KnnGridStats* stats = nullptr);

}  // namespace cuda
}  // namespace geometry
}  // namespace lapis
