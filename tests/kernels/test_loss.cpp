// Losses: hand cases (including a weighted cross-entropy worked by hand), F64 gradient checks,
// label range errors, and CPU-vs-CUDA equivalence.
#include <gtest/gtest.h>

#include <cmath>

#include "core/cuda_api.h"
#include "core/tensor.h"
#include "kernels/loss.h"
#include "tests/common/test_util.h"

namespace lapis {
namespace {

CrossEntropyCache make_cache(int64_t N, int64_t K, Dtype dt, Device dev = Device::cpu()) {
  return {Tensor::empty({N, K}, dt, dev), Tensor::empty({1}, dt, dev)};
}

TEST(Loss, L1AndMseHandComputed) {
  Tensor pred = Tensor::from_vector<double>({1, 2, 3, 4}, {2, 2});
  Tensor target = Tensor::from_vector<double>({1, 0, 5, 3.5}, {2, 2});
  // pred - target = [0, 2, -2, 0.5].
  Tensor loss = Tensor::empty({1}, Dtype::F64);
  l1_loss_forward(loss, pred, target);
  EXPECT_DOUBLE_EQ(loss.item(), 4.5 / 4);  // (0 + 2 + 2 + 0.5) / 4
  mse_loss_forward(loss, pred, target);
  EXPECT_DOUBLE_EQ(loss.item(), 8.25 / 4);  // (0 + 4 + 4 + 0.25) / 4
  Tensor d = Tensor::empty({2, 2}, Dtype::F64);
  l1_loss_backward(d, 2.0, pred, target);  // 2 * sign(diff) / 4, sign(0) = 0
  EXPECT_EQ(d.to_vector<double>(), (std::vector<double>{0, 0.5, -0.5, 0.5}));
  mse_loss_backward(d, 1.0, pred, target);  // 2 * diff / 4
  EXPECT_EQ(d.to_vector<double>(), (std::vector<double>{0, 1, -1, 0.25}));
  // Empty inputs: the loss is 0 (not NaN).
  Tensor e = Tensor::empty({0, 3}, Dtype::F64);
  l1_loss_forward(loss, e, e);
  EXPECT_EQ(loss.item(), 0.0);
  mse_loss_forward(loss, e, e);
  EXPECT_EQ(loss.item(), 0.0);
}

TEST(Loss, WeightedCrossEntropyHandComputed) {
  // logits row 0 = [0, 0, 0], label 1: softmax = [1/3, 1/3, 1/3], nll = ln 3 = 1.0986122886681098.
  // logits row 1 = [ln 2, 0, 0], label 0: exp = [2, 1, 1], softmax = [0.5, 0.25, 0.25],
  //   nll = -ln 0.5 = ln 2 = 0.6931471805599453.
  // class weights [2, 0.5, 1]: w(row 0) = w[1] = 0.5, w(row 1) = w[0] = 2, weight_sum = 2.5.
  // loss = (0.5 ln 3 + 2 ln 2) / 2.5 = (0.5493061443340549 + 1.3862943611198906) / 2.5
  //      = 0.7742402021815782.
  // Unweighted: (ln 3 + ln 2) / 2 = 0.8958797346140275.
  for (Dtype label_dt : {Dtype::I32, Dtype::I64}) {
    Tensor logits = Tensor::from_vector<double>({0, 0, 0, std::log(2.0), 0, 0}, {2, 3});
    Tensor labels = Tensor::from_vector<int64_t>({1, 0}, {2}).to(label_dt);
    Tensor weights = Tensor::from_vector<double>({2, 0.5, 1}, {3});
    Tensor loss = Tensor::empty({1}, Dtype::F64);
    CrossEntropyCache cache = make_cache(2, 3, Dtype::F64);
    cross_entropy_forward(loss, cache, logits, labels, weights);
    EXPECT_NEAR(loss.item(), 0.7742402021815782, 1e-15);
    EXPECT_DOUBLE_EQ(cache.weight_sum.item(), 2.5);
    EXPECT_TRUE(testing::all_close(
        cache.probs, Tensor::from_vector<double>({1. / 3, 1. / 3, 1. / 3, 0.5, 0.25, 0.25}, {2, 3}),
        1e-15, 1e-15));
    // dL_dlogits = w[y_i] (probs_i - onehot_i) / 2.5: row 0 scale 0.2, row 1 scale 0.8.
    // row 0: 0.2 * [1/3, -2/3, 1/3]; row 1: 0.8 * [-0.5, 0.25, 0.25] = [-0.4, 0.2, 0.2].
    Tensor d = Tensor::empty({2, 3}, Dtype::F64);
    cross_entropy_backward(d, 1.0, cache, labels, weights);
    EXPECT_TRUE(testing::all_close(
        d, Tensor::from_vector<double>({0.2 / 3, -0.4 / 3, 0.2 / 3, -0.4, 0.2, 0.2}, {2, 3}),
        1e-15, 1e-14));
    cross_entropy_forward(loss, cache, logits, labels, Tensor());
    EXPECT_NEAR(loss.item(), 0.8958797346140275, 1e-15);
    EXPECT_DOUBLE_EQ(cache.weight_sum.item(), 2.0);
  }
}

TEST(Loss, CrossEntropyInvariants) {
  Generator gen(3);
  Tensor logits = Tensor::randn({7, 5}, gen, Dtype::F64, Device::cpu(), 0.0, 3.0);
  Tensor labels = Tensor::randint({7}, gen, 0, 5);
  Tensor loss = Tensor::empty({1}, Dtype::F64);
  CrossEntropyCache cache = make_cache(7, 5, Dtype::F64);
  cross_entropy_forward(loss, cache, logits, labels, Tensor());
  const std::vector<double> p = cache.probs.to_vector<double>();
  for (int64_t i = 0; i < 7; ++i) {
    double s = 0;
    for (int64_t k = 0; k < 5; ++k) s += p[i * 5 + k];
    EXPECT_NEAR(s, 1.0, 1e-14);
  }
  // Adding a constant to a row changes nothing; large logits do not overflow.
  Tensor shifted = logits.clone();
  for (int64_t i = 0; i < 5; ++i) shifted.data<double>()[i] += 1000.0;
  Tensor loss2 = Tensor::empty({1}, Dtype::F64);
  cross_entropy_forward(loss2, cache, shifted, labels, Tensor());
  EXPECT_NEAR(loss2.item(), loss.item(), 1e-12);
  // Uniform class weights give the unweighted loss.
  cross_entropy_forward(loss2, cache, logits, labels, Tensor::full({5}, 3.0, Dtype::F64));
  EXPECT_NEAR(loss2.item(), loss.item(), 1e-14);
  // No rows: loss 0.
  CrossEntropyCache empty = make_cache(0, 5, Dtype::F64);
  cross_entropy_forward(loss2, empty, Tensor::empty({0, 5}, Dtype::F64),
                        Tensor::empty({0}, Dtype::I64), Tensor());
  EXPECT_EQ(loss2.item(), 0.0);
  Tensor d0 = Tensor::empty({0, 5}, Dtype::F64);
  cross_entropy_backward(d0, 1.0, empty, Tensor::empty({0}, Dtype::I64), Tensor());
}

TEST(Loss, GradientChecks) {
  Generator gen(17);
  const double upstream = 1.7;  // dL_dloss
  Tensor pred = Tensor::randn({6, 4}, gen, Dtype::F64);
  Tensor target = Tensor::randn({6, 4}, gen, Dtype::F64);
  Tensor loss = Tensor::empty({1}, Dtype::F64);
  Tensor d = Tensor::empty({6, 4}, Dtype::F64);
  auto l1 = [&] {
    l1_loss_forward(loss, pred, target);
    return upstream * loss.item();
  };
  l1_loss_backward(d, upstream, pred, target);
  EXPECT_TRUE(testing::gradient_matches(l1, pred, d));  // |pred - target| >> step here
  auto mse = [&] {
    mse_loss_forward(loss, pred, target);
    return upstream * loss.item();
  };
  mse_loss_backward(d, upstream, pred, target);
  EXPECT_TRUE(testing::gradient_matches(mse, pred, d));
  EXPECT_TRUE(testing::gradient_matches(mse, target, [&] {
    Tensor neg = d.clone();
    for (int64_t i = 0; i < neg.numel(); ++i) neg.data<double>()[i] *= -1;
    return neg;
  }()));

  Tensor logits = Tensor::randn({9, 6}, gen, Dtype::F64, Device::cpu(), 0.0, 2.0);
  Tensor labels = Tensor::randint({9}, gen, 0, 6, Dtype::I32);
  Tensor weights = Tensor::rand_uniform({6}, gen, 0.2, 2.0, Dtype::F64);
  CrossEntropyCache cache = make_cache(9, 6, Dtype::F64);
  for (bool weighted : {false, true}) {
    const Tensor w = weighted ? weights : Tensor();
    auto ce = [&] {
      cross_entropy_forward(loss, cache, logits, labels, w);
      return upstream * loss.item();
    };
    ce();
    Tensor dl = Tensor::empty({9, 6}, Dtype::F64);
    cross_entropy_backward(dl, upstream, cache, labels, w);
    EXPECT_TRUE(testing::gradient_matches(ce, logits, dl)) << "weighted " << weighted;
  }
}

TEST(Loss, LabelOutOfRangeNamesLabelAndRow) {
  Tensor logits = Tensor::zeros({4, 3});
  Tensor loss = Tensor::empty({1});
  CrossEntropyCache cache = make_cache(4, 3, Dtype::F32);
  for (int64_t bad : {int64_t(3), int64_t(-1)}) {
    Tensor labels = Tensor::from_vector<int64_t>({0, 2, bad, 1}, {4});
    try {
      cross_entropy_forward(loss, cache, logits, labels, Tensor());
      FAIL() << "expected an error";
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("label " + std::to_string(bad)), std::string::npos) << msg;
      EXPECT_NE(msg.find("row 2"), std::string::npos) << msg;
    }
    Tensor d = Tensor::empty({4, 3});
    EXPECT_THROW(cross_entropy_backward(d, 1.0, cache, labels, Tensor()), Error);
  }
}

TEST(Loss, ErrorsNameTheProblem) {
  Tensor pred = Tensor::zeros({3, 2}), target = Tensor::zeros({2, 3});
  Tensor loss = Tensor::empty({1});
  try {
    mse_loss_forward(loss, pred, target);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("mse_loss_forward"), std::string::npos) << msg;
    EXPECT_NE(msg.find("[2, 3]"), std::string::npos) << msg;
  }
  Tensor loss2 = Tensor::empty({2});
  EXPECT_THROW(l1_loss_forward(loss2, pred, pred), Error);
  Tensor loss64 = Tensor::empty({1}, Dtype::F64);
  EXPECT_THROW(l1_loss_forward(loss64, pred, pred), Error);
  Tensor logits = Tensor::zeros({4, 3});
  CrossEntropyCache cache = make_cache(4, 3, Dtype::F32);
  Tensor float_labels = Tensor::zeros({4});
  EXPECT_THROW(cross_entropy_forward(loss, cache, logits, float_labels, Tensor()), Error);
  Tensor short_labels = Tensor::zeros({3}, Dtype::I64);
  EXPECT_THROW(cross_entropy_forward(loss, cache, logits, short_labels, Tensor()), Error);
  Tensor labels = Tensor::zeros({4}, Dtype::I64);
  Tensor bad_weights = Tensor::full({2}, 1.0);
  EXPECT_THROW(cross_entropy_forward(loss, cache, logits, labels, bad_weights), Error);
  Tensor weights64 = Tensor::full({3}, 1.0, Dtype::F64);
  EXPECT_THROW(cross_entropy_forward(loss, cache, logits, labels, weights64), Error);
  CrossEntropyCache bad_cache = make_cache(4, 2, Dtype::F32);
  EXPECT_THROW(cross_entropy_forward(loss, bad_cache, logits, labels, Tensor()), Error);
  Tensor no_classes = Tensor::zeros({4, 0});
  EXPECT_THROW(cross_entropy_forward(loss, cache, no_classes, labels, Tensor()), Error);
}

