// CPU KD-tree kNN / radius search, brute-force references and the dispatch to CUDA.
//
// Exactness: a candidate (d, i) beats (d', i') when d < d' or (d == d' and i < i'). A subtree is
// skipped only when the squared distance from the query to its bounding box is strictly larger
// than the current k-th distance, so equal-distance points with smaller indices are never lost.
// The box distance uses the same float operations as the point distance; rounding is monotone,
// so it never exceeds the distance of any point inside the box.

// No fused multiply-add: the CUDA path computes distances with __fmul_rn/__fadd_rn.
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include "geometry/knn.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <thread>
#include <utility>

#include "core/check.h"
#include "core/cuda_api.h"
#include "geometry/cuda/knn_cuda.h"
#include "geometry/parallel.h"

namespace lapis {
namespace geometry {

int resolve_threads(int requested) {
  if (requested > 0) return requested;
  const unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1 : static_cast<int>(hw);
}

namespace {

constexpr int kLeafSize = 12;

inline float sq_dist(const float* a, const float* b) {
  const float dx = a[0] - b[0];
  const float dy = a[1] - b[1];
  const float dz = a[2] - b[2];
  return (dx * dx + dy * dy) + dz * dz;
}

inline bool better(float d, int32_t i, float wd, int32_t wi) {
  return d < wd || (d == wd && i < wi);
}

using detail::parallel_chunks;

// Sorted candidate list of at most k entries (insertion sort: k is small).
struct Candidates {
  int k = 0;
  int count = 0;
  float* d = nullptr;
  int32_t* i = nullptr;

  bool full() const { return count == k; }
  float worst() const { return d[count - 1]; }
  void offer(float dist, int32_t idx) {
    if (count == k && !better(dist, idx, d[k - 1], i[k - 1])) return;
    int pos = count == k ? k - 1 : count++;
    while (pos > 0 && better(dist, idx, d[pos - 1], i[pos - 1])) {
      d[pos] = d[pos - 1];
      i[pos] = i[pos - 1];
      --pos;
    }
    d[pos] = dist;
    i[pos] = idx;
  }
};

void check_points(const Points& points, const char* op) {
  for (int64_t r = 0; r < points.rows(); ++r) {
    const float x = points(r, 0), y = points(r, 1), z = points(r, 2);
    LAPIS_CHECK(std::isfinite(x) && std::isfinite(y) && std::isfinite(z), op, "point ", r,
                " has a non-finite coordinate (", x, ", ", y, ", ", z, ")");
  }
}

void check_k(int k, int64_t available, const char* op, const char* what) {
  LAPIS_CHECK(k >= 1, op, "k must be at least 1, got ", k);
  LAPIS_CHECK(k <= available, op, "k = ", k, " exceeds the ", available, " ", what);
}

}  // namespace

struct KdTree::Impl {
  struct Node {
    float lo[3], hi[3];
    int32_t begin, end;   // range in pts/perm
    int32_t left, right;  // children, -1 for a leaf
  };
  std::vector<float> pts;     // P x 3 in tree order
  std::vector<int32_t> perm;  // tree order -> original index
  std::vector<Node> nodes;

  int64_t size() const { return static_cast<int64_t>(perm.size()); }

  void build(const Points& points) {
    const int64_t n = points.rows();
    LAPIS_CHECK(n < (int64_t{1} << 31) - 1, "KdTree", "too many points: ", n);
    perm.resize(static_cast<size_t>(n));
    std::iota(perm.begin(), perm.end(), 0);
    if (n == 0) return;
    nodes.reserve(static_cast<size_t>(2 * (n / kLeafSize + 1)));
    build_node(points, 0, static_cast<int32_t>(n));
    pts.resize(static_cast<size_t>(n) * 3);
    for (int64_t j = 0; j < n; ++j) {
      for (int c = 0; c < 3; ++c) pts[static_cast<size_t>(3 * j + c)] = points(perm[j], c);
    }
  }

