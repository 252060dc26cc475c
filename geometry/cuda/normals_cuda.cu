// CUDA PCA normals. From a neighbour matrix: one thread per point runs the same
// double-precision covariance and closed-form eigen solve as the CPU (geometry/pca3.h) over
// its kNN row. From points alone: the grid kNN fused with the same PCA (knn_cuda.cu).
#include <cstdint>

#include "core/check.h"
#include "core/cuda/cuda_check.h"
#include "core/cuda_api.h"
#include "geometry/cuda/knn_cuda.h"
#include "geometry/cuda/normals_cuda.h"
#include "geometry/pca3.h"

namespace lapis {
namespace geometry {
namespace cuda {

namespace {

constexpr int kBlock = 128;

struct DeviceBuffer {
  void* ptr = nullptr;
  explicit DeviceBuffer(size_t bytes) {
    if (bytes > 0) ptr = lapis::cuda::device_alloc(bytes);
  }
  ~DeviceBuffer() {
    if (ptr) lapis::cuda::device_free(ptr);
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  template <typename T>
  T* as() const {
    return static_cast<T*>(ptr);
  }
};

__global__ void pca_normals_forward_kernel(const float* __restrict__ pts, int64_t n,
                                           const int* __restrict__ neighbors, int k,
                                           float* __restrict__ normals,
                                           float* __restrict__ curvature,
                                           uint8_t* __restrict__ valid) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  float nrm[3];
  float curv;
  const bool ok = pca3::pca_normal(pts, neighbors + i * k, k, nrm, &curv);
  normals[3 * i] = nrm[0];
  normals[3 * i + 1] = nrm[1];
  normals[3 * i + 2] = nrm[2];
  curvature[i] = curv;
  valid[i] = ok ? 1 : 0;
}

}  // namespace

void normals_from_neighbors_cuda_device(const float* d_points, int64_t n,
                                        const int32_t* d_neighbors, int k, float* d_normals,
                                        float* d_curvature, uint8_t* d_valid) {
  LAPIS_CHECK(k >= 0, "normals_from_neighbors_cuda", "k must be >= 0, got ", k);
  LAPIS_LAUNCH(pca_normals_forward_kernel, n, kBlock, d_points, n, d_neighbors, k, d_normals,
               d_curvature, d_valid);
}

void normals_from_neighbors_cuda(const float* points, int64_t n, const int32_t* neighbors, int k,
                                 float* normals, float* curvature, uint8_t* valid) {
  if (n == 0) return;
  const size_t pbytes = static_cast<size_t>(n) * 3 * sizeof(float);
  const size_t ibytes = static_cast<size_t>(n) * static_cast<size_t>(k) * sizeof(int32_t);
  DeviceBuffer d_points(pbytes), d_idx(ibytes), d_normals(pbytes);
  DeviceBuffer d_curv(static_cast<size_t>(n) * sizeof(float)), d_valid(static_cast<size_t>(n));
  lapis::cuda::copy_host_to_device(d_points.ptr, points, pbytes);
  if (ibytes > 0) lapis::cuda::copy_host_to_device(d_idx.ptr, neighbors, ibytes);
  normals_from_neighbors_cuda_device(d_points.as<float>(), n, d_idx.as<int32_t>(), k,
                                     d_normals.as<float>(), d_curv.as<float>(),
                                     d_valid.as<uint8_t>());
  lapis::cuda::copy_device_to_host(normals, d_normals.ptr, pbytes);
  lapis::cuda::copy_device_to_host(curvature, d_curv.ptr, static_cast<size_t>(n) * sizeof(float));
  lapis::cuda::copy_device_to_host(valid, d_valid.ptr, static_cast<size_t>(n));
}

void estimate_normals_pca_cuda_device(const float* d_points, int64_t n, int k, bool include_self,
                                      int32_t* d_indices, float* d_sq_distances, float* d_normals,
                                      float* d_curvature, uint8_t* d_valid) {
  if (n == 0) return;
  knn_cuda_device(d_points, n, nullptr, n, k, include_self, d_indices, d_sq_distances);
  normals_from_neighbors_cuda_device(d_points, n, d_indices, k, d_normals, d_curvature, d_valid);
}

void estimate_normals_pca_cuda_device_fused(const float* d_points, int64_t n, int k,
                                            bool include_self, float* d_normals, float* d_curvature,
                                            uint8_t* d_valid, KnnGridStats* stats) {
  knn_pca_normals_cuda_device(d_points, n, k, include_self, d_normals, d_curvature, d_valid, stats);
}

void estimate_normals_pca_cuda(const float* points, int64_t n, int k, bool include_self,
                               float* normals, float* curvature, uint8_t* valid) {
  if (n == 0) return;
  const size_t pbytes = static_cast<size_t>(n) * 3 * sizeof(float);
  DeviceBuffer d_points(pbytes), d_normals(pbytes);
  DeviceBuffer d_curv(static_cast<size_t>(n) * sizeof(float));
  DeviceBuffer d_valid(static_cast<size_t>(n));
  lapis::cuda::copy_host_to_device(d_points.ptr, points, pbytes);
  estimate_normals_pca_cuda_device_fused(d_points.as<float>(), n, k, include_self,
                                         d_normals.as<float>(), d_curv.as<float>(),
                                         d_valid.as<uint8_t>());
  lapis::cuda::copy_device_to_host(normals, d_normals.ptr, pbytes);
  lapis::cuda::copy_device_to_host(curvature, d_curv.ptr, static_cast<size_t>(n) * sizeof(float));
  lapis::cuda::copy_device_to_host(valid, d_valid.ptr, static_cast<size_t>(n));
}

}  // namespace cuda
}  // namespace geometry
}  // namespace lapis
