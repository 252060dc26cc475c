// CUDA kNN on a uniform grid, alone (knn_cuda_device) or fused with PCA normals
// (knn_pca_normals_cuda_device).
//
// Grid build:
// 1. Bounding box of the points and a non-finite flag (warp reductions + atomics; min, max and
//    or are order-independent, so the result is deterministic). One small readback.
// 2. Cell edge from geometry::CellSizeSearch (the box volume alone is wrong for surfaces): at
//    each candidate edge the points get their cell keys (row-major, x fastest), are sorted by
//    key (CUB radix sort, stable), and the runs of equal keys are counted on the device (an
//    integer count, deterministic) and read back. At most two counts and three sorts.
// 3. Cell table (start, end) per cell, and the points gathered in cell order as float4
//    (x, y, z, bits of the original index), so a candidate is one 16-byte load.
//
// Search: one thread per query, queries in cell order so the threads of a warp visit the same
// few cells. Rings of cells at Chebyshev distance r = 0, 1, 2, ... around the query's cell; a
// cell (or a whole z slab or y row) is skipped when its box, grown by the rounding margin, is
// farther than the current k-th distance, and the rings stop when every unvisited cell is
// farther than the k-th distance or the rings cover the grid. The candidate list holds 64-bit
// keys (distance bits << 32 | index): bits of non-negative floats order like the floats, so one
// integer compare orders by (distance, index), the brute-force order. For k <= 32 the list is
// in registers (fully unrolled compare-and-shift insertion), above in local memory.
// Distances use __fsub_rn/__fmul_rn/__fadd_rn, so they equal the CPU's ((dx*dx + dy*dy) + dz*dz)
// bit for bit, and the results are identical to brute force.
//
// The fused normals kernel runs the same search and then, still in the thread, the PCA of the
// k neighbours in double precision with the formulas of geometry/pca3.h pca_normal (same order
// of summation), so the n x k neighbour matrix never goes through memory.
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cub/device/device_radix_sort.cuh>

#include "core/check.h"
#include "core/cuda/cuda_check.h"
#include "core/cuda_api.h"
#include "geometry/cuda/knn_cuda.h"
#include "geometry/grid_cell_size.h"
#include "geometry/pca3.h"

