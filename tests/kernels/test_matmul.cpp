// matmul and linear: hand cases, a naive triple-loop reference for every transpose combination,
// alpha/beta, K = 0, F64 gradient checks of linear_backward, and CPU-vs-CUDA equivalence.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <string>
#include <limits>

#include "core/cuda_api.h"
#include "core/tensor.h"
#include "kernels/elementwise.h"
#include "kernels/launch_batch.h"
#include "kernels/matmul.h"
#include "tests/common/test_util.h"

namespace lapis {
namespace {

// Stored shape of a operand whose op() is [rows, cols].
Shape stored(int64_t rows, int64_t cols, bool trans) {
  return trans ? Shape{cols, rows} : Shape{rows, cols};
}

// out = alpha * op(a) @ op(b) + beta * out by three loops in F64 (beta == 0 ignores out).
Tensor naive_matmul(const Tensor& a, const Tensor& b, const Tensor& out, bool ta, bool tb,
                    double alpha, double beta) {
  const Tensor A = a.to(Dtype::F64), B = b.to(Dtype::F64);
  Tensor O = out.to(Dtype::F64);
  const int64_t M = O.size(0), N = O.size(1), K = ta ? A.size(0) : A.size(1);
  const double* pa = A.data<double>();
  const double* pb = B.data<double>();
  double* po = O.data<double>();
  for (int64_t i = 0; i < M; ++i) {
    for (int64_t j = 0; j < N; ++j) {
      double sum = 0;
      for (int64_t k = 0; k < K; ++k) {
        const double av = ta ? pa[k * M + i] : pa[i * K + k];
        const double bv = tb ? pb[j * K + k] : pb[k * N + j];
        sum += av * bv;
      }
      po[i * N + j] = alpha * sum + (beta == 0.0 ? 0.0 : beta * po[i * N + j]);
    }
  }
  return O;
}

TEST(Matmul, HandComputed) {
  // [[1, 2, 3], [4, 5, 6]] @ [[1, 0], [0, 1], [1, 1]] = [[4, 5], [10, 11]].
  Tensor a = Tensor::from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor b = Tensor::from_vector<float>({1, 0, 0, 1, 1, 1}, {3, 2});
  Tensor out = Tensor::full({2, 2}, std::numeric_limits<float>::quiet_NaN());
  matmul(out, a, b);
  EXPECT_EQ(out.to_vector<float>(), (std::vector<float>{4, 5, 10, 11}));
  // 2 * a @ b + 0.5 * out = [[10, 12.5], [25, 27.5]].
  matmul(out, a, b, false, false, 2.0, 0.5);
  EXPECT_EQ(out.to_vector<float>(), (std::vector<float>{10, 12.5f, 25, 27.5f}));
  // a^T a [3, 3]: first row = [1*1+4*4, 1*2+4*5, 1*3+4*6] = [17, 22, 27].
  Tensor ata = Tensor::empty({3, 3});
  matmul(ata, a, a, true, false);
  std::vector<float> v = ata.to_vector<float>();
  EXPECT_EQ(v[0], 17);
  EXPECT_EQ(v[1], 22);
  EXPECT_EQ(v[2], 27);
  EXPECT_EQ(v[4], 29);  // 2*2 + 5*5
}

TEST(Matmul, MatchesNaiveAllTransposes) {
  Generator gen(11);
  const int64_t dims[][3] = {{1, 1, 1}, {7, 5, 3}, {33, 31, 7}, {4, 32, 65}, {17, 1, 9}};
  for (Dtype dt : {Dtype::F32, Dtype::F64}) {
    for (const auto& d : dims) {
      const int64_t M = d[0], N = d[1], K = d[2];
      for (int t = 0; t < 4; ++t) {
        const bool ta = t & 1, tb = t & 2;
        for (double beta : {0.0, 1.0, -0.5}) {
          const double alpha = beta == 0.0 ? 1.0 : 1.5;
          Tensor a = Tensor::randn(stored(M, K, ta), gen, dt);
          Tensor b = Tensor::randn(stored(K, N, tb), gen, dt);
          Tensor out = Tensor::randn({M, N}, gen, dt);
          const Tensor expected = naive_matmul(a, b, out, ta, tb, alpha, beta);
          matmul(out, a, b, ta, tb, alpha, beta);
          // f32: K <= 65 products of unit normals, so atol 1e-4 covers rounding.
          const double atol = dt == Dtype::F32 ? 1e-4 : 1e-12;
          EXPECT_TRUE(testing::all_close(out, expected, atol, 1e-5))
              << "M " << M << " N " << N << " K " << K << " ta " << ta << " tb " << tb
              << " beta " << beta;
        }
      }
    }
  }
}

// Products of >= 2^20 multiply-adds run as output tiles on several threads: still equal to the
// naive loops (edge tiles, transposes, beta), and bitwise the same for 1 and 3 threads.
TEST(Matmul, LargeProductsAreThreadedAndThreadCountIndependent) {
  Generator gen(13);
  const int64_t dims[][3] = {{700, 70, 40}, {257, 33, 200}, {64, 64, 3000}};
  const char* saved = std::getenv("LAPIS_NUM_THREADS");
  const std::string saved_value = saved ? saved : "";
  for (const auto& d : dims) {
    const int64_t M = d[0], N = d[1], K = d[2];
    for (int t = 0; t < 4; ++t) {
      const bool ta = t & 1, tb = t & 2;
      for (double beta : {0.0, 0.5}) {
        Tensor a = Tensor::randn(stored(M, K, ta), gen, Dtype::F64);
        Tensor b = Tensor::randn(stored(K, N, tb), gen, Dtype::F64);
        const Tensor init = Tensor::randn({M, N}, gen, Dtype::F64);
        const Tensor expected = naive_matmul(a, b, init, ta, tb, 1.25, beta);
        Tensor one = init.clone(), three = init.clone();
        setenv("LAPIS_NUM_THREADS", "1", 1);
        matmul(one, a, b, ta, tb, 1.25, beta);
        setenv("LAPIS_NUM_THREADS", "3", 1);
        matmul(three, a, b, ta, tb, 1.25, beta);
        EXPECT_TRUE(testing::all_close(three, expected, 1e-10, 1e-10))
            << "M " << M << " N " << N << " K " << K << " ta " << ta << " tb " << tb;
        EXPECT_TRUE(testing::bitwise_equal(one, three))
            << "M " << M << " N " << N << " K " << K << " ta " << ta << " tb " << tb;
      }
    }
  }
  if (saved) setenv("LAPIS_NUM_THREADS", saved_value.c_str(), 1); else unsetenv("LAPIS_NUM_THREADS");
}

TEST(Matmul, BetaZeroIgnoresNaN) {
  Generator gen(3);
  Tensor a = Tensor::randn({5, 4}, gen, Dtype::F64);
  Tensor b = Tensor::randn({4, 6}, gen, Dtype::F64);
  Tensor out = Tensor::full({5, 6}, std::nan(""), Dtype::F64);
  matmul(out, a, b, false, false, 2.0, 0.0);
  EXPECT_TRUE(testing::all_close(out, naive_matmul(a, b, out, false, false, 2.0, 0.0), 1e-12,
                                 1e-12));
}

TEST(Matmul, ZeroInnerDimension) {
  // K = 0: op(a) @ op(b) is all zeros, so out = beta * out.
  Tensor a = Tensor::zeros({3, 0}, Dtype::F64);
  Tensor b = Tensor::zeros({0, 2}, Dtype::F64);
  Tensor out = Tensor::from_vector<double>({1, 2, 3, 4, 5, 6}, {3, 2});
  matmul(out, a, b, false, false, 1.0, 2.0);
  EXPECT_EQ(out.to_vector<double>(), (std::vector<double>{2, 4, 6, 8, 10, 12}));
  Tensor nan_out = Tensor::full({3, 2}, std::nan(""), Dtype::F64);
  matmul(nan_out, a, b);
  EXPECT_EQ(nan_out.to_vector<double>(), std::vector<double>(6, 0.0));
  // Empty M or N: nothing to do.
  Tensor e = Tensor::empty({0, 2}, Dtype::F64);
  matmul(e, Tensor::zeros({0, 5}, Dtype::F64), Tensor::zeros({5, 2}, Dtype::F64));
  EXPECT_EQ(e.numel(), 0);
}

TEST(Matmul, ErrorsNameTheProblem) {
  Tensor a = Tensor::zeros({3, 4}), b = Tensor::zeros({5, 2}), out = Tensor::zeros({3, 2});
  try {
    matmul(out, a, b);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("inner dimensions"), std::string::npos) << msg;
    EXPECT_NE(msg.find("[3, 4]"), std::string::npos) << msg;
  }
  Tensor b2 = Tensor::zeros({4, 2});
  Tensor wrong_out = Tensor::zeros({2, 3});
  EXPECT_THROW(matmul(wrong_out, a, b2), Error);
  Tensor b64 = Tensor::zeros({4, 2}, Dtype::F64);
  EXPECT_THROW(matmul(out, a, b64), Error);
  Tensor ai = Tensor::zeros({3, 4}, Dtype::I32);
  EXPECT_THROW(matmul(out, ai, b2), Error);
  Tensor sq = Tensor::zeros({3, 3});
  EXPECT_THROW(matmul(sq, sq, sq), Error);  // out aliases the inputs
  Tensor v = Tensor::zeros({4});
  EXPECT_THROW(matmul(out, a, v), Error);
}

TEST(Linear, HandComputed) {
  // x [2, 3], weight [2, 3], bias [2]: out = x @ w^T + b.
  Tensor x = Tensor::from_vector<double>({1, 2, 3, -1, 0, 1}, {2, 3});
  Tensor w = Tensor::from_vector<double>({1, 1, 1, 0, 2, -1}, {2, 3});
  Tensor bias = Tensor::from_vector<double>({0.5, -1}, {2});
  Tensor out = Tensor::empty({2, 2}, Dtype::F64);
  linear_forward(out, x, w, bias);
  // row 0: [1+2+3, 0+4-3] + b = [6.5, 0]; row 1: [-1+0+1, 0+0-1] + b = [0.5, -2].
  EXPECT_EQ(out.to_vector<double>(), (std::vector<double>{6.5, 0, 0.5, -2}));
  linear_forward(out, x, w, Tensor());
  EXPECT_EQ(out.to_vector<double>(), (std::vector<double>{6, 1, 0, -1}));

  // Backward with dL_dout = ones: dL_dx rows = sum of weight rows = [1, 3, 0];
  // dL_dweight rows = column sums of x = [0, 2, 4] (+= onto 1); dL_dbias = [2, 2] (+= onto 1).
  Tensor g = Tensor::full({2, 2}, 1.0, Dtype::F64);
  Tensor dx = Tensor::empty({2, 3}, Dtype::F64);
  Tensor dw = Tensor::full({2, 3}, 1.0, Dtype::F64);
  Tensor db = Tensor::full({2}, 1.0, Dtype::F64);
  linear_backward(dx, dw, db, g, x, w);
  EXPECT_EQ(dx.to_vector<double>(), (std::vector<double>{1, 3, 0, 1, 3, 0}));
  EXPECT_EQ(dw.to_vector<double>(), (std::vector<double>{1, 3, 5, 1, 3, 5}));
  EXPECT_EQ(db.to_vector<double>(), (std::vector<double>{3, 3}));
  // Undefined dL_dx and dL_dbias are skipped.
  Tensor none_x, none_b;
  linear_backward(none_x, dw, none_b, g, x, w);
  EXPECT_EQ(dw.to_vector<double>(), (std::vector<double>{1, 5, 9, 1, 5, 9}));
}

TEST(Linear, GradientCheck) {
  Generator gen(5);
  const int64_t N = 6, IN = 5, OUT = 4;
  Tensor x = Tensor::randn({N, IN}, gen, Dtype::F64);
  Tensor w = Tensor::randn({OUT, IN}, gen, Dtype::F64);
  Tensor bias = Tensor::randn({OUT}, gen, Dtype::F64);
  const Tensor G = Tensor::randn({N, OUT}, gen, Dtype::F64);
  Tensor out = Tensor::empty({N, OUT}, Dtype::F64);
  auto loss = [&] {
    linear_forward(out, x, w, bias);
    return testing::dot(G, out);
  };
  Tensor dx = Tensor::empty({N, IN}, Dtype::F64);
  Tensor dw = Tensor::zeros({OUT, IN}, Dtype::F64);
  Tensor db = Tensor::zeros({OUT}, Dtype::F64);
  linear_backward(dx, dw, db, G, x, w);
  EXPECT_TRUE(testing::gradient_matches(loss, x, dx));
  EXPECT_TRUE(testing::gradient_matches(loss, w, dw));
  EXPECT_TRUE(testing::gradient_matches(loss, bias, db));
}

// out = relu?(x w^T + b) + residual by loops in F64, laid out [N, OUT] (groups == 1) or
// [G, N, OUT / G].
Tensor naive_linear(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& residual,
                    bool relu, int64_t groups) {
  const Tensor X = x.to(Dtype::F64), W = w.to(Dtype::F64);
  const int64_t N = X.size(0), IN = X.size(1), OUT = W.size(0), OG = OUT / groups;
  const std::vector<double> b = bias.defined() ? bias.to(Dtype::F64).to_vector<double>()
                                               : std::vector<double>(OUT, 0.0);
  const std::vector<double> r = residual.defined() ? residual.to(Dtype::F64).to_vector<double>()
                                                   : std::vector<double>(N * OUT, 0.0);
  Tensor out = groups == 1 ? Tensor::empty({N, OUT}, Dtype::F64)
                           : Tensor::empty({groups, N, OG}, Dtype::F64);
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t o = 0; o < OUT; ++o) {
      double v = 0;
      for (int64_t k = 0; k < IN; ++k) v += X.data<double>()[n * IN + k] * W.data<double>()[o * IN + k];
      v += b[o];
      if (relu) v = v > 0 ? v : 0;
      v += r[n * OUT + o];
      out.data<double>()[(o / OG) * N * OG + n * OG + o % OG] = v;
    }
  }
  return out;
}