// ---- CUDA ----

TEST(LossCuda, PointwiseMatchesCpu) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  const Device gpu = Device::cuda();
  Generator gen(0xdeadbeef);
  for (Dtype dt : {Dtype::F32, Dtype::F64}) {
    for (int64_t N : {int64_t(0), int64_t(1), int64_t(7), int64_t(31), int64_t(32), int64_t(33),
                      int64_t(257), int64_t(100000)}) {
      for (int64_t C : {int64_t(1), int64_t(3), int64_t(33)}) {
        Tensor pred = Tensor::randn({N, C}, gen, dt), target = Tensor::randn({N, C}, gen, dt);
        const Tensor pg = pred.to(gpu), tg = target.to(gpu);
        Tensor loss = Tensor::empty({1}, dt), loss_g = Tensor::empty({1}, dt, gpu);
        Tensor d = Tensor::empty({N, C}, dt), d_g = Tensor::empty({N, C}, dt, gpu);
        // Means of up to 3.3e6 terms ~1: the f32 tree sum is within ~1e-5 relative of the
        // CPU's double sum; f64 within 1e-12.
        const double tol = dt == Dtype::F32 ? 1e-5 : 1e-12;
        l1_loss_forward(loss, pred, target);
        l1_loss_forward(loss_g, pg, tg);
        EXPECT_TRUE(testing::all_close(loss_g, loss, tol, tol)) << "N " << N << " C " << C;
        mse_loss_forward(loss, pred, target);
        mse_loss_forward(loss_g, pg, tg);
        EXPECT_TRUE(testing::all_close(loss_g, loss, tol, tol)) << "N " << N << " C " << C;
        l1_loss_backward(d, 0.5, pred, target);
        l1_loss_backward(d_g, 0.5, pg, tg);
        EXPECT_TRUE(testing::bitwise_equal(d_g, d));
        mse_loss_backward(d, 0.5, pred, target);
        mse_loss_backward(d_g, 0.5, pg, tg);
        EXPECT_TRUE(testing::all_close(d_g, d, 0.0, 1e-6));
      }
    }
  }
}