namespace lapis {
namespace geometry {
namespace cuda {

namespace {

using u64 = unsigned long long;

constexpr int kBlock = 256;        // element-wise kernels
constexpr int kSearchBlock = 128;  // search kernels

// Key of an empty list slot: distance +inf, index 0xffffffff. Every real candidate (finite or
// infinite distance, index < 2^31) is smaller.
constexpr u64 kEmptyKey = (u64{0x7f800000u} << 32) | u64{0xffffffffu};

// Device buffer from the library's caching allocator, freed on scope exit.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t bytes) { reset(bytes); }
  ~DeviceBuffer() { release(); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  void reset(size_t bytes) {
    release();
    if (bytes > 0) ptr_ = lapis::cuda::device_alloc(bytes);
  }
  template <typename T>
  T* as() const {
    return static_cast<T*>(ptr_);
  }

 private:
  void release() {
    if (ptr_) lapis::cuda::device_free(ptr_);
    ptr_ = nullptr;
  }
  void* ptr_ = nullptr;
};

struct GridParams {
  float ox, oy, oz;  // origin (bounding-box minimum)
  float h;           // cell edge
  float inv_h;
  int nx, ny, nz;
  float margin;  // slack for rounding in the cell assignment and the cell faces
};

// Written by the build kernels, read back by the host.
struct GridScratch {
  float box[6];  // min x, y, z, max x, y, z
  int nonfinite;
  int pad;
  u64 occupied;  // runs of equal keys in the sorted keys
};

__device__ __forceinline__ float sq_dist_rn(float ax, float ay, float az, float bx, float by,
                                            float bz) {
  const float dx = __fsub_rn(ax, bx), dy = __fsub_rn(ay, by), dz = __fsub_rn(az, bz);
  return __fadd_rn(__fadd_rn(__fmul_rn(dx, dx), __fmul_rn(dy, dy)), __fmul_rn(dz, dz));
}

__device__ __forceinline__ u64 make_key(float d, int index) {
  return (static_cast<u64>(__float_as_uint(d)) << 32) | static_cast<unsigned>(index);
}
__device__ __forceinline__ float key_dist(u64 key) {
  return __uint_as_float(static_cast<unsigned>(key >> 32));
}
__device__ __forceinline__ int key_index(u64 key) {
  return static_cast<int>(static_cast<unsigned>(key));
}

__device__ __forceinline__ int cell_coord(float v, float o, float inv_h, int n) {
  float f = floorf((v - o) * inv_h);
  f = fminf(fmaxf(f, 0.f), static_cast<float>(n - 1));  // also maps NaN to 0 (fmaxf)
  return static_cast<int>(f);
}

__device__ __forceinline__ void atomic_min_float(float* addr, float v) {
  if (v >= 0.f) {
    atomicMin(reinterpret_cast<int*>(addr), __float_as_int(v));
  } else {
    atomicMax(reinterpret_cast<unsigned int*>(addr), __float_as_uint(v));
  }
}

__device__ __forceinline__ void atomic_max_float(float* addr, float v) {
  if (v >= 0.f) {
    atomicMax(reinterpret_cast<int*>(addr), __float_as_int(v));
  } else {
    atomicMin(reinterpret_cast<unsigned int*>(addr), __float_as_uint(v));
  }
}

__global__ void grid_scratch_init_kernel(GridScratch* s) {
  for (int c = 0; c < 3; ++c) {
    s->box[c] = INFINITY;
    s->box[3 + c] = -INFINITY;
  }
  s->nonfinite = 0;
  s->pad = 0;
  s->occupied = 0;
}

// Bounding box (NaN is ignored by fminf/fmaxf) and a flag for NaN/inf coordinates.
// atomic_min_float/atomic_max_float need v != -0.
__global__ void bbox_kernel(const float* __restrict__ pts, int64_t n, GridScratch* s) {
  float lo[3] = {INFINITY, INFINITY, INFINITY};
  float hi[3] = {-INFINITY, -INFINITY, -INFINITY};
  int bad = 0;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    for (int c = 0; c < 3; ++c) {
      // -0 + 0 = +0: the atomics below order floats by their bits, where -0 would sort as the
      // smallest negative number.
      const float v = __fadd_rn(pts[3 * i + c], 0.f);
      lo[c] = fminf(lo[c], v);
      hi[c] = fmaxf(hi[c], v);
      bad |= isfinite(v) ? 0 : 1;
    }
  }
  for (int offset = 16; offset > 0; offset >>= 1) {
    for (int c = 0; c < 3; ++c) {
      lo[c] = fminf(lo[c], __shfl_down_sync(0xffffffffu, lo[c], offset));
      hi[c] = fmaxf(hi[c], __shfl_down_sync(0xffffffffu, hi[c], offset));
    }
  }
  bad = __any_sync(0xffffffffu, bad);
  if ((threadIdx.x & 31) == 0) {
    for (int c = 0; c < 3; ++c) {
      atomic_min_float(&s->box[c], lo[c]);
      atomic_max_float(&s->box[3 + c], hi[c]);
    }
    if (bad) atomicOr(&s->nonfinite, 1);
  }
}

__global__ void iota_kernel(int* __restrict__ out, int64_t n) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) out[i] = static_cast<int>(i);
}

// Row-major cell key (x fastest) of each of the n points xyz (n x 3).
__global__ void cell_key_kernel(const float* __restrict__ xyz, int64_t n, GridParams g,
                                unsigned int* __restrict__ keys) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const int cx = cell_coord(xyz[3 * i], g.ox, g.inv_h, g.nx);
  const int cy = cell_coord(xyz[3 * i + 1], g.oy, g.inv_h, g.ny);
  const int cz = cell_coord(xyz[3 * i + 2], g.oz, g.inv_h, g.nz);
  keys[i] = (static_cast<unsigned int>(cz) * g.ny + cy) * g.nx + cx;
}

// Number of runs of equal keys in sorted keys = occupied cells. One atomic per block.
__global__ void count_runs_kernel(const unsigned int* __restrict__ keys, int64_t n, u64* count) {
  u64 local = 0;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    local += (i == 0 || keys[i] != keys[i - 1]) ? 1 : 0;
  }
  for (int offset = 16; offset > 0; offset >>= 1) {
    local += __shfl_down_sync(0xffffffffu, local, offset);
  }
  __shared__ u64 warp_sums[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) warp_sums[warp] = local;
  __syncthreads();
  if (warp == 0) {
    u64 v = lane < static_cast<int>(blockDim.x >> 5) ? warp_sums[lane] : 0;
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(0xffffffffu, v, offset);
    if (lane == 0 && v > 0) atomicAdd(count, v);
  }
}

