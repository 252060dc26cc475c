// The schedule of the CUDA row passes' split rows (kernels/cuda/heavy_row_schedule.h), checked on
// the host: every piece of every heavy row is reduced by exactly one (window, slot) and the
// pieces tile the row; the two combine levels use every piece once, in order. Runs without a GPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "kernels/cuda/heavy_row_schedule.h"
#include "tests/kernels/random_graph.h"

namespace lapis {
namespace {

using cuda::kCombineRun;
using cuda::kHeavyRowEdges;

std::vector<int32_t> pointers_from_degrees(const std::vector<int64_t>& degrees) {
  std::vector<int32_t> ptr(1, 0);
  for (int64_t d : degrees) ptr.push_back(ptr.back() + static_cast<int32_t>(d));
  return ptr;
}

// Checks the whole schedule of one pointer array; `what` names it in failures.
void check_schedule(const std::vector<int32_t>& ptr, const std::string& what) {
  SCOPED_TRACE(what);
  const int64_t n = static_cast<int64_t>(ptr.size()) - 1, num_edges = ptr.back();
  if (num_edges == 0) return;
  const int64_t windows = (num_edges + kHeavyRowEdges - 1) / kHeavyRowEdges;
  // (row) -> the windows and slots that reduce its pieces, in window order.
  std::map<int64_t, std::vector<std::pair<int64_t, int>>> pieces;
  for (int64_t w = 0; w < windows; ++w) {
    int64_t rows[2];
    cuda::heavy_rows_in_window(ptr.data(), n, num_edges, w, rows);
    if (rows[0] >= 0 && rows[1] >= 0) ASSERT_NE(rows[0], rows[1]) << "window " << w;
    for (int slot = 0; slot < 2; ++slot) {
      if (rows[slot] >= 0) pieces[rows[slot]].emplace_back(w, slot);
    }
  }
  for (int64_t r = 0; r < n; ++r) {
    const int64_t b = ptr[r], e = ptr[r + 1];
    const bool heavy = e - b > kHeavyRowEdges;
    ASSERT_EQ(cuda::heavy_segment(b, e, num_edges), heavy) << "row " << r;
    if (!heavy) {
      EXPECT_EQ(pieces.count(r), 0u) << "row " << r << " of " << e - b << " edges was split";
      continue;
    }
    const auto& got = pieces[r];
    const int64_t c0 = cuda::first_piece(b), c1 = cuda::last_piece(e);
    ASSERT_EQ(static_cast<int64_t>(got.size()), c1 - c0 + 1) << "row " << r;
    // The pieces are windows c0 .. c1 in order, in the slot the combine looks them up in, and
    // their edge ranges tile [b, e).
    int64_t next = b;
    for (int64_t k = 0; k < static_cast<int64_t>(got.size()); ++k) {
      const auto [w, slot] = got[static_cast<size_t>(k)];
      ASSERT_EQ(w, c0 + k) << "row " << r;
      EXPECT_EQ(slot, cuda::piece_slot(w, b)) << "row " << r << " window " << w;
      const int64_t lo = std::max(b, w * kHeavyRowEdges);
      const int64_t hi = std::min(e, (w + 1) * kHeavyRowEdges);
      ASSERT_EQ(lo, next) << "row " << r << " window " << w;
      ASSERT_LT(lo, hi) << "row " << r << " window " << w << " has an empty piece";
      next = hi;
    }
    EXPECT_EQ(next, e) << "row " << r;
    // First level: runs start at c0, each ends where the next begins; the second level visits
    // exactly their first pieces.
    std::vector<int64_t> leaders;
    int64_t covered = c0;
    for (int64_t c = c0; c <= c1; ++c) {
      if (!cuda::starts_run(c, b)) continue;
      ASSERT_EQ(c, covered) << "row " << r << ": run at " << c << " leaves pieces out";
      leaders.push_back(c);
      const int64_t last = cuda::run_last_piece(c, e);
      ASSERT_GE(last, c);
      ASSERT_LE(last, c1);
      ASSERT_LE(last - c + 1, kCombineRun);
      covered = last + 1;
    }
    EXPECT_EQ(covered, c1 + 1) << "row " << r << ": the runs do not reach the last piece";
    std::vector<int64_t> second;
    for (int64_t c = c0; c <= c1; c += kCombineRun) second.push_back(c);
    EXPECT_EQ(second, leaders) << "row " << r;
  }
}

std::vector<int32_t> pointers_of(const CsrGraphView& g) {
  const int32_t* p = g.in_ptr.data<int32_t>();
  return std::vector<int32_t>(p, p + g.num_nodes + 1);
}

TEST(HeavyRowSchedule, HandPickedLayouts) {
  const int64_t w = kHeavyRowEdges;
  const std::vector<std::pair<std::string, std::vector<int64_t>>> layouts = {
      {"one row just over a window", {w + 1}},
      {"one row of exactly a window", {w}},
      {"window-aligned heavy rows", {w, 2 * w, 3 * w}},
      {"heavy rows back to back, unaligned", {3, w + 1, w + 5, 2 * w + 7, 1}},
      {"empty rows around a hub", {0, 0, 5 * w + 3, 0, 0, 1}},
      {"two hubs sharing windows", {w / 2, 7 * w + 1, 9 * w - 1, w / 3}},
      {"hub of exactly one run", {kCombineRun * w}},
      {"hub one piece past a run", {kCombineRun * w + 1}},
      {"hub of several runs, unaligned", {17, 3 * kCombineRun * w + 45, 2}},
      {"short rows only", std::vector<int64_t>(50, 7)},
  };
  for (const auto& [what, degrees] : layouts) check_schedule(pointers_from_degrees(degrees), what);
}

TEST(HeavyRowSchedule, RandomHeavyTailedDegrees) {
  std::mt19937_64 rng(11);
  for (int trial = 0; trial < 200; ++trial) {
    const int64_t n = 1 + static_cast<int64_t>(rng() % 300);
    std::vector<int64_t> degrees(static_cast<size_t>(n));
    for (auto& d : degrees) {
      // Mostly short rows, some heavy ones, now and then a hub of several runs.
      const uint64_t kind = rng() % 20;
      d = kind < 14   ? static_cast<int64_t>(rng() % 20)
          : kind < 19 ? static_cast<int64_t>(rng() % (4 * kHeavyRowEdges))
                      : static_cast<int64_t>(rng() % (3 * kCombineRun * kHeavyRowEdges));
    }
    check_schedule(pointers_from_degrees(degrees), "trial " + std::to_string(trial));
  }
}

// The graphs of the CUDA split tests: their hubs exercise what those tests say they do.
TEST(HeavyRowSchedule, TestGraphsSplitAsIntended) {
  const CsrGraphView heavy = testing::heavy_row_graph(5);
  check_schedule(pointers_of(heavy), "heavy_row_graph");
  const CsrGraphView hubs = testing::long_hub_graph(4);
  check_schedule(pointers_of(hubs), "long_hub_graph");
  // long_hub_graph's largest hub is combined in at least three runs.
  const int64_t pieces = hubs.max_in_degree / kHeavyRowEdges;
  EXPECT_GT(pieces, 2 * kCombineRun) << "long_hub_graph no longer has a hub of several runs";
}

}  // namespace
}  // namespace lapis