  int32_t build_node(const Points& points, int32_t begin, int32_t end) {
    const int32_t id = static_cast<int32_t>(nodes.size());
    nodes.push_back(Node{});
    Node node;
    node.begin = begin;
    node.end = end;
    node.left = node.right = -1;
    for (int c = 0; c < 3; ++c) {
      node.lo[c] = std::numeric_limits<float>::infinity();
      node.hi[c] = -std::numeric_limits<float>::infinity();
    }
    for (int32_t j = begin; j < end; ++j) {
      for (int c = 0; c < 3; ++c) {
        const float v = points(perm[j], c);
        node.lo[c] = std::min(node.lo[c], v);
        node.hi[c] = std::max(node.hi[c], v);
      }
    }
    if (end - begin > kLeafSize) {
      int axis = 0;
      for (int c = 1; c < 3; ++c) {
        if (node.hi[c] - node.lo[c] > node.hi[axis] - node.lo[axis]) axis = c;
      }
      if (node.hi[axis] > node.lo[axis]) {  // all-identical points stay in one leaf
        const int32_t mid = begin + (end - begin) / 2;
        std::nth_element(perm.begin() + begin, perm.begin() + mid, perm.begin() + end,
                         [&](int32_t a, int32_t b) { return points(a, axis) < points(b, axis); });
        node.left = build_node(points, begin, mid);
        node.right = build_node(points, mid, end);
      }
    }
    nodes[static_cast<size_t>(id)] = node;
    return id;
  }

  float box_dist(const Node& node, const float* q) const {
    float v[3];
    for (int c = 0; c < 3; ++c) {
      v[c] = q[c] < node.lo[c] ? node.lo[c] - q[c] : (q[c] > node.hi[c] ? q[c] - node.hi[c] : 0.f);
    }
    return (v[0] * v[0] + v[1] * v[1]) + v[2] * v[2];
  }

  // kNN of q, skipping original index `skip` (-1: none).
  void knn_search(int32_t id, const float* q, int32_t skip, Candidates& cand) const {
    const Node& node = nodes[static_cast<size_t>(id)];
    if (node.left < 0) {
      for (int32_t j = node.begin; j < node.end; ++j) {
        const int32_t idx = perm[static_cast<size_t>(j)];
        if (idx == skip) continue;
        cand.offer(sq_dist(q, &pts[static_cast<size_t>(3 * j)]), idx);
      }
      return;
    }
    const float dl = box_dist(nodes[static_cast<size_t>(node.left)], q);
    const float dr = box_dist(nodes[static_cast<size_t>(node.right)], q);
    const int32_t first = dl <= dr ? node.left : node.right;
    const int32_t second = dl <= dr ? node.right : node.left;
    const float d1 = std::min(dl, dr), d2 = std::max(dl, dr);
    if (!cand.full() || d1 <= cand.worst()) knn_search(first, q, skip, cand);
    if (!cand.full() || d2 <= cand.worst()) knn_search(second, q, skip, cand);
  }

  void radius_search(int32_t id, const float* q, float r2,
                     std::vector<std::pair<float, int32_t>>& out) const {
    const Node& node = nodes[static_cast<size_t>(id)];
    if (box_dist(node, q) > r2) return;
    if (node.left < 0) {
      for (int32_t j = node.begin; j < node.end; ++j) {
        const float d = sq_dist(q, &pts[static_cast<size_t>(3 * j)]);
        if (d <= r2) out.emplace_back(d, perm[static_cast<size_t>(j)]);
      }
      return;
    }
    radius_search(node.left, q, r2, out);
    radius_search(node.right, q, r2, out);
  }
};

KdTree::KdTree(const Points& points) : impl_(std::make_unique<Impl>()) {
  check_points(points, "KdTree");
  impl_->build(points);
}
KdTree::~KdTree() = default;
KdTree::KdTree(KdTree&&) noexcept = default;
KdTree& KdTree::operator=(KdTree&&) noexcept = default;

int64_t KdTree::size() const { return impl_->size(); }

KnnResult KdTree::knn(const Points& queries, int k, int num_threads) const {
  KnnResult result;
  const int64_t q = queries.rows();
  LAPIS_CHECK(k >= 1, "knn", "k must be at least 1, got ", k);
  result.indices.resize(q, k);
  result.sq_distances.resize(q, k);
  if (q == 0) return result;
  check_k(k, size(), "knn", "points of the cloud");
  check_points(queries, "knn (queries)");
  parallel_chunks(q, resolve_threads(num_threads), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      Candidates cand{k, 0, result.sq_distances.row(r).data(), result.indices.row(r).data()};
      const float qp[3] = {queries(r, 0), queries(r, 1), queries(r, 2)};
      impl_->knn_search(0, qp, -1, cand);
    }
  });
  return result;
}

