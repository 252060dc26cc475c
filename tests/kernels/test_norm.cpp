#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "core/cuda_api.h"
#include "core/tensor.h"
#include "kernels/cuda/norm_cuda.h"
#include "kernels/launch_batch.h"
#include "kernels/norm.h"
#include "tests/common/test_util.h"

namespace lapis {
namespace {

using testing::all_close;
using testing::dot;
using testing::gradient_matches;

Tensor f64(const std::vector<double>& v, const Shape& s) {
  return Tensor::from_vector<double>(v, s);
}

using testing::expect_error_mentions;

// ---------------------------------------------------------------- BatchNorm, hand values

struct BatchNormRun {
  Tensor out, running_mean, running_var;
  BatchNormCache cache;
};

BatchNormRun bn_train(const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& rm,
                      const Tensor& rv, double momentum, double eps) {
  const int64_t c = x.size(1);
  BatchNormRun r;
  r.out = Tensor::empty(x.shape(), x.dtype(), x.device());
  r.running_mean = rm.clone();
  r.running_var = rv.clone();
  r.cache.mean = Tensor::empty({c}, x.dtype(), x.device());
  r.cache.rstd = Tensor::empty({c}, x.dtype(), x.device());
  batchnorm_forward_train(r.out, r.cache, r.running_mean, r.running_var, x, w, b, momentum, eps);
  return r;
}

BatchNormRun bn_eval(const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& rm,
                     const Tensor& rv, double eps) {
  const int64_t c = x.size(1);
  BatchNormRun r;
  r.out = Tensor::empty(x.shape(), x.dtype(), x.device());
  r.cache.mean = Tensor::empty({c}, x.dtype(), x.device());
  r.cache.rstd = Tensor::empty({c}, x.dtype(), x.device());
  batchnorm_forward_eval(r.out, r.cache, x, w, b, rm, rv, eps);
  return r;
}

TEST(BatchNorm, TrainingMatchesHandValuesAndUpdatesRunningStats) {
  // Column 0 = 1, 2, 3: mean 2, biased var 2/3, unbiased 1.
  // Column 1 = 0, 0, 6: mean 2, biased var 8, unbiased 12.
  const double eps = 1e-5, momentum = 0.1;
  Tensor x = f64({1, 0, 2, 0, 3, 6}, {3, 2});
  Tensor w = f64({2.0, 0.5}, {2});
  Tensor b = f64({1.0, -1.0}, {2});
  BatchNormRun r = bn_train(x, w, b, f64({0, 0}, {2}), f64({1, 1}, {2}), momentum, eps);
  const double r0 = 1.0 / std::sqrt(2.0 / 3.0 + eps), r1 = 1.0 / std::sqrt(8.0 + eps);
  const std::vector<double> expected = {
      (1 - 2) * r0 * 2 + 1, (0 - 2) * r1 * 0.5 - 1,  //
      (2 - 2) * r0 * 2 + 1, (0 - 2) * r1 * 0.5 - 1,  //
      (3 - 2) * r0 * 2 + 1, (6 - 2) * r1 * 0.5 - 1};
  EXPECT_TRUE(all_close(r.out, f64(expected, {3, 2}), 1e-12, 1e-12));
  EXPECT_TRUE(all_close(r.cache.mean, f64({2, 2}, {2}), 1e-12, 0));
  EXPECT_TRUE(all_close(r.cache.rstd, f64({r0, r1}, {2}), 1e-12, 1e-12));
  EXPECT_TRUE(r.cache.training);
  // running_mean = 0.9 * 0 + 0.1 * 2; running_var = 0.9 * 1 + 0.1 * unbiased.
  EXPECT_TRUE(all_close(r.running_mean, f64({0.2, 0.2}, {2}), 1e-12, 0));
  EXPECT_TRUE(all_close(r.running_var, f64({1.0, 2.1}, {2}), 1e-12, 0));
}

TEST(BatchNorm, RunningStatsConvergeToPopulationStats) {
  // Repeating the same batch with momentum 0.5: running stats approach mean and unbiased var.
  Tensor x = f64({1, 2, 3, 4}, {4, 1});
  Tensor w = f64({1}, {1}), b = f64({0}, {1});
  Tensor rm = f64({10}, {1}), rv = f64({10}, {1});
  for (int i = 0; i < 60; ++i) {
    BatchNormRun r = bn_train(x, w, b, rm, rv, 0.5, 1e-5);
    rm = r.running_mean;
    rv = r.running_var;
  }
  EXPECT_NEAR(rm.item(), 2.5, 1e-12);
  EXPECT_NEAR(rv.item(), 5.0 / 3.0, 1e-12);
}

TEST(BatchNorm, EvalUsesRunningStats) {
  const double eps = 1e-5;
  Tensor x = f64({1, 0, 2, 4}, {2, 2});
  Tensor w = f64({2.0, 1.0}, {2}), b = f64({0.5, 0.0}, {2});
  Tensor rm = f64({1.0, -1.0}, {2}), rv = f64({4.0, 0.25}, {2});
  BatchNormRun r = bn_eval(x, w, b, rm, rv, eps);
  const double r0 = 1.0 / std::sqrt(4.0 + eps), r1 = 1.0 / std::sqrt(0.25 + eps);
  const std::vector<double> expected = {(1 - 1) * r0 * 2 + 0.5, (0 + 1) * r1,
                                        (2 - 1) * r0 * 2 + 0.5, (4 + 1) * r1};
  EXPECT_TRUE(all_close(r.out, f64(expected, {2, 2}), 1e-12, 1e-12));
  EXPECT_FALSE(r.cache.training);
  EXPECT_TRUE(testing::bitwise_equal(r.cache.mean, rm));
  EXPECT_TRUE(all_close(r.cache.rstd, f64({r0, r1}, {2}), 1e-12, 1e-12));
  // One row is fine in eval mode.
  BatchNormRun one = bn_eval(f64({3, 3}, {1, 2}), w, b, rm, rv, eps);
  EXPECT_NEAR(one.out.to_vector<double>()[0], 2 * r0 * 2 + 0.5, 1e-12);
}

TEST(BatchNorm, TrainingOutputIsStandardised) {
  Generator g(5);
  Tensor x = Tensor::randn({50, 7}, g, Dtype::F64, Device::cpu(), 3.0, 2.0);
  Tensor ones = Tensor::full({7}, 1.0, Dtype::F64), zeros = Tensor::zeros({7}, Dtype::F64);
  BatchNormRun r = bn_train(x, ones, zeros, zeros, ones, 0.1, 0.0);
  const std::vector<double> o = r.out.to_vector<double>();
  for (int64_t c = 0; c < 7; ++c) {
    double s = 0, sq = 0;
    for (int64_t i = 0; i < 50; ++i) { s += o[i * 7 + c]; sq += o[i * 7 + c] * o[i * 7 + c]; }
    EXPECT_NEAR(s / 50, 0.0, 1e-12);
    EXPECT_NEAR(sq / 50, 1.0, 1e-12);
  }
}

TEST(BatchNorm, TrainingNeedsTwoRowsAndChecksShapes) {
  Tensor w = f64({1, 1}, {2}), b = f64({0, 0}, {2});
  expect_error_mentions([&] { bn_train(f64({1, 2}, {1, 2}), w, b, b, w, 0.1, 1e-5); },
                        {"batchnorm_forward_train", "N = 1"});
  expect_error_mentions([&] { bn_train(Tensor::zeros({0, 2}, Dtype::F64), w, b, b, w, 0.1, 1e-5); },
                        {"N = 0"});
  expect_error_mentions([&] { bn_train(Tensor::zeros({4, 3}, Dtype::F64), w, b, b, w, 0.1, 1e-5); },
                        {"batchnorm_forward_train", "weight", "[3]"});
  expect_error_mentions([&] { bn_train(Tensor::zeros({4, 2}), w, b, b, w, 0.1, 1e-5); },
                        {"weight", "dtype"});
  expect_error_mentions(
      [&] {
        Tensor x1 = Tensor::zeros({4}, Dtype::F64), out = Tensor::zeros({4}, Dtype::F64);
        BatchNormCache cache{b.clone(), b.clone(), true};
        Tensor rm = b.clone(), rv = w.clone();
        batchnorm_forward_train(out, cache, rm, rv, x1, w, b, 0.1, 1e-5);
      },
      {"batchnorm_forward_train", "x", "2 dimensions"});
  expect_error_mentions([&] { bn_train(Tensor::zeros({4, 2}, Dtype::F64), w, b, b, w, 1.5, 1e-5); },
                        {"momentum"});
  // Backward: wrong upstream gradient shape.
  BatchNormRun r = bn_train(Tensor::zeros({4, 2}, Dtype::F64), w, b, b, w, 0.1, 1e-5);
  Tensor dx = Tensor::zeros({4, 2}, Dtype::F64), dw = Tensor::zeros({2}, Dtype::F64);
  Tensor db = Tensor::zeros({2}, Dtype::F64);
  expect_error_mentions(
      [&] {
        batchnorm_backward(dx, dw, db, Tensor::zeros({4, 3}, Dtype::F64),
                           Tensor::zeros({4, 2}, Dtype::F64), w, r.cache);
      },
      {"batchnorm_backward", "dL_dout", "[4, 3]"});
}

// ---------------------------------------------------------------- LayerNorm / RMSNorm helpers

struct RowNormRun {
  Tensor out;
  LayerNormCache ln;
  RMSNormCache rms;
};

RowNormRun ln_forward(const Tensor& x, const Tensor& w, const Tensor& b, double eps) {
  RowNormRun r;
  r.out = Tensor::empty(x.shape(), x.dtype(), x.device());
  r.ln.mean = Tensor::empty({x.size(0)}, x.dtype(), x.device());
  r.ln.rstd = Tensor::empty({x.size(0)}, x.dtype(), x.device());
  layernorm_forward(r.out, r.ln, x, w, b, eps);
  return r;
}

RowNormRun rms_forward(const Tensor& x, const Tensor& w, double eps) {
  RowNormRun r;
  r.out = Tensor::empty(x.shape(), x.dtype(), x.device());
  r.rms.rstd = Tensor::empty({x.size(0)}, x.dtype(), x.device());
  rmsnorm_forward(r.out, r.rms, x, w, eps);
  return r;
}

TEST(LayerNorm, HandValues) {
  // Row 0 = 1, 2, 3: mean 2, biased var 2/3. Row 1 is constant: xhat = 0, out = bias.
  const double eps = 1e-5;
  Tensor x = f64({1, 2, 3, 5, 5, 5}, {2, 3});
  Tensor w = f64({1.0, 2.0, -1.0}, {3}), b = f64({0.0, 0.5, 1.0}, {3});
  RowNormRun r = ln_forward(x, w, b, eps);
  const double r0 = 1.0 / std::sqrt(2.0 / 3.0 + eps), r1 = 1.0 / std::sqrt(eps);
  EXPECT_TRUE(all_close(r.out, f64({-r0, 0.5, -r0 + 1.0, 0.0, 0.5, 1.0}, {2, 3}), 1e-12, 1e-12));
  EXPECT_TRUE(all_close(r.ln.mean, f64({2, 5}, {2}), 1e-12, 0));
  EXPECT_TRUE(all_close(r.ln.rstd, f64({r0, r1}, {2}), 1e-12, 1e-12));
}

TEST(LayerNorm, RowsAreStandardised) {
  Generator g(9);
  Tensor x = Tensor::randn({6, 40}, g, Dtype::F64, Device::cpu(), -2.0, 3.0);
  RowNormRun r = ln_forward(x, Tensor::full({40}, 1.0, Dtype::F64), Tensor::zeros({40}, Dtype::F64),
                            0.0);
  const std::vector<double> o = r.out.to_vector<double>();
  for (int64_t i = 0; i < 6; ++i) {
    double s = 0, sq = 0;
    for (int64_t c = 0; c < 40; ++c) { s += o[i * 40 + c]; sq += o[i * 40 + c] * o[i * 40 + c]; }
    EXPECT_NEAR(s / 40, 0.0, 1e-12);
    EXPECT_NEAR(sq / 40, 1.0, 1e-12);
  }
}

TEST(RMSNorm, HandValues) {
  // Row 0 = 3, 4: mean square 12.5. Row 1 = 0, 0: out 0.
  const double eps = 1e-6;
  Tensor x = f64({3, 4, 0, 0}, {2, 2});
  Tensor w = f64({2.0, 0.5}, {2});
  RowNormRun r = rms_forward(x, w, eps);
  const double r0 = 1.0 / std::sqrt(12.5 + eps);
  EXPECT_TRUE(all_close(r.out, f64({6 * r0, 2 * r0, 0, 0}, {2, 2}), 1e-12, 1e-12));
  EXPECT_TRUE(all_close(r.rms.rstd, f64({r0, 1.0 / std::sqrt(eps)}, {2}), 1e-9, 1e-12));
}

TEST(LayerNorm, ErrorsAndEmpty) {
  Tensor w = f64({1, 1, 1}, {3}), b = f64({0, 0, 0}, {3});
  expect_error_mentions([&] { ln_forward(Tensor::zeros({2, 4}, Dtype::F64), w, b, 1e-5); },
                        {"layernorm_forward", "weight", "[4]"});
  expect_error_mentions([&] { rms_forward(Tensor::zeros({2, 3}), w, 1e-5); },
                        {"rmsnorm_forward", "weight", "dtype"});
  expect_error_mentions([&] { ln_forward(Tensor::zeros({2, 3}, Dtype::I32), w, b, 1e-5); },
                        {"layernorm_forward", "x", "i32"});
  expect_error_mentions(
      [&] {
        ln_forward(Tensor::zeros({2, 0}, Dtype::F64), Tensor::zeros({0}, Dtype::F64),
                   Tensor::zeros({0}, Dtype::F64), 1e-5);
      },
      {"C >= 1"});
  // Zero rows: nothing to do, no error.
  RowNormRun e = ln_forward(Tensor::zeros({0, 3}, Dtype::F64), w, b, 1e-5);
  EXPECT_EQ(e.out.numel(), 0);
  RowNormRun e2 = rms_forward(Tensor::zeros({0, 3}, Dtype::F64), w, 1e-5);
  EXPECT_EQ(e2.out.numel(), 0);
}

// ---------------------------------------------------------------- F64 gradient checks

// Checks every (input, analytic gradient) pair against central differences of
// loss = dot(G, forward()), where forward reads the inputs' current contents.
void expect_gradients(const std::function<Tensor()>& forward, const Tensor& G,
                      const std::vector<std::pair<Tensor*, Tensor>>& cases) {
  auto loss = [&] { return dot(G, forward()); };
  for (const auto& [input, analytic] : cases) {
    EXPECT_TRUE(gradient_matches(loss, *input, analytic)) << input->describe();
  }
}

struct Params {
  Tensor x, w, b, G;
};

Params random_params(int64_t n, int64_t c, uint64_t seed) {
  Generator g(seed);
  Params p;
  p.x = Tensor::randn({n, c}, g, Dtype::F64, Device::cpu(), 0.5, 1.5);
  p.w = Tensor::randn({c}, g, Dtype::F64, Device::cpu(), 1.0, 0.5);
  p.b = Tensor::randn({c}, g, Dtype::F64);
  p.G = Tensor::randn({n, c}, g, Dtype::F64);
  return p;
}

TEST(BatchNorm, GradientsTrainingF64) {
  Params p = random_params(6, 5, 1);
  Tensor rm = Tensor::zeros({5}, Dtype::F64), rv = Tensor::full({5}, 1.0, Dtype::F64);
  BatchNormRun r = bn_train(p.x, p.w, p.b, rm, rv, 0.1, 1e-5);
  Tensor dx = Tensor::full({6, 5}, 99.0, Dtype::F64);  // overwritten
  // Parameter gradients accumulate: start from 1 and subtract it afterwards.
  Tensor dw = Tensor::full({5}, 1.0, Dtype::F64), db = Tensor::full({5}, 1.0, Dtype::F64);
  batchnorm_backward(dx, dw, db, p.G, p.x, p.w, r.cache);
  Tensor dw0 = Tensor::zeros({5}, Dtype::F64), db0 = Tensor::zeros({5}, Dtype::F64);
  batchnorm_backward(dx, dw0, db0, p.G, p.x, p.w, r.cache);
  {
    std::vector<double> a = dw.to_vector<double>(), z = dw0.to_vector<double>();
    for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], z[i] + 1.0, 1e-12);
  }
  expect_gradients([&] { return bn_train(p.x, p.w, p.b, rm, rv, 0.1, 1e-5).out; }, p.G,
                   {{&p.x, dx}, {&p.w, dw0}, {&p.b, db0}});
}