TEST(LossCuda, CrossEntropyMatchesCpu) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  const Device gpu = Device::cuda();
  Generator gen(0xdeadbeef);
  for (Dtype dt : {Dtype::F32, Dtype::F64}) {
    // f32: exp/log ulps plus the row and tree sums: atol 1e-6 on probabilities and gradients,
    // rtol 1e-5 on the loss. f64: 1e-12.
    const double atol = dt == Dtype::F32 ? 1e-6 : 1e-13, rtol = dt == Dtype::F32 ? 1e-5 : 1e-12;
    for (int64_t N : {int64_t(0), int64_t(1), int64_t(7), int64_t(31), int64_t(32), int64_t(33),
                      int64_t(257), int64_t(20000)}) {
      for (int64_t K : testing::odd_sizes()) {
        for (Dtype label_dt : {Dtype::I32, Dtype::I64}) {
          for (bool weighted : {false, true}) {
            Tensor logits = Tensor::randn({N, K}, gen, dt, Device::cpu(), 0.0, 3.0);
            Tensor labels = Tensor::randint({N}, gen, 0, K, label_dt);
            Tensor w = weighted ? Tensor::rand_uniform({K}, gen, 0.1, 2.0, dt) : Tensor();
            const Tensor wg = weighted ? w.to(gpu) : Tensor();
            const Tensor lg = labels.to(gpu);
            Tensor loss = Tensor::empty({1}, dt), loss_g = Tensor::empty({1}, dt, gpu);
            CrossEntropyCache cache = make_cache(N, K, dt), cache_g = make_cache(N, K, dt, gpu);
            cross_entropy_forward(loss, cache, logits, labels, w);
            cross_entropy_forward(loss_g, cache_g, logits.to(gpu), lg, wg);
            EXPECT_TRUE(testing::all_close(loss_g, loss, atol, rtol))
                << "N " << N << " K " << K << " weighted " << weighted;
            EXPECT_TRUE(testing::all_close(cache_g.probs, cache.probs, atol, rtol));
            EXPECT_TRUE(testing::all_close(cache_g.weight_sum, cache.weight_sum, atol, rtol));
            Tensor d = Tensor::empty({N, K}, dt), d_g = Tensor::empty({N, K}, dt, gpu);
            cross_entropy_backward(d, 2.0, cache, labels, w);
            cross_entropy_backward(d_g, 2.0, cache_g, lg, wg);
            EXPECT_TRUE(testing::all_close(d_g, d, atol, rtol))
                << "N " << N << " K " << K << " weighted " << weighted;
          }
        }
      }
    }
  }
}

