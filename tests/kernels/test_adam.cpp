#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "core/tensor.h"
#include "kernels/adam.h"
#include "tests/common/test_util.h"

namespace lapis {
namespace {

struct AdamState {
  Tensor p, m, v;
};

AdamState make_state(const Tensor& p0) {
  return {p0.clone(), Tensor::zeros(p0.shape(), p0.dtype(), p0.device()),
          Tensor::zeros(p0.shape(), p0.dtype(), p0.device())};
}

TEST(Adam, FirstTwoStepsOfAScalarByHand) {
  AdamHyper h;
  h.lr = 0.1;
  h.weight_decay = 0.0;
  AdamState s = make_state(Tensor::from_vector<double>({1.0}, {1}));
  // Step 1, g = 0.5: m = 0.05, v = 0.00025, m_hat = 0.5, v_hat = 0.25,
  // p = 1 - 0.1 * 0.5 / (0.5 + 1e-8) = 0.900000002.
  adam_step(s.p, s.m, s.v, Tensor::from_vector<double>({0.5}, {1}), h, 1);
  EXPECT_NEAR(s.m.item(), 0.05, 1e-15);
  EXPECT_NEAR(s.v.item(), 0.00025, 1e-15);
  EXPECT_NEAR(s.p.item(), 1.0 - 0.1 * 0.5 / (0.5 + 1e-8), 1e-14);
  // Step 2, g = -0.25: m = 0.045 - 0.025 = 0.02, v = 0.00024975 + 0.0000625 = 0.00031225,
  // m_hat = 0.02 / 0.19, v_hat = 0.00031225 / 0.001999, p = 0.8733662987078463.
  adam_step(s.p, s.m, s.v, Tensor::from_vector<double>({-0.25}, {1}), h, 2);
  EXPECT_NEAR(s.m.item(), 0.02, 1e-15);
  EXPECT_NEAR(s.v.item(), 0.00031225, 1e-15);
  const double expected =
      0.900000002 - 0.1 * (0.02 / 0.19) / (std::sqrt(0.00031225 / 0.001999) + 1e-8);
  EXPECT_NEAR(s.p.item(), expected, 1e-14);
  EXPECT_NEAR(s.p.item(), 0.8733662987078463, 1e-12);
}

TEST(Adam, F32MatchesHandValues) {
  AdamHyper h;
  h.lr = 0.1;
  AdamState s = make_state(Tensor::from_vector<float>({1.0f}, {1}));
  adam_step(s.p, s.m, s.v, Tensor::from_vector<float>({0.5f}, {1}), h, 1);
  adam_step(s.p, s.m, s.v, Tensor::from_vector<float>({-0.25f}, {1}), h, 2);
  EXPECT_NEAR(s.p.item(), 0.8733662987078463, 1e-6);
}

TEST(Adam, L2AndDecoupledDecayDiffer) {
  // Zero gradient isolates the decay. AdamW: p = 1 - lr * wd * 1 = 0.99, and the Adam step is
  // 0 / (0 + eps) = 0. Adam with L2: g = wd * p = 0.1 so the first step moves by ~lr: 0.9.
  AdamHyper h;
  h.lr = 0.1;
  h.weight_decay = 0.1;
  const Tensor zero_grad = Tensor::from_vector<double>({0.0}, {1});
  h.decoupled = true;
  AdamState w = make_state(Tensor::from_vector<double>({1.0}, {1}));
  adam_step(w.p, w.m, w.v, zero_grad, h, 1);
  EXPECT_NEAR(w.p.item(), 0.99, 1e-15);
  EXPECT_EQ(w.m.item(), 0.0);
  h.decoupled = false;
  AdamState l2 = make_state(Tensor::from_vector<double>({1.0}, {1}));
  adam_step(l2.p, l2.m, l2.v, zero_grad, h, 1);
  EXPECT_NEAR(l2.m.item(), 0.01, 1e-15);  // the decay entered the moments
  EXPECT_NEAR(l2.p.item(), 1.0 - 0.1 * 0.1 / (0.1 + 1e-8), 1e-14);

  // With a real gradient: AdamW = 0.99 - 0.1 * ~1 = 0.89; L2: g = 0.6, p = 1 - ~0.1 = 0.9.
  const Tensor grad = Tensor::from_vector<double>({0.5}, {1});
  h.decoupled = true;
  AdamState w2 = make_state(Tensor::from_vector<double>({1.0}, {1}));
  adam_step(w2.p, w2.m, w2.v, grad, h, 1);
  EXPECT_NEAR(w2.p.item(), 0.99 - 0.1 * 0.5 / (0.5 + 1e-8), 1e-14);
  h.decoupled = false;
  AdamState l22 = make_state(Tensor::from_vector<double>({1.0}, {1}));
  adam_step(l22.p, l22.m, l22.v, grad, h, 1);
  EXPECT_NEAR(l22.p.item(), 1.0 - 0.1 * 0.6 / (0.6 + 1e-8), 1e-14);
}

TEST(Adam, EmptyParamIsANoOp) {
  AdamState s = make_state(Tensor::zeros({0, 3}));
  EXPECT_NO_THROW(adam_step(s.p, s.m, s.v, Tensor::zeros({0, 3}), AdamHyper{}, 1));
}

TEST(Adam, WrongArgumentsThrowNamingTheProblem) {
  AdamState s = make_state(Tensor::zeros({2, 3}));
  try {
    adam_step(s.p, s.m, s.v, Tensor::zeros({3, 2}), AdamHyper{}, 1);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("adam_step"), std::string::npos) << what;
    EXPECT_NE(what.find("grad"), std::string::npos) << what;
    EXPECT_NE(what.find("[3, 2]"), std::string::npos) << what;
  }
  Tensor bad_m = Tensor::zeros({2, 2});
  EXPECT_THROW(adam_step(s.p, bad_m, s.v, Tensor::zeros({2, 3}), AdamHyper{}, 1), Error);
  EXPECT_THROW(adam_step(s.p, s.m, s.v, Tensor::zeros({2, 3}, Dtype::F64), AdamHyper{}, 1),
               Error);
  try {
    adam_step(s.p, s.m, s.v, Tensor::zeros({2, 3}), AdamHyper{}, 0);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("step"), std::string::npos) << e.what();
  }
  Tensor ip = Tensor::zeros({2}, Dtype::I32);
  Tensor im = Tensor::zeros({2}, Dtype::I32);
  Tensor iv = Tensor::zeros({2}, Dtype::I32);
  EXPECT_THROW(adam_step(ip, im, iv, Tensor::zeros({2}, Dtype::I32), AdamHyper{}, 1), Error);
}