TEST(BatchNorm, GradientsEvalF64) {
  Params p = random_params(4, 3, 2);
  Tensor rm = f64({0.3, -0.2, 1.0}, {3}), rv = f64({0.5, 2.0, 1.5}, {3});
  BatchNormRun r = bn_eval(p.x, p.w, p.b, rm, rv, 1e-5);
  Tensor dx = Tensor::empty({4, 3}, Dtype::F64);
  Tensor dw = Tensor::zeros({3}, Dtype::F64), db = Tensor::zeros({3}, Dtype::F64);
  batchnorm_backward(dx, dw, db, p.G, p.x, p.w, r.cache);
  expect_gradients([&] { return bn_eval(p.x, p.w, p.b, rm, rv, 1e-5).out; }, p.G,
                   {{&p.x, dx}, {&p.w, dw}, {&p.b, db}});
}

TEST(LayerNorm, GradientsF64) {
  Params p = random_params(5, 7, 3);
  RowNormRun r = ln_forward(p.x, p.w, p.b, 1e-5);
  Tensor dx = Tensor::full({5, 7}, 99.0, Dtype::F64);
  Tensor dw = Tensor::full({7}, 2.0, Dtype::F64), db = Tensor::full({7}, 2.0, Dtype::F64);
  layernorm_backward(dx, dw, db, p.G, p.x, p.w, r.ln);
  // Accumulation: subtract the starting 2.
  std::vector<double> vw = dw.to_vector<double>(), vb = db.to_vector<double>();
  for (auto& v : vw) v -= 2.0;
  for (auto& v : vb) v -= 2.0;
  expect_gradients([&] { return ln_forward(p.x, p.w, p.b, 1e-5).out; }, p.G,
                   {{&p.x, dx}, {&p.w, f64(vw, {7})}, {&p.b, f64(vb, {7})}});
}

