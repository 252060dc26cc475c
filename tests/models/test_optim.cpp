#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "kernels/adam.h"
#include "models/nn/module.h"
#include "models/optim/optimizer.h"
#include "models/optim/scheduler.h"
#include "tests/common/test_util.h"

namespace lapis {
namespace {

// A module with one free F64 parameter vector, for driving optimizers by hand.
class Vec : public nn::Module {
 public:
  explicit Vec(const std::vector<double>& values) {
    p_ = &register_parameter("x", Tensor::from_vector<double>(values, {int64_t(values.size())}));
  }
  nn::Parameter& p() { return *p_; }

 private:
  nn::Parameter* p_;
};

// loss = 0.5 * sum_i s_i (x_i - t_i)^2, grad_i = s_i (x_i - t_i) (an ill-conditioned bowl).
double quadratic_grad(nn::Parameter& p, const std::vector<double>& t,
                      const std::vector<double>& s) {
  double loss = 0;
  for (size_t i = 0; i < t.size(); ++i) {
    const double d = p.value.data<double>()[i] - t[i];
    p.grad.data<double>()[i] = s[i] * d;
    loss += 0.5 * s[i] * d * d;
  }
  return loss;
}

TEST(Adam, FirstStepMovesEachParameterByLr) {
  // Step 1: m_hat = g and v_hat = g^2, so the update is lr * g / (|g| + eps) ~ lr * sign(g).
  Vec m({1.0, -2.0, 3.0});
  optim::Adam opt(m.parameters(), 0.1);
  const std::vector<double> g = {4.0, -0.5, 1e-3};
  m.p().grad.copy_from(Tensor::from_vector<double>(g, {3}));
  opt.step();
  EXPECT_EQ(opt.step_count(), 1);
  const std::vector<double> x = m.p().value.to_vector<double>();
  const std::vector<double> x0 = {1.0, -2.0, 3.0};
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_NEAR(x[i], x0[i] - 0.1 * g[i] / (std::fabs(g[i]) + 1e-8), 1e-14) << i;
    EXPECT_NEAR(x[i], x0[i] - 0.1 * (g[i] > 0 ? 1 : -1), 1e-6) << i;
  }
}

TEST(Adam, ConvergesOnQuadratic) {
  const std::vector<double> target = {3.0, -1.0, 0.5, 10.0};
  const std::vector<double> scale = {1.0, 10.0, 100.0, 0.1};
  Vec m({0.0, 0.0, 0.0, 0.0});
  optim::Adam opt(m.parameters(), 0.05);
  const double first = quadratic_grad(m.p(), target, scale);
  double loss = first;
  for (int it = 0; it < 3000; ++it) {
    opt.zero_grad();
    loss = quadratic_grad(m.p(), target, scale);
    opt.step();
  }
  EXPECT_LT(loss, 1e-6 * first);
  EXPECT_TRUE(testing::all_close(m.p().value, Tensor::from_vector<double>(target, {4}), 1e-3, 0));
}

TEST(Adam, L2WeightDecayEntersTheGradient) {
  // Adam (not AdamW) with zero grad: g = wd * p, so step 1 moves by lr * sign(p).
  Vec m({2.0, -4.0});
  optim::Adam opt(m.parameters(), 0.1, 0.5);
  EXPECT_EQ(opt.name(), "adam");
  opt.step();
  // g = (1, -2): p - lr * g / (|g| + eps).
  const Tensor expected =
      Tensor::from_vector<double>({2.0 - 0.1 / (1.0 + 1e-8), -4.0 + 0.1 * 2.0 / (2.0 + 1e-8)}, {2});
  EXPECT_TRUE(testing::all_close(m.p().value, expected, 1e-14, 0));
}

TEST(AdamW, DecaysWeightsWithZeroGrad) {
  // Decoupled: p <- p (1 - lr wd), and the Adam part is 0 / (0 + eps) = 0.
  Vec m({2.0, -4.0, 0.0});
  optim::AdamW opt(m.parameters(), 0.1, 0.5);
  EXPECT_EQ(opt.name(), "adamw");
  for (int i = 0; i < 3; ++i) opt.step();
  const double f = std::pow(1.0 - 0.1 * 0.5, 3);
  EXPECT_TRUE(testing::all_close(
      m.p().value, Tensor::from_vector<double>({2.0 * f, -4.0 * f, 0.0}, {3}), 1e-14, 1e-14));
  EXPECT_EQ(opt.step_count(), 3);
  // Default weight decay is torch's 0.01.
  EXPECT_EQ(optim::AdamW(m.parameters()).hyper().weight_decay, 0.01);
}

TEST(Adam, StateIsNamedAndZeroGradClears) {
  Vec m({1.0, 2.0});
  optim::AdamW opt(m.parameters(), 0.01);
  auto state = opt.state();
  ASSERT_EQ(state.size(), 2u);
  EXPECT_EQ(state[0].first, "x.exp_avg");
  EXPECT_EQ(state[1].first, "x.exp_avg_sq");
  EXPECT_EQ(state[0].second->shape(), (Shape{2}));
  EXPECT_EQ(state[0].second->dtype(), Dtype::F64);
  m.p().grad.fill(3.0);
  opt.step();
  // m = (1 - beta1) g = 0.3, v = (1 - beta2) g^2 = 0.009.
  EXPECT_NEAR(state[0].second->to_vector<double>()[0], 0.3, 1e-12);
  EXPECT_NEAR(state[1].second->to_vector<double>()[1], 0.009, 1e-12);
  opt.zero_grad();
  EXPECT_EQ(m.p().grad.to_vector<double>(), (std::vector<double>{0.0, 0.0}));
  EXPECT_THROW(opt.set_lr(-1.0), Error);
}

TEST(ReduceLROnPlateau, MatchesTorchOnHandMadeSequence) {
  Vec m({0.0});
  optim::AdamW opt(m.parameters(), 1.0);
  optim::ReduceLROnPlateau sched(opt, 0.5, /*patience=*/2, /*min_lr=*/0.1);
  // 9.9995 is not an improvement on 10 (needs < 10 * (1 - 1e-4) = 9.999); 9.99 is.
  const std::vector<double> metric = {10, 9.9995, 9.99, 10, 10, 10, 10, 10, 10, 5,
                                      6,  6,      6,    6,  6,  6,  6,  6,  6};
  const std::vector<double> lr = {1,    1,     1,     1,     1,   0.5, 0.5, 0.5, 0.25, 0.25,
                                  0.25, 0.25, 0.125, 0.125, 0.125, 0.1, 0.1, 0.1, 0.1};
  const std::vector<int> bad = {0, 1, 0, 1, 2, 0, 1, 2, 0, 0, 1, 2, 0, 1, 2, 0, 1, 2, 0};
  for (size_t e = 0; e < metric.size(); ++e) {
    sched.step(metric[e]);
    EXPECT_DOUBLE_EQ(opt.lr(), lr[e]) << "epoch " << e + 1;
    EXPECT_EQ(sched.num_bad_epochs(), bad[e]) << "epoch " << e + 1;
  }
  EXPECT_EQ(sched.best(), 5.0);
}

TEST(ReduceLROnPlateau, CooldownIgnoresBadEpochs) {
  Vec m({0.0});
  optim::AdamW opt(m.parameters(), 1.0);
  optim::ReduceLROnPlateau sched(opt, 0.5, /*patience=*/1, /*min_lr=*/0.0, 1e-4,
                                 /*cooldown=*/2);
  const std::vector<double> lr = {1, 1, 0.5, 0.5, 0.5, 0.5, 0.25};
  const std::vector<int> bad = {0, 1, 0, 0, 0, 1, 0};
  for (size_t e = 0; e < lr.size(); ++e) {
    sched.step(1.0);
    EXPECT_DOUBLE_EQ(opt.lr(), lr[e]) << "epoch " << e + 1;
    EXPECT_EQ(sched.num_bad_epochs(), bad[e]) << "epoch " << e + 1;
  }
}

TEST(ReduceLROnPlateau, StateRoundTrip) {
  Vec m({0.0});
  optim::AdamW a(m.parameters(), 1.0), b(m.parameters(), 1.0);
  optim::ReduceLROnPlateau sa(a, 0.5, 1), sb(b, 0.5, 1);
  for (double v : {3.0, 2.0, 2.5, 2.5, 2.5}) sa.step(v);
  sb.load_state(sa.state());
  EXPECT_EQ(b.lr(), a.lr());
  for (double v : {2.5, 1.0, 1.5, 1.5}) {
    sa.step(v);
    sb.step(v);
    EXPECT_EQ(b.lr(), a.lr());
    EXPECT_EQ(sb.num_bad_epochs(), sa.num_bad_epochs());
  }
  EXPECT_THROW(sb.load_state({{"best", 1.0}}), Error);
  EXPECT_THROW(optim::ReduceLROnPlateau(a, 1.5), Error);
}

TEST(StepLR, ValuesAtEpochs) {
  Vec m({0.0});
  optim::AdamW opt(m.parameters(), 0.1);
  optim::StepLR sched(opt, 3, 0.5);
  const std::vector<double> lr = {0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025};
  EXPECT_DOUBLE_EQ(opt.lr(), lr[0]);
  for (size_t e = 1; e < lr.size(); ++e) {
    sched.step();
    EXPECT_DOUBLE_EQ(opt.lr(), lr[e]) << "epoch " << e;
  }
  optim::AdamW other(m.parameters(), 7.0);
  optim::StepLR resumed(other, 3, 0.5);
  resumed.load_state(sched.state());
  EXPECT_DOUBLE_EQ(other.lr(), 0.025);
  resumed.step();
  EXPECT_DOUBLE_EQ(other.lr(), 0.025);  // epoch 8
  resumed.step();
  EXPECT_DOUBLE_EQ(other.lr(), 0.0125);  // epoch 9
}

TEST(CosineAnnealingLR, ValuesAtEpochs) {
  Vec m({0.0});
  optim::AdamW opt(m.parameters(), 1.0);
  optim::CosineAnnealingLR sched(opt, 4, 0.0);
  // (1 + cos(pi e / 4)) / 2 for e = 0..5.
  const std::vector<double> lr = {1.0, 0.85355339059327373, 0.5, 0.14644660940672624, 0.0,
                                  0.14644660940672624};
  EXPECT_DOUBLE_EQ(opt.lr(), lr[0]);
  for (size_t e = 1; e < lr.size(); ++e) {
    sched.step();
    EXPECT_NEAR(opt.lr(), lr[e], 1e-15) << "epoch " << e;
  }
  optim::AdamW opt2(m.parameters(), 1.0);
  optim::CosineAnnealingLR with_min(opt2, 4, 0.1);
  with_min.step();
  with_min.step();
  EXPECT_NEAR(opt2.lr(), 0.55, 1e-15);  // 0.1 + 0.9 * 0.5
  EXPECT_EQ(with_min.state().at("epoch"), 2.0);
}

// f64 on both devices: the same element-wise formula, so nearly bitwise (atol 1e-12).
TEST(AdamCuda, MatchesCpuAfterModuleMove) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  Generator gen(3);
  const Tensor x0 = Tensor::randn({257}, gen, Dtype::F64);
  Vec a(x0.to_vector<double>()), b(x0.to_vector<double>());
  optim::AdamW oa(a.parameters(), 0.01), ob(b.parameters(), 0.01);
  b.to(Device::cuda());  // after the optimizer was built: its state follows on the next step
  for (int it = 0; it < 5; ++it) {
    const Tensor g = Tensor::randn({257}, gen, Dtype::F64);
    a.p().grad.copy_from(g);
    b.p().grad.copy_from(g);
    oa.step();
    ob.step();
  }
  EXPECT_TRUE(b.p().value.is_cuda());
  EXPECT_TRUE(ob.state()[0].second->is_cuda());
  EXPECT_TRUE(testing::all_close(b.p().value, a.p().value, 1e-12, 1e-12));
  EXPECT_TRUE(testing::all_close(*ob.state()[1].second, *oa.state()[1].second, 1e-12, 1e-12));
}

