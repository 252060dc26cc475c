// Row softmax: hand cases, invariants (rows sum to 1, shift invariance, no overflow), F64
// gradient check, errors and CPU-vs-CUDA equivalence.
#include <gtest/gtest.h>

#include <cmath>

#include "core/tensor.h"
#include "kernels/softmax.h"
#include "tests/common/test_util.h"

namespace lapis {
namespace {

TEST(Softmax, HandComputed) {
  // Row 0 = [0, ln 2, ln 5]: exp = [1, 2, 5], softmax = [0.125, 0.25, 0.625].
  // Row 1 = [7, 7, 7]: uniform 1/3.
  Tensor x = Tensor::from_vector<double>({0, std::log(2.0), std::log(5.0), 7, 7, 7}, {2, 3});
  Tensor out = Tensor::empty({2, 3}, Dtype::F64);
  softmax_forward(out, x);
  EXPECT_TRUE(testing::all_close(
      out, Tensor::from_vector<double>({0.125, 0.25, 0.625, 1. / 3, 1. / 3, 1. / 3}, {2, 3}),
      1e-15, 1e-14));
  // Backward with dL_dout = [1, 0, 0] on row 0: sum(g * out) = 0.125, so
  // dL_dx = out * (g - 0.125) = [0.125 * 0.875, -0.25 * 0.125, -0.625 * 0.125].
  Tensor g = Tensor::from_vector<double>({1, 0, 0, 0, 0, 0}, {2, 3});
  Tensor dx = Tensor::empty({2, 3}, Dtype::F64);
  softmax_backward(dx, g, out);
  EXPECT_TRUE(testing::all_close(
      dx, Tensor::from_vector<double>({0.109375, -0.03125, -0.078125, 0, 0, 0}, {2, 3}), 1e-15,
      1e-14));
}

TEST(Softmax, Invariants) {
  Generator gen(4);
  Tensor x = Tensor::randn({9, 13}, gen, Dtype::F64, Device::cpu(), 0.0, 5.0);
  Tensor out = Tensor::empty({9, 13}, Dtype::F64);
  softmax_forward(out, x);
  const std::vector<double> p = out.to_vector<double>();
  for (int64_t i = 0; i < 9; ++i) {
    double s = 0;
    for (int64_t c = 0; c < 13; ++c) {
      EXPECT_GT(p[i * 13 + c], 0.0);
      s += p[i * 13 + c];
    }
    EXPECT_NEAR(s, 1.0, 1e-14);
  }
  // Shifting a row changes nothing, even by 1e4 (which would overflow exp without the max).
  Tensor shifted = x.clone();
  for (int64_t c = 0; c < 13; ++c) shifted.data<double>()[c] += 1e4;
  Tensor out2 = Tensor::empty({9, 13}, Dtype::F64);
  softmax_forward(out2, shifted);
  EXPECT_TRUE(testing::all_close(out2, out, 1e-12, 1e-10));
  Tensor big = Tensor::full({2, 4}, 1000.0);
  Tensor big_out = Tensor::empty({2, 4});
  softmax_forward(big_out, big);
  for (float v : big_out.to_vector<float>()) EXPECT_FLOAT_EQ(v, 0.25f);
  // out may alias x.
  Tensor inplace = x.clone();
  softmax_forward(inplace, inplace);
  EXPECT_TRUE(testing::bitwise_equal(inplace, out));
  // Empty inputs.
  Tensor e = Tensor::empty({0, 5});
  softmax_forward(e, e);
  softmax_backward(e, e, e);
}

TEST(Softmax, GradientCheck) {
  Generator gen(12);
  Tensor x = Tensor::randn({6, 7}, gen, Dtype::F64, Device::cpu(), 0.0, 2.0);
  const Tensor G = Tensor::randn({6, 7}, gen, Dtype::F64);
  Tensor out = Tensor::empty({6, 7}, Dtype::F64);
  auto loss = [&] {
    softmax_forward(out, x);
    return testing::dot(G, out);
  };
  loss();
  Tensor dx = Tensor::empty({6, 7}, Dtype::F64);
  softmax_backward(dx, G, out);
  EXPECT_TRUE(testing::gradient_matches(loss, x, dx));
}

TEST(Softmax, ErrorsNameTheProblem) {
  Tensor x = Tensor::zeros({3, 4});
  Tensor out = Tensor::zeros({4, 3});
  try {
    softmax_forward(out, x);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("softmax_forward"), std::string::npos) << msg;
    EXPECT_NE(msg.find("[4, 3]"), std::string::npos) << msg;
  }
  Tensor v = Tensor::zeros({12});
  EXPECT_THROW(softmax_forward(v, v), Error);
  Tensor x64 = Tensor::zeros({3, 4}, Dtype::F64);
  EXPECT_THROW(softmax_forward(x64, x), Error);
  Tensor xi = Tensor::zeros({3, 4}, Dtype::I64);
  EXPECT_THROW(softmax_forward(xi, xi), Error);
  Tensor dx = Tensor::zeros({3, 4});
  EXPECT_THROW(softmax_backward(dx, x64, x), Error);
}

// ---- CUDA ----

TEST(SoftmaxCuda, MatchesCpu) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  const Device gpu = Device::cuda();
  Generator gen(0xdeadbeef);
  for (Dtype dt : {Dtype::F32, Dtype::F64}) {
    // f32: probabilities within a few ulps (expf vs exp, float row sum): atol 1e-6, rtol 1e-5.
    const double atol = dt == Dtype::F32 ? 1e-6 : 1e-14, rtol = dt == Dtype::F32 ? 1e-5 : 1e-12;
    for (int64_t N : {int64_t(0), int64_t(1), int64_t(7), int64_t(31), int64_t(32), int64_t(33),
                      int64_t(257), int64_t(5000)}) {
      for (int64_t C : {int64_t(1), int64_t(7), int64_t(31), int64_t(32), int64_t(33),
                        int64_t(257), int64_t(2000)}) {
        Tensor x = Tensor::randn({N, C}, gen, dt, Device::cpu(), 0.0, 4.0);
        Tensor g = Tensor::randn({N, C}, gen, dt);
        Tensor out = Tensor::empty({N, C}, dt), out_g = Tensor::empty({N, C}, dt, gpu);
        softmax_forward(out, x);
        softmax_forward(out_g, x.to(gpu));
        EXPECT_TRUE(testing::all_close(out_g, out, atol, rtol)) << "N " << N << " C " << C;
        Tensor dx = Tensor::empty({N, C}, dt), dx_g = Tensor::empty({N, C}, dt, gpu);
        softmax_backward(dx, g, out);
        softmax_backward(dx_g, g.to(gpu), out.to(gpu));
        EXPECT_TRUE(testing::all_close(dx_g, dx, atol, rtol)) << "N " << N << " C " << C;
      }
    }
  }
}

TEST(SoftmaxCuda, LargeValuesAndInPlace) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  const Device gpu = Device::cuda();
  Tensor big = Tensor::full({3, 40}, 1000.0, Dtype::F32, gpu);
  softmax_forward(big, big);  // in place
  for (float v : big.to_vector<float>()) EXPECT_NEAR(v, 1.0f / 40, 1e-7);
}

TEST(SoftmaxCuda, DeviceMismatchThrows) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  Tensor x = Tensor::zeros({2, 3});
  Tensor out = Tensor::zeros({2, 3}, Dtype::F32, Device::cuda());
  EXPECT_THROW(softmax_forward(out, x), Error);
}

}  // namespace
}  // namespace lapis
