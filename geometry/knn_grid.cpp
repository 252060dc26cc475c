// CPU uniform-grid kNN (see knn_grid.h for the algorithm and where it is used).
//
// Exactness. Cells are half-open slabs between the edges e_c(i) = origin_c + i * h (double).
// Every point, and every query, is assigned by GridGeom::coord(): a fast estimate
// floor((v - origin) / h) corrected so that e(i) <= v < e(i + 1) holds exactly in double (the
// first and last cells also take whatever lies beyond the grid). So a point in a cell below the
// query's cell on axis c has v < e(i + 1) <= q_c, and its gap to q on that axis is at least
// g = q_c - e(i + 1) > 0 (computed in double, relative error 2^-53). Its distance computed in
// float is then at least g^2 * (1 - 2^-22): fl(p_c - q_c) >= g * (1 - 2^-24) because rounding
// is monotone, squaring loses at most another 2^-24, and adding the other non-negative terms
// never decreases a float sum. Bounds are therefore used as g^2 * (1 - 1e-6), and only for
// g >= 1e-18 (the float square is then a normal number, so the relative bounds hold).
// A candidate (d, i) is rejected only when d > bound (strictly) or (d == k-th distance and i is
// larger), and the search stops only when the k-th distance is strictly below the lower bound
// of every unvisited point, so equal-distance points with smaller indices are never lost.

// No fused multiply-add: distances must equal the KD-tree's and the CUDA path's bit for bit.
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include "geometry/knn_grid.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <mutex>
#include <vector>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "core/check.h"
#include "core/parallel.h"
#include "geometry/grid_cell_size.h"
#include "geometry/point_checks.h"

namespace lapis {
namespace geometry {

using detail::check_k;
using detail::check_points;

namespace {

// Gaps below this count as 0 in the bounds (their float square could be subnormal).
constexpr double kTinyGap = 1e-18;
// Float rounding of (p - q)^2 summed over axes: at most ~3 * 2^-24 relative, see above.
constexpr double kRoundingSlack = 1.0 - 1e-6;
// Most pre-filtered candidates ranked by all-pairs counting (quadratic); more use insertion.
constexpr int kMaxRanked = 48;
// Pre-filter thresholds as multiples of the previous query's k-th distance: the first keeps
// ~1.4 k of the ~110 block points and is too small for ~12% of the queries; the second is a
// cheap retry before the full insertion (measured on the PCPNet armadillo, k = 10: of 1.2 to
// 2, 1.35 to 1.75 were fastest).
constexpr double kFirstGuess = 1.5;
constexpr double kSecondGuess = 4.0;
// Rings a query may scan around its cell before it is handed to the fallback KD-tree: a query
// in empty space (inside a hollow shape, far outside the box, an isolated outlier) would scan
// rings of empty cells, O(r^3), where the tree takes microseconds. Scans, volumes and lattices
// settle nearly every query within ring 1.
constexpr int kMaxRing = 2;

// For a 4-bit mask, the positions of its set bits (then padding) and their count.
struct CompactTable {
  alignas(16) int32_t pos[16][4];
  int count[16];
  CompactTable() {
    for (int mask = 0; mask < 16; ++mask) {
      int c = 0;
      for (int b = 0; b < 4; ++b) {
        if (mask & (1 << b)) pos[mask][c++] = b;
      }
      count[mask] = c;
      for (int b = c; b < 4; ++b) pos[mask][b] = 0;
    }
  }
};
const CompactTable kCompact;

inline bool better(float d, int32_t i, float wd, int32_t wi) {
  return d < wd || (d == wd && i < wi);
}

// Sorted list of the best (distance, index) pairs seen, at most k (insertion sort: k is small),
// with each one's position in the grid's sorted arrays (p). `bound` is the k-th distance once
// full (+inf before), so "reject when > bound" is one compare.
struct Candidates {
  int k = 0;
  int count = 0;
  float* d = nullptr;
  int32_t* i = nullptr;
  int32_t* p = nullptr;
  float bound = std::numeric_limits<float>::infinity();

  bool full() const { return count == k; }
  void offer(float dist, int32_t idx, int32_t pos) {
    if (count == k && !better(dist, idx, d[k - 1], i[k - 1])) return;
    int at = count == k ? k - 1 : count++;
    while (at > 0 && better(dist, idx, d[at - 1], i[at - 1])) {
      d[at] = d[at - 1];
      i[at] = i[at - 1];
      p[at] = p[at - 1];
      --at;
    }
    d[at] = dist;
    i[at] = idx;
    p[at] = pos;
    if (count == k) bound = d[k - 1];
  }
};

// Cell geometry: origin, edge and cells per axis.
struct GridGeom {
  double origin[3] = {0.0, 0.0, 0.0};
  double h = 1.0, inv_h = 1.0;
  int dims[3] = {1, 1, 1};

  double edge(int c, int i) const { return origin[c] + static_cast<double>(i) * h; }

