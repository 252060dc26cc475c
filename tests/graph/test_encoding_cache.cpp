// Encoding cache: round trip, second run loads, corrupted/stale files are ignored and rewritten,
// parallel results equal serial ones.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "graph/encoding_cache.h"
#include "graph/random_walk_se.h"
#include "tests/common/test_util.h"

using namespace lapis;
using namespace lapis::graph;

namespace {

std::vector<Graph> some_graphs(int count) {
  std::vector<Graph> gs;
  for (int g = 0; g < count; ++g) {
    const int n = 5 + g % 13;
    std::vector<int32_t> s, d;
    for (int i = 1; i < n; ++i) {
      s.push_back(static_cast<int32_t>(random_bits(g, i) % i));
      d.push_back(i);
    }
    s.push_back(0);
    d.push_back(n - 1);
    gs.push_back(graph_from_coo(n, s, d, CooOptions{true, DuplicateEdges::Drop, true}));
  }
  return gs;
}

std::string temp_path(const std::string& name) {
  return ::testing::TempDir() + "/lapis_enc_" + name + "_" +
         std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + ".bin";
}

}  // namespace

TEST(EncodingCache, RoundTripAndSecondRunLoads) {
  auto gs = some_graphs(50);
  std::vector<const Graph*> ptrs;
  for (auto& g : gs) ptrs.push_back(&g);
  const std::string path = temp_path("roundtrip");
  std::remove(path.c_str());
  CacheInfo info;
  size_t last_done = 0;
  auto a = laplacian_pe_cached(ptrs, 4, path, [&](size_t d, size_t) { last_done = d; }, &info, 2);
  EXPECT_FALSE(info.loaded);
  EXPECT_EQ(info.reason, "missing");
  EXPECT_EQ(last_done, 50u);
  auto b = laplacian_pe_cached(ptrs, 4, path, {}, &info, 2);
  EXPECT_TRUE(info.loaded);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(lapis::testing::bitwise_equal(a[i], b[i]));
  // Equal to a direct per-graph computation (threads do not change the numbers).
  LapPEOptions o;
  o.k = 4;
  for (size_t i = 0; i < a.size(); ++i)
    EXPECT_TRUE(lapis::testing::bitwise_equal(a[i], laplacian_pe(gs[i], o).vectors));
  // Another k: a different key, recomputed.
  auto c = laplacian_pe_cached(ptrs, 3, path, {}, &info, 2);
  EXPECT_FALSE(info.loaded);
  EXPECT_EQ(c[0].size(1), 3);
  std::remove(path.c_str());
}

TEST(EncodingCache, CorruptedCacheIsRecomputed) {
  auto gs = some_graphs(20);
  std::vector<const Graph*> ptrs;
  for (auto& g : gs) ptrs.push_back(&g);
  const std::string path = temp_path("corrupt");
  CacheInfo info;
  auto a = random_walk_se_cached(ptrs, 5, path, {}, &info, 2);
  // Flip one byte in the payload.
  {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(100);
    char x = 0;
    f.read(&x, 1);
    f.seekp(100);
    x = static_cast<char>(x ^ 0x5a);
    f.write(&x, 1);
  }
  auto b = random_walk_se_cached(ptrs, 5, path, {}, &info, 2);
  EXPECT_FALSE(info.loaded);
  EXPECT_NE(info.reason.find("checksum"), std::string::npos) << info.reason;
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(lapis::testing::bitwise_equal(a[i], b[i]));
  // Truncated file: also recomputed; and the rewritten file loads again.
  {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f << "LAPISENC";
  }
  random_walk_se_cached(ptrs, 5, path, {}, &info, 2);
  EXPECT_FALSE(info.loaded);
  random_walk_se_cached(ptrs, 5, path, {}, &info, 2);
  EXPECT_TRUE(info.loaded);
  // Other graphs with the same count: stale, recomputed.
  auto other = some_graphs(21);
  other.erase(other.begin());
  std::vector<const Graph*> optrs;
  for (auto& g : other) optrs.push_back(&g);
  random_walk_se_cached(optrs, 5, path, {}, &info, 2);
  EXPECT_FALSE(info.loaded);
  std::remove(path.c_str());
}

TEST(EncodingCache, ParallelEqualsSerialAndErrorsPropagate) {
  auto gs = some_graphs(30);
  std::vector<const Graph*> ptrs;
  for (auto& g : gs) ptrs.push_back(&g);
  auto a = compute_random_walk_se(ptrs, 4, 1), b = compute_random_walk_se(ptrs, 4, 3);
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(lapis::testing::bitwise_equal(a[i], b[i]));
  lapis::testing::expect_error_mentions([&] { compute_random_walk_se(ptrs, 0, 2); }, {"K must be"});
}