// ---- many parameters: the multi-tensor path of step() and zero_grad() ----

// Parameters of the sizes the multi-tensor kernels must handle (empty, odd, several chunks),
// in one dtype, plus a second dtype when mixed (the ZINC model is all f32; mixing tests groups).
class Bag : public nn::Module {
 public:
  Bag(uint64_t seed, bool mixed) {
    Generator gen(seed);
    const std::vector<int64_t> sizes = {0, 1, 7, 31, 32, 33, 257, 5000, 100003};
    for (size_t i = 0; i < sizes.size(); ++i) {
      const Dtype dt = mixed && i % 2 == 1 ? Dtype::F64 : Dtype::F32;
      register_parameter("p" + std::to_string(i), Tensor::randn({sizes[i]}, gen, dt));
    }
  }
};

// Fills every grad of m with fresh normal values from gen (same draws for same-shaped twins).
void fill_grads(nn::Module& m, Generator& gen) {
  for (nn::Parameter* p : m.parameters()) {
    p->grad.copy_from(Tensor::randn(p->grad.shape(), gen, p->grad.dtype()));
  }
}

::testing::AssertionResult values_bitwise_equal(nn::Module& a, nn::Module& b) {
  const auto pa = a.parameters(), pb = b.parameters();
  for (size_t i = 0; i < pa.size(); ++i) {
    const ::testing::AssertionResult r = testing::bitwise_equal(pa[i]->value, pb[i]->value);
    if (!r) return ::testing::AssertionFailure() << pa[i]->name << ": " << r.message();
  }
  return ::testing::AssertionSuccess();
}