  // The cell i of v on axis c with edge(i) <= v < edge(i + 1) in exact double comparisons
  // (cell 0 and the last cell also take what lies below/above the grid). v must be finite.
  int coord(float v, int c) const {
    const double x = v;
    const double t = (x - origin[c]) * inv_h;
    const int last = dims[c] - 1;
    // Truncation equals floor for t > 0; the correction loops fix any rounding in t.
    int i = t <= 0.0 ? 0 : (t >= static_cast<double>(last) ? last : static_cast<int>(t));
    while (i > 0 && x < edge(c, i)) --i;
    while (i < last && x >= edge(c, i + 1)) ++i;
    return i;
  }

  int32_t key(int cx, int cy, int cz) const { return (cz * dims[1] + cy) * dims[0] + cx; }
  int32_t key_of(float x, float y, float z) const {
    return key(coord(x, 0), coord(y, 1), coord(z, 2));
  }
  int64_t total() const { return static_cast<int64_t>(dims[0]) * dims[1] * dims[2]; }
};

}  // namespace

struct KnnGrid::Impl {
  int64_t n = 0;
  GridGeom g;
  // Points in cell order (stable: by original index inside a cell), one array per coordinate.
  std::vector<float> xs, ys, zs;
  std::vector<int32_t> perm;     // N: sorted position -> original index
  std::vector<int32_t> cell_of;  // N: sorted position -> cell key
  // cells + 1: cell c holds the sorted positions [cell_start[c], cell_start[c + 1]).
  std::vector<int32_t> cell_start;
  double mean_block = 0.0;  // see KnnGrid::mean_block_points()
  mutable std::once_flag fallback_once;
  mutable Points fallback_points;
  mutable std::unique_ptr<KdTree> fallback_tree;

  // Per-thread search state: the gathered block of the current query cell (positions j in
  // [0, m): coordinates, original index, sorted position), the pre-filter buffers and the
  // ranked result.
  struct Scratch {
    explicit Scratch(int k)
        : rank_d(static_cast<size_t>(k) + 1),
          rank_i(static_cast<size_t>(k) + 1),
          rank_p(static_cast<size_t>(k) + 1),
          out_d(static_cast<size_t>(k)),
          out_i(static_cast<size_t>(k)),
          out_p(static_cast<size_t>(k)) {}
    int32_t cell = -1;
    int c[3] = {0, 0, 0};
    int m = 0;
    std::vector<float> bx, by, bz, bd;
    std::vector<int32_t> bi, bp;
    std::vector<int32_t> sel;  // pre-filtered block positions (m + 4)
    std::vector<float> cd;     // pre-filtered (distance, index, sorted position) (m + 4)
    std::vector<int32_t> ci, cp;
    std::vector<float> rank_d;  // k + 1: ranked result and a spare slot
    std::vector<int32_t> rank_i, rank_p;
    std::vector<float> out_d;  // k: one query's result (visit)
    std::vector<int32_t> out_i, out_p;
    // The previous query's k-th distance (the guess for the pre-filter).
    bool has_prev = false;
    double prev_dk = 0.0;
  };

  void build(const Points& points, int k_hint, int threads) {
    n = points.rows();
    LAPIS_CHECK(n < (int64_t{1} << 31) - 1, "KnnGrid", "too many points: ", n);
    check_points(points, "KnnGrid");
    if (n == 0) return;
    double lo[3], hi[3];
    for (int c = 0; c < 3; ++c) {
      float mn = points(0, c), mx = points(0, c);
      for (int64_t j = 1; j < n; ++j) {
        mn = std::min(mn, points(j, c));
        mx = std::max(mx, points(j, c));
      }
      lo[c] = mn;
      hi[c] = mx;
      g.origin[c] = mn;
    }
    std::vector<int32_t> keys(static_cast<size_t>(n));
    auto compute_keys = [&] {
      parallel_chunks(
          n, threads,
          [&](int64_t b, int64_t e) {
            for (int64_t j = b; j < e; ++j) {
              keys[static_cast<size_t>(j)] = g.key_of(points(j, 0), points(j, 1), points(j, 2));
            }
          },
          4096);
    };
    auto set_cell = [&](const CellSizeSearch& s) {
      g.h = s.cell();
      g.inv_h = 1.0 / g.h;
      for (int c = 0; c < 3; ++c) g.dims[c] = s.dims()[c];
    };
    // Cell edge: CellSizeSearch's loop, one counting pass per report. The keys of the last
    // count stay valid when the search ends on the edge it measured, saving the final pass.
    CellSizeSearch search(lo, hi, n, std::max(1, k_hint));
    bool keys_current = false;
    std::vector<uint8_t> seen;
    while (!search.done()) {
      set_cell(search);
      compute_keys();
      seen.assign(static_cast<size_t>(g.total()), 0);
      int64_t occupied = 0;
      for (const int32_t key : keys) {
        uint8_t& s = seen[static_cast<size_t>(key)];
        occupied += s == 0;
        s = 1;
      }
      const double measured_h = g.h;
      search.report(occupied);
      keys_current = search.cell() == measured_h;
    }
    if (!keys_current) {
      set_cell(search);
      compute_keys();
    }
    // Counting sort by cell (stable).
    const int64_t cells = g.total();
    cell_start.assign(static_cast<size_t>(cells) + 1, 0);
    for (const int32_t key : keys) ++cell_start[static_cast<size_t>(key) + 1];
    for (int64_t c = 0; c < cells; ++c) {
      cell_start[static_cast<size_t>(c) + 1] += cell_start[static_cast<size_t>(c)];
    }
    std::vector<int32_t> cursor(cell_start.begin(), cell_start.end() - 1);
    xs.resize(static_cast<size_t>(n));
    ys.resize(static_cast<size_t>(n));
    zs.resize(static_cast<size_t>(n));
    perm.resize(static_cast<size_t>(n));
    cell_of.resize(static_cast<size_t>(n));
    for (int64_t j = 0; j < n; ++j) {
      const int32_t key = keys[static_cast<size_t>(j)];
      const size_t s = static_cast<size_t>(cursor[static_cast<size_t>(key)]++);
      xs[s] = points(j, 0);
      ys[s] = points(j, 1);
      zs[s] = points(j, 2);
      perm[s] = static_cast<int32_t>(j);
      cell_of[s] = key;
    }
    // Mean block size: one pass over the occupied cells (sorted positions run cell by cell).
    double weighted = 0.0;
    for (int64_t b = 0; b < n;) {
      const int32_t key = cell_of[static_cast<size_t>(b)];
      const int64_t e = cell_start[static_cast<size_t>(key) + 1];
      weighted += static_cast<double>(e - b) * static_cast<double>(block_points(key));
      b = e;
    }
    mean_block = weighted / static_cast<double>(n);
  }