TEST(RMSNorm, GradientsF64) {
  Params p = random_params(5, 6, 4);
  RowNormRun r = rms_forward(p.x, p.w, 1e-6);
  Tensor dx = Tensor::full({5, 6}, 99.0, Dtype::F64);
  Tensor dw = Tensor::full({6}, -1.0, Dtype::F64);
  rmsnorm_backward(dx, dw, p.G, p.x, p.w, r.rms);
  std::vector<double> vw = dw.to_vector<double>();
  for (auto& v : vw) v += 1.0;
  expect_gradients([&] { return rms_forward(p.x, p.w, 1e-6).out; }, p.G,
                   {{&p.x, dx}, {&p.w, f64(vw, {6})}});
}

// ---------------------------------------------------------------- CUDA vs CPU

// f32: CPU statistics are accumulated in double, CUDA in float with a different order:
// atol 1e-4, rtol 1e-4 (sums over up to 257 terms of O(1) values). f64: atol/rtol 1e-10.
double atol_for(Dtype dt) { return dt == Dtype::F32 ? 1e-4 : 1e-10; }
double rtol_for(Dtype dt) { return dt == Dtype::F32 ? 1e-4 : 1e-10; }

struct DeviceParams {
  Tensor x, w, b, G, rm, rv;
};

DeviceParams random_device_params(int64_t n, int64_t c, Dtype dt, uint64_t seed) {
  Generator g(seed);
  DeviceParams p;
  p.x = Tensor::randn({n, c}, g, dt, Device::cpu(), 0.5, 1.5);
  p.w = Tensor::randn({c}, g, dt, Device::cpu(), 1.0, 0.5);
  p.b = Tensor::randn({c}, g, dt);
  p.G = Tensor::randn({n, c}, g, dt);
  p.rm = Tensor::randn({c}, g, dt);
  p.rv = Tensor::rand_uniform({c}, g, 0.5, 2.0, dt);
  return p;
}

