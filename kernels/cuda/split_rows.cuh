// Row passes with long rows split across thread groups, shared by the fused graph attention and
// the SDDMM / segment softmax / SpMM building blocks.
//
// A row pass walks the edges of each row of a pointer array (destinations over the CSR, sources
// over the CSC) with one head group per (row, head) (kernels/cuda/graph_rows.cuh), accumulates a
// Partial in edge order and finishes the row (writes its outputs). A group walks its row alone,
// so one hub row (the power-law benchmark graph has one of ~329k edges) would serialise the
// whole launch. Rows with more than kHeavyRowEdges edges are therefore cut at the multiples of
// kHeavyRowEdges into pieces: each piece is reduced by its own group (heavy_window_kernel) into
// a partial, and heavy_run_kernel + heavy_combine_kernel combine a row's partials in a fixed order
// (runs of kCombineRun consecutive pieces, then the runs) and finish the row, so the result is
// still deterministic (which group does what: kernels/cuda/heavy_row_schedule.h). 128 edges
// bound the serial work of one group to ~128 dependent gather rounds; the hub above becomes ~2.6k
// independent pieces, combined in 82 runs.
//
// A pass P provides:
//   using Scalar, Args;              Args derives from RowPassShape
//   static constexpr bool kReduces;  finish() needs the whole row's Partial (else the pass only
//                                    writes per-edge outputs and finish() is empty)
//   ptr(a)                           the pointer array [n + 1]
//   struct Row; load_row(a, g, slice, row, r)   per-row values loaded once
//   init(acc); edges(a, g, slice, r, b, end, acc); combine(acc, next_piece)
//   finish(a, g, slice, row, r, acc)
// Launch with run_pass<P>(args, max_row_length, device).
#pragma once

#include "core/cuda/cuda_check.h"
#include "core/tensor.h"
#include "kernels/cuda/graph_rows.cuh"
#include "kernels/cuda/heavy_row_schedule.h"
#include "kernels/cuda/overlapped_launch.cuh"

namespace lapis {
namespace cuda {

// What every pass's Args carries: n rows of the pointer array, num_edges, the [.., H, D] layout
// and ns = lanes per (row, head) group.
struct RowPassShape {
  int64_t n = 0, num_edges = 0;
  int heads = 0, dim = 0, ns = 0;
  int* error_flag = nullptr;
};

inline RowPassShape row_pass_shape(int64_t n, int64_t num_edges, int64_t heads, int64_t dim) {
  RowPassShape s;
  s.n = n;
  s.num_edges = num_edges;
  s.heads = static_cast<int>(heads);
  s.dim = static_cast<int>(dim);
  s.ns = head_group_lanes(dim);
  s.error_flag = device_error_flag();
  return s;
}

// What one lane accumulates over a run of edges.
template <typename T>
struct Partial {
  T v[2][4];  // up to two 4-value slices
  T s;        // one scalar, the same on every lane of the group

