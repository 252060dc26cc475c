// CPU KD-tree kNN / radius search, brute-force references and the kNN dispatch.
//
// Which search runs (CPU):
// - kNN, self and external queries: the uniform grid (geometry/knn_grid.h; a counting sort by
//   cell, then one 3 x 3 x 3 block scanned per query). Self queries, 100k points, k = 10, one
//   thread, build included: 3.7x faster than the KD-tree on a uniform cube and on an integer
//   lattice, 2.6x on a sphere surface, 2.5x on a Gaussian blob, 1.3x on a thin line. When the
//   cloud is too uneven for a uniform grid (KnnGrid::efficient_for false: e.g. a dense cluster
//   with a far outlier, where the cap on cells leaves thousands of points per cell, 50x slower
//   than the tree at 100k points) the KD-tree runs instead. Queries in empty space are handed from the grid to
//   a KD-tree inside KnnGrid.
// - Radius search: the KD-tree (a radius is not tied to the grid's cell, and nothing here
//   needs it fast).
// - PCA normals (geometry/normals.cpp) follow the kNN rule, fused with the PCA.
// Every path returns the same (distance, index)-ordered rows as the brute-force reference.
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
#include "core/parallel.h"
#include "geometry/cuda/knn_cuda.h"
#include "geometry/knn_grid.h"
#include "geometry/point_checks.h"

namespace lapis {
namespace geometry {

using detail::check_k;
using detail::check_points;

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

// Sorted candidate list of at most k entries (insertion sort: k is small). `bound` is the k-th
// distance once full (+inf before), so "prune when > bound" is one compare.
struct Candidates {
  int k = 0;
  int count = 0;
  float* d = nullptr;
  int32_t* i = nullptr;
  float bound = std::numeric_limits<float>::infinity();

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
    if (count == k) bound = d[k - 1];
  }
};

}  // namespace

struct KdTree::Impl {
  struct Node {
    float lo[3], hi[3];
    int32_t begin, end;   // range in tree order (xs/ys/zs/perm)
    int32_t left, right;  // children, -1 for a leaf
  };
  // Points in tree order, one array per coordinate (leaf scans are contiguous).
  std::vector<float> xs, ys, zs;
  std::vector<int32_t> perm;     // tree order -> original index
  std::vector<int32_t> leaf_of;  // tree order -> id of the leaf holding that position
  std::vector<Node> nodes;
  std::vector<int32_t> parent;   // node -> parent node (-1 for the root)

  int64_t size() const { return static_cast<int64_t>(perm.size()); }

  // A point and its original index, sorted in place by the splits (no indirection).
  struct Item {
    float p[3];
    int32_t idx;
  };