DeviceParams to_cuda(const DeviceParams& p) {
  const Device d = Device::cuda();
  return {p.x.to(d), p.w.to(d), p.b.to(d), p.G.to(d), p.rm.to(d), p.rv.to(d)};
}

#define EXPECT_CLOSE(a, b, dt) EXPECT_TRUE(all_close(a, b, atol_for(dt), rtol_for(dt)))

TEST(BatchNormCuda, MatchesCpu) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  for (Dtype dt : {Dtype::F32, Dtype::F64}) {
    for (int64_t n : testing::odd_sizes()) {
      for (int64_t c : {int64_t(1), int64_t(7), int64_t(33), int64_t(70)}) {
        SCOPED_TRACE(::testing::Message() << dtype_name(dt) << " n=" << n << " c=" << c);
        DeviceParams h = random_device_params(n, c, dt, 10 * n + c);
        DeviceParams d = to_cuda(h);
        for (bool training : {true, false}) {
          if (training && n < 2) continue;
          BatchNormRun rh = training ? bn_train(h.x, h.w, h.b, h.rm, h.rv, 0.1, 1e-5)
                                     : bn_eval(h.x, h.w, h.b, h.rm, h.rv, 1e-5);
          BatchNormRun rd = training ? bn_train(d.x, d.w, d.b, d.rm, d.rv, 0.1, 1e-5)
                                     : bn_eval(d.x, d.w, d.b, d.rm, d.rv, 1e-5);
          EXPECT_CLOSE(rd.out, rh.out, dt);
          EXPECT_CLOSE(rd.cache.mean, rh.cache.mean, dt);
          EXPECT_CLOSE(rd.cache.rstd, rh.cache.rstd, dt);
          EXPECT_EQ(rd.cache.training, training);
          if (training) {
            EXPECT_CLOSE(rd.running_mean, rh.running_mean, dt);
            EXPECT_CLOSE(rd.running_var, rh.running_var, dt);
          }
          Tensor dxh = Tensor::empty({n, c}, dt), dxd = Tensor::empty({n, c}, dt, Device::cuda());
          Tensor dwh = Tensor::full({c}, 0.5, dt), dbh = Tensor::full({c}, 0.5, dt);
          Tensor dwd = dwh.to(Device::cuda()), dbd = dbh.to(Device::cuda());
          batchnorm_backward(dxh, dwh, dbh, h.G, h.x, h.w, rh.cache);
          batchnorm_backward(dxd, dwd, dbd, d.G, d.x, d.w, rd.cache);
          EXPECT_CLOSE(dxd, dxh, dt);
          EXPECT_CLOSE(dwd, dwh, dt);
          EXPECT_CLOSE(dbd, dbh, dt);
          // Deterministic: a second run gives the same bits.
          Tensor dxd2 = Tensor::empty({n, c}, dt, Device::cuda());
          Tensor dwd2 = Tensor::full({c}, 0.5, dt, Device::cuda());
          Tensor dbd2 = Tensor::full({c}, 0.5, dt, Device::cuda());
          batchnorm_backward(dxd2, dwd2, dbd2, d.G, d.x, d.w, rd.cache);
          EXPECT_TRUE(testing::bitwise_equal(dwd2, dwd));
          EXPECT_TRUE(testing::bitwise_equal(dxd2, dxd));
        }
      }
    }
  }
}