// Cell ranges [start, end) in the sorted order (the table is zeroed first: empty cells stay
// (0, 0)), and the points gathered in sorted order with their original index in w.
__global__ void cell_table_kernel(const unsigned int* __restrict__ sorted_keys,
                                  const int* __restrict__ sorted_order,
                                  const float* __restrict__ pts, int64_t n,
                                  int2* __restrict__ cells, float4* __restrict__ sorted_pts) {
  const int64_t s = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (s >= n) return;
  const unsigned int key = sorted_keys[s];
  if (s == 0 || sorted_keys[s - 1] != key) cells[key].x = static_cast<int>(s);
  if (s == n - 1 || sorted_keys[s + 1] != key) cells[key].y = static_cast<int>(s + 1);
  const int64_t i = sorted_order[s];
  sorted_pts[s] =
      make_float4(pts[3 * i], pts[3 * i + 1], pts[3 * i + 2], __int_as_float(static_cast<int>(i)));
}

// ---- candidate lists --------------------------------------------------------------------

// The k best keys in registers. The list has KMAX >= k slots, sorted ascending; the first
// KMAX - k hold key 0 (the smallest key), which no insertion moves, so the k real slots are
// the last ones and the k-th best is always v[KMAX - 1]: every index is a compile-time
// constant after unrolling and the list never leaves registers.
template <int KMAX>
struct RegList {
  u64 v[KMAX];

  __device__ __forceinline__ void init(int k) {
#pragma unroll
    for (int j = 0; j < KMAX; ++j) v[j] = j < KMAX - k ? u64{0} : kEmptyKey;
  }
  __device__ __forceinline__ u64 worst() const { return v[KMAX - 1]; }
  // Requires key < worst(): shifts the larger entries up by one and drops the last.
  __device__ __forceinline__ void insert(u64 key) {
#pragma unroll
    for (int j = KMAX - 1; j > 0; --j) {
      const u64 prev = v[j - 1];
      v[j] = key < prev ? prev : (key < v[j] ? key : v[j]);
    }
    v[0] = key < v[0] ? key : v[0];
  }
  // f(rank, key) for the k entries in ascending order.
  template <class F>
  __device__ __forceinline__ void for_each(int k, F&& f) const {
#pragma unroll
    for (int j = 0; j < KMAX; ++j) {
      if (j >= KMAX - k) f(j - (KMAX - k), v[j]);
    }
  }
};

// The k best keys in local memory (large k: a register list would spill anyway).
template <int KMAX>
struct LocalList {
  u64 v[KMAX];
  u64 w;  // v[k - 1], kept in a register
  int k;

  __device__ __forceinline__ void init(int kk) {
    k = kk;
    for (int j = 0; j < kk; ++j) v[j] = kEmptyKey;
    w = kEmptyKey;
  }
  __device__ __forceinline__ u64 worst() const { return w; }
  __device__ __forceinline__ void insert(u64 key) {
    int pos = k - 1;
    while (pos > 0 && key < v[pos - 1]) {
      v[pos] = v[pos - 1];
      --pos;
    }
    v[pos] = key;
    w = v[k - 1];
  }
  template <class F>
  __device__ __forceinline__ void for_each(int, F&& f) const {
    for (int j = 0; j < k; ++j) f(j, v[j]);
  }
};

// ---- search -----------------------------------------------------------------------------

struct SearchArgs {
  const float4* sorted_pts;  // n, cell order, w = original index bits
  const int2* cells;         // nx * ny * nz ranges into sorted_pts
  GridParams g;
  const float* points;     // n x 3 original order (PCA gathers)
  const float* queries;    // m x 3 external queries, or nullptr for self queries
  const int* query_order;  // external queries in cell order (m)
  int64_t m;
  int k;
  int include_self;
  int32_t* out_idx;  // m x k (kNN kernel)
  float* out_d2;     // m x k (kNN kernel)
  float* normals;    // n x 3 (PCA kernel)
  float* curvature;  // n (PCA kernel)
  uint8_t* valid;    // n (PCA kernel)
};

// Distance along one axis from q to the slab of cell c (grown by the margin); 0 for the
// query's own cell. Only interior faces are used (c < cq: the face c + 1 <= cq <= n - 1;
// c > cq: the face c >= 1), so points clamped into the outer cells are covered.
__device__ __forceinline__ float axis_gap(float q, int c, int cq, float o, float h, float margin) {
  float gap = 0.f;
  if (c < cq) {
    gap = q - (o + static_cast<float>(c + 1) * h) - margin;
  } else if (c > cq) {
    gap = (o + static_cast<float>(c) * h) - margin - q;
  }
  return fmaxf(gap, 0.f);
}