TEST(AdamCuda, MatchesCpuOverTenSteps) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  for (Dtype dt : {Dtype::F32, Dtype::F64}) {
    for (bool decoupled : {true, false}) {
      for (int64_t n : testing::odd_sizes()) {
        Generator g(100 + n);
        AdamHyper h;
        h.lr = 0.01;
        h.weight_decay = 0.05;
        h.decoupled = decoupled;
        AdamState cpu = make_state(Tensor::randn({n, 3}, g, dt));
        AdamState gpu = make_state(cpu.p.to(Device::cuda()));
        for (int64_t step = 1; step <= 10; ++step) {
          Tensor grad = Tensor::randn({n, 3}, g, dt);
          Tensor grad_d = grad.to(Device::cuda());
          adam_step(cpu.p, cpu.m, cpu.v, grad, h, step);
          adam_step(gpu.p, gpu.m, gpu.v, grad_d, h, step);
        }
        // f32: the same formula in the same order, but nvcc may contract to FMAs: atol 1e-5,
        // rtol 1e-4. f64: tight, 1e-12.
        const double tol = dt == Dtype::F32 ? 1e-5 : 1e-12;
        const double rtol = dt == Dtype::F32 ? 1e-4 : 1e-12;
        EXPECT_TRUE(testing::all_close(gpu.p, cpu.p, tol, rtol)) << "n=" << n;
        EXPECT_TRUE(testing::all_close(gpu.m, cpu.m, tol, rtol)) << "n=" << n;
        EXPECT_TRUE(testing::all_close(gpu.v, cpu.v, tol, rtol)) << "n=" << n;
      }
    }
  }
}

TEST(AdamCuda, EmptyAndMixedDevices) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  AdamState s = make_state(Tensor::zeros({0}, Dtype::F32, Device::cuda()));
  EXPECT_NO_THROW(adam_step(s.p, s.m, s.v, Tensor::zeros({0}, Dtype::F32, Device::cuda()),
                            AdamHyper{}, 1));
  AdamState d = make_state(Tensor::zeros({4}, Dtype::F32, Device::cuda()));
  EXPECT_THROW(adam_step(d.p, d.m, d.v, Tensor::zeros({4}), AdamHyper{}, 1), Error);
}

}  // namespace
}  // namespace lapis
