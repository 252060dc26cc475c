// Multi-threaded CPU loop over graph rows (destinations of a CSR or sources of a CSC) with
// std::thread. Rows are split into contiguous ranges of about equal work, counting each row as
// 1 + its degree, so one hub does not leave the other threads idle. Each row is handled by
// exactly one thread in a fixed order, so results do not depend on the thread count.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <thread>
#include <vector>

namespace lapis {
namespace cpu {

// Threads for CPU graph kernels: LAPIS_NUM_THREADS if set (>= 1), else hardware_concurrency.
inline int graph_num_threads() {
  if (const char* env = std::getenv("LAPIS_NUM_THREADS")) {
    const int v = std::atoi(env);
    if (v >= 1) return v;
  }
  const unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1 : static_cast<int>(hw);
}

// Calls fn(row_begin, row_end) over [0, n) split by work; ptr [n + 1] (CSR/CSC pointers).
// `cost_per_edge` scales the work estimate (e.g. H*D); small problems run inline.
template <typename Fn>
void parallel_rows(const int32_t* ptr, int64_t n, int64_t cost_per_edge, Fn&& fn) {
  if (n <= 0) return;
  const int64_t edges = static_cast<int64_t>(ptr[n]) - ptr[0];
  const int64_t work = (n + edges) * std::max<int64_t>(cost_per_edge, 1);
  constexpr int64_t kMinWorkPerThread = 1 << 15;
  const int64_t by_work = std::max<int64_t>(1, work / kMinWorkPerThread);
  const int threads =
      static_cast<int>(std::min<int64_t>({static_cast<int64_t>(graph_num_threads()), by_work, n}));
  if (threads <= 1) {
    fn(int64_t(0), n);
    return;
  }
  // Row r's cumulative work is r + ptr[r]: monotone, so each cut is a binary search.
  std::vector<int64_t> cuts(threads + 1, n);
  cuts[0] = 0;
  const int64_t total = n + edges;
  for (int t = 1; t < threads; ++t) {
    const int64_t target = total * t / threads;
    int64_t lo = cuts[t - 1], hi = n;
    while (lo < hi) {
      const int64_t mid = (lo + hi) / 2;
      if (mid + (static_cast<int64_t>(ptr[mid]) - ptr[0]) < target) lo = mid + 1; else hi = mid;
    }
    cuts[t] = lo;
  }
  std::vector<std::thread> pool;
  pool.reserve(threads - 1);
  for (int t = 1; t < threads; ++t) {
    if (cuts[t] < cuts[t + 1]) pool.emplace_back([&fn, &cuts, t] { fn(cuts[t], cuts[t + 1]); });
  }
  if (cuts[0] < cuts[1]) fn(cuts[0], cuts[1]);
  for (std::thread& th : pool) th.join();
}

}  // namespace cpu
}  // namespace lapis
