// Element-wise ops: hand cases, F64 gradient checks of every backward, dropout statistics and
// determinism, errors, and CPU-vs-CUDA equivalence (dropout masks bit for bit).
#include <gtest/gtest.h>

#include <cmath>
#include <utility>

#include "core/tensor.h"
#include "kernels/elementwise.h"
#include "tests/common/test_util.h"

namespace lapis {
namespace {

const Activation kActivations[] = {Activation::ReLU, Activation::GELU, Activation::SiLU};

TEST(Elementwise, AddAxpyScaleHandComputed) {
  Tensor a = Tensor::from_vector<float>({1, 2, 3}, {3});
  Tensor b = Tensor::from_vector<float>({10, 20, 30}, {3});
  Tensor out = Tensor::empty({3});
  add(out, a, b);
  EXPECT_EQ(out.to_vector<float>(), (std::vector<float>{11, 22, 33}));
  add(a, a, b);  // out may alias a
  EXPECT_EQ(a.to_vector<float>(), (std::vector<float>{11, 22, 33}));
  axpy(a, -2.0, b);  // 11 - 20, 22 - 40, 33 - 60
  EXPECT_EQ(a.to_vector<float>(), (std::vector<float>{-9, -18, -27}));
  scale(a, a, -1.0 / 9.0);
  EXPECT_TRUE(testing::all_close(a, Tensor::from_vector<float>({1, 2, 3}, {3}), 1e-6, 1e-6));
  // Empty tensors are fine.
  Tensor e = Tensor::empty({0, 4});
  add(e, e, e);
  scale(e, e, 2.0);
}

TEST(Elementwise, BiasAddHandComputed) {
  Tensor x = Tensor::from_vector<double>({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor bias = Tensor::from_vector<double>({0.5, -1, 2}, {3});
  Tensor out = Tensor::empty({2, 3}, Dtype::F64);
  bias_add_forward(out, x, bias);
  EXPECT_EQ(out.to_vector<double>(), (std::vector<double>{1.5, 1, 5, 4.5, 4, 8}));
  bias_add_forward(x, x, bias);  // in place
  EXPECT_EQ(x.to_vector<double>(), out.to_vector<double>());
  // dL_dbias += column sums: [1.5+4.5, 1+4, 5+8] onto [1, 1, 1].
  Tensor db = Tensor::full({3}, 1.0, Dtype::F64);
  bias_add_backward(db, out);
  EXPECT_EQ(db.to_vector<double>(), (std::vector<double>{7, 6, 14}));
  // Zero rows add nothing.
  bias_add_backward(db, Tensor::zeros({0, 3}, Dtype::F64));
  EXPECT_EQ(db.to_vector<double>(), (std::vector<double>{7, 6, 14}));
}

// The fused residual: out = (x + bias) + residual, bitwise equal to the two separate adds, also
// when out aliases the residual; a residual of the wrong shape is named in the error.
TEST(Elementwise, BiasAddWithResidual) {
  Generator gen(17);
  for (Dtype dt : {Dtype::F32, Dtype::F64}) {
    Tensor x = Tensor::randn({37, 5}, gen, dt), r = Tensor::randn({37, 5}, gen, dt);
    Tensor bias = Tensor::randn({5}, gen, dt);
    Tensor two_adds = Tensor::empty({37, 5}, dt), fused = Tensor::empty({37, 5}, dt);
    bias_add_forward(two_adds, x, bias);
    add(two_adds, two_adds, r);
    bias_add_forward(fused, x, bias, r);
    EXPECT_TRUE(testing::bitwise_equal(fused, two_adds));
    Tensor in_place = r.clone();
    bias_add_forward(in_place, x, bias, in_place);
    EXPECT_TRUE(testing::bitwise_equal(in_place, two_adds));
  }
  Tensor x = Tensor::zeros({4, 3}), out = Tensor::empty({4, 3});
  testing::expect_error_mentions(
      [&] { bias_add_forward(out, x, Tensor::zeros({3}), Tensor::zeros({4, 2})); },
      {"bias_add_forward", "residual", "[4, 2]"});
}

TEST(Elementwise, BiasAddGradientCheck) {
  Generator gen(9);
  Tensor x = Tensor::randn({5, 4}, gen, Dtype::F64);
  Tensor bias = Tensor::randn({4}, gen, Dtype::F64);
  const Tensor G = Tensor::randn({5, 4}, gen, Dtype::F64);
  Tensor out = Tensor::empty({5, 4}, Dtype::F64);
  auto loss = [&] {
    bias_add_forward(out, x, bias);
    return testing::dot(G, out);
  };
  Tensor db = Tensor::zeros({4}, Dtype::F64);
  bias_add_backward(db, G);
  EXPECT_TRUE(testing::gradient_matches(loss, bias, db));
  EXPECT_TRUE(testing::gradient_matches(loss, x, G));  // dL_dx equals dL_dout
}

TEST(Elementwise, ActivationHandComputed) {
  Tensor x = Tensor::from_vector<double>({-2, -0.5, 0, 0.5, 2}, {5});
  Tensor out = Tensor::empty({5}, Dtype::F64);
  activation_forward(out, x, Activation::ReLU);
  EXPECT_EQ(out.to_vector<double>(), (std::vector<double>{0, 0, 0, 0.5, 2}));
  // GELU(x) = x Phi(x): Phi(2) = 0.9772498680518208, Phi(0.5) = 0.6914624612740131.
  activation_forward(out, x, Activation::GELU);
  std::vector<double> g = out.to_vector<double>();
  EXPECT_NEAR(g[4], 2 * 0.9772498680518208, 1e-14);
  EXPECT_NEAR(g[3], 0.5 * 0.6914624612740131, 1e-14);
  EXPECT_NEAR(g[1], -0.5 * (1 - 0.6914624612740131), 1e-14);
  EXPECT_EQ(g[2], 0.0);
  // SiLU(2) = 2 / (1 + e^-2) = 1.7615941559557646.
  activation_forward(out, x, Activation::SiLU);
  EXPECT_NEAR(out.to_vector<double>()[4], 1.7615941559557646, 1e-14);
  EXPECT_EQ(out.to_vector<double>()[2], 0.0);
  // ReLU'(0) = 0; GELU'(0) = 0.5; SiLU'(0) = 0.5.
  Tensor ones = Tensor::full({5}, 1.0, Dtype::F64);
  Tensor dx = Tensor::empty({5}, Dtype::F64);
  activation_backward(dx, ones, x, Activation::ReLU);
  EXPECT_EQ(dx.to_vector<double>(), (std::vector<double>{0, 0, 0, 1, 1}));
  activation_backward(dx, ones, x, Activation::GELU);
  EXPECT_NEAR(dx.to_vector<double>()[2], 0.5, 1e-15);
  activation_backward(dx, ones, x, Activation::SiLU);
  EXPECT_NEAR(dx.to_vector<double>()[2], 0.5, 1e-15);
}

TEST(Elementwise, ActivationNames) {
  for (Activation act : kActivations)
    EXPECT_EQ(parse_activation(activation_name(act)), act);
  EXPECT_STREQ(activation_name(Activation::GELU), "gelu");
  try {
    parse_activation("tanh");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tanh"), std::string::npos) << e.what();
  }
}

TEST(Elementwise, ActivationGradientCheck) {
  Generator gen(21);
  for (Activation act : kActivations) {
    Tensor x = Tensor::randn({6, 7}, gen, Dtype::F64, Device::cpu(), 0.0, 2.0);
    // Keep ReLU inputs away from the kink at 0 where the central difference is wrong.
    if (act == Activation::ReLU) {
      double* p = x.data<double>();
      for (int64_t i = 0; i < x.numel(); ++i)
        if (std::abs(p[i]) < 1e-3) p[i] = 0.5;
    }
    const Tensor G = Tensor::randn({6, 7}, gen, Dtype::F64);
    Tensor out = Tensor::empty({6, 7}, Dtype::F64);
    auto loss = [&] {
      activation_forward(out, x, act);
      return testing::dot(G, out);
    };
    Tensor dx = Tensor::empty({6, 7}, Dtype::F64);
    activation_backward(dx, G, x, act);
    EXPECT_TRUE(testing::gradient_matches(loss, x, dx)) << activation_name(act);
  }
}

TEST(Elementwise, DropoutMaskAndStatistics) {
  const int64_t n = 20000;
  Tensor x = Tensor::full({n}, 2.0);
  Tensor out = Tensor::empty({n}), mask = Tensor::empty({n});
  const double p = 0.3;
  dropout_forward(out, mask, x, p, 1234, 99);
  const std::vector<float> m = mask.to_vector<float>(), o = out.to_vector<float>();
  int64_t kept = 0;
  for (int64_t i = 0; i < n; ++i) {
    // The draw for element i is uniform01(seed, offset + i); kept when u >= p.
    const bool keep = static_cast<double>(uniform01(1234, 99 + i)) >= p;
    ASSERT_EQ(m[i], keep ? static_cast<float>(1.0 / 0.7) : 0.0f) << i;
    ASSERT_EQ(o[i], 2.0f * m[i]) << i;
    kept += keep;
  }
  // Binomial(20000, 0.7): sd ~ 65, so within 5 sd of 14000.
  EXPECT_NEAR(static_cast<double>(kept), 14000.0, 325.0);
  // Same (seed, offset) gives the same mask; a different offset a different one.
  Tensor mask2 = Tensor::empty({n}), out2 = Tensor::empty({n});
  dropout_forward(out2, mask2, x, p, 1234, 99);
  EXPECT_TRUE(testing::bitwise_equal(mask, mask2));
  dropout_forward(out2, mask2, x, p, 1234, 100);
  EXPECT_FALSE(testing::bitwise_equal(mask, mask2));
  // p == 0 keeps everything with mask 1.
  dropout_forward(out2, mask2, x, 0.0, 5, 0);
  EXPECT_TRUE(testing::bitwise_equal(out2, x));
  EXPECT_TRUE(testing::bitwise_equal(mask2, Tensor::full({n}, 1.0)));
}

TEST(Elementwise, DropoutGradientCheck) {
  Generator gen(8);
  Tensor x = Tensor::randn({9, 5}, gen, Dtype::F64);
  const Tensor G = Tensor::randn({9, 5}, gen, Dtype::F64);
  Tensor out = Tensor::empty({9, 5}, Dtype::F64), mask = Tensor::empty({9, 5}, Dtype::F64);
  auto loss = [&] {
    dropout_forward(out, mask, x, 0.4, 77, 3);
    return testing::dot(G, out);
  };
  loss();
  Tensor dx = Tensor::empty({9, 5}, Dtype::F64);
  dropout_backward(dx, G, mask);
  EXPECT_TRUE(testing::gradient_matches(loss, x, dx));
}

TEST(Elementwise, ErrorsNameTheProblem) {
  Tensor a = Tensor::zeros({2, 3}), b = Tensor::zeros({3, 2}), out = Tensor::zeros({2, 3});
  try {
    add(out, a, b);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("add"), std::string::npos) << msg;
    EXPECT_NE(msg.find("[3, 2]"), std::string::npos) << msg;
  }
  Tensor a64 = Tensor::zeros({2, 3}, Dtype::F64);
  EXPECT_THROW(add(out, a, a64), Error);
  EXPECT_THROW(axpy(out, 1.0, a64), Error);
  Tensor ai = Tensor::zeros({2, 3}, Dtype::I32);
  EXPECT_THROW(scale(ai, ai, 2.0), Error);
  Tensor bad_bias = Tensor::zeros({2});
  EXPECT_THROW(bias_add_forward(out, a, bad_bias), Error);
  EXPECT_THROW(bias_add_backward(bad_bias, a), Error);
  EXPECT_THROW(activation_forward(a, a, Activation::ReLU), Error);  // aliasing
  Tensor mask = Tensor::zeros({2, 3});
  for (double p : {1.0, -0.1, 1.5}) {
    try {
      dropout_forward(out, mask, a, p, 0, 0);
      FAIL() << "expected an error for p = " << p;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("p must be in [0, 1)"), std::string::npos)
          << e.what();
    }
  }
  EXPECT_THROW(dropout_backward(out, a, bad_bias), Error);
}

// ---- CUDA ----

TEST(ElementwiseCuda, MatchesCpu) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  const Device gpu = Device::cuda();
  Generator gen(0xdeadbeef);
  for (Dtype dt : {Dtype::F32, Dtype::F64}) {
    // f32: element-wise results agree to a few ulps (erf/exp implementations differ):
    // atol 1e-6, rtol 1e-5. f64: 1e-14.
    const double atol = dt == Dtype::F32 ? 1e-6 : 1e-14, rtol = dt == Dtype::F32 ? 1e-5 : 1e-13;
    for (int64_t N : {int64_t(0), int64_t(1), int64_t(7), int64_t(31), int64_t(32), int64_t(33),
                      int64_t(257), int64_t(20000)}) {
      for (int64_t C : testing::odd_sizes()) {
        Tensor x = Tensor::randn({N, C}, gen, dt, Device::cpu(), 0.0, 2.0);
        Tensor y = Tensor::randn({N, C}, gen, dt);
        Tensor bias = Tensor::randn({C}, gen, dt);
        const Tensor xg = x.to(gpu), yg = y.to(gpu), bg = bias.to(gpu);
        Tensor out = Tensor::empty({N, C}, dt), out_g = Tensor::empty({N, C}, dt, gpu);
        add(out, x, y);
        add(out_g, xg, yg);
        EXPECT_TRUE(testing::bitwise_equal(out_g, out));
        Tensor ax = y.clone(), ax_g = yg.clone();
        axpy(ax, 0.3, x);
        axpy(ax_g, 0.3, xg);
        EXPECT_TRUE(testing::all_close(ax_g, ax, atol, rtol));
        scale(out, x, -1.7);
        scale(out_g, xg, -1.7);
        EXPECT_TRUE(testing::bitwise_equal(out_g, out));
        bias_add_forward(out, x, bias);
        bias_add_forward(out_g, xg, bg);
        EXPECT_TRUE(testing::bitwise_equal(out_g, out));
        bias_add_forward(out, x, bias, y);  // with the fused residual
        bias_add_forward(out_g, xg, bg, yg);
        EXPECT_TRUE(testing::bitwise_equal(out_g, out));
        // Column sums of N values ~1 each: reordering error ~ N * eps * sqrt(N).
        Tensor db = Tensor::full({C}, 0.25, dt), db_g = Tensor::full({C}, 0.25, dt, gpu);
        bias_add_backward(db, y);
        bias_add_backward(db_g, yg);
        EXPECT_TRUE(testing::all_close(db_g, db, dt == Dtype::F32 ? 1e-3 : 1e-11, rtol))
            << "N " << N << " C " << C;
        for (Activation act : kActivations) {
          activation_forward(out, x, act);
          activation_forward(out_g, xg, act);
          EXPECT_TRUE(testing::all_close(out_g, out, atol, rtol)) << activation_name(act);
          Tensor dx = Tensor::empty({N, C}, dt), dx_g = Tensor::empty({N, C}, dt, gpu);
          activation_backward(dx, y, x, act);
          activation_backward(dx_g, yg, xg, act);
          EXPECT_TRUE(testing::all_close(dx_g, dx, atol, rtol)) << activation_name(act);
        }
      }
    }
  }
}

TEST(ElementwiseCuda, BiasGradientIsDeterministic) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  const Device gpu = Device::cuda();
  Generator gen(5);
  const Tensor g = Tensor::randn({100000, 3}, gen).to(gpu);
  Tensor a = Tensor::zeros({3}, Dtype::F32, gpu), b = Tensor::zeros({3}, Dtype::F32, gpu);
  bias_add_backward(a, g);
  bias_add_backward(b, g);
  EXPECT_TRUE(testing::bitwise_equal(a, b));
  Tensor cpu_sum = Tensor::zeros({3});
  bias_add_backward(cpu_sum, g.to(Device::cpu()));
  // 1e5 standard normals per column: sum ~ 316, float reordering error ~ 1e-2 at most.
  EXPECT_TRUE(testing::all_close(a, cpu_sum, 2e-2, 1e-4));
}