// The single-launch (cooperative) BatchNorm kernels and the two-launch path partition and add in
// the same order: identical statistics and parameter gradients, outputs and dx to rounding.
TEST(BatchNormCuda, SingleLaunchMatchesTwoLaunchPath) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  for (Dtype dt : {Dtype::F32, Dtype::F64}) {
    for (int64_t n : {int64_t(2), int64_t(63), int64_t(65), int64_t(3001), int64_t(6403),
                      int64_t(300000)}) {
      for (int64_t c : {int64_t(5), int64_t(64), int64_t(80)}) {
        SCOPED_TRACE(::testing::Message() << dtype_name(dt) << " n=" << n << " c=" << c);
        DeviceParams d = to_cuda(random_device_params(n, c, dt, 7 * n + c));
        BatchNormRun runs[2];
        Tensor dx[2], dw[2], db[2];
        for (int path = 0; path < 2; ++path) {
          LAPIS_CUDA_CALL(cuda::set_batchnorm_single_launch, path == 0);
          runs[path] = bn_train(d.x, d.w, d.b, d.rm, d.rv, 0.1, 1e-5);
          dx[path] = Tensor::empty({n, c}, dt, Device::cuda());
          dw[path] = Tensor::full({c}, 0.5, dt, Device::cuda());
          db[path] = Tensor::full({c}, 0.5, dt, Device::cuda());
          batchnorm_backward(dx[path], dw[path], db[path], d.G, d.x, d.w, runs[path].cache);
        }
        LAPIS_CUDA_CALL(cuda::set_batchnorm_single_launch, true);
        EXPECT_TRUE(testing::bitwise_equal(runs[0].cache.mean, runs[1].cache.mean));
        EXPECT_TRUE(testing::bitwise_equal(runs[0].cache.rstd, runs[1].cache.rstd));
        EXPECT_TRUE(testing::bitwise_equal(runs[0].running_var, runs[1].running_var));
        EXPECT_TRUE(testing::bitwise_equal(dw[0], dw[1]));
        EXPECT_TRUE(testing::bitwise_equal(db[0], db[1]));
        const double tol = dt == Dtype::F32 ? 1e-5 : 1e-13;
        EXPECT_TRUE(testing::all_close(runs[0].out, runs[1].out, tol, tol));
        EXPECT_TRUE(testing::all_close(dx[0], dx[1], tol, tol));
      }
    }
  }
}