TEST(Linear, EpilogueAndGroupedOutputMatchNaive) {
  Generator gen(11);
  const int64_t N = 9, IN = 7, OUT = 6;
  Tensor x = Tensor::randn({N, IN}, gen, Dtype::F64), w = Tensor::randn({OUT, IN}, gen, Dtype::F64);
  Tensor bias = Tensor::randn({OUT}, gen, Dtype::F64), res = Tensor::randn({N, OUT}, gen, Dtype::F64);
  Tensor out = Tensor::empty({N, OUT}, Dtype::F64);
  linear_forward(out, x, w, bias, res, /*relu=*/true);
  EXPECT_TRUE(testing::all_close(out, naive_linear(x, w, bias, res, true, 1), 1e-12, 1e-12));
  linear_forward(out, x, w, Tensor(), res, /*relu=*/false);
  EXPECT_TRUE(testing::all_close(out, naive_linear(x, w, Tensor(), res, false, 1), 1e-12, 1e-12));
  // Grouped: [3, N, 2], group g = output columns 2g, 2g + 1.
  Tensor grouped = Tensor::empty({3, N, 2}, Dtype::F64);
  linear_forward(grouped, x, w, bias);
  EXPECT_TRUE(testing::all_close(grouped, naive_linear(x, w, bias, Tensor(), false, 3), 1e-12, 1e-12));
  // A grouped output with a residual or relu, and a group count that does not divide OUT.
  EXPECT_THROW(linear_forward(grouped, x, w, bias, Tensor(), true), Error);
  Tensor bad = Tensor::empty({4, N, 2}, Dtype::F64);
  EXPECT_THROW(linear_forward(bad, x, w, bias), Error);
}