// True when every point at squared distance >= lb2 (a lower bound from cell boxes) is farther
// than the current k-th neighbour. The factor absorbs the rounding of lb2 and of the point
// distances (a few ulps); an empty slot's distance is +inf, so nothing is pruned until the
// list is full.
template <class List>
__device__ __forceinline__ bool beyond_worst(float lb2, const List& list) {
  return lb2 * (1.0f - 1e-5f) > key_dist(list.worst());
}

template <class List>
__device__ __forceinline__ void scan_cell(const SearchArgs& a, int cell, float qx, float qy,
                                          float qz, int skip, List& list) {
  const int2 range = __ldg(&a.cells[cell]);
  for (int s = range.x; s < range.y; ++s) {
    const float4 p = __ldg(&a.sorted_pts[s]);
    const int idx = __float_as_int(p.w);
    const u64 key = make_key(sq_dist_rn(qx, qy, qz, p.x, p.y, p.z), idx);
    if (key < list.worst() && idx != skip) list.insert(key);
  }
}

template <class List>
__device__ void grid_search(const SearchArgs& a, float qx, float qy, float qz, int skip,
                            List& list) {
  const GridParams& g = a.g;
  const int cx = cell_coord(qx, g.ox, g.inv_h, g.nx);
  const int cy = cell_coord(qy, g.oy, g.inv_h, g.ny);
  const int cz = cell_coord(qz, g.oz, g.inv_h, g.nz);
  for (int r = 0;; ++r) {
    // Ring r: the cells at Chebyshev distance exactly r, clipped to the grid.
    const int z0 = max(cz - r, 0), z1 = min(cz + r, g.nz - 1);
    const int y0 = max(cy - r, 0), y1 = min(cy + r, g.ny - 1);
    const int x0 = max(cx - r, 0), x1 = min(cx + r, g.nx - 1);
    for (int z = z0; z <= z1; ++z) {
      const float gz = axis_gap(qz, z, cz, g.oz, g.h, g.margin);
      const float gz2 = gz * gz;
      if (beyond_worst(gz2, list)) continue;
      const bool z_face = (z == cz - r || z == cz + r);
      for (int y = y0; y <= y1; ++y) {
        const float gy = axis_gap(qy, y, cy, g.oy, g.h, g.margin);
        const float gzy2 = gz2 + gy * gy;
        if (beyond_worst(gzy2, list)) continue;
        const int row = (z * g.ny + y) * g.nx;
        if (z_face || y == cy - r || y == cy + r) {
          for (int x = x0; x <= x1; ++x) {
            const float gx = axis_gap(qx, x, cx, g.ox, g.h, g.margin);
            if (beyond_worst(gzy2 + gx * gx, list)) continue;
            scan_cell(a, row + x, qx, qy, qz, skip, list);
          }
        } else {
          // Inside the shell's y and z range only the two x faces belong to ring r (r >= 1).
          if (cx - r >= 0) {
            const float gx = axis_gap(qx, cx - r, cx, g.ox, g.h, g.margin);
            if (!beyond_worst(gzy2 + gx * gx, list))
              scan_cell(a, row + cx - r, qx, qy, qz, skip, list);
          }
          if (cx + r < g.nx) {
            const float gx = axis_gap(qx, cx + r, cx, g.ox, g.h, g.margin);
            if (!beyond_worst(gzy2 + gx * gx, list))
              scan_cell(a, row + cx + r, qx, qy, qz, skip, list);
          }
        }
      }
    }
    // Lower bound on the distance of any point outside the cells of rings 0..r: the distance
    // from q to the nearest face of the visited block that is not on the grid boundary.
    float bound = INFINITY;
    if (cx - r > 0) bound = fminf(bound, qx - (g.ox + static_cast<float>(cx - r) * g.h));
    if (cx + r < g.nx - 1) bound = fminf(bound, g.ox + static_cast<float>(cx + r + 1) * g.h - qx);
    if (cy - r > 0) bound = fminf(bound, qy - (g.oy + static_cast<float>(cy - r) * g.h));
    if (cy + r < g.ny - 1) bound = fminf(bound, g.oy + static_cast<float>(cy + r + 1) * g.h - qy);
    if (cz - r > 0) bound = fminf(bound, qz - (g.oz + static_cast<float>(cz - r) * g.h));
    if (cz + r < g.nz - 1) bound = fminf(bound, g.oz + static_cast<float>(cz + r + 1) * g.h - qz);
    if (bound == INFINITY) break;  // the rings cover the whole grid
    const float b = bound - g.margin;
    if (b > 0.f && key_dist(list.worst()) < b * b * (1.0f - 1e-5f)) break;
  }
}

