// Device helpers shared by the kernels' .cu files: grid-stride loops, precision-generic math,
// and deterministic warp/block reductions (fixed summation order, no atomics).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace lapis {
namespace cuda {

constexpr unsigned kFullMask = 0xffffffffu;

// Grid-stride loop over n elements.
#define LAPIS_KERNEL_LOOP(i, n)                                                          \
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); \
       i += static_cast<int64_t>(blockDim.x) * gridDim.x)

__device__ inline float dev_exp(float x) { return expf(x); }
__device__ inline double dev_exp(double x) { return exp(x); }
__device__ inline float dev_log(float x) { return logf(x); }
__device__ inline double dev_log(double x) { return log(x); }
template <typename T>
__device__ inline T dev_inf() { return static_cast<T>(INFINITY); }
__device__ inline float dev_erf(float x) { return erff(x); }
__device__ inline double dev_erf(double x) { return erf(x); }

// Butterfly all-reduce within a warp: every lane ends with the same (bitwise) value, since each
// step adds the same two operands on both partner lanes.
template <typename T>
__device__ T warp_all_sum(T v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFullMask, v, o);
  return v;
}
template <typename T>
__device__ T warp_all_max(T v) {
  for (int o = 16; o > 0; o >>= 1) v = max(v, __shfl_xor_sync(kFullMask, v, o));
  return v;
}

// Deterministic sum over the block (blockDim.x a multiple of 32); the result is valid in
// thread 0. Every thread of the block must call it.
template <typename T>
__device__ T block_sum(T v) {
  __shared__ double raw[32];  // double storage serves float and double
  T* shared = reinterpret_cast<T*>(raw);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = warp_all_sum(v);
  __syncthreads();  // an earlier call may still be reading shared
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  const int warps = blockDim.x >> 5;
  v = threadIdx.x < warps ? shared[threadIdx.x] : T(0);
  if (warp == 0) v = warp_all_sum(v);
  return v;
}

// Single-launch "last block done" reductions. Every thread of the block calls this (uniform
// control flow) after the block stored its partials. Returns true, in every thread, in the block
// that arrives last among the `expected` blocks sharing `counter`; that block then sees every
// partial (read them with __ldcg, from L2) and has reset the counter to zero for the next kernel
// on the stream. The counter only elects the finishing block: the partials are added in a fixed
// order, so results stay deterministic. Counters come from reduction_counters()
// (kernels/cuda/elementwise_cuda.h).
__device__ inline bool last_block_arrives(unsigned int* counter, unsigned int expected) {
  __shared__ bool last;
  __threadfence();  // this thread's partial stores are visible device-wide before the count
  __syncthreads();
  if (threadIdx.x == 0 && threadIdx.y == 0 && threadIdx.z == 0) {
    const unsigned int arrived = atomicAdd(counter, 1u);
    last = arrived + 1u == expected;
    if (last) *counter = 0u;  // all blocks have counted: no further atomics on it
  }
  __syncthreads();
  if (last) __threadfence();  // order the partial loads after the observed count
  return last;
}

// Sums of p[s * stride] and q[s * stride] over s = first, first + step, ... < count, each added
// in that order (so each result is the plain sequential sum, bit for bit), with 8 slices' loads
// of both arrays in flight at a time instead of one dependent L2 round trip per term. For the
// finishing block of a last_block_arrives reduction or after a grid-wide sync: __ldcg reads the
// other blocks' partials from L2. q may be null (then *q_sum is left alone).
template <typename T>
__device__ void ordered_partial_sums(const T* p, const T* q, int64_t first, int64_t step,
                                     int64_t count, int64_t stride, T* p_sum, T* q_sum) {
  constexpr int kBatch = 8;  // 16 loads in flight; more would cost the cooperative
                             // BatchNorm kernels occupancy (their blocks must all be resident)
  T sp = T(0), sq = T(0);
  for (int64_t s0 = first; s0 < count; s0 += kBatch * step) {
    T vp[kBatch], vq[kBatch];
#pragma unroll
    for (int u = 0; u < kBatch; ++u) {
      const int64_t s = s0 + u * step;
      vp[u] = s < count ? __ldcg(p + s * stride) : T(0);
      vq[u] = q != nullptr && s < count ? __ldcg(q + s * stride) : T(0);
    }
#pragma unroll
    for (int u = 0; u < kBatch; ++u) {
      sp += vp[u];
      sq += vq[u];
    }
  }
  *p_sum = sp;
  if (q != nullptr) *q_sum = sq;
}

template <typename T>
__device__ T ordered_partial_sum(const T* p, int64_t first, int64_t step, int64_t count,
                                 int64_t stride) {
  T sum = T(0);
  ordered_partial_sums<T>(p, nullptr, first, step, count, stride, &sum, nullptr);
  return sum;
}

// A null pointer counts as aligned (an absent operand).
inline bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

}  // namespace cuda
}  // namespace lapis