TEST(Linear, GroupedAndAccumulatingGradientCheck) {
  Generator gen(6);
  const int64_t N = 5, IN = 4, OUT = 6, G = 3;
  Tensor x = Tensor::randn({N, IN}, gen, Dtype::F64);
  Tensor w = Tensor::randn({OUT, IN}, gen, Dtype::F64);
  Tensor bias = Tensor::randn({OUT}, gen, Dtype::F64);
  const Tensor Gout = Tensor::randn({G, N, OUT / G}, gen, Dtype::F64);
  Tensor out = Tensor::empty({G, N, OUT / G}, Dtype::F64);
  auto loss = [&] {
    linear_forward(out, x, w, bias);
    return testing::dot(Gout, out);
  };
  const Tensor prior = Tensor::randn({N, IN}, gen, Dtype::F64);
  Tensor dx = prior.clone();  // dx_plus = dx itself: accumulates onto it
  Tensor dw = Tensor::zeros({OUT, IN}, Dtype::F64);
  Tensor db = Tensor::zeros({OUT}, Dtype::F64);
  linear_backward(dx, dw, db, Gout, x, w, /*dx_plus=*/dx);
  Tensor dx_only = dx.clone();
  axpy(dx_only, -1.0, prior);
  EXPECT_TRUE(testing::gradient_matches(loss, x, dx_only));
  EXPECT_TRUE(testing::gradient_matches(loss, w, dw));
  EXPECT_TRUE(testing::gradient_matches(loss, bias, db));
  // relu + residual, ungrouped: d/dx of G . (relu(x w^T + b) + r).
  const Tensor G2 = Tensor::randn({N, OUT}, gen, Dtype::F64);
  Tensor res = Tensor::randn({N, OUT}, gen, Dtype::F64);
  Tensor out2 = Tensor::empty({N, OUT}, Dtype::F64);
  auto loss2 = [&] {
    linear_forward(out2, x, w, bias, res, /*relu=*/true);
    return testing::dot(G2, out2);
  };
  loss2();
  std::vector<double> g2 = G2.to_vector<double>();
  const std::vector<double> o2 = out2.to_vector<double>(), r2 = res.to_vector<double>();
  for (size_t i = 0; i < g2.size(); ++i) g2[i] = o2[i] - r2[i] > 0 ? g2[i] : 0.0;  // relu mask
  const Tensor G2_masked = Tensor::from_vector<double>(g2, {N, OUT});
  Tensor dx2 = Tensor::empty({N, IN}, Dtype::F64), dw2 = Tensor::zeros({OUT, IN}, Dtype::F64);
  Tensor db2 = Tensor::zeros({OUT}, Dtype::F64);
  linear_backward(dx2, dw2, db2, G2_masked, x, w);
  EXPECT_TRUE(testing::gradient_matches(loss2, x, dx2));
  EXPECT_TRUE(testing::gradient_matches(loss2, w, dw2));
}