  // Points in the 3 x 3 x 3 block around cell `key` (nine x-rows, each a contiguous range).
  int64_t block_points(int32_t key) const {
    int c[3];
    decode(key, c);
    const int x0 = std::max(c[0] - 1, 0), x1 = std::min(c[0] + 1, g.dims[0] - 1);
    int64_t total = 0;
    for (int z = std::max(c[2] - 1, 0); z <= std::min(c[2] + 1, g.dims[2] - 1); ++z) {
      for (int y = std::max(c[1] - 1, 0); y <= std::min(c[1] + 1, g.dims[1] - 1); ++y) {
        total += cell_start[static_cast<size_t>(g.key(x1, y, z)) + 1] -
                 cell_start[static_cast<size_t>(g.key(x0, y, z))];
      }
    }
    return total;
  }

  void decode(int32_t key, int c[3]) const {
    c[0] = key % g.dims[0];
    c[1] = (key / g.dims[0]) % g.dims[1];
    c[2] = key / (g.dims[0] * g.dims[1]);
  }

  // Copies the points of the 3 x 3 x 3 block around cell `key` into the scratch buffer: nine
  // x-rows of three cells, each one contiguous range of the sorted arrays (own row first).
  void gather(int32_t key, Scratch& s) const {
    s.cell = key;
    decode(key, s.c);
    static constexpr int kRows[9][2] = {{0, 0},   {-1, 0}, {1, 0},  {0, -1}, {0, 1},
                                        {-1, -1}, {1, -1}, {-1, 1}, {1, 1}};
    const int x0 = std::max(s.c[0] - 1, 0), x1 = std::min(s.c[0] + 1, g.dims[0] - 1);
    int32_t ranges[9][2];
    int nr = 0;
    int total = 0;
    for (const auto& row : kRows) {
      const int y = s.c[1] + row[0], z = s.c[2] + row[1];
      if (y < 0 || y >= g.dims[1] || z < 0 || z >= g.dims[2]) continue;
      const int32_t b = cell_start[static_cast<size_t>(g.key(x0, y, z))];
      const int32_t e = cell_start[static_cast<size_t>(g.key(x1, y, z)) + 1];
      ranges[nr][0] = b;
      ranges[nr][1] = e;
      ++nr;
      total += e - b;
    }
    if (static_cast<size_t>(total) + 4 > s.bx.size()) {
      const size_t cap = static_cast<size_t>(total) + static_cast<size_t>(total) / 2 + 16;
      for (auto* v : {&s.bx, &s.by, &s.bz, &s.bd, &s.cd}) v->resize(cap);
      for (auto* v : {&s.bi, &s.bp, &s.sel, &s.ci, &s.cp}) v->resize(cap);
    }
    int m = 0;
    for (int r = 0; r < nr; ++r) {
      for (int32_t t = ranges[r][0]; t < ranges[r][1]; ++t, ++m) {
        const size_t u = static_cast<size_t>(t);
        s.bx[static_cast<size_t>(m)] = xs[u];
        s.by[static_cast<size_t>(m)] = ys[u];
        s.bz[static_cast<size_t>(m)] = zs[u];
        s.bi[static_cast<size_t>(m)] = perm[u];
        s.bp[static_cast<size_t>(m)] = t;
      }
    }
    s.m = m;
  }

