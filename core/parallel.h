// A static split of [0, n) over std::threads, shared by the CPU kernels and the geometry
// routines.
#pragma once

#include <algorithm>
#include <cstdint>
#include <thread>
#include <vector>

namespace lapis {

// Runs fn(begin, end) over [0, n) in up to `threads` contiguous chunks of at least `min_chunk`
// items; the calling thread takes the first chunk. fn must not throw.
template <typename Fn>
void parallel_chunks(int64_t n, int threads, const Fn& fn, int64_t min_chunk = 256) {
  if (n <= 0) return;
  const int64_t t =
      std::max<int64_t>(1, std::min<int64_t>(threads, (n + min_chunk - 1) / min_chunk));
  if (t == 1) {
    fn(int64_t{0}, n);
    return;
  }
  std::vector<std::thread> pool;
  pool.reserve(static_cast<size_t>(t - 1));
  const int64_t chunk = (n + t - 1) / t;
  for (int64_t c = 1; c < t; ++c) {
    const int64_t b = c * chunk, e = std::min(n, b + chunk);
    if (b < e) pool.emplace_back([&fn, b, e] { fn(b, e); });
  }
  fn(int64_t{0}, std::min(n, chunk));
  for (auto& th : pool) th.join();
}

}  // namespace lapis