TEST(ElementwiseCuda, BiasGradientSliceEdges) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  // bias_add_backward on CUDA is one launch: row slices per 32-column tile, one slice (the block
  // adds its sum directly) for N <= 64, otherwise min(ceil(N / 64), 1024 / tiles) slices and the
  // last block of each tile to arrive adds the partials. Shapes around those thresholds, with
  // partial column tiles, a width whose tile count exceeds 1024 (one slice per tile), and 3e5
  // rows; alternating them also checks that the shared tile counters return to zero.
  const Device gpu = Device::cuda();
  Generator gen(77);
  for (Dtype dt : {Dtype::F32, Dtype::F64}) {
    for (int round = 0; round < 2; ++round) {
      for (auto [N, C] : {std::pair<int64_t, int64_t>{0, 5}, {1, 1}, {1, 33}, {63, 7}, {64, 64},
                          {65, 64}, {65, 1}, {129, 95}, {3000, 64}, {6400, 128}, {70, 33000},
                          {300000, 64}, {20000, 1025}}) {
        SCOPED_TRACE(::testing::Message() << dtype_name(dt) << " round " << round << " N=" << N
                                          << " C=" << C);
        const Tensor g = Tensor::randn({N, C}, gen, dt);
        const Tensor g_gpu = g.to(gpu);
        Tensor db = Tensor::full({C}, 0.25, dt), db_g = Tensor::full({C}, 0.25, dt, gpu);
        bias_add_backward(db, g);
        bias_add_backward(db_g, g_gpu);
        // Sums of N standard normals in another order: f32 error grows ~1e-7 per row.
        // f64: the CPU reference adds the N rows one after another (~1e-16 * N).
        const double atol = dt == Dtype::F32 ? 1e-4 + 1e-7 * static_cast<double>(N)
                                             : 1e-11 + 1e-15 * static_cast<double>(N);
        EXPECT_TRUE(testing::all_close(db_g, db, atol, dt == Dtype::F32 ? 1e-5 : 1e-13));
        Tensor again = Tensor::full({C}, 0.25, dt, gpu);
        bias_add_backward(again, g_gpu);
        EXPECT_TRUE(testing::bitwise_equal(again, db_g));
      }
    }
  }
}