// One thread per query, in cell order. kPca: the PCA normal of the neighbourhood instead of
// the neighbour lists.
template <class List, bool kPca>
__global__ void __launch_bounds__(kSearchBlock) grid_search_kernel(const SearchArgs a) {
  const int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (t >= a.m) return;
  float qx, qy, qz;
  int64_t row;
  int skip = -1;
  if (a.queries == nullptr) {
    const float4 q = __ldg(&a.sorted_pts[t]);
    qx = q.x;
    qy = q.y;
    qz = q.z;
    row = __float_as_int(q.w);
    if (!a.include_self) skip = static_cast<int>(row);
  } else {
    row = a.query_order[t];
    qx = a.queries[3 * row];
    qy = a.queries[3 * row + 1];
    qz = a.queries[3 * row + 2];
  }
  const int k = a.k;
  List list;
  list.init(k);
  grid_search(a, qx, qy, qz, skip, list);

  if (!kPca) {
    int32_t* oi = a.out_idx + row * k;
    float* od = a.out_d2 + row * k;
    list.for_each(k, [&](int c, u64 key) {
      oi[c] = key_index(key);
      od[c] = key_dist(key);
    });
    return;
  }
  // pca3::pca_normal over the neighbours in (distance, index) order: two passes (mean, then
  // centred covariance) in double, entries < 0 skipped.
  double mean[3] = {0.0, 0.0, 0.0};
  int count = 0;
  list.for_each(k, [&](int, u64 key) {
    const int i = key_index(key);
    if (i < 0) return;
    const float* p = a.points + 3 * static_cast<int64_t>(i);
    mean[0] += static_cast<double>(__ldg(p));
    mean[1] += static_cast<double>(__ldg(p + 1));
    mean[2] += static_cast<double>(__ldg(p + 2));
    ++count;
  });
  float nrm[3] = {nanf(""), nanf(""), nanf("")};
  float curv = nanf("");
  bool ok = false;
  if (count >= 3) {
    for (int c = 0; c < 3; ++c) mean[c] /= count;
    double cov[6] = {0.0, 0.0, 0.0, 0.0, 0.0, 0.0};
    list.for_each(k, [&](int, u64 key) {
      const int i = key_index(key);
      if (i < 0) return;
      const float* p = a.points + 3 * static_cast<int64_t>(i);
      const double dx = __ldg(p) - mean[0], dy = __ldg(p + 1) - mean[1],
                   dz = __ldg(p + 2) - mean[2];
      cov[0] += dx * dx;
      cov[1] += dx * dy;
      cov[2] += dx * dz;
      cov[3] += dy * dy;
      cov[4] += dy * dz;
      cov[5] += dz * dz;
    });
    for (int c = 0; c < 6; ++c) cov[c] /= count;
    double nd[3], cd = 0.0;
    if (pca3::normal_from_covariance(cov, nd, &cd)) {
      ok = true;
      for (int c = 0; c < 3; ++c) nrm[c] = static_cast<float>(nd[c]);
      curv = static_cast<float>(cd);
    }
  }
  a.normals[3 * row] = nrm[0];
  a.normals[3 * row + 1] = nrm[1];
  a.normals[3 * row + 2] = nrm[2];
  a.curvature[row] = curv;
  a.valid[row] = ok ? 1 : 0;
}

template <class List, bool kPca>
void launch_list(const SearchArgs& a) {
  const auto kernel = grid_search_kernel<List, kPca>;
  LAPIS_LAUNCH(kernel, a.m, kSearchBlock, a);
}

template <bool kPca>
void launch_search(const SearchArgs& a) {
  if (a.k <= 8) {
    launch_list<RegList<8>, kPca>(a);
  } else if (a.k <= 12) {
    launch_list<RegList<12>, kPca>(a);
  } else if (a.k <= 16) {
    launch_list<RegList<16>, kPca>(a);
  } else if (a.k <= 32) {
    launch_list<RegList<32>, kPca>(a);
  } else if (a.k <= 64) {
    launch_list<LocalList<64>, kPca>(a);
  } else {
    launch_list<LocalList<128>, kPca>(a);
  }
}

// ---- grid build (host) ------------------------------------------------------------------

struct Grid {
  GridParams g{};
  int64_t cells = 0;
  DeviceBuffer sorted_pts;      // n float4
  DeviceBuffer cells_range;     // cells int2
  int64_t occupied_cells = -1;  // of the final grid, when it was counted
  int sorts = 0;
};