TEST(LossCuda, LabelOutOfRangeIsReported) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  const Device gpu = Device::cuda();
  Tensor logits = Tensor::zeros({4, 3}, Dtype::F32, gpu);
  Tensor labels = Tensor::from_vector<int32_t>({0, 2, 3, 1}, {4}, gpu);
  Tensor loss = Tensor::empty({1}, Dtype::F32, gpu);
  CrossEntropyCache cache = make_cache(4, 3, Dtype::F32, gpu);
  cross_entropy_forward(loss, cache, logits, labels, Tensor());  // no host sync here
  EXPECT_THROW(cuda_synchronize(), Error);
  // The error is cleared once thrown: good labels work afterwards.
  Tensor good = Tensor::from_vector<int32_t>({0, 2, 1, 1}, {4}, gpu);
  cross_entropy_forward(loss, cache, logits, good, Tensor());
  EXPECT_NEAR(loss.item(), std::log(3.0), 1e-6);
  Tensor d = Tensor::empty({4, 3}, Dtype::F32, gpu);
  cross_entropy_backward(d, 1.0, cache, labels, Tensor());
  EXPECT_THROW(cuda_synchronize(), Error);
}

TEST(LossCuda, DeviceMismatchThrows) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  const Device gpu = Device::cuda();
  Tensor logits = Tensor::zeros({4, 3}, Dtype::F32, gpu);
  Tensor labels = Tensor::zeros({4}, Dtype::I64);  // on the CPU
  Tensor loss = Tensor::empty({1}, Dtype::F32, gpu);
  CrossEntropyCache cache = make_cache(4, 3, Dtype::F32, gpu);
  EXPECT_THROW(cross_entropy_forward(loss, cache, logits, labels, Tensor()), Error);
  Tensor cpu_loss = Tensor::empty({1});
  EXPECT_THROW(mse_loss_forward(cpu_loss, logits, logits), Error);
}

}  // namespace
}  // namespace lapis
