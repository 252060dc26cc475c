#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "models/nn/layers.h"
#include "models/nn/module.h"
#include "tests/common/test_util.h"

namespace lapis {
namespace {

using testing::all_close;
using testing::dot;
using testing::gradient_matches;

// ---- a generic F64 gradient check for modules ----
// forward(x) runs the module; backward(G) returns dL_dx for the last forward (and adds into the
// parameter grads). The loss is dot(G, forward(x)) for a fixed random G of the output's shape.
// Checks dL_dx (unless check_input is false) and every parameter's grad.
void check_module_gradients(nn::Module& module, Tensor x,
                            const std::function<Tensor(const Tensor&)>& forward,
                            const std::function<Tensor(const Tensor&)>& backward,
                            bool check_input = true) {
  Generator gen(1234);
  const Tensor out0 = forward(x);
  const Tensor G = Tensor::randn(out0.shape(), gen, Dtype::F64);
  auto loss = [&] { return dot(G, forward(x)); };

  module.zero_grad();
  forward(x);
  const Tensor dL_dx = backward(G);
  if (check_input) {
    EXPECT_TRUE(gradient_matches(loss, x, dL_dx)) << "input gradient";
  }
  // Grads of one backward, copied before the loss evaluations run more forwards.
  for (nn::Parameter* p : module.parameters()) {
    const Tensor analytic = p->grad.clone();
    EXPECT_TRUE(gradient_matches(loss, p->value, analytic)) << "parameter " << p->name;
  }
}

// Parameters perturbed away from their trivial initial values (ones/zeros) so that the gradient
// check exercises every term.
void randomize_parameters(nn::Module& m, uint64_t seed) {
  Generator gen(seed);
  for (nn::Parameter* p : m.parameters()) {
    p->value.copy_from(Tensor::randn(p->value.shape(), gen, p->value.dtype()));
  }
}

// ---- names, counts, modes ----

class Wrapper : public nn::Module {
 public:
  explicit Wrapper(Generator& gen) : mlp(std::vector<int64_t>{4, 3, 2}, Activation::ReLU, 0.1, gen),
                                     bn(2) {
    scale = &register_parameter("scale", Tensor::full({1}, 1.0));
    register_child("mlp", &mlp);
    register_child("bn", &bn);
  }
  nn::MLP mlp;
  nn::BatchNorm1d bn;
  nn::Parameter* scale;
};

TEST(Module, ParameterNamesAndCounts) {
  Generator gen(0);
  nn::MLP mlp({64, 32, 10}, Activation::ReLU, 0.0, gen);
  EXPECT_EQ(mlp.num_parameters(), 64 * 32 + 32 + 32 * 10 + 10);
  std::vector<std::string> names;
  for (nn::Parameter* p : mlp.parameters()) names.push_back(p->name);
  EXPECT_EQ(names, (std::vector<std::string>{"layers.0.weight", "layers.0.bias",
                                             "layers.1.weight", "layers.1.bias"}));
  EXPECT_EQ(mlp.layer(0).weight().value.shape(), (Shape{32, 64}));
  EXPECT_EQ(mlp.layer(1).bias()->value.shape(), (Shape{10}));
  EXPECT_TRUE(mlp.buffers().empty());

  // Nested: own parameters first, then children in registration order, prefixed.
  Wrapper w(gen);
  names.clear();
  for (nn::Parameter* p : w.parameters()) names.push_back(p->name);
  EXPECT_EQ(names, (std::vector<std::string>{"scale", "mlp.layers.0.weight", "mlp.layers.0.bias",
                                             "mlp.layers.1.weight", "mlp.layers.1.bias",
                                             "bn.weight", "bn.bias"}));
  const auto buffers = w.buffers();
  ASSERT_EQ(buffers.size(), 2u);
  EXPECT_EQ(buffers[0].first, "bn.running_mean");
  EXPECT_EQ(buffers[1].first, "bn.running_var");
  EXPECT_EQ(buffers[0].second, &w.bn.running_mean());
  EXPECT_EQ(w.num_parameters(), 1 + 4 * 3 + 3 + 3 * 2 + 2 + 2 + 2);

  nn::Linear no_bias(5, 3, false, gen);
  EXPECT_EQ(no_bias.parameters().size(), 1u);
  EXPECT_EQ(no_bias.bias(), nullptr);
  nn::Embedding emb(10, 4, gen);
  EXPECT_EQ(emb.num_parameters(), 40);
  EXPECT_EQ(nn::RMSNorm(6).num_parameters(), 6);
  EXPECT_EQ(nn::LayerNorm(6).num_parameters(), 12);
}

TEST(Module, InitialisationIsSeededAndInRange) {
  Generator a(3), b(3);
  nn::MLP m1({20, 8, 4}, Activation::GELU, 0.0, a);
  nn::MLP m2({20, 8, 4}, Activation::GELU, 0.0, b);
  const auto p1 = m1.parameters(), p2 = m2.parameters();
  for (size_t i = 0; i < p1.size(); ++i) {
    EXPECT_TRUE(testing::bitwise_equal(p1[i]->value, p2[i]->value)) << p1[i]->name;
    EXPECT_EQ(p1[i]->grad.to_vector<float>(), std::vector<float>(p1[i]->grad.numel(), 0.0f));
  }
  // torch.nn.Linear: U(-1/sqrt(in), 1/sqrt(in)).
  for (float v : m1.layer(0).weight().value.to_vector<float>()) {
    EXPECT_LE(std::fabs(v), 1.0 / std::sqrt(20.0));
  }
  for (float v : m1.layer(1).bias()->value.to_vector<float>()) {
    EXPECT_LE(std::fabs(v), 1.0 / std::sqrt(8.0));
  }
}

TEST(Module, TrainEvalPropagatesAndToDtypeConverts) {
  Generator gen(0);
  Wrapper w(gen);
  EXPECT_TRUE(w.is_training());
  w.eval();
  EXPECT_FALSE(w.is_training());
  EXPECT_FALSE(w.mlp.is_training());
  EXPECT_FALSE(w.mlp.dropout(0)->is_training());
  EXPECT_FALSE(w.bn.is_training());
  w.train();
  EXPECT_TRUE(w.mlp.dropout(0)->is_training());

  const std::vector<float> before = w.mlp.layer(0).weight().value.to_vector<float>();
  w.to(Dtype::F64);
  for (nn::Parameter* p : w.parameters()) {
    EXPECT_EQ(p->value.dtype(), Dtype::F64) << p->name;
    EXPECT_EQ(p->grad.dtype(), Dtype::F64) << p->name;
  }
  EXPECT_EQ(w.bn.running_var().dtype(), Dtype::F64);
  const std::vector<double> after = w.mlp.layer(0).weight().value.to_vector<double>();
  for (size_t i = 0; i < before.size(); ++i) EXPECT_EQ(after[i], static_cast<double>(before[i]));
  EXPECT_THROW(w.to(Dtype::I32), Error);
}

TEST(BatchNorm1d, TrainingUpdatesRunningStatsAndEvalUsesThem) {
  nn::BatchNorm1d bn(2, 1e-5, 0.1);
  // Column 0: 1, 2, 3, 6 (mean 3, biased var 3.5, unbiased 14/3); column 1: constant 5.
  const Tensor x = Tensor::from_vector<float>({1, 5, 2, 5, 3, 5, 6, 5}, {4, 2});
  nn::BatchNormCtx ctx;
  const Tensor y = bn.forward(x, ctx);
  const std::vector<float> yv = y.to_vector<float>();
  EXPECT_NEAR(yv[0], (1 - 3) / std::sqrt(3.5 + 1e-5), 1e-5);
  EXPECT_NEAR(yv[6], (6 - 3) / std::sqrt(3.5 + 1e-5), 1e-5);
  EXPECT_NEAR(yv[1], 0.0, 1e-6);
  EXPECT_TRUE(all_close(bn.running_mean(), Tensor::from_vector<float>({0.3f, 0.5f}, {2}),
                        1e-6, 1e-6));
  EXPECT_TRUE(all_close(bn.running_var(),
                        Tensor::from_vector<float>({0.9f + 0.1f * 14.0f / 3.0f, 0.9f}, {2}),
                        1e-6, 1e-6));

  // Eval: (x - running_mean) / sqrt(running_var + eps) * w + b, statistics untouched.
  bn.running_mean().copy_from(Tensor::from_vector<float>({1.0f, -1.0f}, {2}));
  bn.running_var().copy_from(Tensor::from_vector<float>({4.0f, 0.25f}, {2}));
  bn.weight().value.copy_from(Tensor::from_vector<float>({2.0f, 1.0f}, {2}));
  bn.bias().value.copy_from(Tensor::from_vector<float>({0.5f, 0.0f}, {2}));
  bn.eval();
  const Tensor ye = bn.forward(Tensor::from_vector<float>({3, 0}, {1, 2}), ctx);
  EXPECT_FALSE(ctx.cache.training);
  const std::vector<float> yev = ye.to_vector<float>();
  EXPECT_NEAR(yev[0], (3 - 1) / std::sqrt(4 + 1e-5) * 2 + 0.5, 1e-5);
  EXPECT_NEAR(yev[1], (0 + 1) / std::sqrt(0.25 + 1e-5), 1e-4);
  EXPECT_EQ(bn.running_mean().to_vector<float>(), (std::vector<float>{1.0f, -1.0f}));
}

TEST(Dropout, IdentityInEvalAndInvertedMaskInTraining) {
  Generator gen(9);
  const Tensor x = Tensor::randn({31, 33}, gen);
  nn::Dropout drop(0.25, 42);
  nn::DropoutCtx ctx;
  const Tensor y1 = drop.forward(x, ctx);
  EXPECT_EQ(drop.offset(), 31u * 33u);
  const std::vector<float> xv = x.to_vector<float>(), yv = y1.to_vector<float>();
  int64_t dropped = 0;
  for (size_t i = 0; i < xv.size(); ++i) {
    if (yv[i] == 0.0f) {
      ++dropped;
    } else {
      EXPECT_NEAR(yv[i], xv[i] / 0.75f, 1e-6);
    }
  }
  // 1023 draws with p = 0.25: mean 256, sd 14; allow 5 sd.
  EXPECT_NEAR(static_cast<double>(dropped), 0.25 * 1023, 70);
  // Backward multiplies by the same mask.
  const Tensor ones = Tensor::full(x.shape(), 1.0);
  const std::vector<float> g = drop.backward(ones, ctx).to_vector<float>();
  for (size_t i = 0; i < xv.size(); ++i) EXPECT_EQ(g[i], yv[i] == 0.0f ? 0.0f : 1.0f / 0.75f);
  // The next call draws a fresh mask; resetting the offset reproduces the first.
  nn::DropoutCtx ctx2;
  EXPECT_FALSE(testing::bitwise_equal(drop.forward(x, ctx2), y1));
  drop.set_offset(0);
  EXPECT_TRUE(testing::bitwise_equal(drop.forward(x, ctx2), y1));

  drop.eval();
  nn::DropoutCtx ctx3;
  EXPECT_TRUE(testing::bitwise_equal(drop.forward(x, ctx3), x));
  EXPECT_FALSE(ctx3.mask.defined());
  EXPECT_TRUE(testing::bitwise_equal(drop.backward(ones, ctx3), ones));
  EXPECT_THROW(nn::Dropout(1.0, 0), Error);
}

TEST(MLP, EvalDisablesDropout) {
  Generator gen(5);
  nn::MLP mlp({6, 16, 3}, Activation::ReLU, 0.5, gen);
  const Tensor x = Tensor::randn({7, 6}, gen);
  nn::MLPCtx c1, c2;
  mlp.eval();
  const Tensor a = mlp.forward(x, c1);
  const Tensor b = mlp.forward(x, c2);
  EXPECT_TRUE(testing::bitwise_equal(a, b));
  mlp.train();
  const Tensor t = mlp.forward(x, c1);
  EXPECT_FALSE(testing::bitwise_equal(a, t));
  EXPECT_THROW(nn::MLP({4}, Activation::ReLU, 0.0, gen), Error);
  EXPECT_THROW(mlp.forward(Tensor::randn({7, 5}, gen), c1), Error);
}

// ---- F64 gradient checks of every module ----

TEST(LayersGrad, Linear) {
  for (bool bias : {true, false}) {
    Generator gen(1);
    nn::Linear lin(5, 4, bias, gen);
    lin.to(Dtype::F64);
    Tensor x = Tensor::randn({7, 5}, gen, Dtype::F64);
    nn::LinearCtx ctx;
    check_module_gradients(
        lin, x, [&](const Tensor& in) { return lin.forward(in, ctx); },
        [&](const Tensor& g) { return lin.backward(g, ctx); });
  }
}

TEST(LayersGrad, Embedding) {
  Generator gen(2);
  nn::Embedding emb(6, 3, gen);
  emb.to(Dtype::F64);
  // Repeated indices: their gradients add up.
  const Tensor idx = Tensor::from_vector<int64_t>({0, 3, 3, 5, 1, 3}, {6});
  nn::EmbeddingCtx ctx;
  check_module_gradients(
      emb, Tensor::zeros({1}, Dtype::F64), [&](const Tensor&) { return emb.forward(idx, ctx); },
      [&](const Tensor& g) {
        emb.backward(g, ctx);
        return Tensor::zeros({1}, Dtype::F64);
      },
      /*check_input=*/false);
  // Row 2 and 4 are never used: zero gradient.
  emb.zero_grad();
  emb.forward(idx, ctx);
  emb.backward(Tensor::full({6, 3}, 1.0, Dtype::F64), ctx);
  const std::vector<double> g = emb.weight().grad.to_vector<double>();
  EXPECT_EQ(g[2 * 3], 0.0);
  EXPECT_EQ(g[3 * 3], 3.0);
}

TEST(LayersGrad, BatchNorm1dTrainAndEval) {
  for (bool training : {true, false}) {
    nn::BatchNorm1d bn(4);
    bn.to(Dtype::F64);
    randomize_parameters(bn, 3);
    Generator gen(4);
    bn.running_mean().copy_from(Tensor::randn({4}, gen, Dtype::F64));
    bn.running_var().copy_from(Tensor::rand_uniform({4}, gen, 0.5, 2.0, Dtype::F64));
    bn.train(training);
    Tensor x = Tensor::randn({9, 4}, gen, Dtype::F64);
    nn::BatchNormCtx ctx;
    check_module_gradients(
        bn, x, [&](const Tensor& in) { return bn.forward(in, ctx); },
        [&](const Tensor& g) { return bn.backward(g, ctx); });
  }
}

TEST(LayersGrad, LayerNorm) {
  nn::LayerNorm ln(6);
  ln.to(Dtype::F64);
  randomize_parameters(ln, 5);
  Generator gen(6);
  Tensor x = Tensor::randn({7, 6}, gen, Dtype::F64);
  nn::LayerNormCtx ctx;
  check_module_gradients(
      ln, x, [&](const Tensor& in) { return ln.forward(in, ctx); },
      [&](const Tensor& g) { return ln.backward(g, ctx); });
}

TEST(LayersGrad, RMSNorm) {
  nn::RMSNorm rn(6);
  rn.to(Dtype::F64);
  randomize_parameters(rn, 7);
  Generator gen(8);
  Tensor x = Tensor::randn({7, 6}, gen, Dtype::F64);
  nn::RMSNormCtx ctx;
  check_module_gradients(
      rn, x, [&](const Tensor& in) { return rn.forward(in, ctx); },
      [&](const Tensor& g) { return rn.backward(g, ctx); });
}

TEST(LayersGrad, Dropout) {
  nn::Dropout drop(0.3, 11);
  Generator gen(9);
  Tensor x = Tensor::randn({8, 5}, gen, Dtype::F64);
  nn::DropoutCtx ctx;
  // The same mask for every evaluation: reset the counter offset before each forward.
  check_module_gradients(
      drop, x,
      [&](const Tensor& in) {
        drop.set_offset(0);
        return drop.forward(in, ctx);
      },
      [&](const Tensor& g) { return drop.backward(g, ctx); });
}

TEST(LayersGrad, Activations) {
  for (Activation act : {Activation::ReLU, Activation::GELU, Activation::SiLU}) {
    nn::ActivationLayer layer(act);
    Generator gen(10);
    Tensor x = Tensor::randn({6, 7}, gen, Dtype::F64);
    nn::ActivationCtx ctx;
    SCOPED_TRACE(activation_name(act));
    check_module_gradients(
        layer, x, [&](const Tensor& in) { return layer.forward(in, ctx); },
        [&](const Tensor& g) { return layer.backward(g, ctx); });
  }
}

TEST(LayersGrad, MLPWithDropout) {
  Generator gen(12);
  nn::MLP mlp({5, 8, 6, 3}, Activation::GELU, 0.2, gen);
  mlp.to(Dtype::F64);
  Tensor x = Tensor::randn({7, 5}, gen, Dtype::F64);
  nn::MLPCtx ctx;
  check_module_gradients(
      mlp, x,
      [&](const Tensor& in) {
        for (int64_t i = 0; i + 1 < mlp.num_layers(); ++i) mlp.dropout(i)->set_offset(0);
        return mlp.forward(in, ctx);
      },
      [&](const Tensor& g) { return mlp.backward(g, ctx); });
}

// ReLU MLPs fold the activation into the products (forward epilogue, backward mask): F64
// gradient check, with the residual-gradient `plus` of backward.
TEST(LayersGrad, ReluMLPWithPlus) {
  Generator gen(14);
  nn::MLP mlp({5, 8, 6, 5}, Activation::ReLU, 0.0, gen);
  mlp.to(Dtype::F64);
  Tensor x = Tensor::randn({9, 5}, gen, Dtype::F64);
  const Tensor plus = Tensor::randn({9, 5}, gen, Dtype::F64);
  nn::MLPCtx ctx;
  check_module_gradients(
      mlp, x, [&](const Tensor& in) { return mlp.forward(in, ctx); },
      [&](const Tensor& g) {
        // backward(g, ctx, plus) - plus is the MLP's own input gradient.
        Tensor with_plus = mlp.backward(g, ctx, plus);
        axpy(with_plus, -1.0, plus);
        return with_plus;
      });
}

// The layer-by-layer API gives the same bits as forward/backward (ReLU folded, GELU with
// dropout not folded), so two MLPs can be interleaved step by step.
TEST(MLP, LayerByLayerEqualsWhole) {
  for (const Activation act : {Activation::ReLU, Activation::GELU}) {
    for (const double p : {0.0, 0.3}) {
      Generator gen(15);
      nn::MLP mlp({6, 12, 6}, act, p, gen);
      const Tensor x = Tensor::randn({11, 6}, gen), res = Tensor::randn({11, 6}, gen);
      const Tensor g = Tensor::randn({11, 6}, gen), plus = Tensor::randn({11, 6}, gen);
      nn::MLPCtx whole_ctx, step_ctx;
      if (mlp.dropout(0)) mlp.dropout(0)->set_offset(0);
      const Tensor whole = mlp.forward(x, whole_ctx, res);
      const Tensor whole_dx = mlp.backward(g, whole_ctx, plus);
      const Tensor whole_w = mlp.layer(0).weight().grad.clone();
      mlp.zero_grad();
      if (mlp.dropout(0)) mlp.dropout(0)->set_offset(0);
      mlp.prepare_ctx(step_ctx);
      Tensor h = x;
      for (size_t i = 0; i < 2; ++i) h = mlp.forward_layer(i, h, step_ctx, i == 1 ? res : Tensor());
      Tensor d = g;
      for (size_t i = 2; i-- > 0;) d = mlp.backward_layer(i, d, step_ctx, plus);
      EXPECT_TRUE(testing::bitwise_equal(h, whole)) << activation_name(act) << " p " << p;
      EXPECT_TRUE(testing::bitwise_equal(d, whole_dx)) << activation_name(act) << " p " << p;
      EXPECT_TRUE(testing::bitwise_equal(mlp.layer(0).weight().grad, whole_w));
      EXPECT_EQ(mlp.single_op_layers(), act == Activation::ReLU && p == 0.0);
    }
  }
  Generator gen(16);
  nn::MLP mlp({3, 4, 2}, Activation::ReLU, 0.0, gen);
  nn::MLPCtx unprepared;
  EXPECT_THROW(mlp.forward_layer(0, Tensor::randn({2, 3}, gen), unprepared, Tensor()), Error);
}

TEST(LayersGrad, GradsAccumulate) {
  Generator gen(13);
  nn::Linear lin(3, 2, true, gen);
  const Tensor x = Tensor::randn({4, 3}, gen);
  const Tensor g = Tensor::randn({4, 2}, gen);
  nn::LinearCtx ctx;
  lin.forward(x, ctx);
  lin.backward(g, ctx);
  const Tensor once = lin.weight().grad.clone();
  lin.backward(g, ctx);
  Tensor twice = Tensor::empty(once.shape());
  scale(twice, once, 2.0);
  EXPECT_TRUE(all_close(lin.weight().grad, twice, 1e-6, 1e-6));
  lin.zero_grad();
  EXPECT_EQ(lin.weight().grad.to_vector<float>(), std::vector<float>(6, 0.0f));
}

// ---- CPU vs CUDA ----

// f32 on both devices: atol 1e-5, rtol 1e-4 (cuBLAS sums in a different order; TF32 is off).
TEST(LayersCuda, MLPForwardBackwardMatchesCpu) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  for (int64_t n : testing::odd_sizes()) {
    for (double p : {0.0, 0.2}) {
      Generator g1(21), g2(21);
      nn::MLP cpu({33, 32, 7}, Activation::SiLU, p, g1);
      nn::MLP gpu({33, 32, 7}, Activation::SiLU, p, g2);
      gpu.to(Device::cuda());
      Generator data(n);
      const Tensor x = Tensor::randn({n, 33}, data);
      const Tensor G = Tensor::randn({n, 7}, data);
      nn::MLPCtx cc, gc;
      const Tensor yc = cpu.forward(x, cc);
      const Tensor yg = gpu.forward(x.to(Device::cuda()), gc);
      EXPECT_TRUE(yg.is_cuda());
      EXPECT_TRUE(all_close(yg, yc, 1e-5, 1e-4)) << "n " << n << " p " << p;
      const Tensor dc = cpu.backward(G, cc);
      const Tensor dg = gpu.backward(G.to(Device::cuda()), gc);
      EXPECT_TRUE(all_close(dg, dc, 1e-5, 1e-4)) << "n " << n << " p " << p;
      const auto pc = cpu.parameters(), pg = gpu.parameters();
      for (size_t i = 0; i < pc.size(); ++i) {
        EXPECT_TRUE(pg[i]->grad.is_cuda());
        EXPECT_TRUE(all_close(pg[i]->grad, pc[i]->grad, 1e-4, 1e-4))
            << pc[i]->name << " n " << n << " p " << p;
      }
    }
  }
}

TEST(LayersCuda, NormsMatchCpu) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  Generator gen(31);
  const Tensor x = Tensor::randn({33, 257}, gen);
  const Tensor G = Tensor::randn({33, 257}, gen);
  nn::BatchNorm1d bc(257), bg(257);
  nn::LayerNorm lc(257), lg(257);
  bg.to(Device::cuda());
  lg.to(Device::cuda());
  nn::BatchNormCtx bcc, bgc;
  nn::LayerNormCtx lcc, lgc;
  EXPECT_TRUE(all_close(bg.forward(x.to(Device::cuda()), bgc), bc.forward(x, bcc), 1e-5, 1e-4));
  EXPECT_TRUE(all_close(bg.running_var(), bc.running_var(), 1e-5, 1e-4));
  EXPECT_TRUE(all_close(bg.backward(G.to(Device::cuda()), bgc), bc.backward(G, bcc), 1e-4, 1e-4));
  EXPECT_TRUE(all_close(lg.forward(x.to(Device::cuda()), lgc), lc.forward(x, lcc), 1e-5, 1e-4));
  EXPECT_TRUE(all_close(lg.backward(G.to(Device::cuda()), lgc), lc.backward(G, lcc), 1e-4, 1e-4));
  EXPECT_TRUE(all_close(lg.weight().grad, lc.weight().grad, 1e-4, 1e-4));
}

}  // namespace
}  // namespace lapis
