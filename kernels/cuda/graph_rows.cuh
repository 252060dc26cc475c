// Shared device helpers of the sparse graph kernels (graph attention, SDDMM, SpMM).
//
// Work mapping: one "head group" of NS = ceil(D / 4) consecutive lanes per (row, head) pair,
// each lane owning 4 consecutive values of the node-major [rows, H, D] layout (one float4 load
// when D % 4 == 0). floor(32 / NS) groups share a warp and never straddle one, so for H = 8,
// D = 8 a warp serves 16 (row, head) pairs = 2 destination rows, and each edge's K, V, E rows
// (256 bytes each) are read by 16 lanes as 16 coalesced float4 loads. Per-head dot products are
// reduced inside the group with shuffles (butterfly when NS is a power of two, else a fixed
// sequential order): deterministic, and every lane ends with the same bits. Groups of different
// rows in one warp run different edge counts; shuffles use the group's own lane mask, which is
// legal under independent thread scheduling (sm_70+).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

#include "kernels/cuda/device_utils.cuh"
#include "kernels/cuda/heavy_row_schedule.h"  // segment_valid

namespace lapis {
namespace cuda {

constexpr int kGraphBlock = 256;
constexpr int kSliceWidth = 4;  // values per lane

struct HeadGroup {
  int64_t row = 0;
  int h = 0;
  int s = 0;          // lane index within the group (owns dims 4s .. 4s+3)
  int base = 0;       // first lane of the group in the warp
  unsigned mask = 0;  // the group's lanes
};

// Lanes per (row, head) group for head dim d (d <= 128).
inline int head_group_lanes(int64_t d) { return static_cast<int>((d + kSliceWidth - 1) / kSliceWidth); }

// Blocks of kGraphBlock threads covering rows * heads groups.
inline unsigned head_group_blocks(int64_t rows, int64_t heads, int ns) {
  const int64_t per_warp = 32 / ns;
  const int64_t warps = (rows * heads + per_warp - 1) / per_warp;
  const int64_t blocks = (warps * 32 + kGraphBlock - 1) / kGraphBlock;
  return static_cast<unsigned>(blocks < 1 ? 1 : blocks);
}

// Fills g for this thread; false when the lane has no (row, head) pair.
__device__ inline bool head_group(int64_t rows, int heads, int ns, HeadGroup& g) {
  const int lane = threadIdx.x & 31;
  const int per_warp = 32 / ns;
  const int grp = lane / ns;
  if (grp >= per_warp) return false;
  const int64_t warp = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  const int64_t item = warp * per_warp + grp;
  if (item >= rows * heads) return false;
  g.row = item / heads;
  g.h = static_cast<int>(item - g.row * heads);
  g.base = grp * ns;
  g.s = lane - g.base;
  g.mask = ns == 32 ? kFullMask : (((1u << ns) - 1u) << g.base);
  return true;
}

// Sum of v over the group's lanes, same bits on every lane of the group.
template <typename T>
__device__ inline T group_sum(T v, const HeadGroup& g, int ns) {
  if ((ns & (ns - 1)) == 0) {
    for (int o = ns >> 1; o > 0; o >>= 1) v += __shfl_xor_sync(g.mask, v, o);
    return v;
  }
  T acc = T(0);
  for (int t = 0; t < ns; ++t) acc += __shfl_sync(g.mask, v, g.base + t);
  return acc;
}

// Loads the lane's 4 values at p (valid of them exist; the rest read as 0). VEC: p is 16-byte
// aligned and valid == 4.
template <typename T, bool VEC>
__device__ inline void load4(T (&r)[4], const T* __restrict__ p, int valid) {
  if constexpr (VEC && std::is_same<T, float>::value) {
    const float4 f = *reinterpret_cast<const float4*>(p);
    r[0] = f.x; r[1] = f.y; r[2] = f.z; r[3] = f.w;
  } else if constexpr (VEC) {
    const double2 a = *reinterpret_cast<const double2*>(p);
    const double2 b = *reinterpret_cast<const double2*>(p + 2);
    r[0] = a.x; r[1] = a.y; r[2] = b.x; r[3] = b.y;
  } else {
#pragma unroll
    for (int k = 0; k < 4; ++k) r[k] = k < valid ? p[k] : T(0);
  }
}

template <typename T, bool VEC>
__device__ inline void store4(T* __restrict__ p, const T (&r)[4], int valid) {
  if constexpr (VEC && std::is_same<T, float>::value) {
    *reinterpret_cast<float4*>(p) = make_float4(r[0], r[1], r[2], r[3]);
  } else if constexpr (VEC) {
    *reinterpret_cast<double2*>(p) = make_double2(r[0], r[1]);
    *reinterpret_cast<double2*>(p + 2) = make_double2(r[2], r[3]);
  } else {
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      if (k < valid) p[k] = r[k];
    }
  }
}

// Runs f(std::integral_constant<bool, flag>) so that runtime flags become template arguments.
template <typename F>
void with_flag(bool flag, F&& f) {
  if (flag) f(std::true_type{}); else f(std::false_type{});
}


}  // namespace cuda
}  // namespace lapis
