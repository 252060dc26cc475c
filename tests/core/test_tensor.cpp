#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <vector>

#include "core/cuda_api.h"
#include "core/tensor.h"
#include "tests/common/test_util.h"

namespace lapis {
namespace {

TEST(Tensor, FactoriesAndShape) {
  Tensor z = Tensor::zeros({3, 4});
  EXPECT_EQ(z.numel(), 12);
  EXPECT_EQ(z.dim(), 2);
  EXPECT_EQ(z.size(-1), 4);
  EXPECT_EQ(z.dtype(), Dtype::F32);
  for (float v : z.to_vector<float>()) EXPECT_EQ(v, 0.0f);
  Tensor f = Tensor::full({2}, 2.5, Dtype::F64);
  EXPECT_EQ(f.to_vector<double>(), (std::vector<double>{2.5, 2.5}));
  Tensor v = Tensor::from_vector<int32_t>({1, 2, 3, 4, 5, 6}, {2, 3});
  EXPECT_EQ(v.to_vector<int32_t>()[5], 6);
  EXPECT_EQ(v.describe(), "i32 [2, 3] on cpu");
}

TEST(Tensor, EmptyTensorsAreFine) {
  Tensor e = Tensor::zeros({0, 5});
  EXPECT_EQ(e.numel(), 0);
  EXPECT_TRUE(e.to_vector<float>().empty());
  Tensor c = e.clone();
  EXPECT_EQ(c.shape(), (Shape{0, 5}));
}

TEST(Tensor, ErrorsNameTheProblem) {
  Tensor t = Tensor::zeros({2, 3});
  try {
    (void)t.data<double>();
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("f32 [2, 3]"), std::string::npos) << e.what();
  }
  EXPECT_THROW(Tensor::from_vector<float>({1, 2, 3}, {2, 2}), Error);
  EXPECT_THROW(t.reshape({4, 2}), Error);
  EXPECT_THROW(Tensor::zeros({-1, 2}), Error);
  EXPECT_THROW(Device::parse("gpu"), Error);
  EXPECT_THROW(t.item(), Error);
}

TEST(Tensor, ReshapeSharesStorageAndCloneCopies) {
  Tensor t = Tensor::from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor r = t.reshape({3, -1});
  EXPECT_EQ(r.shape(), (Shape{3, 2}));
  r.data<float>()[0] = 42.0f;
  EXPECT_EQ(t.data<float>()[0], 42.0f);
  Tensor c = t.clone();
  c.data<float>()[0] = 7.0f;
  EXPECT_EQ(t.data<float>()[0], 42.0f);
}

TEST(Tensor, SliceSharesStorageAsLeadingRows) {
  Tensor t = Tensor::from_vector<float>({0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, {3, 2, 2});
  Tensor mid = t.slice(1, 2);
  EXPECT_EQ(mid.shape(), (Shape{1, 2, 2}));
  EXPECT_EQ(mid.to_vector<float>(), (std::vector<float>{4, 5, 6, 7}));
  Tensor tail = t.slice(1, 3).reshape({4, 2}).slice(2, 4);  // offsets compose through reshape
  EXPECT_EQ(tail.to_vector<float>(), (std::vector<float>{8, 9, 10, 11}));
  mid.fill(-1.0);
  EXPECT_EQ(t.to_vector<float>()[4], -1.0f);
  EXPECT_EQ(t.to_vector<float>()[8], 8.0f);
  Tensor c = tail.clone();  // copies only the slice's elements
  EXPECT_EQ(c.numel(), 4);
  EXPECT_EQ(c.to_vector<float>()[0], 8.0f);
  EXPECT_EQ(t.slice(3, 3).numel(), 0);
  EXPECT_THROW(t.slice(2, 4), Error);
  EXPECT_THROW(t.slice(-1, 1), Error);
  EXPECT_THROW(t.slice(2, 1), Error);
}

TEST(Tensor, DtypeConversion) {
  Tensor t = Tensor::from_vector<float>({1.5f, -2.0f}, {2});
  EXPECT_EQ(t.to(Dtype::F64).to_vector<double>(), (std::vector<double>{1.5, -2.0}));
  EXPECT_EQ(t.to(Dtype::I64).to_vector<int64_t>(), (std::vector<int64_t>{1, -2}));
}

TEST(Random, SeededAndDeviceIndependent) {
  Generator a(7), b(7), c(8);
  Tensor x = Tensor::randn({1000}, a);
  Tensor y = Tensor::randn({1000}, b);
  Tensor z = Tensor::randn({1000}, c);
  EXPECT_TRUE(testing::bitwise_equal(x, y));
  EXPECT_FALSE(testing::bitwise_equal(x, z));
  // Moments of 1000 standard normals: mean within 4 sigma (0.13), variance near 1.
  double mean = 0, sq = 0;
  for (float v : x.to_vector<float>()) { mean += v; sq += v * v; }
  mean /= 1000;
  EXPECT_NEAR(mean, 0.0, 0.13);
  EXPECT_NEAR(sq / 1000 - mean * mean, 1.0, 0.15);
  Tensor u = Tensor::rand_uniform({1000}, a, -2.0, 3.0);
  for (float v : u.to_vector<float>()) { EXPECT_GE(v, -2.0f); EXPECT_LT(v, 3.0f); }
  Tensor k = Tensor::randint({1000}, a, 3, 6);
  for (int64_t v : k.to_vector<int64_t>()) { EXPECT_GE(v, 3); EXPECT_LT(v, 6); }
  EXPECT_EQ(a.offset(), 3000u);
}

TEST(Device, QueriesNeverThrow) {
  EXPECT_NO_THROW(cuda_device_count());
  EXPECT_GE(cuda_device_count(), 0);
  EXPECT_EQ(Device::parse("cuda:1").index, 1);
  EXPECT_EQ(Device::cuda().to_string(), "cuda:0");
}

TEST(DeviceCuda, WithoutCudaAllocationFailsClearly) {
  if (!testing::cuda_unavailable_reason().empty()) {
    try {
      Tensor::zeros({4}, Dtype::F32, Device::cuda());
      FAIL() << "expected an error without CUDA";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("CUDA"), std::string::npos) << e.what();
    }
    return;
  }
  SUCCEED();
}

TEST(TensorCuda, RoundTripFillAndCopies) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  for (int64_t n : testing::odd_sizes()) {
    Generator g(n);
    Tensor h = Tensor::randn({n, 3}, g, Dtype::F64);
    Tensor d = h.to(Device::cuda());
    EXPECT_TRUE(d.is_cuda());
    EXPECT_TRUE(testing::bitwise_equal(d.to(Device::cpu()), h));
    Tensor d2 = d.clone();
    EXPECT_TRUE(testing::bitwise_equal(d2, h));
    d2.fill(3.0);
    for (double v : d2.to_vector<double>()) EXPECT_EQ(v, 3.0);
    Tensor i = Tensor::full({n}, -5, Dtype::I32, Device::cuda());
    for (int32_t v : i.to_vector<int32_t>()) EXPECT_EQ(v, -5);
  }
  Tensor empty = Tensor::zeros({0, 4}, Dtype::F32, Device::cuda());
  EXPECT_EQ(empty.to(Device::cpu()).numel(), 0);
}