// Reference: kernels' adam_step on each parameter, with the optimizer's bias-correction step.
struct PerTensorAdam {
  AdamHyper hyper;
  std::vector<Tensor> m, v;
  void step(nn::Module& mod, int64_t t) {
    const auto ps = mod.parameters();
    if (m.empty()) {
      for (nn::Parameter* p : ps) {
        m.push_back(Tensor::zeros(p->value.shape(), p->value.dtype(), p->value.device()));
        v.push_back(Tensor::zeros(p->value.shape(), p->value.dtype(), p->value.device()));
      }
    }
    for (size_t i = 0; i < ps.size(); ++i) adam_step(ps[i]->value, m[i], v[i], ps[i]->grad, hyper, t);
  }
};

// Optimizer trajectory == per-tensor adam_step trajectory, bitwise, for Adam and AdamW.
void expect_identical_trajectories(Device device, bool mixed) {
  for (bool decoupled : {false, true}) {
    Bag a(21, mixed), b(21, mixed);
    a.to(device);
    b.to(device);
    AdamHyper h;
    h.lr = 0.003;
    h.weight_decay = 0.02;
    h.decoupled = decoupled;
    std::unique_ptr<optim::Adam> opt;
    if (decoupled) opt = std::make_unique<optim::AdamW>(a.parameters(), h);
    else opt = std::make_unique<optim::Adam>(a.parameters(), h);
    PerTensorAdam ref{h, {}, {}};
    Generator ga(4), gb(4);
    for (int64_t t = 1; t <= 4; ++t) {
      opt->zero_grad();
      fill_grads(a, ga);
      fill_grads(b, gb);
      opt->step();
      ref.step(b, t);
      ASSERT_TRUE(values_bitwise_equal(a, b)) << "step " << t << " decoupled " << decoupled;
    }
    auto state = opt->state();
    for (size_t i = 0; i < ref.m.size(); ++i) {
      EXPECT_TRUE(testing::bitwise_equal(*state[2 * i].second, ref.m[i])) << state[2 * i].first;
      EXPECT_TRUE(testing::bitwise_equal(*state[2 * i + 1].second, ref.v[i]))
          << state[2 * i + 1].first;
    }
  }
}