// through_relu: x = relu(z); the returned gradient is w.r.t. z, i.e. the plain input gradient
// through activation_backward, here checked against finite differences in z.
TEST(Linear, ThroughReluIsTheGradientOfTheReluInput) {
  Generator gen(7);
  const int64_t N = 6, IN = 5, OUT = 3;
  Tensor z = Tensor::randn({N, IN}, gen, Dtype::F64);
  Tensor w = Tensor::randn({OUT, IN}, gen, Dtype::F64);
  const Tensor G = Tensor::randn({N, OUT}, gen, Dtype::F64);
  Tensor x = Tensor::empty({N, IN}, Dtype::F64), out = Tensor::empty({N, OUT}, Dtype::F64);
  auto loss = [&] {
    activation_forward(x, z, Activation::ReLU);
    linear_forward(out, x, w, Tensor());
    return testing::dot(G, out);
  };
  loss();
  const Tensor x_relu = x.clone();
  Tensor dz = Tensor::randn({N, IN}, gen, Dtype::F64);  // overwritten (no accumulate)
  Tensor dw = Tensor::zeros({OUT, IN}, Dtype::F64), no_bias;
  linear_backward(dz, dw, no_bias, G, x_relu, w, /*dx_plus=*/Tensor(), /*through_relu=*/true);
  EXPECT_TRUE(testing::gradient_matches(loss, z, dz));
  // dx_plus is added after the mask, into a separate output or onto dL_dx itself.
  const Tensor ones = Tensor::full({N, IN}, 1.0, Dtype::F64);
  Tensor sum = Tensor::empty({N, IN}, Dtype::F64);
  linear_backward(sum, dw, no_bias, G, x_relu, w, /*dx_plus=*/ones, /*through_relu=*/true);
  Tensor acc = ones.clone();
  linear_backward(acc, dw, no_bias, G, x_relu, w, /*dx_plus=*/acc, /*through_relu=*/true);
  EXPECT_TRUE(testing::bitwise_equal(acc, sum));
  axpy(acc, -1.0, ones);
  EXPECT_TRUE(testing::all_close(acc, dz, 1e-14, 1e-12));
}

