// Cell edge of the uniform grids used by the kNN searches (CPU geometry/knn_grid and CUDA
// geometry/cuda/knn_cuda), chosen from the data rather than from the bounding-box volume.
//
// Why: a grid search is fast when the k nearest neighbours of a point lie in the 3 x 3 x 3
// block of cells around it and each cell holds a handful of points. A cell edge derived from
// the box volume (one point per cell) is right for points filling a volume, but scanned
// clouds are surfaces: on a unit sphere with 4M points it leaves ~34 points per occupied cell,
// on a thin curve far fewer. So the search measures the mean occupancy of the non-empty cells
// (one counting pass over the sorted cell keys) and rescales the edge, estimating the local
// dimension of the data from two measurements (occupancy ~ h^d).
//
// Usage:
//   CellSizeSearch s(lo, hi, n, k);
//   while (!s.done()) s.report(count_occupied_cells(s.cell()));
//   use s.cell(), s.dims()
#pragma once

#include <cstdint>

namespace lapis {
namespace geometry {

class CellSizeSearch {
 public:
  // lo/hi: bounding box of the n points; k: neighbours per query. The grid never has more
  // than max(4 n, 4096) cells nor more than 1024 cells along an axis.
  CellSizeSearch(const double lo[3], const double hi[3], int64_t n, int k);

  double cell() const { return h_; }
  // Cells along each axis for the current edge (>= 1).
  const int* dims() const { return dims_; }
  int64_t total_cells() const;
  bool done() const { return done_; }
  // Mean points per occupied cell the search aims for.
  double target_per_cell() const { return target_; }

  // The number of non-empty cells at edge cell(); chooses the next edge (at most two
  // reports are needed before done()).
  void report(int64_t occupied_cells);

 private:
  void set_cell(double h);

  double extent_[3];
  int64_t n_;
  double target_;
  double h_min_, h_max_;
  double max_cells_ = 4096.0;
  double h_ = 1.0;
  int dims_[3] = {1, 1, 1};
  int reports_ = 0;
  double prev_h_ = 0.0, prev_occupancy_ = 0.0;
  bool done_ = false;
};

}  // namespace geometry
}  // namespace lapis