// Grid parameters for the search's current edge. An edge outside the normal float range (a
// cloud spanning ~1e-38, or coordinates near the float limit) gets a single cell, which is
// always exact.
GridParams grid_params(const CellSizeSearch& search, const float box[6], double maxabs) {
  GridParams g;
  g.ox = box[0];
  g.oy = box[1];
  g.oz = box[2];
  const double h = search.cell();
  const float hf = static_cast<float>(h), inv = static_cast<float>(1.0 / h);
  // Beyond ~1e36 the cell faces o + c * h could overflow float.
  if (std::isfinite(hf) && std::isfinite(inv) && hf >= FLT_MIN && inv >= FLT_MIN && maxabs < 1e36) {
    g.h = hf;
    g.inv_h = inv;
    g.nx = search.dims()[0];
    g.ny = search.dims()[1];
    g.nz = search.dims()[2];
  } else {
    g.h = 1.f;
    g.inv_h = 1.f;
    g.nx = g.ny = g.nz = 1;
  }
  g.margin = static_cast<float>(1e-3 * static_cast<double>(g.h) + 4e-6 * maxabs);
  return g;
}

int64_t total_cells(const GridParams& g) { return static_cast<int64_t>(g.nx) * g.ny * g.nz; }

int key_bits(int64_t cells) {
  int bits = 1;
  while ((int64_t{1} << bits) < cells) ++bits;
  return bits;
}

// Sorts the `count` points xyz (count x 3) by cell key: keys_sorted and order_sorted (indices
// into xyz) in ascending key order, stable.
class CellSorter {
 public:
  explicit CellSorter(int64_t count)
      : count_(count),
        keys_(count * sizeof(unsigned int)),
        order_(count * sizeof(int)),
        keys_sorted_(count * sizeof(unsigned int)),
        order_sorted_(count * sizeof(int)) {
    LAPIS_LAUNCH(iota_kernel, count, kBlock, order_.as<int>(), count);
  }

  void sort(const float* d_xyz, const GridParams& g) {
    LAPIS_LAUNCH(cell_key_kernel, count_, kBlock, d_xyz, count_, g, keys_.as<unsigned int>());
    const int end_bit = key_bits(total_cells(g));
    size_t bytes = 0;
    LAPIS_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(
        nullptr, bytes, keys_.as<unsigned int>(), keys_sorted_.as<unsigned int>(), order_.as<int>(),
        order_sorted_.as<int>(), static_cast<int>(count_), 0, end_bit, lapis::cuda::stream()));
    if (bytes > temp_bytes_) {
      temp_.reset(bytes);
      temp_bytes_ = bytes;
    }
    LAPIS_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(
        temp_.as<void>(), bytes, keys_.as<unsigned int>(), keys_sorted_.as<unsigned int>(),
        order_.as<int>(), order_sorted_.as<int>(), static_cast<int>(count_), 0, end_bit,
        lapis::cuda::stream()));
  }

  const unsigned int* keys_sorted() const { return keys_sorted_.as<unsigned int>(); }
  const int* order_sorted() const { return order_sorted_.as<int>(); }

 private:
  int64_t count_;
  DeviceBuffer keys_, order_, keys_sorted_, order_sorted_, temp_;
  size_t temp_bytes_ = 0;
};

// Occupied cells = runs in the sorted keys; waits for the count.
int64_t count_occupied(const unsigned int* d_keys_sorted, int64_t n, GridScratch* d_scratch) {
  cudaStream_t st = lapis::cuda::stream();
  lapis::cuda::memset_zero(&d_scratch->occupied, sizeof(u64));
  const int64_t blocks = std::min<int64_t>((n + kBlock - 1) / kBlock, 2048);
  count_runs_kernel<<<static_cast<unsigned>(std::max<int64_t>(blocks, 1)), kBlock, 0, st>>>(
      d_keys_sorted, n, &d_scratch->occupied);
  LAPIS_CUDA_CHECK(cudaGetLastError());
  u64 count = 0;
  lapis::cuda::copy_device_to_host(&count, &d_scratch->occupied, sizeof(count));
  return static_cast<int64_t>(count);
}

