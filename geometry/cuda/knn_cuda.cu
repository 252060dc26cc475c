// CUDA kNN on a uniform grid.
//
// 1. Bounding box of the points (warp reductions + one float atomic min/max per warp; min and
//    max are order-independent, so the result is deterministic).
// 2. Cell of each point, points sorted by cell (CUB radix sort), start/end of every cell.
// 3. One thread per query scans rings of cells (Chebyshev distance r = 0, 1, 2, ... from its
//    own cell), keeping a sorted list of the best k (distance, index) pairs, and stops when the
//    list is full and every unvisited cell is farther than the k-th distance (with a margin
//    for rounding in the cell assignment), or when the rings cover the grid.
// Distances use __fsub_rn/__fmul_rn/__fadd_rn, so they equal the CPU's ((dx*dx + dy*dy) + dz*dz)
// bit for bit, and the (distance, index) order makes the result identical to brute force.
#include <cub/device/device_radix_sort.cuh>

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/check.h"
#include "core/cuda/cuda_check.h"
#include "core/cuda_api.h"
#include "geometry/cuda/knn_cuda.h"

namespace lapis {
namespace geometry {
namespace cuda {

namespace {

constexpr int kBlock = 128;

// Device buffer from the library allocator, freed on scope exit.
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

struct GridParams {
  float ox, oy, oz;  // origin (bounding-box minimum)
  float h;           // cell edge
  float inv_h;
  int nx, ny, nz;
  float margin;      // slack for rounding in the cell assignment
};

__device__ inline float sq_dist_rn(float ax, float ay, float az, float bx, float by, float bz) {
  const float dx = __fsub_rn(ax, bx), dy = __fsub_rn(ay, by), dz = __fsub_rn(az, bz);
  return __fadd_rn(__fadd_rn(__fmul_rn(dx, dx), __fmul_rn(dy, dy)), __fmul_rn(dz, dz));
}

__device__ inline int cell_coord(float v, float o, float inv_h, int n) {
  float f = floorf((v - o) * inv_h);
  f = fminf(fmaxf(f, 0.f), static_cast<float>(n - 1));  // also maps NaN to 0 (fmaxf)
  return static_cast<int>(f);
}

__device__ inline void atomic_min_float(float* addr, float v) {
  if (v >= 0.f) {
    atomicMin(reinterpret_cast<int*>(addr), __float_as_int(v));
  } else {
    atomicMax(reinterpret_cast<unsigned int*>(addr), __float_as_uint(v));
  }
}

__device__ inline void atomic_max_float(float* addr, float v) {
  if (v >= 0.f) {
    atomicMax(reinterpret_cast<int*>(addr), __float_as_int(v));
  } else {
    atomicMin(reinterpret_cast<unsigned int*>(addr), __float_as_uint(v));
  }
}

// box[0..2] = min, box[3..5] = max; initialised to +inf / -inf.
__global__ void knn_bbox_kernel(const float* __restrict__ pts, int64_t n, float* box) {
  float lo[3] = {INFINITY, INFINITY, INFINITY};
  float hi[3] = {-INFINITY, -INFINITY, -INFINITY};
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    for (int c = 0; c < 3; ++c) {
      const float v = pts[3 * i + c];
      lo[c] = fminf(lo[c], v);
      hi[c] = fmaxf(hi[c], v);
    }
  }
  for (int offset = 16; offset > 0; offset >>= 1) {
    for (int c = 0; c < 3; ++c) {
      lo[c] = fminf(lo[c], __shfl_down_sync(0xffffffffu, lo[c], offset));
      hi[c] = fmaxf(hi[c], __shfl_down_sync(0xffffffffu, hi[c], offset));
    }
  }
  if ((threadIdx.x & 31) == 0) {
    for (int c = 0; c < 3; ++c) {
      atomic_min_float(&box[c], lo[c]);
      atomic_max_float(&box[3 + c], hi[c]);
    }
  }
}

__global__ void knn_cell_key_kernel(const float* __restrict__ pts, int64_t n, GridParams g,
                                    unsigned int* __restrict__ keys, int* __restrict__ order) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const int cx = cell_coord(pts[3 * i], g.ox, g.inv_h, g.nx);
  const int cy = cell_coord(pts[3 * i + 1], g.oy, g.inv_h, g.ny);
  const int cz = cell_coord(pts[3 * i + 2], g.oz, g.inv_h, g.nz);
  keys[i] = (static_cast<unsigned int>(cz) * g.ny + cy) * g.nx + cx;
  order[i] = static_cast<int>(i);
}

// Cell ranges in the sorted order, and the points gathered into sorted order (coalesced reads
// in the search).
__global__ void knn_cell_range_kernel(const unsigned int* __restrict__ sorted_keys,
                                      const int* __restrict__ sorted_order,
                                      const float* __restrict__ pts, int64_t n,
                                      int* __restrict__ cell_start, int* __restrict__ cell_end,
                                      float* __restrict__ sorted_pts) {
  const int64_t s = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (s >= n) return;
  const unsigned int key = sorted_keys[s];
  if (s == 0 || sorted_keys[s - 1] != key) cell_start[key] = static_cast<int>(s);
  if (s == n - 1 || sorted_keys[s + 1] != key) cell_end[key] = static_cast<int>(s + 1);
  const int64_t i = sorted_order[s];
  sorted_pts[3 * s] = pts[3 * i];
  sorted_pts[3 * s + 1] = pts[3 * i + 1];
  sorted_pts[3 * s + 2] = pts[3 * i + 2];
}

// One thread per query. Self queries (queries == nullptr) run in sorted order: thread s takes
// point sorted_order[s], so a warp works on neighbouring points.
template <int KMAX>
__global__ void knn_grid_search_kernel(const float* __restrict__ sorted_pts,
                                       const int* __restrict__ sorted_order,
                                       const int* __restrict__ cell_start,
                                       const int* __restrict__ cell_end, GridParams g,
                                       const float* __restrict__ queries, int64_t m, int k,
                                       bool include_self, int* __restrict__ out_idx,
                                       float* __restrict__ out_d2) {
  const int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (t >= m) return;
  float qx, qy, qz;
  int64_t row;
  int skip = -1;
  if (queries == nullptr) {
    row = sorted_order[t];
    qx = sorted_pts[3 * t];
    qy = sorted_pts[3 * t + 1];
    qz = sorted_pts[3 * t + 2];
    if (!include_self) skip = static_cast<int>(row);
  } else {
    row = t;
    qx = queries[3 * t];
    qy = queries[3 * t + 1];
    qz = queries[3 * t + 2];
  }
  float best_d[KMAX];
  int best_i[KMAX];
  int count = 0;
  const int cx = cell_coord(qx, g.ox, g.inv_h, g.nx);
  const int cy = cell_coord(qy, g.oy, g.inv_h, g.ny);
  const int cz = cell_coord(qz, g.oz, g.inv_h, g.nz);
  for (int r = 0;; ++r) {
    for (int dz = -r; dz <= r; ++dz) {
      const int z = cz + dz;
      if (z < 0 || z >= g.nz) continue;
      for (int dy = -r; dy <= r; ++dy) {
        const int y = cy + dy;
        if (y < 0 || y >= g.ny) continue;
        // Inside the ring's shell only the two x faces, unless on a y or z face.
        const bool face = (dz == -r || dz == r || dy == -r || dy == r);
        const int step = (face || r == 0) ? 1 : 2 * r;
        for (int dx = -r; dx <= r; dx += step) {
          const int x = cx + dx;
          if (x < 0 || x >= g.nx) continue;
          const int cell = (z * g.ny + y) * g.nx + x;
          const int end = cell_end[cell];
          for (int s = cell_start[cell]; s < end; ++s) {
            const int idx = sorted_order[s];
            if (idx == skip) continue;
            const float d = sq_dist_rn(qx, qy, qz, sorted_pts[3 * s], sorted_pts[3 * s + 1],
                                       sorted_pts[3 * s + 2]);
            if (count == k) {
              const float wd = best_d[k - 1];
              if (!(d < wd || (d == wd && idx < best_i[k - 1]))) continue;
            }
            int pos = count == k ? k - 1 : count++;
            while (pos > 0 &&
                   (d < best_d[pos - 1] || (d == best_d[pos - 1] && idx < best_i[pos - 1]))) {
              best_d[pos] = best_d[pos - 1];
              best_i[pos] = best_i[pos - 1];
              --pos;
            }
            best_d[pos] = d;
            best_i[pos] = idx;
          }
        }
      }
    }
    // Lower bound on the distance of any point outside the cells visited so far: the distance
    // from q to the nearest face of the visited block that is not on the grid boundary.
    float bound = INFINITY;
    if (cx - r > 0) bound = fminf(bound, qx - (g.ox + (cx - r) * g.h));
    if (cx + r < g.nx - 1) bound = fminf(bound, g.ox + (cx + r + 1) * g.h - qx);
    if (cy - r > 0) bound = fminf(bound, qy - (g.oy + (cy - r) * g.h));
    if (cy + r < g.ny - 1) bound = fminf(bound, g.oy + (cy + r + 1) * g.h - qy);
    if (cz - r > 0) bound = fminf(bound, qz - (g.oz + (cz - r) * g.h));
    if (cz + r < g.nz - 1) bound = fminf(bound, g.oz + (cz + r + 1) * g.h - qz);
    if (bound == INFINITY) break;  // the rings cover the whole grid
    if (count == k) {
      const float b = bound - g.margin;
      if (b > 0.f && best_d[k - 1] < b * b * (1.0f - 1e-5f)) break;
    }
  }
  for (int c = 0; c < k; ++c) {
    out_idx[row * k + c] = best_i[c];
    out_d2[row * k + c] = best_d[c];
  }
}

template <int KMAX>
void launch_search(const float* sorted_pts, const int* sorted_order, const int* cell_start,
                   const int* cell_end, const GridParams& g, const float* queries, int64_t m,
                   int k, bool include_self, int* out_idx, float* out_d2) {
  LAPIS_LAUNCH(knn_grid_search_kernel<KMAX>, m, kBlock, sorted_pts, sorted_order, cell_start,
               cell_end, g, queries, m, k, include_self, out_idx, out_d2);
}

}  // namespace

void knn_cuda_device(const float* d_points, int64_t n, const float* d_queries, int64_t m, int k,
                     bool include_self, int32_t* d_indices, float* d_sq_distances) {
  LAPIS_CHECK(k >= 1 && k <= kMaxCudaKnnK, "knn_cuda", "k must be in [1, ", kMaxCudaKnnK,
              "], got ", k);
  if (m == 0) return;
  const int64_t available = (d_queries == nullptr && !include_self) ? n - 1 : n;
  LAPIS_CHECK(k <= available, "knn_cuda", "k = ", k, " exceeds the ", available,
              " available points");
  LAPIS_CHECK(n < (int64_t{1} << 31) - 1, "knn_cuda", "too many points: ", n);
  cudaStream_t st = lapis::cuda::stream();

  // 1. Bounding box.
  DeviceBuffer box(6 * sizeof(float));
  const float init[6] = {INFINITY, INFINITY, INFINITY, -INFINITY, -INFINITY, -INFINITY};
  lapis::cuda::copy_host_to_device(box.ptr, init, sizeof(init));
  {
    const int64_t blocks = std::min<int64_t>((n + 255) / 256, 4096);
    knn_bbox_kernel<<<static_cast<unsigned>(blocks), 256, 0, st>>>(d_points, n, box.as<float>());
    LAPIS_CUDA_CHECK(cudaGetLastError());
  }
  float bb[6];
  lapis::cuda::copy_device_to_host(bb, box.ptr, sizeof(bb));

  // 2. Grid: about one cell per point by volume, at most 1024 cells per axis; flat or
  // degenerate boxes get at least 1e-3 of the largest extent per axis.
  GridParams g;
  g.ox = bb[0];
  g.oy = bb[1];
  g.oz = bb[2];
  double ext[3], emax = 0.0, maxabs = 0.0;
  for (int c = 0; c < 3; ++c) {
    ext[c] = static_cast<double>(bb[3 + c]) - bb[c];
    emax = std::max(emax, ext[c]);
    maxabs = std::max({maxabs, std::fabs(static_cast<double>(bb[c])),
                       std::fabs(static_cast<double>(bb[3 + c]))});
  }
  double h = 1.0;
  if (emax > 0.0) {
    double vol = 1.0;
    for (int c = 0; c < 3; ++c) vol *= std::max(ext[c], emax * 1e-3);
    h = std::cbrt(vol / static_cast<double>(std::max<int64_t>(n, 1)));
    h = std::max(h, emax / 1024.0);
  }
  int dims[3];
  for (int c = 0; c < 3; ++c) {
    dims[c] = static_cast<int>(std::min<double>(1024.0, std::max(1.0, std::ceil(ext[c] / h))));
  }
  g.h = static_cast<float>(h);
  g.inv_h = static_cast<float>(1.0 / h);
  g.nx = dims[0];
  g.ny = dims[1];
  g.nz = dims[2];
  g.margin = static_cast<float>(1e-3 * h + 4e-6 * maxabs);
  const int64_t cells = static_cast<int64_t>(g.nx) * g.ny * g.nz;
  int end_bit = 1;
  while ((int64_t{1} << end_bit) < cells) ++end_bit;

  DeviceBuffer keys(n * sizeof(unsigned int)), keys_sorted(n * sizeof(unsigned int));
  DeviceBuffer order(n * sizeof(int)), order_sorted(n * sizeof(int));
  LAPIS_LAUNCH(knn_cell_key_kernel, n, 256, d_points, n, g, keys.as<unsigned int>(),
               order.as<int>());
  size_t temp_bytes = 0;
  LAPIS_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(
      nullptr, temp_bytes, keys.as<unsigned int>(), keys_sorted.as<unsigned int>(),
      order.as<int>(), order_sorted.as<int>(), static_cast<int>(n), 0, end_bit, st));
  DeviceBuffer temp(std::max<size_t>(temp_bytes, 1));
  LAPIS_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(
      temp.ptr, temp_bytes, keys.as<unsigned int>(), keys_sorted.as<unsigned int>(),
      order.as<int>(), order_sorted.as<int>(), static_cast<int>(n), 0, end_bit, st));

  DeviceBuffer cell_start(cells * sizeof(int)), cell_end(cells * sizeof(int));
  lapis::cuda::memset_zero(cell_start.ptr, cells * sizeof(int));
  lapis::cuda::memset_zero(cell_end.ptr, cells * sizeof(int));
  DeviceBuffer sorted_pts(n * 3 * sizeof(float));
  LAPIS_LAUNCH(knn_cell_range_kernel, n, 256, keys_sorted.as<unsigned int>(),
               order_sorted.as<int>(), d_points, n, cell_start.as<int>(), cell_end.as<int>(),
               sorted_pts.as<float>());

  // 3. Search.
  const float* sp = sorted_pts.as<float>();
  const int* so = order_sorted.as<int>();
  const int* cs = cell_start.as<int>();
  const int* ce = cell_end.as<int>();
  if (k <= 16) {
    launch_search<16>(sp, so, cs, ce, g, d_queries, m, k, include_self, d_indices, d_sq_distances);
  } else if (k <= 32) {
    launch_search<32>(sp, so, cs, ce, g, d_queries, m, k, include_self, d_indices, d_sq_distances);
  } else if (k <= 64) {
    launch_search<64>(sp, so, cs, ce, g, d_queries, m, k, include_self, d_indices, d_sq_distances);
  } else {
    launch_search<128>(sp, so, cs, ce, g, d_queries, m, k, include_self, d_indices,
                       d_sq_distances);
  }
  // The buffers above are freed on return; the allocator hands them out again only to work
  // queued later on the same stream, so no synchronisation is needed here.
}