// An optimizer without Adam state, to check that zero_grad does not depend on one.
class PlainSgd : public optim::Optimizer {
 public:
  using optim::Optimizer::Optimizer;
  void step() override {}
  std::string name() const override { return "plain_sgd"; }
};

void expect_zero_grad_zeros_everything(Device device) {
  Bag bag(8, /*mixed=*/true);
  bag.to(device);
  optim::AdamW adam(bag.parameters(), 0.01);
  PlainSgd plain(bag.parameters(), 0.1);
  Generator gen(2);
  for (optim::Optimizer* opt : {static_cast<optim::Optimizer*>(&adam),
                                static_cast<optim::Optimizer*>(&plain)}) {
    for (int round = 0; round < 2; ++round) {  // the second round reuses the cached table
      fill_grads(bag, gen);
      const std::vector<Tensor> values_before = [&] {
        std::vector<Tensor> v;
        for (nn::Parameter* p : bag.parameters()) v.push_back(p->value.clone());
        return v;
      }();
      opt->zero_grad();
      const auto ps = bag.parameters();
      for (size_t i = 0; i < ps.size(); ++i) {
        const Tensor& g = ps[i]->grad;
        EXPECT_TRUE(testing::bitwise_equal(g, Tensor::zeros(g.shape(), g.dtype(), g.device())))
            << opt->name() << " " << ps[i]->name;
        EXPECT_TRUE(testing::bitwise_equal(ps[i]->value, values_before[i])) << ps[i]->name;
      }
    }
  }
}