  // Squared gap from q to the cells of index `cell` along axis c (query in cell qc), as a
  // lower bound for the float distance term; 0 when they overlap or the gap is tiny.
  double axis_gap2(int c, int cell, int qc, float q) const {
    double gap = 0.0;
    if (cell < qc) {
      gap = static_cast<double>(q) - g.edge(c, cell + 1);
    } else if (cell > qc) {
      gap = g.edge(c, cell) - static_cast<double>(q);
    }
    return gap >= kTinyGap ? gap * gap : 0.0;
  }

  // True when the search of query q (in cell qc) may stop after visiting the rings 0..r: the
  // rings cover the grid, or every point outside them has a computed distance strictly above
  // the k-th distance.
  bool may_stop(const float q[3], const int qc[3], int r, const Candidates& cand) const {
    double gap = std::numeric_limits<double>::infinity();
    bool covered = true;
    for (int c = 0; c < 3; ++c) {
      if (qc[c] - r > 0) {
        covered = false;
        gap = std::min(gap, static_cast<double>(q[c]) - g.edge(c, qc[c] - r));
      }
      if (qc[c] + r < g.dims[c] - 1) {
        covered = false;
        gap = std::min(gap, g.edge(c, qc[c] + r + 1) - static_cast<double>(q[c]));
      }
    }
    if (covered) return true;
    if (!cand.full() || !(gap >= kTinyGap)) return false;
    return static_cast<double>(cand.bound) < gap * gap * kRoundingSlack;
  }

  void scan_cell(int32_t cell, const float q[3], int32_t skip, Candidates& cand) const {
    const int32_t b = cell_start[static_cast<size_t>(cell)];
    const int32_t e = cell_start[static_cast<size_t>(cell) + 1];
    for (int32_t s = b; s < e; ++s) {
      const size_t u = static_cast<size_t>(s);
      const float dx = q[0] - xs[u];
      const float dy = q[1] - ys[u];
      const float dz = q[2] - zs[u];
      const float d = (dx * dx + dy * dy) + dz * dz;
      if (d > cand.bound) continue;
      const int32_t idx = perm[u];
      if (idx != skip) cand.offer(d, idx, s);
    }
  }

  // The shell of cells at Chebyshev distance r from qc, skipping cells whose box is farther
  // than the current k-th distance.
  void scan_ring(int r, const float q[3], const int qc[3], int32_t skip, Candidates& cand) const {
    for (int dz = -r; dz <= r; ++dz) {
      const int z = qc[2] + dz;
      if (z < 0 || z >= g.dims[2]) continue;
      const double gz = axis_gap2(2, z, qc[2], q[2]);
      for (int dy = -r; dy <= r; ++dy) {
        const int y = qc[1] + dy;
        if (y < 0 || y >= g.dims[1]) continue;
        const double gyz = gz + axis_gap2(1, y, qc[1], q[1]);
        // Inside the shell only the two x faces, unless on a y or z face.
        const bool face = dz == -r || dz == r || dy == -r || dy == r;
        const int step = face ? 1 : 2 * r;
        for (int dx = -r; dx <= r; dx += step) {
          const int x = qc[0] + dx;
          if (x < 0 || x >= g.dims[0]) continue;
          if (cand.full()) {
            const double lower = (gyz + axis_gap2(0, x, qc[0], q[0])) * kRoundingSlack;
            if (lower > static_cast<double>(cand.bound)) continue;
          }
          scan_cell(g.key(x, y, z), q, skip, cand);
        }
      }
    }
  }

  // Distances from q to the m block points into s.bd, and the positions j with bd[j] <= t
  // compacted into s.sel (returns their count). SSE2: four distances per step and a
  // branch-free compaction through a 16-entry table of set-bit positions.
  int distances_and_filter(float qx, float qy, float qz, float t, Scratch& s) const {
    const int m = s.m;
    const float* bx = s.bx.data();
    const float* by = s.by.data();
    const float* bz = s.bz.data();
    float* bd = s.bd.data();
    int32_t* sel = s.sel.data();
    int c = 0;
    int j = 0;
#if defined(__SSE2__)
    const __m128 qx4 = _mm_set1_ps(qx), qy4 = _mm_set1_ps(qy), qz4 = _mm_set1_ps(qz);
    const __m128 t4 = _mm_set1_ps(t);
    for (; j + 4 <= m; j += 4) {
      const __m128 dx = _mm_sub_ps(qx4, _mm_loadu_ps(bx + j));
      const __m128 dy = _mm_sub_ps(qy4, _mm_loadu_ps(by + j));
      const __m128 dz = _mm_sub_ps(qz4, _mm_loadu_ps(bz + j));
      const __m128 d =
          _mm_add_ps(_mm_add_ps(_mm_mul_ps(dx, dx), _mm_mul_ps(dy, dy)), _mm_mul_ps(dz, dz));
      _mm_storeu_ps(bd + j, d);
      const int mask = _mm_movemask_ps(_mm_cmple_ps(d, t4));
      const __m128i pos = _mm_add_epi32(
          _mm_load_si128(reinterpret_cast<const __m128i*>(kCompact.pos[mask])), _mm_set1_epi32(j));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(sel + c), pos);
      c += kCompact.count[mask];
    }
#endif
    for (; j < m; ++j) {
      const float dx = qx - bx[j];
      const float dy = qy - by[j];
      const float dz = qz - bz[j];
      bd[j] = (dx * dx + dy * dy) + dz * dz;
      sel[c] = j;
      c += bd[j] <= t;
    }
    return c;
  }