KnnResult KdTree::knn_self(int k, bool include_self, int num_threads) const {
  KnnResult result;
  const int64_t n = size();
  LAPIS_CHECK(k >= 1, "knn", "k must be at least 1, got ", k);
  result.indices.resize(n, k);
  result.sq_distances.resize(n, k);
  if (n == 0) return result;
  if (include_self) {
    check_k(k, n, "knn", "points of the cloud");
  } else {
    check_k(k, n - 1, "knn", "other points of the cloud (include_self = false)");
  }
  // Queries in tree order: consecutive queries touch the same nodes (cache locality).
  parallel_chunks(n, resolve_threads(num_threads), [&](int64_t b, int64_t e) {
    for (int64_t j = b; j < e; ++j) {
      const int32_t r = impl_->perm[static_cast<size_t>(j)];
      Candidates cand{k, 0, result.sq_distances.row(r).data(), result.indices.row(r).data()};
      impl_->knn_search(0, &impl_->pts[static_cast<size_t>(3 * j)], include_self ? -1 : r, cand);
    }
  });
  return result;
}

RadiusResult KdTree::radius_search(const Points& queries, float radius, int max_neighbours,
                                   int num_threads) const {
  LAPIS_CHECK(std::isfinite(radius) && radius >= 0.f, "radius_search",
              "radius must be finite and >= 0, got ", radius);
  LAPIS_CHECK(max_neighbours >= 0, "radius_search", "max_neighbours must be >= 0, got ",
              max_neighbours);
  check_points(queries, "radius_search (queries)");
  const int64_t q = queries.rows();
  const float r2 = radius * radius;
  std::vector<std::vector<std::pair<float, int32_t>>> per(static_cast<size_t>(q));
  if (size() > 0) {
    parallel_chunks(q, resolve_threads(num_threads), [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) {
        auto& out = per[static_cast<size_t>(r)];
        const float qp[3] = {queries(r, 0), queries(r, 1), queries(r, 2)};
        impl_->radius_search(0, qp, r2, out);
        std::sort(out.begin(), out.end());  // (distance, index)
        if (max_neighbours > 0 && out.size() > static_cast<size_t>(max_neighbours)) {
          out.resize(static_cast<size_t>(max_neighbours));
        }
      }
    });
  }
  RadiusResult result;
  result.offsets.resize(static_cast<size_t>(q) + 1, 0);
  for (int64_t r = 0; r < q; ++r) {
    result.offsets[static_cast<size_t>(r) + 1] =
        result.offsets[static_cast<size_t>(r)] + static_cast<int64_t>(per[static_cast<size_t>(r)].size());
  }
  result.indices.reserve(static_cast<size_t>(result.offsets.back()));
  result.sq_distances.reserve(static_cast<size_t>(result.offsets.back()));
  for (const auto& out : per) {
    for (const auto& [d, i] : out) {
      result.sq_distances.push_back(d);
      result.indices.push_back(i);
    }
  }
  return result;
}

namespace {

KnnResult knn_cuda_dispatch(const Points& points, const Points* queries, int k, bool include_self) {
  const int64_t n = points.rows();
  const int64_t m = queries ? queries->rows() : n;
  KnnResult result;
  result.indices.resize(m, k);
  result.sq_distances.resize(m, k);
  if (m == 0) return result;
  LAPIS_CHECK(k <= cuda::kMaxCudaKnnK, "knn (cuda)", "k = ", k, " exceeds the CUDA limit of ",
              cuda::kMaxCudaKnnK, " (use the CPU search)");
  LAPIS_CUDA_CALL(cuda::knn_cuda, points.data(), n, queries ? queries->data() : nullptr, m, k,
                  include_self, result.indices.data(), result.sq_distances.data());
  return result;
}

}  // namespace