// Deferred weight gradients equal the immediate ones; input gradients are not deferred; a
// nested scope queues into the outer one; a scope that is not run leaves the gradients alone.
void check_deferred_weight_grads(Device dev) {
  Generator gen(12);
  struct Layer { Tensor x, w, dy, dw, db; int64_t groups; };
  std::vector<Layer> layers;
  for (int64_t i = 0; i < 5; ++i) {
    const int64_t N = 40 + 31 * i, IN = 3 + 5 * i, OUT = 6 * (i + 1), G = i == 2 ? 3 : 1;
    Layer l;
    l.x = Tensor::randn({N, IN}, gen, Dtype::F64, dev);
    l.w = Tensor::randn({OUT, IN}, gen, Dtype::F64, dev);
    l.dy = G == 1 ? Tensor::randn({N, OUT}, gen, Dtype::F64, dev)
                  : Tensor::randn({G, N, OUT / G}, gen, Dtype::F64, dev);
    l.dw = Tensor::randn({OUT, IN}, gen, Dtype::F64, dev);
    l.db = Tensor::randn({OUT}, gen, Dtype::F64, dev);
    l.groups = G;
    layers.push_back(l);
  }
  layers.push_back(layers[1]);  // the same gradient tensors twice: added twice, in order
  std::vector<Tensor> want_w, want_b, want_dx;
  for (size_t i = 0; i < layers.size(); ++i) {
    Tensor dw = i + 1 < layers.size() ? layers[i].dw.clone() : want_w[1];
    Tensor db = i + 1 < layers.size() ? layers[i].db.clone() : want_b[1];
    Tensor dx = Tensor::empty(layers[i].x.shape(), Dtype::F64, dev);
    linear_backward(dx, dw, db, layers[i].dy, layers[i].x, layers[i].w);
    if (i + 1 < layers.size()) {
      want_w.push_back(dw);
      want_b.push_back(db);
    }
    want_dx.push_back(dx);
  }
  {
    DeferredWeightGrads deferred;
    for (size_t i = 0; i < layers.size(); ++i) {
      DeferredWeightGrads nested;  // queues into `deferred`; its run() does nothing
      Tensor dx = Tensor::empty(layers[i].x.shape(), Dtype::F64, dev);
      linear_backward(dx, layers[i].dw, layers[i].db, layers[i].dy, layers[i].x, layers[i].w);
      nested.run();
      EXPECT_TRUE(testing::all_close(dx, want_dx[i], 1e-12, 1e-12)) << "layer " << i;
    }
    EXPECT_FALSE(testing::all_close(layers[0].dw, want_w[0], 1e-12, 1e-12)) << "not yet run";
    deferred.run();
  }
  for (size_t i = 0; i + 1 < layers.size(); ++i) {
    EXPECT_TRUE(testing::all_close(layers[i].dw, want_w[i], 1e-11, 1e-11)) << "layer " << i;
    EXPECT_TRUE(testing::all_close(layers[i].db, want_b[i], 1e-11, 1e-11)) << "layer " << i;
  }
  // A scope destroyed without run() drops its work.
  const Tensor before = layers[0].dw.clone();
  {
    DeferredWeightGrads dropped;
    Tensor dx = Tensor::empty(layers[0].x.shape(), Dtype::F64, dev);
    linear_backward(dx, layers[0].dw, layers[0].db, layers[0].dy, layers[0].x, layers[0].w);
  }
  EXPECT_TRUE(testing::bitwise_equal(layers[0].dw, before));
}

TEST(Linear, DeferredWeightGradsMatchImmediate) { check_deferred_weight_grads(Device::cpu()); }

TEST(Linear, ErrorsNameTheProblem) {
  Tensor x = Tensor::zeros({4, 63}), w = Tensor::zeros({32, 64}), out = Tensor::zeros({4, 32});
  try {
    linear_forward(out, x, w, Tensor());
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("linear_forward"), std::string::npos) << msg;
    EXPECT_NE(msg.find("63"), std::string::npos) << msg;
  }
  Tensor w2 = Tensor::zeros({32, 63});
  Tensor bad_bias = Tensor::zeros({31});
  EXPECT_THROW(linear_forward(out, x, w2, bad_bias), Error);
  Tensor dx = Tensor::zeros({4, 63}), dw = Tensor::zeros({32, 62}), db;
  Tensor g = Tensor::zeros({4, 32});
  EXPECT_THROW(linear_backward(dx, dw, db, g, x, w2), Error);
}

// ---- CUDA ----