  // The k best of the selected block points (sel[0..c), leaving out index `skip`) into cand,
  // when there are at least k of them; false otherwise (cand untouched).
  static bool select_k(Scratch& s, int c, int32_t skip, Candidates& cand) {
    const float* bd = s.bd.data();
    const int32_t* bi = s.bi.data();
    const int32_t* bp = s.bp.data();
    float* cd = s.cd.data();
    int32_t* ci = s.ci.data();
    int32_t* cp = s.cp.data();
    int n = 0;
    for (int a = 0; a < c; ++a) {
      const int j = s.sel[static_cast<size_t>(a)];
      cd[n] = bd[j];
      ci[n] = bi[j];
      cp[n] = bp[j];
      n += bi[j] != skip;
    }
    const int k = cand.k;
    if (n < k) return false;
    if (n > kMaxRanked) {
      for (int a = 0; a < n; ++a) {
        if (cd[a] <= cand.bound) cand.offer(cd[a], ci[a], cp[a]);
      }
      return true;
    }
    // Rank of each survivor = how many survivors beat it in (distance, index) order; ranks are
    // distinct, so the first k ranks are the sorted result. Branch-free: ranks >= k go to a
    // spare slot.
    float* rd = s.rank_d.data();
    int32_t* ri = s.rank_i.data();
    int32_t* rp = s.rank_p.data();
#if defined(__SSE2__)
    const int n4 = (n + 3) & ~3;
    for (int a = n; a < n4; ++a) {  // padding never beats anything
      cd[a] = std::numeric_limits<float>::infinity();
      ci[a] = std::numeric_limits<int32_t>::max();
    }
    for (int a = 0; a < n; ++a) {
      const __m128 da = _mm_set1_ps(cd[a]);
      const __m128i ia = _mm_set1_epi32(ci[a]);
      __m128i acc = _mm_setzero_si128();
      for (int b = 0; b < n4; b += 4) {
        const __m128 db = _mm_loadu_ps(cd + b);
        const __m128i ib = _mm_loadu_si128(reinterpret_cast<const __m128i*>(ci + b));
        const __m128i lt = _mm_castps_si128(_mm_cmplt_ps(db, da));
        const __m128i eq = _mm_castps_si128(_mm_cmpeq_ps(db, da));
        const __m128i beats = _mm_or_si128(lt, _mm_and_si128(eq, _mm_cmplt_epi32(ib, ia)));
        acc = _mm_sub_epi32(acc, beats);  // a true lane is -1
      }
      acc = _mm_add_epi32(acc, _mm_shuffle_epi32(acc, 0x4E));
      acc = _mm_add_epi32(acc, _mm_shuffle_epi32(acc, 0xB1));
      const int rank = std::min(_mm_cvtsi128_si32(acc), k);
      rd[rank] = cd[a];
      ri[rank] = ci[a];
      rp[rank] = cp[a];
    }
#else
    for (int a = 0; a < n; ++a) {
      int rank = 0;
      for (int b = 0; b < n; ++b) rank += better(cd[b], ci[b], cd[a], ci[a]);
      rank = std::min(rank, k);
      rd[rank] = cd[a];
      ri[rank] = ci[a];
      rp[rank] = cp[a];
    }
#endif
    std::copy(rd, rd + k, cand.d);
    std::copy(ri, ri + k, cand.i);
    std::copy(rp, rp + k, cand.p);
    cand.count = k;
    cand.bound = cand.d[k - 1];
    return true;
  }

  // kNN of q, whose cell (key) must be the gathered one in s; skip: original index to leave
  // out (-1: none). Fills cand (k entries) and returns true, or returns false when rings up to
  // kMaxRing do not settle it (the caller then asks the fallback KD-tree).
  //
  // Pre-filter: if at least k block points have d <= t, the k best of the block are among
  // them, whatever t is; so t is only a guess, and a guess that keeps fewer than k is retried
  // larger, then dropped. The guess is a multiple of the previous query's k-th distance
  // (neighbouring queries in cell order see about the same density). The ~1.5 k survivors are
  // ranked branch-free, which replaces ~m unpredictable compare-and-insert steps.
  bool search(const float q[3], int32_t skip, Scratch& s, Candidates& cand) const {
    const int m = s.m;
    const float inf = std::numeric_limits<float>::infinity();
    const float t = s.has_prev ? static_cast<float>(s.prev_dk * kFirstGuess) : inf;
    int c = distances_and_filter(q[0], q[1], q[2], t, s);
    bool done = select_k(s, c, skip, cand);
    if (!done && t < inf && t > 0.f) {
      const float t2 = static_cast<float>(s.prev_dk * kSecondGuess);
      const float* bd = s.bd.data();
      int32_t* sel = s.sel.data();
      c = 0;
      for (int j = 0; j < m; ++j) {
        sel[c] = j;
        c += bd[j] <= t2;
      }
      done = select_k(s, c, skip, cand);
    }
    if (!done) {
      const float* bd = s.bd.data();
      const int32_t* bi = s.bi.data();
      const int32_t* bp = s.bp.data();
      for (int j = 0; j < m; ++j) {
        if (bd[j] > cand.bound) continue;
        if (bi[j] != skip) cand.offer(bd[j], bi[j], bp[j]);
      }
    }
    for (int r = 1; !may_stop(q, s.c, r, cand); ++r) {
      if (r == kMaxRing) return false;
      scan_ring(r + 1, q, s.c, skip, cand);
    }
    s.has_prev = cand.full();
    if (s.has_prev) s.prev_dk = static_cast<double>(cand.bound);
    return true;
  }