TEST(ElementwiseCuda, DropoutMatchesCpuBitwise) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  const Device gpu = Device::cuda();
  Generator gen(6);
  for (Dtype dt : {Dtype::F32, Dtype::F64}) {
    for (int64_t n : {int64_t(0), int64_t(1), int64_t(33), int64_t(257), int64_t(100003)}) {
      for (double p : {0.0, 0.1, 0.5, 0.9}) {
        Tensor x = Tensor::randn({n}, gen, dt);
        Tensor out = Tensor::empty({n}, dt), mask = Tensor::empty({n}, dt);
        Tensor out_g = Tensor::empty({n}, dt, gpu), mask_g = Tensor::empty({n}, dt, gpu);
        dropout_forward(out, mask, x, p, 42, 1000);
        dropout_forward(out_g, mask_g, x.to(gpu), p, 42, 1000);
        EXPECT_TRUE(testing::bitwise_equal(mask_g, mask)) << "n " << n << " p " << p;
        EXPECT_TRUE(testing::bitwise_equal(out_g, out)) << "n " << n << " p " << p;
        Tensor g = Tensor::randn({n}, gen, dt);
        Tensor dx = Tensor::empty({n}, dt), dx_g = Tensor::empty({n}, dt, gpu);
        dropout_backward(dx, g, mask);
        dropout_backward(dx_g, g.to(gpu), mask_g);
        EXPECT_TRUE(testing::bitwise_equal(dx_g, dx));
      }
    }
  }
}

TEST(ElementwiseCuda, DeviceMismatchThrows) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  Tensor a = Tensor::zeros({4}), b = Tensor::zeros({4}, Dtype::F32, Device::cuda());
  Tensor out = Tensor::zeros({4}, Dtype::F32, Device::cuda());
  EXPECT_THROW(add(out, a, b), Error);
  Tensor bias = Tensor::zeros({4});
  Tensor x = Tensor::zeros({2, 4}, Dtype::F32, Device::cuda());
  Tensor o2 = Tensor::zeros({2, 4}, Dtype::F32, Device::cuda());
  EXPECT_THROW(bias_add_forward(o2, x, bias), Error);
}

}  // namespace
}  // namespace lapis