TEST(MatmulCuda, MatchesCpu) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  cuda::set_allow_tf32(false);
  Generator gen(0xdeadbeef);
  const Device gpu = Device::cuda();
  for (Dtype dt : {Dtype::F32, Dtype::F64}) {
    for (int64_t M : testing::odd_sizes()) {
      for (int64_t N : {int64_t(1), int64_t(33), int64_t(257)}) {
        for (int64_t K : {int64_t(7), int64_t(32), int64_t(257)}) {
          for (int t = 0; t < 4; ++t) {
            const bool ta = t & 1, tb = t & 2;
            const double beta = (t == 3) ? 0.75 : 0.0;
            Tensor a = Tensor::randn(stored(M, K, ta), gen, dt);
            Tensor b = Tensor::randn(stored(K, N, tb), gen, dt);
            Tensor out = Tensor::randn({M, N}, gen, dt);
            Tensor out_gpu = out.to(gpu);
            matmul(out, a, b, ta, tb, 1.25, beta);
            matmul(out_gpu, a.to(gpu), b.to(gpu), ta, tb, 1.25, beta);
            // f32 (no TF32): sums of up to 257 products of unit normals, |value| ~ 16;
            // reordering error ~ 257 * 6e-8 * 16, so atol 1e-3, rtol 1e-4. f64: 1e-10.
            const double atol = dt == Dtype::F32 ? 1e-3 : 1e-10;
            const double rtol = dt == Dtype::F32 ? 1e-4 : 1e-10;
            EXPECT_TRUE(testing::all_close(out_gpu, out, atol, rtol))
                << "M " << M << " N " << N << " K " << K << " ta " << ta << " tb " << tb;
          }
        }
      }
    }
  }
}

TEST(MatmulCuda, BetaZeroIgnoresNaNAndZeroK) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  const Device gpu = Device::cuda();
  Generator gen(2);
  Tensor a = Tensor::randn({9, 5}, gen, Dtype::F32);
  Tensor b = Tensor::randn({5, 3}, gen, Dtype::F32);
  Tensor out = Tensor::full({9, 3}, std::nan(""), Dtype::F32, gpu);
  matmul(out, a.to(gpu), b.to(gpu));
  Tensor expected = Tensor::empty({9, 3});
  matmul(expected, a, b);
  EXPECT_TRUE(testing::all_close(out, expected, 1e-5, 1e-5));
  // K = 0: out = beta * out; beta == 0 clears NaN.
  Tensor ak = Tensor::zeros({3, 0}, Dtype::F64, gpu), bk = Tensor::zeros({0, 2}, Dtype::F64, gpu);
  Tensor o = Tensor::from_vector<double>({1, 2, 3, 4, 5, 6}, {3, 2}, gpu);
  matmul(o, ak, bk, false, false, 1.0, -2.0);
  EXPECT_EQ(o.to_vector<double>(), (std::vector<double>{-2, -4, -6, -8, -10, -12}));
  Tensor on = Tensor::full({3, 2}, std::nan(""), Dtype::F64, gpu);
  matmul(on, ak, bk);
  EXPECT_EQ(on.to_vector<double>(), std::vector<double>(6, 0.0));
  Tensor e = Tensor::empty({0, 4}, Dtype::F32, gpu);
  matmul(e, Tensor::zeros({0, 3}, Dtype::F32, gpu), Tensor::zeros({3, 4}, Dtype::F32, gpu));
}

TEST(MatmulCuda, Tf32IsCloseAndSwitchable) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  const Device gpu = Device::cuda();
  Generator gen(4);
  Tensor a = Tensor::randn({64, 128}, gen), b = Tensor::randn({128, 48}, gen);
  Tensor expected = Tensor::empty({64, 48});
  matmul(expected, a, b);
  Tensor out = Tensor::empty({64, 48}, Dtype::F32, gpu);
  cuda::set_allow_tf32(true);
  matmul(out, a.to(gpu), b.to(gpu));
  cuda::set_allow_tf32(false);
  // TF32 keeps 10 mantissa bits (~5e-4 relative per product); |values| ~ 11 over K = 128.
  EXPECT_TRUE(testing::all_close(out, expected, 5e-2, 1e-2));
  matmul(out, a.to(gpu), b.to(gpu));
  EXPECT_TRUE(testing::all_close(out, expected, 1e-3, 1e-4));
}

TEST(MatmulCuda, DeviceMismatchThrows) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  Tensor a = Tensor::zeros({2, 2}), b = Tensor::zeros({2, 2}, Dtype::F32, Device::cuda());
  Tensor out = Tensor::zeros({2, 2}, Dtype::F32, Device::cuda());
  try {
    matmul(out, a, b);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cuda"), std::string::npos) << e.what();
  }
}

TEST(LinearCuda, MatchesCpu) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  cuda::set_allow_tf32(false);
  const Device gpu = Device::cuda();
  Generator gen(77);
  for (int64_t N : {int64_t(0), int64_t(1), int64_t(7), int64_t(33), int64_t(257),
                    int64_t(5000)}) {
    for (int64_t C : {int64_t(1), int64_t(31), int64_t(64)}) {
      const int64_t IN = 17, OUT = C;
      Tensor x = Tensor::randn({N, IN}, gen), w = Tensor::randn({OUT, IN}, gen);
      Tensor bias = Tensor::randn({OUT}, gen), g = Tensor::randn({N, OUT}, gen);
      Tensor out = Tensor::empty({N, OUT}), out_gpu = Tensor::empty({N, OUT}, Dtype::F32, gpu);
      linear_forward(out, x, w, bias);
      linear_forward(out_gpu, x.to(gpu), w.to(gpu), bias.to(gpu));
      // f32 with K = 17: atol 1e-5 * magnitude ~ 4.
      EXPECT_TRUE(testing::all_close(out_gpu, out, 1e-4, 1e-4)) << "N " << N << " C " << C;
      Tensor dx = Tensor::empty({N, IN}), dw = Tensor::full({OUT, IN}, 0.5);
      Tensor db = Tensor::full({OUT}, 0.5);
      Tensor dx_g = dx.to(gpu).clone(), dw_g = dw.to(gpu).clone(), db_g = db.to(gpu).clone();
      linear_backward(dx, dw, db, g, x, w);
      linear_backward(dx_g, dw_g, db_g, g.to(gpu), x.to(gpu), w.to(gpu));
      // dL_dweight and dL_dbias sum N terms of magnitude ~1: error ~ sqrt(N) * 1e-7 * N.
      EXPECT_TRUE(testing::all_close(dx_g, dx, 1e-4, 1e-4)) << "N " << N << " C " << C;
      EXPECT_TRUE(testing::all_close(dw_g, dw, 1e-3, 1e-4)) << "N " << N << " C " << C;
      EXPECT_TRUE(testing::all_close(db_g, db, 1e-3, 1e-4)) << "N " << N << " C " << C;
    }
  }
}

