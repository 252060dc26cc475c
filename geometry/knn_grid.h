// Exact kNN on a uniform grid (CPU): the CPU twin of the CUDA grid search
// (geometry/cuda/knn_cuda.cu), with the same results as the KD-tree and the brute-force
// reference: rows sorted by (squared distance, index), distances ((dx*dx + dy*dy) + dz*dz) in
// float without fused multiply-add (see geometry/knn.h).
//
// Build: bounding box, cell edge from CellSizeSearch (geometry/grid_cell_size.h: a handful of
// points per occupied cell, also on surfaces), points counting-sorted by cell into
// structure-of-arrays copies (x, y, z, original index), so a cell is one contiguous range.
// Search: queries run in cell order (split over threads in contiguous ranges). For each query
// cell the points of the 3 x 3 x 3 block around it are gathered once into a small contiguous
// buffer; every query of the cell computes its distances to the whole buffer (vectorised),
// keeps the points under a guessed threshold and ranks them into its sorted k best (a
// fixed-size insertion list when the guess keeps fewer than k). The search stops when the k-th
// distance is strictly below a rigorous lower bound on the computed distance of every point
// outside the visited block (see knn_grid.cpp); otherwise it scans the next ring of cells
// (Chebyshev distance 2), skipping cells whose box is farther than the k-th distance.
// Queries that two rings do not settle (in empty space: inside a hollow shape, far outside the
// box, isolated outliers) would scan O(r^3) empty cells; they are handed to a KD-tree built on
// first use, so a bad query costs about one tree query more, never a scan of the whole grid.
// When it is used: geometry/knn.cpp dispatches kNN here (self and external queries) and
// geometry/normals.cpp the PCA normals, both only when efficient_for(k); radius search stays on
// the KD-tree. Queries are thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>

#include "geometry/knn.h"
#include "geometry/point_cloud.h"

namespace lapis {
namespace geometry {

class KnnGrid {
 public:
  // Grid over a copy of points (N x 3, every coordinate finite: a NaN/inf throws naming the
  // point). k_hint is the k the searches will mostly use (it sets the cell size; any k stays
  // exact). The build uses up to num_threads threads (0 = hardware concurrency); the grid does
  // not depend on it.
  KnnGrid(const Points& points, int k_hint, int num_threads = 0);
  ~KnnGrid();
  KnnGrid(KnnGrid&&) noexcept;
  KnnGrid& operator=(KnnGrid&&) noexcept;

  int64_t size() const;
  // Cell edge and cells per axis (for tests and diagnostics).
  double cell() const;
  const int* dims() const;
  // Mean over the points of the number of points in the 3 x 3 x 3 block of cells around the
  // point's cell: what a self query scans before its stopping test, so the search costs about
  // this times a few ns. Large for clouds a uniform grid cannot resolve (a dense cluster with far
  // outliers, under the cap on cells); callers use it to fall back to the KD-tree.
  double mean_block_points() const;
  // Whether searches for k neighbours are expected to beat the KD-tree: mean_block_points() at
  // most 64 k + 512. Measured crossover (100k points, one thread): the grid spends ~1 ns per
  // block point and query, the KD-tree 1.5-2.5 us per query at k = 10 and 3.5-4 us at k = 30.
  bool efficient_for(int k) const;

  // k nearest points of each query row (Q x 3, finite). Requires 1 <= k <= size() when Q > 0.
  // Returns Q x k.
  KnnResult knn(const Points& queries, int k, int num_threads = 0) const;
  // Self queries: row i queries point i (N x k); include_self=false skips index i (then
  // k <= size() - 1).
  KnnResult knn_self(int k, bool include_self, int num_threads = 0) const;
  // Self queries in cell order without an N x k result: fn(row, indices, sq_distances,
  // positions) is called once per point `row` with its k neighbours exactly as knn_self returns
  // them (indices, sq_distances: k) and their coordinates (positions: k x 3, row-major, the
  // same floats as the input rows), from up to num_threads threads concurrently. Same checks
  // as knn_self; fn must not throw.
  using VisitFn = std::function<void(int64_t, const int32_t*, const float*, const float*)>;
  void knn_self_visit(int k, bool include_self, int num_threads, const VisitFn& fn) const;

  struct Impl;

 private:
  void check_self(int k, bool include_self) const;
  std::unique_ptr<Impl> impl_;
};

}  // namespace geometry
}  // namespace lapis
