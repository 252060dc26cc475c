#include "geometry/grid_cell_size.h"

#include <algorithm>
#include <cmath>

#include "core/check.h"

namespace lapis {
namespace geometry {

namespace {
constexpr int kMaxCellsPerAxis = 1024;
}  // namespace

CellSizeSearch::CellSizeSearch(const double lo[3], const double hi[3], int64_t n, int k) : n_(n) {
  LAPIS_CHECK(n >= 0 && k >= 1, "CellSizeSearch", "need n >= 0 and k >= 1, got n = ", n,
              ", k = ", k);
  double emax = 0.0;
  for (int c = 0; c < 3; ++c) {
    LAPIS_CHECK(std::isfinite(lo[c]) && std::isfinite(hi[c]) && hi[c] >= lo[c], "CellSizeSearch",
                "bounding box axis ", c, " is [", lo[c], ", ", hi[c], "]");
    extent_[c] = hi[c] - lo[c];
    emax = std::max(emax, extent_[c]);
  }
  // Three quarters of k per occupied cell: on a surface the 3 x 3 block around a point then
  // holds several times k points, so the k-th neighbour is almost always inside it.
  target_ = std::max(1.0, 0.75 * k);
  if (!(emax > 0.0) || n <= 1) {  // one cell holds everything
    h_min_ = h_max_ = h_ = emax > 0.0 ? emax : 1.0;
    done_ = true;
    return;
  }
  double volume = 1.0;
  for (int c = 0; c < 3; ++c) volume *= std::max(extent_[c], emax * 1e-3);
  max_cells_ = std::max<double>(4.0 * static_cast<double>(n), 4096.0);
  h_min_ = std::max(std::cbrt(volume / max_cells_), emax / kMaxCellsPerAxis);
  h_max_ = emax;
  set_cell(std::cbrt(volume * target_ / static_cast<double>(n)));
}

int64_t CellSizeSearch::total_cells() const {
  return static_cast<int64_t>(dims_[0]) * dims_[1] * dims_[2];
}

void CellSizeSearch::set_cell(double h) {
  h_ = std::min(std::max(h, h_min_), h_max_);
  // h_min_ bounds the cells by volume, but rounding each axis up to whole cells can exceed the
  // cap (up to 2x per axis when an extent is just over one cell): grow h until it fits. At
  // h_max_ every axis has one cell, so this ends.
  for (;;) {
    for (int c = 0; c < 3; ++c) {
      const double cells = std::ceil(extent_[c] / h_);
      dims_[c] = static_cast<int>(std::min<double>(kMaxCellsPerAxis, std::max(1.0, cells)));
    }
    const double total = static_cast<double>(total_cells());
    if (total <= max_cells_ || h_ >= h_max_) break;
    h_ = std::min(h_max_, h_ * std::max(1.01, std::cbrt(total / max_cells_)));
  }
}

void CellSizeSearch::report(int64_t occupied_cells) {
  if (done_) return;
  LAPIS_CHECK(occupied_cells >= 1 && occupied_cells <= n_, "CellSizeSearch::report",
              "occupied cells must be in [1, ", n_, "], got ", occupied_cells);
  const double occupancy = static_cast<double>(n_) / static_cast<double>(occupied_cells);
  ++reports_;
  if (occupancy >= 0.5 * target_ && occupancy <= 2.0 * target_) {
    done_ = true;
    return;
  }
  // Local dimension: assume a surface (2) until two measurements give an estimate.
  double dim = 2.0;
  if (reports_ >= 2 && prev_h_ != h_ && prev_occupancy_ > 0.0) {
    dim = std::log(occupancy / prev_occupancy_) / std::log(h_ / prev_h_);
    if (!std::isfinite(dim)) dim = 2.0;
    dim = std::min(3.0, std::max(1.0, dim));
  }
  const double next = h_ * std::pow(target_ / occupancy, 1.0 / dim);
  prev_h_ = h_;
  prev_occupancy_ = occupancy;
  const double before = h_;
  set_cell(next);
  // Stop after the second rescale, or when a clamp leaves the edge where it was.
  if (reports_ >= 2 || h_ == before) done_ = true;
}

}  // namespace geometry
}  // namespace lapis