TEST(Adam, ManyParametersFollowThePerTensorTrajectoryBitwise) {
  expect_identical_trajectories(Device::cpu(), /*mixed=*/false);
  expect_identical_trajectories(Device::cpu(), /*mixed=*/true);
}

TEST(Optimizer, ZeroGradZerosEveryGrad) { expect_zero_grad_zeros_everything(Device::cpu()); }

TEST(Optimizer, ZeroGradNamesAnUndefinedGrad) {
  Vec m({1.0, 2.0});
  optim::AdamW opt(m.parameters(), 0.01);
  m.p().grad = Tensor();
  testing::expect_error_mentions([&] { opt.zero_grad(); }, {"zero_grad", "x", "undefined"});
}

TEST(AdamCuda, ManyParametersFollowThePerTensorTrajectoryBitwise) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  expect_identical_trajectories(Device::cuda(), /*mixed=*/false);
  expect_identical_trajectories(Device::cuda(), /*mixed=*/true);
}

TEST(AdamCuda, ZeroGradZerosEveryGrad) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  expect_zero_grad_zeros_everything(Device::cuda());
}

// Module::to between steps replaces every tensor: the optimizer's device table follows, and the
// trajectory still equals the per-tensor one (both move at the same step).
TEST(AdamCuda, TableFollowsTheModuleAcrossDevices) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  Bag a(5, false), b(5, false);
  AdamHyper h;
  h.lr = 0.01;
  optim::AdamW opt(a.parameters(), h);
  PerTensorAdam ref{h, {}, {}};
  Generator ga(6), gb(6);
  const std::vector<Device> where = {Device::cpu(), Device::cuda(), Device::cuda(),
                                     Device::cpu(), Device::cuda()};
  for (size_t t = 0; t < where.size(); ++t) {
    a.to(where[t]);
    b.to(where[t]);
    for (Tensor& m : ref.m) m = m.to(where[t]);
    for (Tensor& v : ref.v) v = v.to(where[t]);
    fill_grads(a, ga);
    fill_grads(b, gb);
    opt.step();
    ref.step(b, static_cast<int64_t>(t) + 1);
    ASSERT_TRUE(values_bitwise_equal(a, b)) << "step " << t + 1 << " on " << where[t].to_string();
    opt.zero_grad();
    for (nn::Parameter* p : a.parameters()) {
      EXPECT_TRUE(testing::bitwise_equal(
          p->grad, Tensor::zeros(p->grad.shape(), p->grad.dtype(), p->grad.device())));
    }
  }
}

}  // namespace
}  // namespace lapis