// The fused CUDA linear kernels (kFusedLinearMaxRows / kFusedWeightGradMaxRows and below) and the
// cuBLAS path above them, against the CPU: odd sizes, partial tiles, groups, relu, residual,
// accumulation onto old gradients, F32 and F64.
TEST(LinearCuda, FusedKernelsMatchCpu) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  cuda::set_allow_tf32(false);
  const Device gpu = Device::cuda();
  Generator gen(78);
  struct Case { int64_t N, IN, OUT, groups; bool relu, residual, bias; };
  const std::vector<Case> cases = {
      {1, 1, 1, 1, false, false, true},      {7, 5, 3, 1, true, false, true},
      {31, 33, 65, 1, true, true, true},     {32, 64, 64, 1, false, true, true},
      {33, 64, 192, 3, false, false, false}, {257, 80, 160, 1, true, false, true},
      {3001, 64, 64, 1, false, true, true},  {6403, 64, 128, 1, true, false, true},
      {16384, 64, 64, 1, false, false, true}, {16385, 64, 64, 1, false, false, true},
      {70000, 16, 48, 3, false, false, false}, {5, 0, 4, 1, false, false, true},
      {0, 8, 8, 1, false, false, true}};
  for (Dtype dtype : {Dtype::F32, Dtype::F64}) {
    for (const Case& c : cases) {
      const std::string what = str_cat(dtype_name(dtype), " N ", c.N, " IN ",
                                                          c.IN, " OUT ", c.OUT, " G ", c.groups);
      Tensor x = Tensor::randn({c.N, c.IN}, gen, dtype), w = Tensor::randn({c.OUT, c.IN}, gen, dtype);
      Tensor bias = c.bias ? Tensor::randn({c.OUT}, gen, dtype) : Tensor();
      Tensor res = c.residual ? Tensor::randn({c.N, c.OUT}, gen, dtype) : Tensor();
      const Shape out_shape = c.groups == 1 ? Shape{c.N, c.OUT} : Shape{c.groups, c.N, c.OUT / c.groups};
      Tensor out = Tensor::empty(out_shape, dtype), out_g = Tensor::empty(out_shape, dtype, gpu);
      linear_forward(out, x, w, bias, res, c.relu);
      linear_forward(out_g, x.to(gpu), w.to(gpu), bias.defined() ? bias.to(gpu) : Tensor(),
                     res.defined() ? res.to(gpu) : Tensor(), c.relu);
      const double tol = dtype == Dtype::F32 ? 1e-4 : 1e-11;
      EXPECT_TRUE(testing::all_close(out_g, out, tol, tol)) << what;

      const Tensor g = Tensor::randn(out_shape, gen, dtype);
      Tensor dx = Tensor::randn({c.N, c.IN}, gen, dtype), dw = Tensor::randn({c.OUT, c.IN}, gen, dtype);
      Tensor db = c.bias ? Tensor::randn({c.OUT}, gen, dtype) : Tensor();
      Tensor dx_g = dx.to(gpu), dw_g = dw.to(gpu), db_g = db.defined() ? db.to(gpu) : Tensor();
      const bool accumulate = c.N % 2 == 1, through_relu = c.N % 3 != 1;
      linear_backward(dx, dw, db, g, x, w, accumulate ? dx : Tensor(), through_relu);
      linear_backward(dx_g, dw_g, db_g, g.to(gpu), x.to(gpu), w.to(gpu),
                      accumulate ? dx_g : Tensor(), through_relu);
      // dW and db sum N products of magnitude ~1.
      const double wtol = dtype == Dtype::F32 ? 1e-4 * (1.0 + std::sqrt(double(c.N))) : 1e-10;
      EXPECT_TRUE(testing::all_close(dx_g, dx, tol, tol)) << what;
      EXPECT_TRUE(testing::all_close(dw_g, dw, wtol, 1e-4)) << what;
      if (c.bias) EXPECT_TRUE(testing::all_close(db_g, db, wtol, 1e-4)) << what;
    }
  }
}

TEST(LinearCuda, DeferredWeightGradsMatchImmediate) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  check_deferred_weight_grads(Device::cuda());
}

