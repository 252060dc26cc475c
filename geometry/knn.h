// k-nearest-neighbour and radius search over 3-D points.
//
// Every search orders neighbours by (squared distance, index): ties are broken by the smaller
// point index, so the CPU grid and KD-tree, the CUDA grid search and the brute-force reference
// return identical index matrices. Squared distances are computed in float as
// ((dx*dx + dy*dy) + dz*dz) with no fused multiply-add, the same on every path.
#pragma once

#include <Eigen/Core>

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "geometry/point_cloud.h"

namespace lapis {
namespace geometry {

using IndexMatrix = Eigen::Matrix<int32_t, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using DistanceMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

enum class SearchDevice { CPU, CUDA };

struct KnnOptions {
  int k = 10;
  // Self queries only (knn(points, options)): whether query i may return point i itself.
  // Excluding removes index i only, not other points at distance 0 (duplicates stay).
  bool include_self = true;
  int num_threads = 0;  // 0 = std::thread::hardware_concurrency()
  SearchDevice device = SearchDevice::CPU;
};

// Q x k neighbour indices (i32) and squared distances, rows sorted by (distance, index).
struct KnnResult {
  IndexMatrix indices;        // Q x k
  DistanceMatrix sq_distances;  // Q x k
};

// Radius search result in CSR form: neighbours of query q are
// indices[offsets[q] .. offsets[q+1]), sorted by (distance, index).
struct RadiusResult {
  std::vector<int64_t> offsets;  // Q + 1
  std::vector<int32_t> indices;
  std::vector<float> sq_distances;
};

// Static KD-tree over a copy of the points (median splits on the widest axis, leaves of at most
// 12 points, exact (distance, index) pruning). Queries are thread-safe. The build uses up to two
// threads (num_threads: 0 = hardware concurrency); the tree does not depend on it.
class KdTree {
 public:
  explicit KdTree(const Points& points, int num_threads = 0);
  ~KdTree();
  KdTree(KdTree&&) noexcept;
  KdTree& operator=(KdTree&&) noexcept;

  int64_t size() const;

  // k nearest points of each query row (Q x 3). Requires 1 <= k <= size().
  KnnResult knn(const Points& queries, int k, int num_threads = 0) const;
  // Self queries: row i queries point i; with include_self=false point i is skipped
  // (then k <= size() - 1).
  KnnResult knn_self(int k, bool include_self, int num_threads = 0) const;
  // Self queries in the tree's spatial order (cache-friendly, no Q x k result to scatter):
  // fn(row, indices, sq_distances) is called once per point `row` with its k neighbours, as
  // knn_self would return them, from up to num_threads threads concurrently. Same checks as
  // knn_self; fn must not throw.
  void knn_self_visit(int k, bool include_self, int num_threads,
                      const std::function<void(int64_t, const int32_t*, const float*)>& fn) const;
  // All points with squared distance <= radius^2; max_neighbours > 0 keeps the closest ones.
  RadiusResult radius_search(const Points& queries, float radius, int max_neighbours = 0,
                             int num_threads = 0) const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// Self kNN of a cloud: row i holds the neighbours of point i (CPU: uniform grid, or the KD-tree
// where the grid would be slow, see geometry/knn.cpp; CUDA: grid).
KnnResult knn(const Points& points, const KnnOptions& options);
// kNN of arbitrary queries against points.
KnnResult knn(const Points& points, const Points& queries, int k, int num_threads = 0,
              SearchDevice device = SearchDevice::CPU);
RadiusResult radius_search(const Points& points, const Points& queries, float radius,
                           int max_neighbours = 0, int num_threads = 0);

// O(P*Q) single-threaded references with the same ordering (for tests).
KnnResult knn_brute_force(const Points& points, const Points& queries, int k);
KnnResult knn_brute_force_self(const Points& points, int k, bool include_self);
RadiusResult radius_search_brute_force(const Points& points, const Points& queries,
                                       float radius, int max_neighbours = 0);

// Threads to use for `requested` (0 = hardware concurrency, at least 1).
int resolve_threads(int requested);

}  // namespace geometry
}  // namespace lapis