  // Runs fn(j, row, candidates) for the queries j in [b, e) of a cell-ordered list that the
  // grid settles, and appends the others to `deferred` (under `mutex`); row_of(j) is the
  // query's row (the point itself for self queries, skipped unless include_self), query(j, q)
  // its coordinates and key_of_query(j) its cell.
  template <typename Row, typename Query, typename Key, typename Fn>
  void run_queries(int64_t b, int64_t e, int k, bool include_self, const Row& row_of,
                   const Query& query, const Key& key_of_query, const Fn& fn,
                   std::vector<int64_t>& deferred, std::mutex& mutex) const {
    Scratch s(k);
    for (int64_t j = b; j < e; ++j) {
      const int32_t key = key_of_query(j);
      if (key != s.cell) gather(key, s);
      const int32_t row = row_of(j);
      float q[3];
      query(j, q);
      Candidates cand{k, 0, s.out_d.data(), s.out_i.data(), s.out_p.data()};
      if (search(q, include_self ? -1 : row, s, cand)) {
        fn(j, row, cand);
      } else {
        std::lock_guard<std::mutex> lock(mutex);
        deferred.push_back(j);
      }
    }
  }

  // The fallback KD-tree over the points in their original order (built on first use; the
  // copy `original` also gives the deferred neighbours' coordinates).
  const KdTree& fallback(int threads) const {
    std::call_once(fallback_once, [&] {
      fallback_points.resize(n, 3);
      for (int64_t s = 0; s < n; ++s) {
        const size_t u = static_cast<size_t>(s);
        const int64_t r = perm[u];
        fallback_points(r, 0) = xs[u];
        fallback_points(r, 1) = ys[u];
        fallback_points(r, 2) = zs[u];
      }
      fallback_tree = std::make_unique<KdTree>(fallback_points, threads);
    });
    return *fallback_tree;
  }

