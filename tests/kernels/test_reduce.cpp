// Sum/mean reductions and argmax: hand cases, empty axes, F64 gradient checks, errors, and
// CPU-vs-CUDA equivalence (plus run-to-run determinism on CUDA).
#include <gtest/gtest.h>

#include <cmath>

#include "core/tensor.h"
#include "kernels/reduce.h"
#include "tests/common/test_util.h"

namespace lapis {
namespace {

TEST(Reduce, HandComputed) {
  // x = [[1, 2, 3], [4, 5, 6]].
  Tensor x = Tensor::from_vector<double>({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor cols = Tensor::empty({3}, Dtype::F64), rows = Tensor::empty({2}, Dtype::F64);
  reduce_forward(cols, x, 0, Reduce::Sum);
  EXPECT_EQ(cols.to_vector<double>(), (std::vector<double>{5, 7, 9}));
  reduce_forward(cols, x, 0, Reduce::Mean);
  EXPECT_EQ(cols.to_vector<double>(), (std::vector<double>{2.5, 3.5, 4.5}));
  reduce_forward(rows, x, 1, Reduce::Sum);
  EXPECT_EQ(rows.to_vector<double>(), (std::vector<double>{6, 15}));
  reduce_forward(rows, x, 1, Reduce::Mean);
  EXPECT_EQ(rows.to_vector<double>(), (std::vector<double>{2, 5}));
  Tensor all = Tensor::empty({1}, Dtype::F64);
  reduce_all_forward(all, x, Reduce::Sum);
  EXPECT_EQ(all.item(), 21.0);
  reduce_all_forward(all, x, Reduce::Mean);
  EXPECT_EQ(all.item(), 3.5);

  // Backward: broadcast back, divided by the count for the mean.
  Tensor dx = Tensor::empty({2, 3}, Dtype::F64);
  reduce_backward(dx, Tensor::from_vector<double>({1, 2, 3}, {3}), 0, Reduce::Mean);
  EXPECT_EQ(dx.to_vector<double>(), (std::vector<double>{0.5, 1, 1.5, 0.5, 1, 1.5}));
  reduce_backward(dx, Tensor::from_vector<double>({3, 6}, {2}), 1, Reduce::Mean);
  EXPECT_EQ(dx.to_vector<double>(), (std::vector<double>{1, 1, 1, 2, 2, 2}));
  reduce_backward(dx, Tensor::from_vector<double>({3, 6}, {2}), 1, Reduce::Sum);
  EXPECT_EQ(dx.to_vector<double>(), (std::vector<double>{3, 3, 3, 6, 6, 6}));
  reduce_all_backward(dx, Tensor::from_vector<double>({12}, {1}), Reduce::Mean);
  EXPECT_EQ(dx.to_vector<double>(), std::vector<double>(6, 2.0));
}

TEST(Reduce, EmptyAxisMeanIsZero) {
  Tensor x = Tensor::empty({0, 3}, Dtype::F64);
  Tensor cols = Tensor::full({3}, 7.0, Dtype::F64);
  reduce_forward(cols, x, 0, Reduce::Mean);
  EXPECT_EQ(cols.to_vector<double>(), std::vector<double>(3, 0.0));
  Tensor y = Tensor::empty({2, 0}, Dtype::F64);
  Tensor rows = Tensor::full({2}, 7.0, Dtype::F64);
  reduce_forward(rows, y, 1, Reduce::Mean);
  EXPECT_EQ(rows.to_vector<double>(), std::vector<double>(2, 0.0));
  Tensor all = Tensor::full({1}, 7.0, Dtype::F64);
  reduce_all_forward(all, x, Reduce::Mean);
  EXPECT_EQ(all.item(), 0.0);
  reduce_all_backward(x, all, Reduce::Mean);  // nothing to write
  Tensor out0 = Tensor::empty({0}, Dtype::I64);
  argmax_rows(out0, x);
}

TEST(Reduce, GradientChecks) {
  Generator gen(31);
  Tensor x = Tensor::randn({5, 7}, gen, Dtype::F64);
  for (Reduce kind : {Reduce::Sum, Reduce::Mean}) {
    for (int axis : {0, 1}) {
      const int64_t len = axis == 0 ? 7 : 5;
      const Tensor G = Tensor::randn({len}, gen, Dtype::F64);
      Tensor out = Tensor::empty({len}, Dtype::F64);
      auto loss = [&] {
        reduce_forward(out, x, axis, kind);
        return testing::dot(G, out);
      };
      Tensor dx = Tensor::empty({5, 7}, Dtype::F64);
      reduce_backward(dx, G, axis, kind);
      EXPECT_TRUE(testing::gradient_matches(loss, x, dx)) << "axis " << axis;
    }
    const Tensor G = Tensor::randn({1}, gen, Dtype::F64);
    Tensor out = Tensor::empty({1}, Dtype::F64);
    auto loss = [&] {
      reduce_all_forward(out, x, kind);
      return testing::dot(G, out);
    };
    Tensor dx = Tensor::empty({5, 7}, Dtype::F64);
    reduce_all_backward(dx, G, kind);
    EXPECT_TRUE(testing::gradient_matches(loss, x, dx));
  }
}

TEST(Reduce, ArgmaxFirstOnTies) {
  Tensor x = Tensor::from_vector<float>({1, 3, 3, 0,   // tie: first 3 wins
                                         -5, -7, -6, -5,  // tie at the ends
                                         0, 0, 0, 9},
                                        {3, 4});
  Tensor out = Tensor::empty({3}, Dtype::I64);
  argmax_rows(out, x);
  EXPECT_EQ(out.to_vector<int64_t>(), (std::vector<int64_t>{1, 0, 3}));
}

TEST(Reduce, ErrorsNameTheProblem) {
  Tensor x = Tensor::zeros({3, 4});
  Tensor out = Tensor::zeros({3});
  try {
    reduce_forward(out, x, 0, Reduce::Sum);  // axis 0 needs out [4]
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("reduce_forward"), std::string::npos) << msg;
    EXPECT_NE(msg.find("[4]"), std::string::npos) << msg;
  }
  try {
    reduce_forward(out, x, 2, Reduce::Sum);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("got 2"), std::string::npos) << e.what();
  }
  Tensor out64 = Tensor::zeros({3}, Dtype::F64);
  EXPECT_THROW(reduce_forward(out64, x, 1, Reduce::Sum), Error);
  Tensor dx = Tensor::zeros({3, 4});
  EXPECT_THROW(reduce_backward(dx, out, 0, Reduce::Sum), Error);
  Tensor two = Tensor::zeros({2});
  EXPECT_THROW(reduce_all_forward(two, x, Reduce::Sum), Error);
  Tensor idx32 = Tensor::zeros({3}, Dtype::I32);
  EXPECT_THROW(argmax_rows(idx32, x), Error);
  Tensor idx = Tensor::zeros({3}, Dtype::I64);
  Tensor no_cols = Tensor::zeros({3, 0});
  EXPECT_THROW(argmax_rows(idx, no_cols), Error);
}

// ---- CUDA ----

TEST(ReduceCuda, MatchesCpu) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  const Device gpu = Device::cuda();
  Generator gen(0xdeadbeef);
  for (Dtype dt : {Dtype::F32, Dtype::F64}) {
    for (int64_t N : {int64_t(0), int64_t(1), int64_t(7), int64_t(31), int64_t(32), int64_t(33),
                      int64_t(257), int64_t(20000)}) {
      for (int64_t C : {int64_t(0), int64_t(1), int64_t(7), int64_t(31), int64_t(32),
                        int64_t(33), int64_t(257)}) {
        Tensor x = Tensor::randn({N, C}, gen, dt);
        const Tensor xg = x.to(gpu);
        // Sums of up to 5e6 unit normals (|sum| ~ 2e3): f32 tree-sum error ~ 1e-3 absolute
        // at worst, so atol 2e-3 + rtol 1e-5; f64 1e-10.
        const double atol = dt == Dtype::F32 ? 2e-3 : 1e-10, rtol = dt == Dtype::F32 ? 1e-5 : 1e-12;
        for (Reduce kind : {Reduce::Sum, Reduce::Mean}) {
          for (int axis : {0, 1}) {
            const int64_t len = axis == 0 ? C : N;
            Tensor out = Tensor::empty({len}, dt), out_g = Tensor::full({len}, 7.0, dt, gpu);
            reduce_forward(out, x, axis, kind);
            reduce_forward(out_g, xg, axis, kind);
            EXPECT_TRUE(testing::all_close(out_g, out, atol, rtol))
                << "N " << N << " C " << C << " axis " << axis;
            Tensor g = Tensor::randn({len}, gen, dt);
            Tensor dx = Tensor::empty({N, C}, dt), dx_g = Tensor::empty({N, C}, dt, gpu);
            reduce_backward(dx, g, axis, kind);
            reduce_backward(dx_g, g.to(gpu), axis, kind);
            EXPECT_TRUE(testing::all_close(dx_g, dx, 1e-7, 1e-6));
          }
          Tensor all = Tensor::empty({1}, dt), all_g = Tensor::full({1}, 7.0, dt, gpu);
          reduce_all_forward(all, x, kind);
          reduce_all_forward(all_g, xg, kind);
          EXPECT_TRUE(testing::all_close(all_g, all, atol, rtol)) << "N " << N << " C " << C;
          Tensor g = Tensor::randn({1}, gen, dt);
          Tensor dx = Tensor::empty({N, C}, dt), dx_g = Tensor::empty({N, C}, dt, gpu);
          reduce_all_backward(dx, g, kind);
          reduce_all_backward(dx_g, g.to(gpu), kind);
          EXPECT_TRUE(testing::all_close(dx_g, dx, 1e-7, 1e-6));
        }
        if (C > 0) {
          Tensor idx = Tensor::empty({N}, Dtype::I64), idx_g = Tensor::empty({N}, Dtype::I64, gpu);
          argmax_rows(idx, x);
          argmax_rows(idx_g, xg);
          EXPECT_TRUE(testing::bitwise_equal(idx_g, idx)) << "N " << N << " C " << C;
        }
      }
    }
  }
}

TEST(ReduceCuda, ArgmaxTiesAndDeterminism) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  const Device gpu = Device::cuda();
  // Rows of 100 equal values with a later copy of the max: the first index must win.
  std::vector<float> v(3 * 100, 1.0f);
  v[0 * 100 + 70] = 2.0f;
  v[0 * 100 + 99] = 2.0f;
  v[1 * 100 + 33] = 5.0f;
  v[1 * 100 + 1] = 5.0f;
  Tensor x = Tensor::from_vector<float>(v, {3, 100}, gpu);
  Tensor idx = Tensor::empty({3}, Dtype::I64, gpu);
  argmax_rows(idx, x);
  EXPECT_EQ(idx.to_vector<int64_t>(), (std::vector<int64_t>{70, 1, 0}));
  // Reductions give the same bits run after run.
  Generator gen(1);
  Tensor big = Tensor::randn({100000, 5}, gen).to(gpu);
  Tensor a = Tensor::empty({5}, Dtype::F32, gpu), b = Tensor::empty({5}, Dtype::F32, gpu);
  reduce_forward(a, big, 0, Reduce::Sum);
  reduce_forward(b, big, 0, Reduce::Sum);
  EXPECT_TRUE(testing::bitwise_equal(a, b));
  Tensor s1 = Tensor::empty({1}, Dtype::F32, gpu), s2 = Tensor::empty({1}, Dtype::F32, gpu);
  reduce_all_forward(s1, big, Reduce::Mean);
  reduce_all_forward(s2, big, Reduce::Mean);
  EXPECT_TRUE(testing::bitwise_equal(s1, s2));
}

TEST(ReduceCuda, DeviceMismatchThrows) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  Tensor x = Tensor::zeros({2, 3}, Dtype::F32, Device::cuda());
  Tensor out = Tensor::zeros({3});
  EXPECT_THROW(reduce_forward(out, x, 0, Reduce::Sum), Error);
}

}  // namespace
}  // namespace lapis
