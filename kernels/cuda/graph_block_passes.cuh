// Row passes (kernels/cuda/split_rows.cuh) of the SDDMM, segment softmax and SpMM building
// blocks. Each pass walks a row's edges in a fixed order without atomics, so the blocks are
// deterministic, and rows longer than kHeavyRowEdges (hubs) are split across thread groups.
#pragma once

#include <cuda_runtime.h>

#include "kernels/cuda/split_rows.cuh"

namespace lapis {
namespace cuda {

template <typename T>
struct AggregateArgs : RowPassShape {
  T* out;                  // [n, H, D] (overwritten)
  const int32_t* ptr;      // [n + 1] row pointers (CSR by destination or CSC by source)
  const int32_t* edge_of;  // [E] edge id at each position, nullptr: the position itself (CSR)
  const int32_t* nbr;      // [E] the neighbour at each position
  const T* w;              // [E, H] edge weights
  const T* x;              // [n, H, D] neighbour features
  T scale;
};

// out[r] = sum over row r's positions p of (w[edge(p), h] * scale) * x[nbr[p]]: SpMM forward
// (CSR) and dL_dX (CSC), SDDMM dL_dA (CSR) and dL_dB (CSC).
template <typename T, bool VEC>
struct AggregatePass : SumPartials<T> {
  using Scalar = T;
  using Args = AggregateArgs<T>;
  static constexpr bool kReduces = true;
  struct Row {};
  __device__ static const int32_t* ptr(const Args& a) { return a.ptr; }
  __device__ static void load_row(const Args&, const HeadGroup&, const Slice&, int64_t, Row&) {}
  __device__ static void edges(const Args& a, const HeadGroup& g, const Slice& sl, const Row&,
                               int64_t b, int64_t end, Partial<T>& acc) {
    for (int64_t p = b; p < end; ++p) {
      const int64_t e = a.edge_of != nullptr ? a.edge_of[p] : p;
      const int64_t j = a.nbr[p];
      if (!edge_indices_ok(a, g, j, e)) continue;
      T xj[4];
      load4<T, VEC>(xj, a.x + j * sl.hd + sl.off, sl.valid);
      const T w = a.w[e * a.heads + g.h] * a.scale;
#pragma unroll
      for (int x = 0; x < 4; ++x) acc.v[0][x] += w * xj[x];
    }
  }
  __device__ static void finish(const Args& a, const HeadGroup&, const Slice& sl, int64_t r,
                                const Row&, const Partial<T>& acc) {
    store4<T, VEC>(a.out + r * sl.hd + sl.off, acc.v[0], sl.valid);
  }
};

template <typename T>
struct EdgeDotArgs : RowPassShape {
  T* out;                 // [E, H] (overwritten)
  const int32_t* in_ptr;  // [n + 1] CSR by destination
  const int32_t* src;     // [E]
  const T* a;             // [n, H, D] destination side
  const T* b;             // [n, H, D] source side (gathered)
  T scale;
};

// out[e, h] = <a[i, h], b[src(e), h]> * scale for each edge e into i: SDDMM forward and SpMM
// dL_dalpha. Writes per edge only.
template <typename T, bool VEC>
struct EdgeDotPass : SumPartials<T> {
  using Scalar = T;
  using Args = EdgeDotArgs<T>;
  static constexpr bool kReduces = false;
  struct Row {
    T a[4];
  };
  __device__ static const int32_t* ptr(const Args& a) { return a.in_ptr; }
  __device__ static void load_row(const Args& a, const HeadGroup&, const Slice& sl, int64_t i,
                                  Row& r) {
    load4<T, VEC>(r.a, a.a + i * sl.hd + sl.off, sl.valid);
  }
  __device__ static void edges(const Args& a, const HeadGroup& g, const Slice& sl, const Row& r,
                               int64_t b, int64_t end, Partial<T>&) {
    for (int64_t e = b; e < end; ++e) {
      const int64_t j = a.src[e];
      if (!edge_indices_ok(a, g, j)) continue;
      T bj[4];
      load4<T, VEC>(bj, a.b + j * sl.hd + sl.off, sl.valid);
      T p = T(0);
#pragma unroll
      for (int x = 0; x < 4; ++x) p += r.a[x] * bj[x];
      const T s = group_sum(p, g, a.ns);
      if (g.s == 0) a.out[e * a.heads + g.h] = s * a.scale;
    }
  }
  __device__ static void finish(const Args&, const HeadGroup&, const Slice&, int64_t, const Row&,
                                const Partial<T>&) {}
};

// Segment softmax over [E, H] scalars: one lane per (segment, head) (shape dim = 1, ns = 1).
// A row pass reduces each segment (forward: max and sum of exponentials; backward: sum of
// alpha * dL_dalpha) and finishes it by walking it again (its values are still in L1/L2), in one
// launch. With split = true, segments longer than kHeavyRowEdges are reduced in pieces and their
// totals go to stats; a per-edge pass over their pieces (run_heavy_pieces) then finishes them.
template <typename T>
struct SegmentArgs : RowPassShape {
  T* out;                 // [E, H] (forward: alpha, backward: dL_dscore) (overwritten)
  T* stats;               // [n, H, 2] totals of split segments (with split)
  const int32_t* ptr;     // [n + 1]
  const T* x;             // [E, H] (forward: score, backward: alpha)
  const T* y;             // [E, H] (backward: dL_dalpha)
  bool split;
};

template <typename T>
__device__ inline bool segment_finished_later(const SegmentArgs<T>& a, int64_t i) {
  return a.split && a.ptr[i + 1] - a.ptr[i] > kHeavyRowEdges;
}

// alpha[e, h] = exp(x - m) * inv_sum over edges [b, end).
template <typename T>
__device__ inline void softmax_normalize(const SegmentArgs<T>& a, int h, int64_t b, int64_t end,
                                         T m, T inv_sum) {
  for (int64_t e = b; e < end; ++e) {
    const int64_t eh = e * a.heads + h;
    a.out[eh] = dev_exp(a.x[eh] - m) * inv_sum;
  }
}

// dL_dscore[e, h] = alpha * (dL_dalpha - dot) over edges [b, end).
template <typename T>
__device__ inline void softmax_apply_grad(const SegmentArgs<T>& a, int h, int64_t b, int64_t end,
                                          T dot) {
  for (int64_t e = b; e < end; ++e) {
    const int64_t eh = e * a.heads + h;
    a.out[eh] = a.x[eh] * (a.y[eh] - dot);
  }
}

// Forward: the segment's max m and sum of exp(x - m) in one online pass (acc.v[0][0] = m,
// acc.s = sum; pieces combine by rescaling to the larger max), then the normalisation.
template <typename T>
struct SoftmaxForwardPass {
  using Scalar = T;
  using Args = SegmentArgs<T>;
  static constexpr bool kReduces = true;
  struct Row {};
  __device__ static const int32_t* ptr(const Args& a) { return a.ptr; }
  __device__ static void load_row(const Args&, const HeadGroup&, const Slice&, int64_t, Row&) {}
  __device__ static void init(Partial<T>& acc) {
    acc.zero();
    acc.v[0][0] = -dev_inf<T>();
  }
  __device__ static void edges(const Args& a, const HeadGroup& g, const Slice&, const Row&,
                               int64_t b, int64_t end, Partial<T>& acc) {
    T m = acc.v[0][0], s = acc.s;
    for (int64_t e = b; e < end; ++e) {
      const T x = a.x[e * a.heads + g.h];
      if (x > m) {
        s = s * dev_exp(m - x) + T(1);
        m = x;
      } else {
        s += dev_exp(x - m);
      }
    }
    acc.v[0][0] = m;
    acc.s = s;
  }
  __device__ static void combine(Partial<T>& acc, const Partial<T>& piece) {
    const T m = max(acc.v[0][0], piece.v[0][0]);
    acc.s = acc.s * dev_exp(acc.v[0][0] - m) + piece.s * dev_exp(piece.v[0][0] - m);
    acc.v[0][0] = m;
  }
  __device__ static void finish(const Args& a, const HeadGroup& g, const Slice&, int64_t i,
                                const Row&, const Partial<T>& acc) {
    if (segment_finished_later(a, i)) {
      a.stats[(i * a.heads + g.h) * 2] = acc.v[0][0];
      a.stats[(i * a.heads + g.h) * 2 + 1] = acc.s;
      return;
    }
    const int64_t b = a.ptr[i], e = a.ptr[i + 1];
    if (segment_valid(b, e, a.num_edges)) softmax_normalize(a, g.h, b, e, acc.v[0][0], T(1) / acc.s);
  }
};

// Forward, split segments: alpha = exp(x - m) / sum with the totals from stats.
template <typename T>
struct SoftmaxNormalizePass : SumPartials<T> {
  using Scalar = T;
  using Args = SegmentArgs<T>;
  static constexpr bool kReduces = false;
  struct Row {
    T m, inv_sum;
  };
  __device__ static const int32_t* ptr(const Args& a) { return a.ptr; }
  __device__ static void load_row(const Args& a, const HeadGroup& g, const Slice&, int64_t i,
                                  Row& r) {
    r.m = a.stats[(i * a.heads + g.h) * 2];
    r.inv_sum = T(1) / a.stats[(i * a.heads + g.h) * 2 + 1];
  }
  __device__ static void edges(const Args& a, const HeadGroup& g, const Slice&, const Row& r,
                               int64_t b, int64_t end, Partial<T>&) {
    softmax_normalize(a, g.h, b, end, r.m, r.inv_sum);
  }
  __device__ static void finish(const Args&, const HeadGroup&, const Slice&, int64_t, const Row&,
                                const Partial<T>&) {}
};

// Backward: dot = sum over the segment of alpha * dL_dalpha, then dL_dscore.
template <typename T>
struct SoftmaxBackwardPass : SumPartials<T> {
  using Scalar = T;
  using Args = SegmentArgs<T>;
  static constexpr bool kReduces = true;
  struct Row {};
  __device__ static const int32_t* ptr(const Args& a) { return a.ptr; }
  __device__ static void load_row(const Args&, const HeadGroup&, const Slice&, int64_t, Row&) {}
  __device__ static void edges(const Args& a, const HeadGroup& g, const Slice&, const Row&,
                               int64_t b, int64_t end, Partial<T>& acc) {
    for (int64_t e = b; e < end; ++e) acc.s += a.x[e * a.heads + g.h] * a.y[e * a.heads + g.h];
  }
  __device__ static void finish(const Args& a, const HeadGroup& g, const Slice&, int64_t i,
                                const Row&, const Partial<T>& acc) {
    if (segment_finished_later(a, i)) {
      a.stats[(i * a.heads + g.h) * 2] = acc.s;
      return;
    }
    const int64_t b = a.ptr[i], e = a.ptr[i + 1];
    if (segment_valid(b, e, a.num_edges)) softmax_apply_grad(a, g.h, b, e, acc.s);
  }
};

// Backward, split segments: dL_dscore with the dot from stats.
template <typename T>
struct SoftmaxGradPass : SumPartials<T> {
  using Scalar = T;
  using Args = SegmentArgs<T>;
  static constexpr bool kReduces = false;
  struct Row {
    T dot;
  };
  __device__ static const int32_t* ptr(const Args& a) { return a.ptr; }
  __device__ static void load_row(const Args& a, const HeadGroup& g, const Slice&, int64_t i,
                                  Row& r) {
    r.dot = a.stats[(i * a.heads + g.h) * 2];
  }
  __device__ static void edges(const Args& a, const HeadGroup& g, const Slice&, const Row& r,
                               int64_t b, int64_t end, Partial<T>&) {
    softmax_apply_grad(a, g.h, b, end, r.dot);
  }
  __device__ static void finish(const Args&, const HeadGroup&, const Slice&, int64_t, const Row&,
                                const Partial<T>&) {}
};

}  // namespace cuda
}  // namespace lapis