  // kNN of the deferred queries (rows of dq) on the fallback tree: fn(t, indices, distances)
  // for each row t. self_rows: for self queries without self, the point each row must leave
  // out (asking k + 1 and dropping it gives the same list as skipping it during the search:
  // if it is not among the k + 1 best, the first k all beat it); empty otherwise.
  template <typename Fn>
  void resolve(const Points& dq, const std::vector<int32_t>& self_rows, int k, int threads,
               const Fn& fn) const {
    const bool drop = !self_rows.empty();
    const int kk = drop ? k + 1 : k;
    const KnnResult r = fallback(threads).knn(dq, kk, threads);
    std::vector<int32_t> ibuf(static_cast<size_t>(k));
    std::vector<float> dbuf(static_cast<size_t>(k));
    for (int64_t t = 0; t < dq.rows(); ++t) {
      int c = 0;
      for (int a = 0; a < kk && c < k; ++a) {
        if (drop && r.indices(t, a) == self_rows[static_cast<size_t>(t)]) continue;
        ibuf[static_cast<size_t>(c)] = r.indices(t, a);
        dbuf[static_cast<size_t>(c)] = r.sq_distances(t, a);
        ++c;
      }
      fn(t, ibuf.data(), dbuf.data());
    }
  }
};

KnnGrid::KnnGrid(const Points& points, int k_hint, int num_threads)
    : impl_(std::make_unique<Impl>()) {
  impl_->build(points, k_hint, resolve_threads(num_threads));
}
KnnGrid::~KnnGrid() = default;
KnnGrid::KnnGrid(KnnGrid&&) noexcept = default;
KnnGrid& KnnGrid::operator=(KnnGrid&&) noexcept = default;

int64_t KnnGrid::size() const { return impl_->n; }
double KnnGrid::cell() const { return impl_->g.h; }
const int* KnnGrid::dims() const { return impl_->g.dims; }
double KnnGrid::mean_block_points() const { return impl_->mean_block; }
bool KnnGrid::efficient_for(int k) const {
  return impl_->mean_block <= 64.0 * static_cast<double>(k) + 512.0;
}

namespace {

// Runs the queries at positions [0, count) over threads; position j fills result row row_of(j)
// with the query point query_point(j, xyz) of cell cell_of(j). Each thread's chunk is searched
// into a buffer first and scattered to its rows in a separate tight loop (interleaving the
// cache-missing row stores with the search stalls it). Positions the grid leaves unsettled are
// appended to `deferred` (for the KD-tree fallback).
template <typename RowOf, typename QueryPoint, typename CellOf>
void run_buffered(const KnnGrid::Impl& im, int64_t count, int k, bool include_self, int threads,
                  KnnResult& result, std::vector<int64_t>& deferred, RowOf row_of,
                  QueryPoint query_point, CellOf cell_of) {
  std::mutex mutex;
  parallel_chunks(count, threads, [&](int64_t b, int64_t e) {
    const size_t kk = static_cast<size_t>(k);
    std::vector<float> dbuf(static_cast<size_t>(e - b) * kk);
    std::vector<int32_t> ibuf(static_cast<size_t>(e - b) * kk);
    std::vector<uint8_t> done(static_cast<size_t>(e - b), 0);
    im.run_queries(
        b, e, k, include_self, row_of, query_point, cell_of,
        [&](int64_t j, int32_t, const Candidates& cand) {
          const size_t o = static_cast<size_t>(j - b) * kk;
          std::copy(cand.d, cand.d + k, dbuf.data() + o);
          std::copy(cand.i, cand.i + k, ibuf.data() + o);
          done[static_cast<size_t>(j - b)] = 1;
        },
        deferred, mutex);
    for (int64_t j = b; j < e; ++j) {
      if (!done[static_cast<size_t>(j - b)]) continue;
      const int32_t row = row_of(j);
      const size_t o = static_cast<size_t>(j - b) * kk;
      std::copy(dbuf.data() + o, dbuf.data() + o + kk, result.sq_distances.row(row).data());
      std::copy(ibuf.data() + o, ibuf.data() + o + kk, result.indices.row(row).data());
    }
  });
}

}  // namespace

KnnResult KnnGrid::knn(const Points& queries, int k, int num_threads) const {
  KnnResult result;
  const int64_t q = queries.rows();
  LAPIS_CHECK(k >= 1, "knn", "k must be at least 1, got ", k);
  result.indices.resize(q, k);
  result.sq_distances.resize(q, k);
  if (q == 0) return result;
  check_k(k, size(), "knn", "points of the cloud");
  check_points(queries, "knn (queries)");
  const Impl& im = *impl_;
  const int threads = resolve_threads(num_threads);
  // Queries in cell order: a gathered block serves every query of its cell.
  std::vector<int32_t> qkey(static_cast<size_t>(q));
  for (int64_t r = 0; r < q; ++r) {
    qkey[static_cast<size_t>(r)] = im.g.key_of(queries(r, 0), queries(r, 1), queries(r, 2));
  }
  std::vector<int32_t> order(static_cast<size_t>(q));
  const int64_t cells = im.g.total();
  if (q * 4 >= cells) {  // counting sort; few queries on a large grid: comparison sort
    std::vector<int32_t> pos(static_cast<size_t>(cells) + 1, 0);
    for (const int32_t key : qkey) ++pos[static_cast<size_t>(key) + 1];
    for (int64_t c = 0; c < cells; ++c) {
      pos[static_cast<size_t>(c) + 1] += pos[static_cast<size_t>(c)];
    }
    for (int64_t r = 0; r < q; ++r) {
      order[static_cast<size_t>(pos[static_cast<size_t>(qkey[static_cast<size_t>(r)])]++)] =
          static_cast<int32_t>(r);
    }
  } else {
    for (int64_t r = 0; r < q; ++r) order[static_cast<size_t>(r)] = static_cast<int32_t>(r);
    std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
      return qkey[static_cast<size_t>(a)] < qkey[static_cast<size_t>(b)];
    });
  }
  std::vector<int64_t> deferred;
  run_buffered(
      im, q, k, /*include_self=*/true, threads, result, deferred,
      [&](int64_t j) { return order[static_cast<size_t>(j)]; },
      [&](int64_t j, float* qp) {
        const int64_t r = order[static_cast<size_t>(j)];
        for (int c = 0; c < 3; ++c) qp[c] = queries(r, c);
      },
      [&](int64_t j) { return qkey[static_cast<size_t>(order[static_cast<size_t>(j)])]; });
  if (!deferred.empty()) {
    Points dq(static_cast<int64_t>(deferred.size()), 3);
    for (size_t t = 0; t < deferred.size(); ++t) {
      dq.row(static_cast<int64_t>(t)) = queries.row(order[static_cast<size_t>(deferred[t])]);
    }
    im.resolve(dq, {}, k, threads, [&](int64_t t, const int32_t* i, const float* d) {
      const int32_t row = order[static_cast<size_t>(deferred[static_cast<size_t>(t)])];
      std::copy(d, d + k, result.sq_distances.row(row).data());
      std::copy(i, i + k, result.indices.row(row).data());
    });
  }
  return result;
}