  void build(const Points& points, int num_threads) {
    const int64_t n = points.rows();
    LAPIS_CHECK(n < (int64_t{1} << 31) - 1, "KdTree", "too many points: ", n);
    perm.resize(static_cast<size_t>(n));
    if (n == 0) return;
    std::vector<Item> items(static_cast<size_t>(n));
    for (int64_t j = 0; j < n; ++j) {
      Item& it = items[static_cast<size_t>(j)];
      for (int c = 0; c < 3; ++c) it.p[c] = points(j, c);
      it.idx = static_cast<int32_t>(j);
    }
    leaf_of.resize(static_cast<size_t>(n));
    const int32_t n32 = static_cast<int32_t>(n);
    Node root;
    int32_t mid = -1;
    // Two threads: split the root here, build the halves concurrently into separate node lists
    // and concatenate them (ids and leaf_of shifted), giving the same tree as a serial build.
    if (num_threads >= 2 && n32 > 4096 && split_range(items.data(), 0, n32, root, mid)) {
      std::vector<Node> left_nodes, right_nodes;
      left_nodes.reserve(static_cast<size_t>(n / kLeafSize + 1));
      right_nodes.reserve(static_cast<size_t>(n / kLeafSize + 1));
      std::thread worker([&] { build_node(items.data(), 0, mid, left_nodes); });
      build_node(items.data(), mid, n32, right_nodes);
      worker.join();
      const int32_t lsize = static_cast<int32_t>(left_nodes.size());
      nodes.reserve(1 + left_nodes.size() + right_nodes.size());
      nodes.push_back(root);
      auto append = [&](const std::vector<Node>& part, int32_t offset) {
        for (Node nd : part) {
          if (nd.left >= 0) {
            nd.left += offset;
            nd.right += offset;
          }
          nodes.push_back(nd);
        }
      };
      append(left_nodes, 1);
      append(right_nodes, 1 + lsize);
      for (int32_t j = 0; j < mid; ++j) leaf_of[static_cast<size_t>(j)] += 1;
      for (int32_t j = mid; j < n32; ++j) leaf_of[static_cast<size_t>(j)] += 1 + lsize;
      Node& r = nodes[0];
      r.left = 1;
      r.right = 1 + lsize;
      for (int c = 0; c < 3; ++c) {
        r.lo[c] = std::min(nodes[1].lo[c], nodes[static_cast<size_t>(r.right)].lo[c]);
        r.hi[c] = std::max(nodes[1].hi[c], nodes[static_cast<size_t>(r.right)].hi[c]);
      }
    } else {
      nodes.reserve(static_cast<size_t>(2 * (n / kLeafSize + 1)));
      build_node(items.data(), 0, n32, nodes);
    }
    parent.assign(nodes.size(), -1);
    for (size_t id = 0; id < nodes.size(); ++id) {
      if (nodes[id].left >= 0) {
        parent[static_cast<size_t>(nodes[id].left)] = static_cast<int32_t>(id);
        parent[static_cast<size_t>(nodes[id].right)] = static_cast<int32_t>(id);
      }
    }
    xs.resize(static_cast<size_t>(n));
    ys.resize(static_cast<size_t>(n));
    zs.resize(static_cast<size_t>(n));
    for (int64_t j = 0; j < n; ++j) {
      const Item& it = items[static_cast<size_t>(j)];
      xs[static_cast<size_t>(j)] = it.p[0];
      ys[static_cast<size_t>(j)] = it.p[1];
      zs[static_cast<size_t>(j)] = it.p[2];
      perm[static_cast<size_t>(j)] = it.idx;
    }
  }

  static void bounds(const Item* items, int32_t begin, int32_t end, float* lo, float* hi) {
    for (int c = 0; c < 3; ++c) {
      lo[c] = std::numeric_limits<float>::infinity();
      hi[c] = -std::numeric_limits<float>::infinity();
    }
    for (int32_t j = begin; j < end; ++j) {
      for (int c = 0; c < 3; ++c) {
        lo[c] = std::min(lo[c], items[j].p[c]);
        hi[c] = std::max(hi[c], items[j].p[c]);
      }
    }
  }

  // Fills node's range and box; when the range is split (more than kLeafSize points, not all
  // identical), partitions items around the median of the widest axis and returns true.
  static bool split_range(Item* items, int32_t begin, int32_t end, Node& node, int32_t& mid) {
    node.begin = begin;
    node.end = end;
    node.left = node.right = -1;
    bounds(items, begin, end, node.lo, node.hi);
    if (end - begin <= kLeafSize) return false;
    int axis = 0;
    for (int c = 1; c < 3; ++c) {
      if (node.hi[c] - node.lo[c] > node.hi[axis] - node.lo[axis]) axis = c;
    }
    if (!(node.hi[axis] > node.lo[axis])) return false;  // all-identical points stay in one leaf
    mid = begin + (end - begin) / 2;
    std::nth_element(items + begin, items + mid, items + end,
                     [axis](const Item& a, const Item& b) { return a.p[axis] < b.p[axis]; });
    return true;
  }

  // Builds the subtree of [begin, end) into `out` (ids local to `out`); leaf_of gets local ids.
  int32_t build_node(Item* items, int32_t begin, int32_t end, std::vector<Node>& out) {
    const int32_t id = static_cast<int32_t>(out.size());
    out.push_back(Node{});
    Node node;
    int32_t mid = -1;
    if (split_range(items, begin, end, node, mid)) {
      node.left = build_node(items, begin, mid, out);
      node.right = build_node(items, mid, end, out);
    } else {
      for (int32_t j = begin; j < end; ++j) leaf_of[static_cast<size_t>(j)] = id;
    }
    out[static_cast<size_t>(id)] = node;
    return id;
  }

  static float box_dist(const Node& node, const float* q) {
    float v[3];
    for (int c = 0; c < 3; ++c) {
      v[c] = q[c] < node.lo[c] ? node.lo[c] - q[c] : (q[c] > node.hi[c] ? q[c] - node.hi[c] : 0.f);
    }
    return (v[0] * v[0] + v[1] * v[1]) + v[2] * v[2];
  }