void build_grid(const float* d_points, int64_t n, int k, bool count_final, Grid& grid) {
  cudaStream_t st = lapis::cuda::stream();
  DeviceBuffer scratch(sizeof(GridScratch));
  GridScratch* ds = scratch.as<GridScratch>();
  grid_scratch_init_kernel<<<1, 1, 0, st>>>(ds);
  LAPIS_CUDA_CHECK(cudaGetLastError());
  {
    const int64_t blocks = std::min<int64_t>((n + kBlock - 1) / kBlock, 2048);
    bbox_kernel<<<static_cast<unsigned>(blocks), kBlock, 0, st>>>(d_points, n, ds);
    LAPIS_CUDA_CHECK(cudaGetLastError());
  }
  GridScratch hs;
  lapis::cuda::copy_device_to_host(&hs, ds, sizeof(hs));
  LAPIS_CHECK(hs.nonfinite == 0, "knn_cuda", "a point of the cloud of ", n,
              " points has a non-finite coordinate (NaN or inf)");
  double lo[3], hi[3], maxabs = 0.0;
  for (int c = 0; c < 3; ++c) {
    lo[c] = hs.box[c];
    hi[c] = hs.box[3 + c];
    maxabs = std::max({maxabs, std::fabs(lo[c]), std::fabs(hi[c])});
  }

  // Cell edge: sort at each candidate edge and count the occupied cells until the search is
  // done; sort once more if the final edge is not the last one sorted.
  CellSizeSearch search(lo, hi, n, k);
  CellSorter sorter(n);
  bool have_sorted = false;
  GridParams sorted_g{};
  while (!search.done()) {
    sorted_g = grid_params(search, hs.box, maxabs);
    sorter.sort(d_points, sorted_g);
    have_sorted = true;
    ++grid.sorts;
    grid.occupied_cells = count_occupied(sorter.keys_sorted(), n, ds);
    search.report(grid.occupied_cells);
  }
  grid.g = grid_params(search, hs.box, maxabs);
  const GridParams& g = grid.g;
  if (!have_sorted || sorted_g.h != g.h || sorted_g.inv_h != g.inv_h || sorted_g.nx != g.nx ||
      sorted_g.ny != g.ny || sorted_g.nz != g.nz) {
    sorter.sort(d_points, g);
    ++grid.sorts;
    grid.occupied_cells = count_final ? count_occupied(sorter.keys_sorted(), n, ds) : -1;
  }
  grid.cells = total_cells(g);
  LAPIS_CHECK(grid.cells <= (int64_t{1} << 31) - 1, "knn_cuda", "grid of ", g.nx, " x ", g.ny,
              " x ", g.nz, " cells is too large");

  // Cell table and the points in cell order.
  grid.cells_range.reset(static_cast<size_t>(grid.cells) * sizeof(int2));
  lapis::cuda::memset_zero(grid.cells_range.as<void>(),
                           static_cast<size_t>(grid.cells) * sizeof(int2));
  grid.sorted_pts.reset(static_cast<size_t>(n) * sizeof(float4));
  LAPIS_LAUNCH(cell_table_kernel, n, kBlock, sorter.keys_sorted(), sorter.order_sorted(), d_points,
               n, grid.cells_range.as<int2>(), grid.sorted_pts.as<float4>());
  // The sorter's buffers are freed on return; the caching allocator hands them out again only
  // to work queued later on the same stream, so no synchronisation is needed.
}

// Device-time measurement of build and search (only when stats are requested).
class StatsTimer {
 public:
  explicit StatsTimer(KnnGridStats* stats) : stats_(stats) {
    if (!stats_) return;
    for (cudaEvent_t& e : ev_) LAPIS_CUDA_CHECK(cudaEventCreate(&e));
    LAPIS_CUDA_CHECK(cudaEventRecord(ev_[0], lapis::cuda::stream()));
  }
  ~StatsTimer() {
    if (!stats_) return;
    for (cudaEvent_t e : ev_) cudaEventDestroy(e);
  }
  StatsTimer(const StatsTimer&) = delete;
  StatsTimer& operator=(const StatsTimer&) = delete;

  void built() {
    if (stats_) LAPIS_CUDA_CHECK(cudaEventRecord(ev_[1], lapis::cuda::stream()));
  }
  void done(const Grid& grid) {
    if (!stats_) return;
    LAPIS_CUDA_CHECK(cudaEventRecord(ev_[2], lapis::cuda::stream()));
    LAPIS_CUDA_CHECK(cudaEventSynchronize(ev_[2]));
    LAPIS_CUDA_CHECK(cudaEventElapsedTime(&stats_->build_ms, ev_[0], ev_[1]));
    LAPIS_CUDA_CHECK(cudaEventElapsedTime(&stats_->search_ms, ev_[1], ev_[2]));
    stats_->cell = grid.g.h;
    stats_->dims[0] = grid.g.nx;
    stats_->dims[1] = grid.g.ny;
    stats_->dims[2] = grid.g.nz;
    stats_->occupied_cells = grid.occupied_cells;
    stats_->sorts = grid.sorts;
  }