void KnnGrid::check_self(int k, bool include_self) const {
  LAPIS_CHECK(k >= 1, "knn", "k must be at least 1, got ", k);
  const int64_t n = size();
  if (n == 0) return;
  if (include_self) {
    check_k(k, n, "knn", "points of the cloud");
  } else {
    check_k(k, n - 1, "knn", "other points of the cloud (include_self = false)");
  }
}

namespace {

// Coordinates and, without self, the rows to leave out, of deferred self queries (sorted
// positions).
void deferred_self_queries(const KnnGrid::Impl& im, const std::vector<int64_t>& deferred,
                           bool include_self, Points& dq, std::vector<int32_t>& self_rows);

}  // namespace

KnnResult KnnGrid::knn_self(int k, bool include_self, int num_threads) const {
  check_self(k, include_self);
  KnnResult result;
  const int64_t n = size();
  result.indices.resize(n, k);
  result.sq_distances.resize(n, k);
  if (n == 0) return result;
  const Impl& im = *impl_;
  const int threads = resolve_threads(num_threads);
  std::vector<int64_t> deferred;
  run_buffered(
      im, n, k, include_self, threads, result, deferred,
      [&](int64_t j) { return im.perm[static_cast<size_t>(j)]; },
      [&](int64_t j, float* qp) {
        const size_t u = static_cast<size_t>(j);
        qp[0] = im.xs[u];
        qp[1] = im.ys[u];
        qp[2] = im.zs[u];
      },
      [&](int64_t j) { return im.cell_of[static_cast<size_t>(j)]; });
  if (!deferred.empty()) {
    Points dq;
    std::vector<int32_t> self_rows;
    deferred_self_queries(im, deferred, include_self, dq, self_rows);
    im.resolve(dq, self_rows, k, threads, [&](int64_t t, const int32_t* i, const float* d) {
      const int32_t row = im.perm[static_cast<size_t>(deferred[static_cast<size_t>(t)])];
      std::copy(d, d + k, result.sq_distances.row(row).data());
      std::copy(i, i + k, result.indices.row(row).data());
    });
  }
  return result;
}

void KnnGrid::knn_self_visit(int k, bool include_self, int num_threads, const VisitFn& fn) const {
  check_self(k, include_self);
  const int64_t n = size();
  if (n == 0) return;
  const Impl& im = *impl_;
  const int threads = resolve_threads(num_threads);
  std::vector<int64_t> deferred;
  std::mutex mutex;
  parallel_chunks(n, threads, [&](int64_t b, int64_t e) {
    std::vector<float> xyz(static_cast<size_t>(k) * 3);
    im.run_queries(
        b, e, k, include_self, [&](int64_t j) { return im.perm[static_cast<size_t>(j)]; },
        [&](int64_t j, float* qp) {
          const size_t u = static_cast<size_t>(j);
          qp[0] = im.xs[u];
          qp[1] = im.ys[u];
          qp[2] = im.zs[u];
        },
        [&](int64_t j) { return im.cell_of[static_cast<size_t>(j)]; },
        [&](int64_t, int32_t row, const Candidates& cand) {
          // Neighbour coordinates from the cell-ordered copy (cache-local), not the caller's
          // array in its original order.
          for (int a = 0; a < k; ++a) {
            const size_t u = static_cast<size_t>(cand.p[a]);
            xyz[3 * static_cast<size_t>(a)] = im.xs[u];
            xyz[3 * static_cast<size_t>(a) + 1] = im.ys[u];
            xyz[3 * static_cast<size_t>(a) + 2] = im.zs[u];
          }
          fn(row, cand.i, cand.d, xyz.data());
        },
        deferred, mutex);
  });
  if (!deferred.empty()) {
    Points dq;
    std::vector<int32_t> self_rows;
    deferred_self_queries(im, deferred, include_self, dq, self_rows);
    std::vector<float> xyz(static_cast<size_t>(k) * 3);
    im.resolve(dq, self_rows, k, threads, [&](int64_t t, const int32_t* i, const float* d) {
      for (int a = 0; a < k; ++a) {
        for (int c = 0; c < 3; ++c) {
          xyz[3 * static_cast<size_t>(a) + static_cast<size_t>(c)] = im.fallback_points(i[a], c);
        }
      }
      fn(im.perm[static_cast<size_t>(deferred[static_cast<size_t>(t)])], i, d, xyz.data());
    });
  }
}

namespace {

void deferred_self_queries(const KnnGrid::Impl& im, const std::vector<int64_t>& deferred,
                           bool include_self, Points& dq, std::vector<int32_t>& self_rows) {
  dq.resize(static_cast<int64_t>(deferred.size()), 3);
  self_rows.clear();
  for (size_t t = 0; t < deferred.size(); ++t) {
    const size_t u = static_cast<size_t>(deferred[t]);
    dq.row(static_cast<int64_t>(t)) << im.xs[u], im.ys[u], im.zs[u];
    if (!include_self) self_rows.push_back(im.perm[u]);
  }
}

}  // namespace

}  // namespace geometry
}  // namespace lapis
