#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "kernels/concat.h"
#include "tests/common/test_util.h"

namespace lapis {
namespace {

using testing::bitwise_equal;
using testing::dot;
using testing::gradient_matches;

Tensor f64(const std::vector<double>& v, const Shape& s) {
  return Tensor::from_vector<double>(v, s);
}

using testing::expect_error_mentions;

TEST(ConcatCols, ForwardAndBackwardByHand) {
  Tensor a = f64({1, 2, 3, 4}, {2, 2});
  Tensor b = f64({5, 6}, {2, 1});
  Tensor empty = Tensor::zeros({2, 0}, Dtype::F64);  // zero-width parts are allowed
  Tensor out = Tensor::full({2, 3}, 9.0, Dtype::F64);
  concat_cols_forward(out, {a, empty, b});
  EXPECT_TRUE(bitwise_equal(out, f64({1, 2, 5, 3, 4, 6}, {2, 3})));
  std::vector<Tensor> grads = {Tensor::full({2, 2}, 9.0, Dtype::F64),
                               Tensor::zeros({2, 0}, Dtype::F64),
                               Tensor::full({2, 1}, 9.0, Dtype::F64)};
  concat_cols_backward(grads, f64({10, 20, 30, 40, 50, 60}, {2, 3}));
  EXPECT_TRUE(bitwise_equal(grads[0], f64({10, 20, 40, 50}, {2, 2})));
  EXPECT_TRUE(bitwise_equal(grads[2], f64({30, 60}, {2, 1})));
}

TEST(SliceCols, ForwardAndBackwardByHand) {
  Tensor x = f64({1, 2, 3, 4, 5, 6, 7, 8}, {2, 4});
  Tensor out = Tensor::full({2, 2}, 9.0, Dtype::F64);
  slice_cols_forward(out, x, 1);
  EXPECT_TRUE(bitwise_equal(out, f64({2, 3, 6, 7}, {2, 2})));
  Tensor dx = Tensor::full({2, 4}, 9.0, Dtype::F64);  // overwritten, zero outside the slice
  slice_cols_backward(dx, f64({1, 2, 3, 4}, {2, 2}), 2);
  EXPECT_TRUE(bitwise_equal(dx, f64({0, 0, 1, 2, 0, 0, 3, 4}, {2, 4})));
  // Slice then concat of the pieces gives x back.
  Tensor left = Tensor::empty({2, 1}, Dtype::F64), right = Tensor::empty({2, 3}, Dtype::F64);
  slice_cols_forward(left, x, 0);
  slice_cols_forward(right, x, 1);
  Tensor whole = Tensor::empty({2, 4}, Dtype::F64);
  concat_cols_forward(whole, {left, right});
  EXPECT_TRUE(bitwise_equal(whole, x));
}

TEST(ConcatCols, EmptyRows) {
  Tensor out = Tensor::zeros({0, 5});
  EXPECT_NO_THROW(concat_cols_forward(out, {Tensor::zeros({0, 2}), Tensor::zeros({0, 3})}));
  std::vector<Tensor> grads = {Tensor::zeros({0, 2}), Tensor::zeros({0, 3})};
  EXPECT_NO_THROW(concat_cols_backward(grads, out));
  Tensor s = Tensor::zeros({0, 2});
  EXPECT_NO_THROW(slice_cols_forward(s, out, 3));
  EXPECT_NO_THROW(slice_cols_backward(out, s, 3));
}

TEST(ConcatCols, ErrorsNameTheProblem) {
  Tensor a = Tensor::zeros({2, 2}), b = Tensor::zeros({3, 1});
  Tensor out = Tensor::zeros({2, 3});
  expect_error_mentions([&] { concat_cols_forward(out, {a, b}); },
                        {"concat_cols_forward", "xs[1] has 3 rows", "out has 2"});
  expect_error_mentions([&] { concat_cols_forward(out, {a, Tensor::zeros({2, 2})}); },
                        {"concat_cols_forward", "4 columns", "out has 3"});
  expect_error_mentions([&] { concat_cols_forward(out, {a, Tensor::zeros({2, 1}, Dtype::F64)}); },
                        {"xs[1]", "dtype"});
  expect_error_mentions([&] { concat_cols_forward(out, {}); }, {"concat_cols_forward", "empty"});
  std::vector<Tensor> grads = {Tensor::zeros({2, 2})};
  expect_error_mentions([&] { concat_cols_backward(grads, out); },
                        {"concat_cols_backward", "2 columns", "dL_dout has 3"});
  Tensor s = Tensor::zeros({2, 2});
  expect_error_mentions([&] { slice_cols_forward(s, out, 2); },
                        {"slice_cols_forward", "columns 2 .. 3", "f32 [2, 3]"});
  expect_error_mentions([&] { slice_cols_forward(s, out, -1); }, {"slice_cols_forward", "-1"});
  expect_error_mentions([&] { slice_cols_backward(out, Tensor::zeros({3, 2}), 0); },
                        {"slice_cols_backward", "dL_dout has 3 rows"});
}

TEST(ConcatCols, GradientsF64) {
  Generator gen(4);
  Tensor a = Tensor::randn({3, 2}, gen, Dtype::F64), b = Tensor::randn({3, 4}, gen, Dtype::F64);
  Tensor G = Tensor::randn({3, 6}, gen, Dtype::F64);
  std::vector<Tensor> grads = {Tensor::empty({3, 2}, Dtype::F64),
                               Tensor::empty({3, 4}, Dtype::F64)};
  concat_cols_backward(grads, G);
  auto loss = [&] {
    Tensor out = Tensor::empty({3, 6}, Dtype::F64);
    concat_cols_forward(out, {a, b});
    return dot(G, out);
  };
  EXPECT_TRUE(gradient_matches(loss, a, grads[0]));
  EXPECT_TRUE(gradient_matches(loss, b, grads[1]));

  Tensor x = Tensor::randn({3, 5}, gen, Dtype::F64), Gs = Tensor::randn({3, 2}, gen, Dtype::F64);
  Tensor dx = Tensor::empty({3, 5}, Dtype::F64);
  slice_cols_backward(dx, Gs, 2);
  auto slice_loss = [&] {
    Tensor out = Tensor::empty({3, 2}, Dtype::F64);
    slice_cols_forward(out, x, 2);
    return dot(Gs, out);
  };
  EXPECT_TRUE(gradient_matches(slice_loss, x, dx));
}

TEST(ConcatColsCuda, MatchesCpuBitwise) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  const Device d = Device::cuda();
  // Pure copies: CPU and CUDA agree bit for bit.
  for (Dtype dt : {Dtype::F32, Dtype::F64}) {
    for (int64_t n : testing::odd_sizes()) {
      for (int64_t c : testing::odd_sizes()) {
        SCOPED_TRACE(::testing::Message() << dtype_name(dt) << " n=" << n << " c=" << c);
        Generator gen(n * 1000 + c);
        Tensor a = Tensor::randn({n, c}, gen, dt), b = Tensor::randn({n, 3}, gen, dt);
        Tensor oh = Tensor::empty({n, c + 3}, dt), od = Tensor::empty({n, c + 3}, dt, d);
        concat_cols_forward(oh, {a, b});
        concat_cols_forward(od, {a.to(d), b.to(d)});
        EXPECT_TRUE(bitwise_equal(od, oh));
        std::vector<Tensor> gh = {Tensor::empty({n, c}, dt), Tensor::empty({n, 3}, dt)};
        std::vector<Tensor> gd = {Tensor::empty({n, c}, dt, d), Tensor::empty({n, 3}, dt, d)};
        concat_cols_backward(gh, oh);
        concat_cols_backward(gd, od);
        EXPECT_TRUE(bitwise_equal(gd[0], a));
        EXPECT_TRUE(bitwise_equal(gd[1], b));
        const int64_t start = c / 2, len = c - start;
        Tensor sh = Tensor::empty({n, len}, dt), sd = Tensor::empty({n, len}, dt, d);
        slice_cols_forward(sh, oh, start + 1);
        slice_cols_forward(sd, od, start + 1);
        EXPECT_TRUE(bitwise_equal(sd, sh));
        Tensor bh = Tensor::full({n, c + 3}, 5.0, dt), bd = Tensor::full({n, c + 3}, 5.0, dt, d);
        slice_cols_backward(bh, sh, start + 1);
        slice_cols_backward(bd, sd, start + 1);
        EXPECT_TRUE(bitwise_equal(bd, bh));
      }
    }
  }
  Tensor out = Tensor::zeros({0, 4}, Dtype::F32, d);
  EXPECT_NO_THROW(concat_cols_forward(out, {Tensor::zeros({0, 1}, Dtype::F32, d),
                                            Tensor::zeros({0, 3}, Dtype::F32, d)}));
  expect_error_mentions(
      [&] { concat_cols_forward(out, {Tensor::zeros({0, 1}), Tensor::zeros({0, 3})}); },
      {"concat_cols_forward", "cpu"});
}

}  // namespace
}  // namespace lapis