void knn_cuda(const float* points, int64_t n, const float* queries, int64_t m, int k,
              bool include_self, int32_t* indices, float* sq_distances) {
  if (m == 0) return;
  DeviceBuffer d_points(static_cast<size_t>(n) * 3 * sizeof(float));
  lapis::cuda::copy_host_to_device(d_points.ptr, points, static_cast<size_t>(n) * 3 * sizeof(float));
  DeviceBuffer d_queries(queries ? static_cast<size_t>(m) * 3 * sizeof(float) : 0);
  if (queries) {
    lapis::cuda::copy_host_to_device(d_queries.ptr, queries,
                                     static_cast<size_t>(m) * 3 * sizeof(float));
  }
  const size_t out = static_cast<size_t>(m) * static_cast<size_t>(k);
  DeviceBuffer d_idx(out * sizeof(int32_t)), d_d2(out * sizeof(float));
  knn_cuda_device(d_points.as<float>(), n, queries ? d_queries.as<float>() : nullptr, m, k,
                  include_self, d_idx.as<int32_t>(), d_d2.as<float>());
  lapis::cuda::copy_device_to_host(indices, d_idx.ptr, out * sizeof(int32_t));
  lapis::cuda::copy_device_to_host(sq_distances, d_d2.ptr, out * sizeof(float));
}

}  // namespace cuda
}  // namespace geometry
}  // namespace lapis