// Independent linear calls queued in a LaunchBatch (several per launch) give the same bits as
// separate launches, and nothing is written before run().
TEST(LinearCuda, LaunchBatchMatchesSeparateLaunches) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  const Device gpu = Device::cuda();
  Generator gen(80);
  struct Fwd { Tensor x, w, b, r; bool relu; int64_t groups; Shape out; };
  std::vector<Fwd> fwd = {
      {Tensor::randn({3001, 64}, gen).to(gpu), Tensor::randn({64, 64}, gen).to(gpu),
       Tensor::randn({64}, gen).to(gpu), Tensor::randn({3001, 64}, gen).to(gpu), false, 1, {3001, 64}},
      {Tensor::randn({6403, 64}, gen).to(gpu), Tensor::randn({128, 64}, gen).to(gpu),
       Tensor::randn({128}, gen).to(gpu), Tensor(), true, 1, {6403, 128}},
      {Tensor::randn({33, 64}, gen).to(gpu), Tensor::randn({192, 64}, gen).to(gpu), Tensor(),
       Tensor(), false, 3, {3, 33, 64}},
      {Tensor::randn({7, 5}, gen).to(gpu), Tensor::randn({3, 5}, gen).to(gpu), Tensor(), Tensor(),
       true, 1, {7, 3}},
      {Tensor::randn({0, 8}, gen).to(gpu), Tensor::randn({8, 8}, gen).to(gpu), Tensor(), Tensor(),
       false, 1, {0, 8}},
      {Tensor::randn({300, 33}, gen).to(gpu), Tensor::randn({65, 33}, gen).to(gpu),
       Tensor::randn({65}, gen).to(gpu), Tensor::randn({300, 65}, gen).to(gpu), false, 1, {300, 65}}};
  std::vector<Tensor> want, got;
  for (const Fwd& f : fwd) {
    want.push_back(Tensor::empty(f.out, Dtype::F32, gpu));
    linear_forward(want.back(), f.x, f.w, f.b, f.r, f.relu);
    got.push_back(Tensor::full(f.out, -7.0, Dtype::F32, gpu));
  }
  {
    LaunchBatch batch;
    for (size_t i = 0; i < fwd.size(); ++i) {
      linear_forward(got[i], fwd[i].x, fwd[i].w, fwd[i].b, fwd[i].r, fwd[i].relu);
    }
    if (got[0].numel() > 0) EXPECT_EQ(got[0].to_vector<float>()[0], -7.0f) << "ran before run()";
    batch.run();
  }
  for (size_t i = 0; i < fwd.size(); ++i) EXPECT_TRUE(testing::bitwise_equal(got[i], want[i])) << i;

  // Input gradients: through a ReLU, with a residual gradient, grouped; all in one batch (and an
  // inner batch, which is inactive and queues into the outer one).
  std::vector<Tensor> gs, pluses, dx_want, dx_got;
  Tensor no_bias;
  for (size_t i = 0; i < fwd.size(); ++i) {
    gs.push_back(Tensor::randn(fwd[i].out, gen).to(gpu));
    pluses.push_back(i % 2 == 0 ? Tensor::randn(fwd[i].x.shape(), gen).to(gpu) : Tensor());
    Tensor dw = Tensor::zeros(fwd[i].w.shape(), Dtype::F32, gpu);
    dx_want.push_back(Tensor::empty(fwd[i].x.shape(), Dtype::F32, gpu));
    linear_backward(dx_want.back(), dw, no_bias, gs[i], fwd[i].x, fwd[i].w, pluses[i], i % 3 == 1);
    dx_got.push_back(Tensor::empty(fwd[i].x.shape(), Dtype::F32, gpu));
  }
  {
    LaunchBatch batch;
    for (size_t i = 0; i < fwd.size(); ++i) {
      LaunchBatch inner;
      Tensor dw = Tensor::zeros(fwd[i].w.shape(), Dtype::F32, gpu);
      linear_backward(dx_got[i], dw, no_bias, gs[i], fwd[i].x, fwd[i].w, pluses[i], i % 3 == 1);
      inner.run();
    }
    batch.run();
  }
  for (size_t i = 0; i < fwd.size(); ++i) {
    EXPECT_TRUE(testing::bitwise_equal(dx_got[i], dx_want[i])) << i;
  }
}

// The fused weight gradient adds its slices' partials in a fixed order: bitwise repeatable.
TEST(LinearCuda, FusedWeightGradIsDeterministic) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  const Device gpu = Device::cuda();
  Generator gen(79);
  const int64_t N = 6403, IN = 64, OUT = 192;
  const Tensor x = Tensor::randn({N, IN}, gen).to(gpu), w = Tensor::randn({OUT, IN}, gen).to(gpu);
  const Tensor g = Tensor::randn({3, N, OUT / 3}, gen).to(gpu);
  std::vector<float> first_w, first_b;
  for (int run = 0; run < 3; ++run) {
    Tensor dw = Tensor::zeros({OUT, IN}, Dtype::F32, gpu), db = Tensor::zeros({OUT}, Dtype::F32, gpu);
    Tensor no_dx;
    linear_backward(no_dx, dw, db, g, x, w);
    if (run == 0) {
      first_w = dw.to_vector<float>();
      first_b = db.to_vector<float>();
    } else {
      EXPECT_EQ(dw.to_vector<float>(), first_w) << "run " << run;
      EXPECT_EQ(db.to_vector<float>(), first_b) << "run " << run;
    }
  }
}

}  // namespace
}  // namespace lapis