// Independent BatchNorms queued in a LaunchBatch (one cooperative launch for several) give the
// same bits as separate calls, with the single-launch kernels allowed or not.
TEST(BatchNormCuda, LaunchBatchMatchesSeparateCalls) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  const std::vector<std::pair<int64_t, int64_t>> shapes = {{3001, 64}, {6403, 64}, {65, 7},
                                                           {2, 33}, {300, 80}};
  for (bool single : {true, false}) {
    LAPIS_CUDA_CALL(cuda::set_batchnorm_single_launch, single);
    std::vector<DeviceParams> params;
    std::vector<BatchNormRun> want, got;
    for (size_t i = 0; i < shapes.size(); ++i) {
      params.push_back(to_cuda(random_device_params(shapes[i].first, shapes[i].second,
                                                    Dtype::F32, 31 * i + 5)));
      const DeviceParams& d = params.back();
      want.push_back(bn_train(d.x, d.w, d.b, d.rm, d.rv, 0.1, 1e-5));
    }
    {
      LaunchBatch batch;
      for (const DeviceParams& d : params) got.push_back(bn_train(d.x, d.w, d.b, d.rm, d.rv, 0.1, 1e-5));
      batch.run();
    }
    std::vector<Tensor> dx_want, dx_got, dw_want, dw_got;
    for (size_t i = 0; i < shapes.size(); ++i) {
      EXPECT_TRUE(testing::bitwise_equal(got[i].out, want[i].out)) << i;
      EXPECT_TRUE(testing::bitwise_equal(got[i].cache.rstd, want[i].cache.rstd)) << i;
      EXPECT_TRUE(testing::bitwise_equal(got[i].running_var, want[i].running_var)) << i;
      const DeviceParams& d = params[i];
      const int64_t n = shapes[i].first, c = shapes[i].second;
      dx_want.push_back(Tensor::empty({n, c}, Dtype::F32, Device::cuda()));
      dw_want.push_back(Tensor::full({c}, 0.5, Dtype::F32, Device::cuda()));
      Tensor db = Tensor::full({c}, 0.5, Dtype::F32, Device::cuda());
      batchnorm_backward(dx_want[i], dw_want[i], db, d.G, d.x, d.w, want[i].cache);
      dx_got.push_back(Tensor::empty({n, c}, Dtype::F32, Device::cuda()));
      dw_got.push_back(Tensor::full({c}, 0.5, Dtype::F32, Device::cuda()));
    }
    {
      LaunchBatch batch;
      for (size_t i = 0; i < shapes.size(); ++i) {
        Tensor db = Tensor::full({shapes[i].second}, 0.5, Dtype::F32, Device::cuda());
        batchnorm_backward(dx_got[i], dw_got[i], db, params[i].G, params[i].x, params[i].w,
                           got[i].cache);
      }
      batch.run();
    }
    for (size_t i = 0; i < shapes.size(); ++i) {
      EXPECT_TRUE(testing::bitwise_equal(dx_got[i], dx_want[i])) << i;
      EXPECT_TRUE(testing::bitwise_equal(dw_got[i], dw_want[i])) << i;
    }
  }
  LAPIS_CUDA_CALL(cuda::set_batchnorm_single_launch, true);
}

TEST(LayerNormCuda, MatchesCpu) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  for (Dtype dt : {Dtype::F32, Dtype::F64}) {
    for (int64_t n : testing::odd_sizes()) {
      for (int64_t c : testing::odd_sizes()) {
        SCOPED_TRACE(::testing::Message() << dtype_name(dt) << " n=" << n << " c=" << c);
        DeviceParams h = random_device_params(n, c, dt, 1000 * n + c);
        DeviceParams d = to_cuda(h);
        RowNormRun rh = ln_forward(h.x, h.w, h.b, 1e-5), rd = ln_forward(d.x, d.w, d.b, 1e-5);
        EXPECT_CLOSE(rd.out, rh.out, dt);
        EXPECT_CLOSE(rd.ln.mean, rh.ln.mean, dt);
        EXPECT_CLOSE(rd.ln.rstd, rh.ln.rstd, dt);
        Tensor dxh = Tensor::empty({n, c}, dt), dxd = Tensor::empty({n, c}, dt, Device::cuda());
        Tensor dwh = Tensor::full({c}, 0.5, dt), dbh = Tensor::full({c}, -0.5, dt);
        Tensor dwd = dwh.to(Device::cuda()), dbd = dbh.to(Device::cuda());
        layernorm_backward(dxh, dwh, dbh, h.G, h.x, h.w, rh.ln);
        layernorm_backward(dxd, dwd, dbd, d.G, d.x, d.w, rd.ln);
        EXPECT_CLOSE(dxd, dxh, dt);
        EXPECT_CLOSE(dwd, dwh, dt);
        EXPECT_CLOSE(dbd, dbh, dt);

        RowNormRun sh = rms_forward(h.x, h.w, 1e-6), sd = rms_forward(d.x, d.w, 1e-6);
        EXPECT_CLOSE(sd.out, sh.out, dt);
        EXPECT_CLOSE(sd.rms.rstd, sh.rms.rstd, dt);
        Tensor dwh2 = Tensor::full({c}, 0.5, dt), dwd2 = dwh2.to(Device::cuda());
        rmsnorm_backward(dxh, dwh2, h.G, h.x, h.w, sh.rms);
        rmsnorm_backward(dxd, dwd2, d.G, d.x, d.w, sd.rms);
        EXPECT_CLOSE(dxd, dxh, dt);
        EXPECT_CLOSE(dwd2, dwh2, dt);
      }
    }
  }
}

TEST(NormCuda, EmptyInputsAndDeviceMismatch) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  const Device d = Device::cuda();
  Tensor x = Tensor::zeros({0, 5}, Dtype::F32, d);
  Tensor w = Tensor::full({5}, 1.0, Dtype::F32, d), b = Tensor::zeros({5}, Dtype::F32, d);
  RowNormRun r = ln_forward(x, w, b, 1e-5);
  EXPECT_EQ(r.out.numel(), 0);
  RowNormRun s = rms_forward(x, w, 1e-5);
  EXPECT_EQ(s.out.numel(), 0);
  Tensor dx = Tensor::zeros({0, 5}, Dtype::F32, d), dw = Tensor::zeros({5}, Dtype::F32, d);
  Tensor db = Tensor::zeros({5}, Dtype::F32, d);
  layernorm_backward(dx, dw, db, x, x, w, r.ln);
  for (float v : dw.to_vector<float>()) EXPECT_EQ(v, 0.0f);
  // Eval BatchNorm with zero rows still fills the cache.
  BatchNormRun e = bn_eval(x, w, b, b, w, 0.0);
  for (float v : e.cache.rstd.to_vector<float>()) EXPECT_FLOAT_EQ(v, 1.0f);
  expect_error_mentions([&] { ln_forward(Tensor::zeros({2, 5}), w, b, 1e-5); },
                        {"layernorm_forward", "cuda"});
}