  __device__ void zero() {
#pragma unroll
    for (int x = 0; x < 4; ++x) v[0][x] = v[1][x] = T(0);
    s = T(0);
  }
  __device__ void add(const Partial& o) {
#pragma unroll
    for (int x = 0; x < 4; ++x) {
      v[0][x] += o.v[0][x];
      v[1][x] += o.v[1][x];
    }
    s += o.s;
  }
};

// The lane's slice of a [rows, H, D] row: hd = H*D, its 4 values start at off, valid of them.
struct Slice {
  int64_t hd;
  int off, valid;
};

template <class A>
__device__ inline Slice slice_of(const A& a, const HeadGroup& g) {
  Slice sl;
  sl.hd = static_cast<int64_t>(a.heads) * a.dim;
  sl.off = g.h * a.dim + g.s * kSliceWidth;
  sl.valid = min(kSliceWidth, a.dim - g.s * kSliceWidth);
  return sl;
}

// Group g's row edges [b, e); false (reported) when the row's pointers are malformed.
template <class P>
__device__ inline bool row_edges(const typename P::Args& a, const HeadGroup& g, int64_t& b,
                                 int64_t& e) {
  const int32_t* ptr = P::ptr(a);
  b = ptr[g.row];
  e = ptr[g.row + 1];
  if (segment_valid(b, e, a.num_edges)) return true;
  if (g.s == 0) report_device_error(a.error_flag, kBadSegmentPointers);
  return false;
}

// Whether a row position's neighbour j is in [0, n) and its edge id e in [0, E) (e = 0 where
// the position is the edge id); if not, the group's first lane flags kIndexOutOfRange (thrown
// after the launch) and the pass skips the position.
__device__ inline bool edge_indices_ok(const RowPassShape& a, const HeadGroup& g, int64_t j,
                                       int64_t e = 0) {
  if (e >= 0 && e < a.num_edges && j >= 0 && j < a.n) return true;
  if (g.s == 0) report_device_error(a.error_flag, kIndexOutOfRange);
  return false;
}

// One group per (row, head) walks the whole row. SPLIT: rows longer than kHeavyRowEdges are
// left to heavy_window_kernel (+ heavy_combine_kernel). A malformed row is finished as empty.
template <class P, bool SPLIT>
__global__ void rows_kernel(const typename P::Args a) {
  wait_for_previous_kernel();
  using T = typename P::Scalar;
  HeadGroup g;
  if (!head_group(a.n, a.heads, a.ns, g)) return;
  int64_t b = 0, e = 0;
  const bool valid = row_edges<P>(a, g, b, e);
  if (SPLIT && valid && e - b > kHeavyRowEdges) return;
  const Slice sl = slice_of(a, g);
  typename P::Row r;
  P::load_row(a, g, sl, g.row, r);
  Partial<T> acc;
  P::init(acc);
  if (valid) P::edges(a, g, sl, r, b, e, acc);
  P::finish(a, g, sl, g.row, r, acc);
}

// The group's partial of window c, slot (part [windows, 2, H, lanes]).
template <typename T>
__device__ inline Partial<T>* piece_at(Partial<T>* part, int64_t c, int slot, int heads,
                                       const HeadGroup& g, int ns) {
  return part + ((c * 2 + slot) * heads + g.h) * ns + g.s;
}

// Piece c of the heavy row starting at edge b.
template <typename T>
__device__ inline Partial<T>* piece_of(Partial<T>* part, int64_t c, int64_t b, int heads,
                                       const HeadGroup& g, int ns) {
  return piece_at(part, c, piece_slot(c, b), heads, g, ns);
}

// f(slot, r) for each heavy row r with a piece in window w, slot by slot (at most two:
// heavy_rows_in_window).
template <class F>
__device__ inline void for_each_heavy_row_in_window(const int32_t* ptr, const RowPassShape& a,
                                                    int64_t w, F&& f) {
  int64_t rows[2];
  heavy_rows_in_window(ptr, a.n, a.num_edges, w, rows);
  for (int slot = 0; slot < 2; ++slot) {
    if (rows[slot] >= 0) f(slot, rows[slot]);
  }
}

// One group per (window, head): the pieces of heavy rows inside the window, into their slots of
// part when the pass reduces.
template <class P>
__global__ void heavy_window_kernel(const typename P::Args a, Partial<typename P::Scalar>* part,
                                    int64_t windows) {
  wait_for_previous_kernel();
  using T = typename P::Scalar;
  HeadGroup g;
  if (!head_group(windows, a.heads, a.ns, g)) return;
  const int32_t* ptr = P::ptr(a);
  const int64_t w0 = g.row * kHeavyRowEdges;
  const int64_t w1 = min(w0 + kHeavyRowEdges, a.num_edges);
  const Slice sl = slice_of(a, g);
  for_each_heavy_row_in_window(ptr, a, g.row, [&](int slot, int64_t r) {
    typename P::Row row;
    P::load_row(a, g, sl, r, row);
    Partial<T> acc;
    P::init(acc);
    P::edges(a, g, sl, row, max(static_cast<int64_t>(ptr[r]), w0),
             min(static_cast<int64_t>(ptr[r + 1]), w1), acc);
    if (P::kReduces) *piece_at(part, g.row, slot, a.heads, g, a.ns) = acc;
  });
}

// acc combined with pieces c, c + stride, ... <= last of the heavy row starting at b, in order.
// The loads go 8 at a time so their L2 round trips overlap (same order, same bits).
template <class P>
__device__ inline void combine_pieces(Partial<typename P::Scalar>& acc,
                                      Partial<typename P::Scalar>* part, int64_t c, int64_t last,
                                      int64_t stride, int64_t b, int heads, const HeadGroup& g,
                                      int ns) {
  using T = typename P::Scalar;
  constexpr int kDepth = 8;
  for (; c + (kDepth - 1) * stride <= last; c += kDepth * stride) {
    Partial<T> p[kDepth];
#pragma unroll
    for (int k = 0; k < kDepth; ++k) p[k] = *piece_of(part, c + k * stride, b, heads, g, ns);
#pragma unroll
    for (int k = 0; k < kDepth; ++k) P::combine(acc, p[k]);
  }
  for (; c <= last; c += stride) P::combine(acc, *piece_of(part, c, b, heads, g, ns));
}

// One group per (window, head): each heavy row whose piece in the window starts a run gets the
// run combined over that piece (first level of the combine; heavy_row_schedule.h).
template <class P>
__global__ void heavy_run_kernel(const typename P::Args a, Partial<typename P::Scalar>* part,
                                 int64_t windows) {
  wait_for_previous_kernel();
  using T = typename P::Scalar;
  HeadGroup g;
  if (!head_group(windows, a.heads, a.ns, g)) return;
  const int32_t* ptr = P::ptr(a);
  const int64_t w = g.row;
  for_each_heavy_row_in_window(ptr, a, w, [&](int slot, int64_t r) {
    const int64_t b = ptr[r];
    if (!starts_run(w, b)) return;
    Partial<T> acc;
    P::init(acc);
    combine_pieces<P>(acc, part, w, run_last_piece(w, ptr[r + 1]), 1, b, a.heads, g, a.ns);
    *piece_at(part, w, slot, a.heads, g, a.ns) = acc;
  });
}

// One group per (row, head); heavy rows only: combines the row's runs in window order, finishes.
template <class P>
__global__ void heavy_combine_kernel(const typename P::Args a,
                                     Partial<typename P::Scalar>* part) {
  wait_for_previous_kernel();
  using T = typename P::Scalar;
  HeadGroup g;
  if (!head_group(a.n, a.heads, a.ns, g)) return;
  int64_t b = 0, e = 0;
  if (!row_edges<P>(a, g, b, e) || e - b <= kHeavyRowEdges) return;
  Partial<T> acc;
  P::init(acc);
  combine_pieces<P>(acc, part, first_piece(b), last_piece(e), kCombineRun, b, a.heads, g, a.ns);
  const Slice sl = slice_of(a, g);
  typename P::Row r;
  P::load_row(a, g, sl, g.row, r);
  P::finish(a, g, sl, g.row, r, acc);
}

// Whether run_pass splits long rows: some row may exceed kHeavyRowEdges (max_row_length: the
// longest row if known, else -1). A wrong bound costs speed, never results: the unsplit kernel
// walks every row whole.
inline bool splits_rows(int64_t num_edges, int64_t max_row_length) {
  return num_edges > kHeavyRowEdges && (max_row_length < 0 || max_row_length > kHeavyRowEdges);
}

inline int64_t heavy_windows(int64_t num_edges) {
  return (num_edges + kHeavyRowEdges - 1) / kHeavyRowEdges;
}

// Runs pass P over all rows.
template <class P>
void run_pass(const typename P::Args& a, int64_t max_row_length, Device device) {
  using T = typename P::Scalar;
  const unsigned blocks = head_group_blocks(a.n, a.heads, a.ns);
  if (!splits_rows(a.num_edges, max_row_length)) {
    launch_overlapped(rows_kernel<P, false>, dim3(blocks), dim3(kGraphBlock), a);
    return;
  }
  launch_overlapped(rows_kernel<P, true>, dim3(blocks), dim3(kGraphBlock), a);
  const int64_t windows = heavy_windows(a.num_edges);
  static_assert(sizeof(Partial<T>) == 9 * sizeof(T), "Partial is packed");
  // Slots of rows that are not heavy are never read, so the workspace is not cleared.
  Tensor part;
  Partial<T>* pp = nullptr;
  if (P::kReduces) {
    part = Tensor::empty(Shape{windows * 2 * a.heads * a.ns * 9}, dtype_of<T>(), device);
    pp = reinterpret_cast<Partial<T>*>(part.data<T>());
  }
  const unsigned window_blocks = head_group_blocks(windows, a.heads, a.ns);
  launch_overlapped(heavy_window_kernel<P>, dim3(window_blocks), dim3(kGraphBlock), a, pp,
                    windows);
  if (P::kReduces) {
    launch_overlapped(heavy_run_kernel<P>, dim3(window_blocks), dim3(kGraphBlock), a, pp,
                      windows);
    launch_overlapped(heavy_combine_kernel<P>, dim3(blocks), dim3(kGraphBlock), a, pp);
  }
}

// Runs only the pieces of heavy rows of a per-edge pass P (kReduces == false): the second half of
// a two-phase row operation whose first pass finished the other rows itself.
template <class P>
void run_heavy_pieces(const typename P::Args& a) {
  static_assert(!P::kReduces, "run_heavy_pieces serves per-edge passes");
  const int64_t windows = heavy_windows(a.num_edges);
  launch_overlapped(heavy_window_kernel<P>, dim3(head_group_blocks(windows, a.heads, a.ns)),
                    dim3(kGraphBlock), a, static_cast<Partial<typename P::Scalar>*>(nullptr),
                    windows);
}

// Sum passes start from zero and add pieces in order.
template <typename T>
struct SumPartials {
  __device__ static void init(Partial<T>& acc) { acc.zero(); }
  __device__ static void combine(Partial<T>& acc, const Partial<T>& piece) { acc.add(piece); }
};

}  // namespace cuda
}  // namespace lapis
