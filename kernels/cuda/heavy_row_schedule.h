// Which thread group reduces and combines which part of a long row in the split row passes
// (kernels/cuda/split_rows.cuh). Plain C++ usable on the host and in kernels, so the CPU test
// suite checks the schedule (tests/kernels/test_heavy_row_schedule.cpp) without a GPU.
//
// Positions 0 .. E-1 of a pointer array ptr [n + 1] are cut into windows of kHeavyRowEdges
// positions. A heavy row (more than kHeavyRowEdges edges) has one piece in each window it
// overlaps, windows first_piece(b) .. last_piece(e); a window holds pieces of at most two heavy
// rows (each is longer than a window): slot 0 for the row containing the window's first
// position, slot 1 for the row containing its last (only a row's first piece can be in slot 1).
// The pieces' partials are combined in two levels: runs of kCombineRun consecutive pieces,
// counted from the row's first piece, each into the run's first piece, then the runs in order.
#pragma once

#include <cstdint>

#include "core/host_device.h"

#ifndef LAPIS_HEAVY_ROW_EDGES
#define LAPIS_HEAVY_ROW_EDGES 128  // overridable at build time for benchmarking the trade-off
#endif

namespace lapis {
namespace cuda {

constexpr int64_t kHeavyRowEdges = LAPIS_HEAVY_ROW_EDGES;
constexpr int64_t kCombineRun = 32;

// Segment [b, e) of a pointer array is usable: 0 <= b <= e <= total.
LAPIS_HOST_DEVICE inline bool segment_valid(int64_t b, int64_t e, int64_t total) {
  return b >= 0 && b <= e && e <= total;
}

LAPIS_HOST_DEVICE inline bool heavy_segment(int64_t b, int64_t e, int64_t total) {
  return segment_valid(b, e, total) && e - b > kHeavyRowEdges;
}

// The row owning position pos of a pointer array: the largest r in [0, n) with ptr[r] <= pos
// (empty rows own nothing, so they are never the answer for a well-formed array).
LAPIS_HOST_DEVICE inline int64_t row_of_position(const int32_t* ptr, int64_t n, int64_t pos) {
  int64_t lo = 0, hi = n - 1;
  while (lo < hi) {
    const int64_t mid = (lo + hi + 1) >> 1;
    if (ptr[mid] <= pos) lo = mid; else hi = mid - 1;
  }
  return lo;
}

// The heavy rows with a piece in window w, by slot (-1: none): rows[0] owns the window's first
// position, rows[1] its last one (when that is another row).
LAPIS_HOST_DEVICE inline void heavy_rows_in_window(const int32_t* ptr, int64_t n,
                                                   int64_t num_edges, int64_t w,
                                                   int64_t (&rows)[2]) {
  const int64_t w0 = w * kHeavyRowEdges;
  const int64_t w1 = w0 + kHeavyRowEdges < num_edges ? w0 + kHeavyRowEdges : num_edges;
  const int64_t first = row_of_position(ptr, n, w0), last = row_of_position(ptr, n, w1 - 1);
  rows[0] = heavy_segment(ptr[first], ptr[first + 1], num_edges) ? first : -1;
  rows[1] = last != first && heavy_segment(ptr[last], ptr[last + 1], num_edges) ? last : -1;
}

// Windows of the pieces of the heavy row [b, e).
LAPIS_HOST_DEVICE inline int64_t first_piece(int64_t b) { return b / kHeavyRowEdges; }
LAPIS_HOST_DEVICE inline int64_t last_piece(int64_t e) { return (e - 1) / kHeavyRowEdges; }

// The slot of the row starting at b in window c.
LAPIS_HOST_DEVICE inline int piece_slot(int64_t c, int64_t b) {
  return c * kHeavyRowEdges >= b ? 0 : 1;
}

// Whether piece c of the row starting at b starts a run; the run's last piece (row ends at e).
LAPIS_HOST_DEVICE inline bool starts_run(int64_t c, int64_t b) {
  return (c - first_piece(b)) % kCombineRun == 0;
}
LAPIS_HOST_DEVICE inline int64_t run_last_piece(int64_t c, int64_t e) {
  const int64_t last = last_piece(e);
  return c + kCombineRun - 1 < last ? c + kCombineRun - 1 : last;
}

}  // namespace cuda
}  // namespace lapis