// ---------------------------------------------------------------- CUDA: reduction edge cases

// The CUDA column reductions (norm_cuda.cu) split N into row slices per 32-channel tile: one
// slice (the block finishes alone) for N <= 64, otherwise S slices of ceil(N / S) rows with
// S = min(ceil(N / 64), 1024 / ceil(C / 32)), the last block of each tile to arrive combining
// them; BatchNorm's statistics take each slice in two-pass chunks of up to 256 rows.
// Compares BatchNorm (training and eval, forward and backward) and LayerNorm/RMSNorm backward on
// x [n, c] ~ N(x_mean, x_std) with the CPU, and checks that a second CUDA run gives the same bits.
// out_atol bounds |out - ref| (xhat carries the f32 rounding of the mean: ~1e-7 * |x_mean|);
// param_atol the parameter gradients, sums over n rows.
void expect_norms_match_cpu(int64_t n, int64_t c, Dtype dt, double x_mean, double x_std,
                            double out_atol, double param_atol, bool row_norms) {
  SCOPED_TRACE(::testing::Message() << dtype_name(dt) << " n=" << n << " c=" << c);
  const Device gpu = Device::cuda();
  Generator gen(7 * n + c);
  DeviceParams h = random_device_params(n, c, dt, 3 * n + c);
  h.x = Tensor::randn({n, c}, gen, dt, Device::cpu(), x_mean, x_std);
  const DeviceParams d = to_cuda(h);
  const double tol = atol_for(dt);
  for (bool training : {true, false}) {
    if (training && n < 2) continue;
    SCOPED_TRACE(training ? "training" : "eval");
    auto forward = [&](const DeviceParams& p) {
      return training ? bn_train(p.x, p.w, p.b, p.rm, p.rv, 0.1, 1e-5)
                      : bn_eval(p.x, p.w, p.b, p.rm, p.rv, 1e-5);
    };
    BatchNormRun rh = forward(h), rd = forward(d), rd2 = forward(d);
    EXPECT_TRUE(all_close(rd.out, rh.out, out_atol, tol));
    EXPECT_TRUE(all_close(rd.cache.mean, rh.cache.mean, tol, tol));
    EXPECT_TRUE(all_close(rd.cache.rstd, rh.cache.rstd, tol, tol));
    EXPECT_TRUE(testing::bitwise_equal(rd2.out, rd.out));
    EXPECT_TRUE(testing::bitwise_equal(rd2.cache.rstd, rd.cache.rstd));
    if (training) {
      EXPECT_TRUE(all_close(rd.running_mean, rh.running_mean, tol, tol));
      EXPECT_TRUE(all_close(rd.running_var, rh.running_var, tol, tol));
      EXPECT_TRUE(testing::bitwise_equal(rd2.running_var, rd.running_var));
    }
    auto backward = [&](const DeviceParams& p, const BatchNormRun& r, Tensor& dx, Tensor& dw,
                        Tensor& db) {
      dx = Tensor::full({n, c}, 99.0, dt, p.x.device());  // overwritten
      dw = Tensor::full({c}, 0.5, dt, p.x.device());
      db = Tensor::full({c}, -0.5, dt, p.x.device());
      batchnorm_backward(dx, dw, db, p.G, p.x, p.w, r.cache);
    };
    Tensor dxh, dwh, dbh, dxd, dwd, dbd, dxd2, dwd2, dbd2;
    backward(h, rh, dxh, dwh, dbh);
    backward(d, rd, dxd, dwd, dbd);
    backward(d, rd, dxd2, dwd2, dbd2);
    EXPECT_TRUE(all_close(dxd, dxh, tol, tol));
    EXPECT_TRUE(all_close(dwd, dwh, param_atol, tol));
    EXPECT_TRUE(all_close(dbd, dbh, param_atol, tol));
    EXPECT_TRUE(testing::bitwise_equal(dxd2, dxd));
    EXPECT_TRUE(testing::bitwise_equal(dwd2, dwd));
    EXPECT_TRUE(testing::bitwise_equal(dbd2, dbd));
  }
  if (!row_norms) return;
  RowNormRun lh = ln_forward(h.x, h.w, h.b, 1e-5), ld = ln_forward(d.x, d.w, d.b, 1e-5);
  Tensor dxh = Tensor::empty({n, c}, dt), dxd = Tensor::empty({n, c}, dt, gpu);
  Tensor dwh = Tensor::full({c}, 0.5, dt), dbh = Tensor::full({c}, -0.5, dt);
  Tensor dwd = dwh.to(gpu), dbd = dbh.to(gpu);
  layernorm_backward(dxh, dwh, dbh, h.G, h.x, h.w, lh.ln);
  layernorm_backward(dxd, dwd, dbd, d.G, d.x, d.w, ld.ln);
  EXPECT_TRUE(all_close(dxd, dxh, tol, tol));
  EXPECT_TRUE(all_close(dwd, dwh, param_atol, tol));
  EXPECT_TRUE(all_close(dbd, dbh, param_atol, tol));
  RowNormRun sh = rms_forward(h.x, h.w, 1e-6), sd = rms_forward(d.x, d.w, 1e-6);
  Tensor dwh2 = Tensor::full({c}, 0.5, dt), dwd2 = dwh2.to(gpu);
  rmsnorm_backward(dxh, dwh2, h.G, h.x, h.w, sh.rms);
  rmsnorm_backward(dxd, dwd2, d.G, d.x, d.w, sd.rms);
  EXPECT_TRUE(all_close(dxd, dxh, tol, tol));
  EXPECT_TRUE(all_close(dwd2, dwh2, param_atol, tol));
}