TEST(TensorCuda, SlicesReadAndWriteTheirRowsOnly) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  Tensor t = Tensor::from_vector<float>({0, 1, 2, 3, 4, 5}, {3, 2}).to(Device::cuda());
  Tensor s = t.slice(1, 2);
  EXPECT_EQ(s.to_vector<float>(), (std::vector<float>{2, 3}));
  s.copy_from(Tensor::from_vector<float>({7, 8}, {1, 2}));
  s.slice(0, 1).reshape({2}).fill(9.0);
  EXPECT_EQ(t.to_vector<float>(), (std::vector<float>{0, 1, 9, 9, 4, 5}));
}

TEST(TensorCuda, RandomValuesMatchCpu) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  Generator a(3), b(3);
  EXPECT_TRUE(testing::bitwise_equal(Tensor::randn({257}, a, Dtype::F32, Device::cuda()),
                                     Tensor::randn({257}, b)));
}

TEST(TensorCuda, CachingAllocatorReusesBlocks) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  { Tensor warm = Tensor::empty({1000, 64}, Dtype::F32, Device::cuda()); }
  const auto before = cuda::allocator_stats();
  for (int step = 0; step < 10; ++step) {
    // Slightly different sizes land in the same bucket.
    Tensor t = Tensor::empty({1000 - step, 64}, Dtype::F32, Device::cuda());
  }
  const auto after = cuda::allocator_stats();
  EXPECT_EQ(after.cuda_malloc_calls, before.cuda_malloc_calls);
  EXPECT_GE(after.cache_hits, before.cache_hits + 10);
}

// Host-to-device copies of small tensors go through a pinned staging ring (core/cuda/runtime.cu):
// many uploads of varied sizes, far more bytes than the ring holds, interleaved with device work
// and with the host buffer overwritten right after each upload, must all arrive intact.
TEST(TensorCuda, UploadsThroughTheStagingRingStayIntact) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  std::mt19937 rng(7);
  std::uniform_int_distribution<int64_t> size(1, 300000);  // up to 1.2 MB (the ring is 16 MB)
  std::vector<Tensor> on_device;
  std::vector<std::vector<float>> expected;
  int64_t total = 0;
  std::vector<float> host;
  for (int i = 0; total < 40 * 1000 * 1000; ++i) {  // ~160 MB: the ring wraps about ten times
    const int64_t n = i % 50 == 0 ? 5000000 : size(rng);  // some copies too big to stage
    host.resize(static_cast<size_t>(n));
    for (int64_t k = 0; k < n; ++k) host[static_cast<size_t>(k)] = static_cast<float>(i * 7 + k % 1000);
    Tensor t = Tensor::from_vector<float>(host, {n}).to(Device::cuda());
    std::fill(host.begin(), host.end(), -1.f);  // the upload must not read the host copy later
    if (i % 3 == 0) t = t.clone();                // device work queued between uploads
    expected.emplace_back(static_cast<size_t>(n));
    for (int64_t k = 0; k < n; ++k) expected.back()[static_cast<size_t>(k)] = static_cast<float>(i * 7 + k % 1000);
    on_device.push_back(t);
    total += n;
  }
  for (size_t i = 0; i < on_device.size(); ++i) {
    ASSERT_EQ(on_device[i].to(Device::cpu()).to_vector<float>(), expected[i]) << "upload " << i;
  }
}

}  // namespace
}  // namespace lapis