  void scan_leaf(const Node& node, const float* q, int32_t skip, Candidates& cand) const {
    const float qx = q[0], qy = q[1], qz = q[2];
    const int32_t b = node.begin;
    const int m = node.end - b;
    const float* x = xs.data() + b;
    const float* y = ys.data() + b;
    const float* z = zs.data() + b;
    if (m <= kLeafSize) {
      // Distances first (a branch-free loop the compiler vectorises), then the rare offers.
      float d[kLeafSize];
      for (int t = 0; t < m; ++t) {
        const float dx = qx - x[t];
        const float dy = qy - y[t];
        const float dz = qz - z[t];
        d[t] = (dx * dx + dy * dy) + dz * dz;
      }
      for (int t = 0; t < m; ++t) {
        if (d[t] > cand.bound) continue;  // cheap reject before the exact (distance, index) test
        const int32_t idx = perm[static_cast<size_t>(b + t)];
        if (idx != skip) cand.offer(d[t], idx);
      }
      return;
    }
    for (int t = 0; t < m; ++t) {  // a leaf of identical points can exceed kLeafSize
      const float dx = qx - x[t];
      const float dy = qy - y[t];
      const float dz = qz - z[t];
      const float d = (dx * dx + dy * dy) + dz * dz;
      if (d > cand.bound) continue;
      const int32_t idx = perm[static_cast<size_t>(b + t)];
      if (idx != skip) cand.offer(d, idx);
    }
  }

  // Top-down search of subtree `root`: iterative depth-first, nearer child first; a subtree is
  // pruned only when its box distance is strictly above the current k-th distance.
  void search_down(int32_t root, const float* q, int32_t skip, Candidates& cand) const {
    struct Entry {
      int32_t id;
      float d;
    };
    Entry stack[80];
    int top = 0;
    stack[top++] = Entry{root, 0.f};
    while (top > 0) {
      const Entry e = stack[--top];
      if (e.d > cand.bound) continue;
      const Node& node = nodes[static_cast<size_t>(e.id)];
      if (node.left < 0) {
        scan_leaf(node, q, skip, cand);
        continue;
      }
      const float dl = box_dist(nodes[static_cast<size_t>(node.left)], q);
      const float dr = box_dist(nodes[static_cast<size_t>(node.right)], q);
      if (dl <= dr) {  // push the farther child first so the nearer one is searched first
        stack[top++] = Entry{node.right, dr};
        stack[top++] = Entry{node.left, dl};
      } else {
        stack[top++] = Entry{node.left, dl};
        stack[top++] = Entry{node.right, dr};
      }
    }
  }

  // True when no point outside the subtree of `node` (which contains q and has been searched
  // completely) can reach distance <= bound. Such a point is separated from the subtree by an
  // ancestor's split plane, so on some axis it lies at or beyond a face of the node's tight box;
  // float subtraction, squaring and adding non-negative terms are monotone, so its computed
  // distance is >= the squared gap to that face, which is > bound here.
  static bool ball_inside(const Node& node, const float* q, float bound) {
    for (int c = 0; c < 3; ++c) {
      const float g = std::min(q[c] - node.lo[c], node.hi[c] - q[c]);
      if (!(g * g > bound)) return false;
    }
    return true;
  }

  // kNN of q, skipping original index `skip` (-1: none). With `seed_leaf` >= 0 (self queries:
  // the leaf holding q) the search is bottom-up: scan the seed leaf for a tight bound, then walk
  // to the root, searching each sibling subtree whose box is not strictly farther than the k-th
  // distance. Every point is in exactly one of the visited subtrees, so the result is exact.
  void knn_search(const float* q, int32_t skip, int32_t seed_leaf, Candidates& cand) const {
    if (seed_leaf < 0) {
      search_down(0, q, skip, cand);
      return;
    }
    scan_leaf(nodes[static_cast<size_t>(seed_leaf)], q, skip, cand);
    int32_t cur = seed_leaf;
    while (cur != 0) {
      if (ball_inside(nodes[static_cast<size_t>(cur)], q, cand.bound)) break;
      const int32_t p = parent[static_cast<size_t>(cur)];
      const Node& pn = nodes[static_cast<size_t>(p)];
      const int32_t sib = pn.left == cur ? pn.right : pn.left;
      if (box_dist(nodes[static_cast<size_t>(sib)], q) <= cand.bound) {
        search_down(sib, q, skip, cand);
      }
      cur = p;
    }
  }