 private:
  KnnGridStats* stats_;
  cudaEvent_t ev_[3] = {};
};

void check_k(const char* op, int k) {
  LAPIS_CHECK(k >= 1 && k <= kMaxCudaKnnK, op, "k must be in [1, ", kMaxCudaKnnK, "], got ", k);
}

void check_sizes(const char* op, int64_t n, int64_t m, int k, int64_t available) {
  LAPIS_CHECK(k <= available, op, "k = ", k, " exceeds the ", available, " available points");
  LAPIS_CHECK(n < (int64_t{1} << 31) - 1, op, "too many points: ", n);
  LAPIS_CHECK(m < (int64_t{1} << 31) - 1, op, "too many queries: ", m);
}

SearchArgs search_args(const Grid& grid, const float* d_points, int64_t m, int k,
                       bool include_self) {
  SearchArgs a{};
  a.sorted_pts = grid.sorted_pts.as<float4>();
  a.cells = grid.cells_range.as<int2>();
  a.g = grid.g;
  a.points = d_points;
  a.m = m;
  a.k = k;
  a.include_self = include_self ? 1 : 0;
  return a;
}

}  // namespace

void knn_cuda_device(const float* d_points, int64_t n, const float* d_queries, int64_t m, int k,
                     bool include_self, int32_t* d_indices, float* d_sq_distances,
                     KnnGridStats* stats) {
  check_k("knn_cuda", k);
  LAPIS_CHECK(d_queries != nullptr || m == n, "knn_cuda", "self queries need m == n, got m = ", m,
              " and n = ", n);
  if (m == 0) return;
  const int64_t available = (d_queries == nullptr && !include_self) ? n - 1 : n;
  check_sizes("knn_cuda", n, m, k, available);
  StatsTimer timer(stats);
  Grid grid;
  build_grid(d_points, n, k, stats != nullptr, grid);
  timer.built();
  SearchArgs a = search_args(grid, d_points, m, k, include_self);
  a.out_idx = d_indices;
  a.out_d2 = d_sq_distances;
  if (d_queries == nullptr) {
    launch_search<false>(a);
  } else {
    // External queries in cell order too, so a warp shares cells.
    CellSorter qsort(m);
    qsort.sort(d_queries, grid.g);
    a.queries = d_queries;
    a.query_order = qsort.order_sorted();
    launch_search<false>(a);
  }
  timer.done(grid);
}

void knn_pca_normals_cuda_device(const float* d_points, int64_t n, int k, bool include_self,
                                 float* d_normals, float* d_curvature, uint8_t* d_valid,
                                 KnnGridStats* stats) {
  check_k("knn_pca_normals_cuda", k);
  if (n == 0) return;
  check_sizes("knn_pca_normals_cuda", n, n, k, include_self ? n : n - 1);
  StatsTimer timer(stats);
  Grid grid;
  build_grid(d_points, n, k, stats != nullptr, grid);
  timer.built();
  SearchArgs a = search_args(grid, d_points, n, k, include_self);
  a.normals = d_normals;
  a.curvature = d_curvature;
  a.valid = d_valid;
  launch_search<true>(a);
  timer.done(grid);
}

void knn_cuda(const float* points, int64_t n, const float* queries, int64_t m, int k,
              bool include_self, int32_t* indices, float* sq_distances) {
  if (m == 0) return;
  DeviceBuffer d_points(static_cast<size_t>(n) * 3 * sizeof(float));
  lapis::cuda::copy_host_to_device(d_points.as<void>(), points,
                                   static_cast<size_t>(n) * 3 * sizeof(float));
  DeviceBuffer d_queries(queries ? static_cast<size_t>(m) * 3 * sizeof(float) : 0);
  if (queries) {
    lapis::cuda::copy_host_to_device(d_queries.as<void>(), queries,
                                     static_cast<size_t>(m) * 3 * sizeof(float));
  }
  const size_t out = static_cast<size_t>(m) * static_cast<size_t>(k);
  DeviceBuffer d_idx(out * sizeof(int32_t)), d_d2(out * sizeof(float));
  knn_cuda_device(d_points.as<float>(), n, queries ? d_queries.as<float>() : nullptr, m, k,
                  include_self, d_idx.as<int32_t>(), d_d2.as<float>());
  lapis::cuda::copy_device_to_host(indices, d_idx.as<void>(), out * sizeof(int32_t));
  lapis::cuda::copy_device_to_host(sq_distances, d_d2.as<void>(), out * sizeof(float));
}

}  // namespace cuda
}  // namespace geometry
}  // namespace lapis
