// CUDA PCA normals (host-only declarations; no CUDA types). Same arithmetic as the CPU path
// (geometry/pca3.h, double precision covariance and eigen solve).
#pragma once

#include <cstdint>

namespace lapis {
namespace geometry {
namespace cuda {

// Host pointers. points n x 3; neighbors n x k (entries < 0 ignored, all < n). Writes normals
// (n x 3), curvature (n) and valid (n).
void normals_from_neighbors_cuda(const float* points, int64_t n, const int32_t* neighbors, int k,
                                 float* normals, float* curvature, uint8_t* valid);

// Host pointers: grid kNN and PCA on the device, transfers included.
void estimate_normals_pca_cuda(const float* points, int64_t n, int k, bool include_self,
                               float* normals, float* curvature, uint8_t* valid);

// Device pointers, no transfers (for throughput measurements); runs on lapis::cuda::stream()
// and does not wait for completion. d_indices is scratch of n * k int32 and d_sq_distances of
// n * k floats.
void estimate_normals_pca_cuda_device(const float* d_points, int64_t n, int k, bool include_self,
                                      int32_t* d_indices, float* d_sq_distances, float* d_normals,
                                      float* d_curvature, uint8_t* d_valid);

}  // namespace cuda
}  // namespace geometry
}  // namespace lapis