  void radius_search(int32_t id, const float* q, float r2,
                     std::vector<std::pair<float, int32_t>>& out) const {
    const Node& node = nodes[static_cast<size_t>(id)];
    if (box_dist(node, q) > r2) return;
    if (node.left < 0) {
      for (int32_t j = node.begin; j < node.end; ++j) {
        const size_t s = static_cast<size_t>(j);
        const float p[3] = {xs[s], ys[s], zs[s]};
        const float d = sq_dist(q, p);
        if (d <= r2) out.emplace_back(d, perm[s]);
      }
      return;
    }
    radius_search(node.left, q, r2, out);
    radius_search(node.right, q, r2, out);
  }
};

KdTree::KdTree(const Points& points, int num_threads) : impl_(std::make_unique<Impl>()) {
  check_points(points, "KdTree");
  impl_->build(points, resolve_threads(num_threads));
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
      impl_->knn_search(qp, -1, -1, cand);
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
  // Results are computed in tree order into a per-thread buffer, then scattered to the rows in a
  // separate tight loop (the rows are in random order; interleaving those cache-missing stores
  // with the search stalls it).
  parallel_chunks(n, resolve_threads(num_threads), [&](int64_t b, int64_t e) {
    const size_t kk = static_cast<size_t>(k);
    std::vector<float> dbuf(static_cast<size_t>(e - b) * kk);
    std::vector<int32_t> ibuf(static_cast<size_t>(e - b) * kk);
    for (int64_t j = b; j < e; ++j) {
      const size_t s = static_cast<size_t>(j);
      const size_t o = static_cast<size_t>(j - b) * kk;
      Candidates cand{k, 0, dbuf.data() + o, ibuf.data() + o};
      const float qp[3] = {impl_->xs[s], impl_->ys[s], impl_->zs[s]};
      impl_->knn_search(qp, include_self ? -1 : impl_->perm[s], impl_->leaf_of[s], cand);
    }
    for (int64_t j = b; j < e; ++j) {
      const int32_t r = impl_->perm[static_cast<size_t>(j)];
      const size_t o = static_cast<size_t>(j - b) * kk;
      std::copy(dbuf.data() + o, dbuf.data() + o + kk, result.sq_distances.row(r).data());
      std::copy(ibuf.data() + o, ibuf.data() + o + kk, result.indices.row(r).data());
    }
  });
  return result;
}

void KdTree::knn_self_visit(
    int k, bool include_self, int num_threads,
    const std::function<void(int64_t, const int32_t*, const float*)>& fn) const {
  const int64_t n = size();
  LAPIS_CHECK(k >= 1, "knn", "k must be at least 1, got ", k);
  if (n == 0) return;
  if (include_self) {
    check_k(k, n, "knn", "points of the cloud");
  } else {
    check_k(k, n - 1, "knn", "other points of the cloud (include_self = false)");
  }
  parallel_chunks(n, resolve_threads(num_threads), [&](int64_t b, int64_t e) {
    std::vector<float> dbuf(static_cast<size_t>(k));
    std::vector<int32_t> ibuf(static_cast<size_t>(k));
    for (int64_t j = b; j < e; ++j) {
      const size_t s = static_cast<size_t>(j);
      const int32_t r = impl_->perm[s];
      Candidates cand{k, 0, dbuf.data(), ibuf.data()};
      const float qp[3] = {impl_->xs[s], impl_->ys[s], impl_->zs[s]};
      impl_->knn_search(qp, include_self ? -1 : r, impl_->leaf_of[s], cand);
      fn(r, ibuf.data(), dbuf.data());
    }
  });
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
  const KnnGrid grid(points, options.k, options.num_threads);
  if (grid.efficient_for(options.k)) {
    return grid.knn_self(options.k, options.include_self, options.num_threads);
  }
  KdTree tree(points, options.num_threads);
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
  const KnnGrid grid(points, k, num_threads);
  if (grid.efficient_for(k)) return grid.knn(queries, k, num_threads);
  KdTree tree(points, num_threads);
  return tree.knn(queries, k, num_threads);
}

RadiusResult radius_search(const Points& points, const Points& queries, float radius,
                           int max_neighbours, int num_threads) {
  KdTree tree(points, num_threads);
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