// f32 parameter gradients are sums of n terms of size ~1 in a different order than the CPU's
// double sums: allow ~1e-7 per row on top of the usual 1e-4.
double param_atol_for(Dtype dt, int64_t n) {
  return dt == Dtype::F32 ? 1e-4 + 1e-7 * static_cast<double>(n) : 1e-10 + 1e-14 * n;
}

TEST(NormCuda, ReductionSliceThresholds) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  for (Dtype dt : {Dtype::F32, Dtype::F64}) {
    // N = 1 (eval only), 2, 64 (one slice), 65 (two slices of 33 and 32 rows), 1000; C = 1 and
    // odd widths (partial column tiles), 64 and 128 (ZINC).
    for (int64_t n : {int64_t(1), int64_t(2), int64_t(64), int64_t(65), int64_t(1000)}) {
      for (int64_t c : {int64_t(1), int64_t(3), int64_t(64), int64_t(95), int64_t(128)}) {
        expect_norms_match_cpu(n, c, dt, 0.5, 1.5, atol_for(dt), param_atol_for(dt, n), true);
      }
    }
  }
}

TEST(NormCuda, ReductionLargeShapes) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  for (Dtype dt : {Dtype::F32, Dtype::F64}) {
    // ZINC-sized batches: 3000 nodes and 6400 edges.
    expect_norms_match_cpu(3000, 64, dt, 0.5, 1.5, atol_for(dt), param_atol_for(dt, 3000), true);
    expect_norms_match_cpu(6400, 128, dt, 0.5, 1.5, atol_for(dt), param_atol_for(dt, 6400),
                           false);
    // C = 1024 caps the slices at 32: N = 8192 gives slices of exactly one 256-row statistics
    // chunk, N = 8193 slices of 257 rows (a 256-row chunk and a 1-row chunk).
    for (int64_t n : {int64_t(8192), int64_t(8193)}) {
      expect_norms_match_cpu(n, 1024, dt, 0.5, 1.5, atol_for(dt), param_atol_for(dt, n), false);
    }
    // 512 slices of 586 rows (three chunks each).
    expect_norms_match_cpu(300000, 64, dt, 0.5, 1.5, atol_for(dt), param_atol_for(dt, 300000),
                           false);
    // 1057 channels: 34 column tiles, the last with one channel.
    expect_norms_match_cpu(200, 1057, dt, 0.5, 1.5, atol_for(dt), param_atol_for(dt, 200), true);
  }
}

TEST(NormCuda, BatchNormVarianceOfOffsetDataIsAccurate) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  // x ~ 1000 + N(0, 1) in f32: E[x^2] - E[x]^2 would cancel 6 digits and leave an error of
  // order 1 in the variance; the two-pass chunks merged with Chan's update keep rstd and the
  // running variance within 1e-4. out: xhat carries the mean's f32 rounding near 1000 (ulp 6e-5,
  // a few ulps after the merges) times rstd * |w| <= ~3: atol 2e-3.
  // dw = sum g * xhat carries that rounding times sum g (~sqrt(N) = 141 here): atol 0.1.
  expect_norms_match_cpu(20000, 64, Dtype::F32, 1000.0, 1.0, 2e-3, 0.1, false);
  // f64: the CPU reference's own mean (20000 values near 1000 added in turn) is good to ~1e-11,
  // which dw carries times sum g: atol 1e-8.
  expect_norms_match_cpu(20000, 64, Dtype::F64, 1000.0, 1.0, 1e-10, 1e-8, false);
}

TEST(NormCuda, ConsecutiveReductionsWithDifferentTilings) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  // Every multi-slice reduction elects its finishing block with counters shared by all such
  // kernels on the stream, and must leave them at zero: alternate tile counts (1, 2, 32) and
  // slice counts, and compare every result with the CPU.
  const Device gpu = Device::cuda();
  const Dtype dt = Dtype::F32;
  for (int round = 0; round < 2; ++round) {
    for (auto [n, c] : {std::pair<int64_t, int64_t>{5000, 1024}, {300, 64}, {1000, 7},
                        {65, 64}, {100000, 32}}) {
      SCOPED_TRACE(::testing::Message() << "round " << round << " n=" << n << " c=" << c);
      DeviceParams h = random_device_params(n, c, dt, 17 * n + c + round);
      DeviceParams d = to_cuda(h);
      BatchNormRun rh = bn_train(h.x, h.w, h.b, h.rm, h.rv, 0.1, 1e-5);
      BatchNormRun rd = bn_train(d.x, d.w, d.b, d.rm, d.rv, 0.1, 1e-5);
      EXPECT_CLOSE(rd.out, rh.out, dt);
      EXPECT_CLOSE(rd.running_var, rh.running_var, dt);
      Tensor dx = Tensor::empty({n, c}, dt), dxd = Tensor::empty({n, c}, dt, gpu);
      Tensor dw = Tensor::zeros({c}, dt), db = Tensor::zeros({c}, dt);
      Tensor dwd = dw.to(gpu), dbd = db.to(gpu);
      batchnorm_backward(dx, dw, db, h.G, h.x, h.w, rh.cache);
      batchnorm_backward(dxd, dwd, dbd, d.G, d.x, d.w, rd.cache);
      EXPECT_CLOSE(dxd, dx, dt);
      EXPECT_TRUE(all_close(dwd, dw, param_atol_for(dt, n), rtol_for(dt)));
      EXPECT_TRUE(all_close(dbd, db, param_atol_for(dt, n), rtol_for(dt)));
    }
  }
}

}  // namespace
}  // namespace lapis
