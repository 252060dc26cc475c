// LAPIS_HOST_DEVICE marks small inline functions that both the host compiler and nvcc compile
// (for CPU code and inside kernels), so the two devices share one definition.
#pragma once

#if defined(__CUDACC__)
#define LAPIS_HOST_DEVICE __host__ __device__
#else
#define LAPIS_HOST_DEVICE
#endif