KnnResult knn(const Points& points, const KnnOptions& options) {
  if (options.device == SearchDevice::CUDA) {
    const int64_t n = points.rows();
    LAPIS_CHECK(options.k >= 1, "knn", "k must be at least 1, got ", options.k);
    if (n > 0) {
      check_points(points, "knn");
      if (options.include_self) {
        check_k(options.k, n, "knn", "points of the cloud");
      } else {
        check_k(options.k, n - 1, "knn", "other points of the cloud (include_self = false)");
      }
    }
    return knn_cuda_dispatch(points, nullptr, options.k, options.include_self);
  }
  KdTree tree(points);
  return tree.knn_self(options.k, options.include_self, options.num_threads);
}

KnnResult knn(const Points& points, const Points& queries, int k, int num_threads,
              SearchDevice device) {
  if (device == SearchDevice::CUDA) {
    LAPIS_CHECK(k >= 1, "knn", "k must be at least 1, got ", k);
    if (queries.rows() > 0) {
      check_k(k, points.rows(), "knn", "points of the cloud");
      check_points(points, "knn");
      check_points(queries, "knn (queries)");
    }
    return knn_cuda_dispatch(points, &queries, k, true);
  }
  KdTree tree(points);
  return tree.knn(queries, k, num_threads);
}

RadiusResult radius_search(const Points& points, const Points& queries, float radius,
                           int max_neighbours, int num_threads) {
  KdTree tree(points);
  return tree.radius_search(queries, radius, max_neighbours, num_threads);
}

namespace {

KnnResult brute_force(const Points& points, const Points& queries, int k, bool self,
                      bool include_self) {
  const int64_t n = points.rows(), q = queries.rows();
  KnnResult result;
  result.indices.resize(q, k);
  result.sq_distances.resize(q, k);
  std::vector<std::pair<float, int32_t>> all;
  for (int64_t r = 0; r < q; ++r) {
    all.clear();
    const float qp[3] = {queries(r, 0), queries(r, 1), queries(r, 2)};
    for (int64_t j = 0; j < n; ++j) {
      if (self && !include_self && j == r) continue;
      const float pp[3] = {points(j, 0), points(j, 1), points(j, 2)};
      all.emplace_back(sq_dist(qp, pp), static_cast<int32_t>(j));
    }
    std::partial_sort(all.begin(), all.begin() + k, all.end());
    for (int c = 0; c < k; ++c) {
      result.sq_distances(r, c) = all[static_cast<size_t>(c)].first;
      result.indices(r, c) = all[static_cast<size_t>(c)].second;
    }
  }
  return result;
}

}  // namespace

KnnResult knn_brute_force(const Points& points, const Points& queries, int k) {
  LAPIS_CHECK(k >= 1, "knn_brute_force", "k must be at least 1, got ", k);
  if (queries.rows() > 0) check_k(k, points.rows(), "knn_brute_force", "points of the cloud");
  return brute_force(points, queries, k, false, true);
}

KnnResult knn_brute_force_self(const Points& points, int k, bool include_self) {
  LAPIS_CHECK(k >= 1, "knn_brute_force", "k must be at least 1, got ", k);
  const int64_t n = points.rows();
  if (n > 0) check_k(k, include_self ? n : n - 1, "knn_brute_force", "available points");
  return brute_force(points, points, k, true, include_self);
}

RadiusResult radius_search_brute_force(const Points& points, const Points& queries,
                                       float radius, int max_neighbours) {
  const float r2 = radius * radius;
  RadiusResult result;
  result.offsets.push_back(0);
  std::vector<std::pair<float, int32_t>> all;
  for (int64_t r = 0; r < queries.rows(); ++r) {
    all.clear();
    const float qp[3] = {queries(r, 0), queries(r, 1), queries(r, 2)};
    for (int64_t j = 0; j < points.rows(); ++j) {
      const float pp[3] = {points(j, 0), points(j, 1), points(j, 2)};
      const float d = sq_dist(qp, pp);
      if (d <= r2) all.emplace_back(d, static_cast<int32_t>(j));
    }
    std::sort(all.begin(), all.end());
    if (max_neighbours > 0 && all.size() > static_cast<size_t>(max_neighbours)) {
      all.resize(static_cast<size_t>(max_neighbours));
    }
    for (const auto& [d, i] : all) {
      result.sq_distances.push_back(d);
      result.indices.push_back(i);
    }
    result.offsets.push_back(static_cast<int64_t>(result.indices.size()));
  }
  return result;
}

}  // namespace geometry
}  // namespace lapis
