// CUDA-side helpers for .cu files only: status checks for the runtime, cuBLAS and cuSPARSE in
// one place, the library stream and handles, and a launch helper.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cusparse.h>

#include <cstdint>

#include "core/check.h"

namespace lapis {
namespace cuda {

[[noreturn]] void throw_cuda_error(const char* expr, cudaError_t status, const char* file, int line);
[[noreturn]] void throw_cublas_error(const char* expr, cublasStatus_t status, const char* file, int line);
[[noreturn]] void throw_cusparse_error(const char* expr, cusparseStatus_t status, const char* file, int line);

// The one stream all Lapis work runs on (created on first use).
cudaStream_t stream();
// Library handles bound to stream(), created lazily.
cublasHandle_t cublas_handle();
cusparseHandle_t cusparse_handle();

// Errors that kernels detect on the device (an index out of range, say) cannot throw there.
// A kernel records the first one with report_device_error(); the next host readback
// (copy_device_to_host, synchronize) throws it as a lapis::Error, so the hot path never waits.
enum DeviceErrorCode : int {
  kNoDeviceError = 0,
  kIndexOutOfRange = 1,     // gather/scatter/embedding index outside [0, rows)
  kLabelOutOfRange = 2,     // class label outside [0, classes)
  kBadSegmentPointers = 3,  // segment pointers not non-decreasing within [0, rows]
};
// Device pointer to the error word (zero when no error is pending).
int* device_error_flag();
__device__ inline void report_device_error(int* flag, int code) { atomicCAS(flag, 0, code); }

// Blocks for a 1-D launch over n items.
inline unsigned grid_for(int64_t n, int block) {
  const int64_t g = (n + block - 1) / block;
  return static_cast<unsigned>(g < 1 ? 1 : (g > 2147483647 ? 2147483647 : g));
}

}  // namespace cuda
}  // namespace lapis

#define LAPIS_CUDA_CHECK(expr)                                                     \
  do {                                                                             \
    cudaError_t lapis_status_ = (expr);                                            \
    if (lapis_status_ != cudaSuccess)                                              \
      ::lapis::cuda::throw_cuda_error(#expr, lapis_status_, __FILE__, __LINE__);   \
  } while (0)

#define LAPIS_CUBLAS_CHECK(expr)                                                   \
  do {                                                                             \
    cublasStatus_t lapis_status_ = (expr);                                         \
    if (lapis_status_ != CUBLAS_STATUS_SUCCESS)                                    \
      ::lapis::cuda::throw_cublas_error(#expr, lapis_status_, __FILE__, __LINE__); \
  } while (0)

#define LAPIS_CUSPARSE_CHECK(expr)                                                   \
  do {                                                                               \
    cusparseStatus_t lapis_status_ = (expr);                                         \
    if (lapis_status_ != CUSPARSE_STATUS_SUCCESS)                                    \
      ::lapis::cuda::throw_cusparse_error(#expr, lapis_status_, __FILE__, __LINE__); \
  } while (0)

// Launches kernel<<<grid, block, 0, stream()>>>(args...) unless n == 0, then checks the launch.
#define LAPIS_LAUNCH(kernel, n, block, ...)                                                \
  do {                                                                                     \
    const int64_t lapis_n_ = (n);                                                          \
    if (lapis_n_ > 0) {                                                                    \
      kernel<<<::lapis::cuda::grid_for(lapis_n_, (block)), (block), 0,                     \
               ::lapis::cuda::stream()>>>(__VA_ARGS__);                                    \
      LAPIS_CUDA_CHECK(cudaGetLastError());                                                \
    }                                                                                      \
  } while (0)
