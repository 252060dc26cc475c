#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "kernels/index.h"
#include "tests/common/test_util.h"

namespace lapis {
namespace {

using testing::all_close;
using testing::bitwise_equal;
using testing::dot;
using testing::gradient_matches;

Tensor f64(const std::vector<double>& v, const Shape& s) {
  return Tensor::from_vector<double>(v, s);
}
Tensor i64(const std::vector<int64_t>& v) {
  return Tensor::from_vector<int64_t>(v, {static_cast<int64_t>(v.size())});
}
Tensor i32(const std::vector<int32_t>& v) {
  return Tensor::from_vector<int32_t>(v, {static_cast<int64_t>(v.size())});
}

using testing::expect_error_mentions;

Tensor like(const Tensor& ref, const Shape& shape) {
  return Tensor::full(shape, 77.0, ref.dtype(), ref.device());  // garbage to be overwritten
}

// ---------------------------------------------------------------- hand values

TEST(GatherRows, ForwardAndBackwardByHand) {
  Tensor x = f64({1, 2, 3, 4, 5, 6}, {3, 2});
  for (const Tensor& index : {i64({2, 0, 2}), i32({2, 0, 2})}) {
    Tensor out = like(x, {3, 2});
    gather_rows_forward(out, x, index);
    EXPECT_TRUE(bitwise_equal(out, f64({5, 6, 1, 2, 5, 6}, {3, 2})));
    // Backward: rows 0 and 2 of dL_dout both land on x row 2; x row 1 gets 0.
    Tensor dx = like(x, {3, 2});
    gather_rows_backward(dx, f64({1, 10, 2, 20, 3, 30}, {3, 2}), index);
    EXPECT_TRUE(bitwise_equal(dx, f64({2, 20, 0, 0, 4, 40}, {3, 2})));
  }
}

TEST(ScatterAddRows, ForwardAndBackwardByHand) {
  Tensor x = f64({1, 2, 3, 4, 5, 6}, {3, 2});
  Tensor index = i64({1, 1, 3});
  Tensor out = like(x, {4, 2});
  scatter_add_rows_forward(out, x, index);
  EXPECT_TRUE(bitwise_equal(out, f64({0, 0, 4, 6, 0, 0, 5, 6}, {4, 2})));
  Tensor dx = like(x, {3, 2});
  scatter_add_rows_backward(dx, f64({0, 1, 2, 3, 4, 5, 6, 7}, {4, 2}), index);
  EXPECT_TRUE(bitwise_equal(dx, f64({2, 3, 2, 3, 6, 7}, {3, 2})));
}

TEST(Embedding, LookupAndAccumulatingBackward) {
  Tensor table = f64({0, 0.5, 1, 1.5, 2, 2.5}, {3, 2});
  Tensor idx = i32({1, 1, 0});
  Tensor out = like(table, {3, 2});
  embedding_forward(out, idx, table);
  EXPECT_TRUE(bitwise_equal(out, f64({1, 1.5, 1, 1.5, 0, 0.5}, {3, 2})));
  Tensor dtable = f64({1, 1, 1, 1, 1, 1}, {3, 2});  // += keeps what was there
  embedding_backward(dtable, f64({1, 2, 3, 4, 5, 6}, {3, 2}), idx);
  EXPECT_TRUE(bitwise_equal(dtable, f64({6, 7, 5, 7, 1, 1}, {3, 2})));
}

TEST(SegmentReduce, NamesAndHandValues) {
  EXPECT_STREQ(segment_reduce_name(SegmentReduce::Sum), "sum");
  EXPECT_STREQ(segment_reduce_name(SegmentReduce::Mean), "mean");
  EXPECT_STREQ(segment_reduce_name(SegmentReduce::Max), "max");
  // Segments: rows 0..1, (empty), rows 2..4.
  Tensor x = f64({1, 9, 3, 9, 2, -1, 7, -3, 7, -2}, {5, 2});
  Tensor ptr = i64({0, 2, 2, 5});
  Tensor out = like(x, {3, 2});
  Tensor argmax = Tensor::full({3, 2}, 5, Dtype::I64);
  segment_reduce_forward(out, argmax, x, ptr, SegmentReduce::Sum);
  EXPECT_TRUE(bitwise_equal(out, f64({4, 18, 0, 0, 16, -6}, {3, 2})));
  Tensor undefined;  // Sum and Mean accept an undefined argmax
  segment_reduce_forward(out, undefined, x, i32({0, 2, 2, 5}), SegmentReduce::Mean);
  EXPECT_TRUE(bitwise_equal(out, f64({2, 9, 0, 0, 16.0 / 3, -2}, {3, 2})));
  segment_reduce_forward(out, argmax, x, ptr, SegmentReduce::Max);
  // Column 0 of segment 2: 2, 7, 7 -> 7 at row 3 (first of the tie). Column 1 ties at 9 too.
  EXPECT_TRUE(bitwise_equal(out, f64({3, 9, 0, 0, 7, -1}, {3, 2})));
  EXPECT_EQ(argmax.to_vector<int64_t>(), (std::vector<int64_t>{1, 0, -1, -1, 3, 2}));

  Tensor g = f64({1, 2, 3, 4, 6, 9}, {3, 2});
  Tensor dx = like(x, {5, 2});
  segment_reduce_backward(dx, g, ptr, argmax, SegmentReduce::Sum);
  EXPECT_TRUE(bitwise_equal(dx, f64({1, 2, 1, 2, 6, 9, 6, 9, 6, 9}, {5, 2})));
  segment_reduce_backward(dx, g, ptr, Tensor(), SegmentReduce::Mean);
  EXPECT_TRUE(all_close(dx, f64({0.5, 1, 0.5, 1, 2, 3, 2, 3, 2, 3}, {5, 2}), 1e-15, 1e-15));
  segment_reduce_backward(dx, g, ptr, argmax, SegmentReduce::Max);
  EXPECT_TRUE(bitwise_equal(dx, f64({0, 2, 1, 0, 0, 9, 6, 0, 0, 0}, {5, 2})));
}

TEST(Index, EmptyInputs) {
  Tensor x = Tensor::zeros({4, 3}, Dtype::F64);
  Tensor out = Tensor::zeros({0, 3}, Dtype::F64);
  gather_rows_forward(out, x, i64({}));
  Tensor dx = like(x, {4, 3});
  gather_rows_backward(dx, out, i64({}));  // overwritten with zeros
  for (double v : dx.to_vector<double>()) EXPECT_EQ(v, 0.0);
  Tensor sum = Tensor::zeros({0, 3}, Dtype::F64), am = Tensor::zeros({0, 3}, Dtype::I64);
  segment_reduce_forward(sum, am, Tensor::zeros({0, 3}, Dtype::F64), i64({0}),
                         SegmentReduce::Max);
  Tensor two = like(x, {2, 3}), am2 = Tensor::zeros({2, 3}, Dtype::I64);
  segment_reduce_forward(two, am2, Tensor::zeros({0, 3}, Dtype::F64), i64({0, 0, 0}),
                         SegmentReduce::Max);
  for (double v : two.to_vector<double>()) EXPECT_EQ(v, 0.0);
  for (int64_t v : am2.to_vector<int64_t>()) EXPECT_EQ(v, -1);
}

// ---------------------------------------------------------------- errors

TEST(Index, BadIndicesThrowNamingOpPositionAndValue) {
  Tensor x = Tensor::zeros({3, 2}, Dtype::F64);
  Tensor out = Tensor::zeros({2, 2}, Dtype::F64);
  expect_error_mentions([&] { gather_rows_forward(out, x, i64({0, 5})); },
                        {"gather_rows_forward", "index[1] = 5", "[0, 3)"});
  expect_error_mentions([&] { gather_rows_forward(out, x, i32({-1, 0})); },
                        {"gather_rows_forward", "index[0] = -1"});
  Tensor big = Tensor::zeros({3, 2}, Dtype::F64);
  expect_error_mentions([&] { scatter_add_rows_forward(big, x, i64({0, 1, 3})); },
                        {"scatter_add_rows_forward", "index[2] = 3"});
  Tensor table = Tensor::zeros({4, 2}, Dtype::F64);
  expect_error_mentions([&] { embedding_forward(out, i64({4, 0}), table); },
                        {"embedding_forward", "indices[0] = 4"});
  expect_error_mentions([&] { embedding_backward(table, out, i64({0, 9})); },
                        {"embedding_backward", "indices[1] = 9"});
  // Shapes, dtypes.
  expect_error_mentions([&] { gather_rows_forward(out, x, i64({0, 1, 2})); },
                        {"gather_rows_forward", "out", "[3, 2]"});
  expect_error_mentions([&] { gather_rows_forward(out, x, f64({0, 1}, {2})); },
                        {"gather_rows_forward", "index", "i32 or i64"});
  expect_error_mentions([&] { scatter_add_rows_forward(big, x, i64({0, 1})); },
                        {"scatter_add_rows_forward", "index has 2 entries", "x has 3 rows"});
}

TEST(SegmentReduce, BadPointersThrow) {
  Tensor x = Tensor::zeros({4, 2}, Dtype::F64);
  Tensor out = Tensor::zeros({2, 2}, Dtype::F64), am = Tensor::zeros({2, 2}, Dtype::I64);
  expect_error_mentions(
      [&] { segment_reduce_forward(out, am, x, i64({0, 3, 2}), SegmentReduce::Sum); },
      {"segment_reduce_forward", "ptr[2] = 2 < ptr[1] = 3"});
  expect_error_mentions(
      [&] { segment_reduce_forward(out, am, x, i64({0, 1, 3}), SegmentReduce::Sum); },
      {"ptr[2]", "4", "got 3"});
  expect_error_mentions(
      [&] { segment_reduce_forward(out, am, x, i64({1, 2, 4}), SegmentReduce::Sum); },
      {"ptr[0] must be 0, got 1"});
  expect_error_mentions(
      [&] { segment_reduce_forward(out, am, x, i64({0, 4}), SegmentReduce::Sum); },
      {"ptr must have B + 1 = 3"});
  Tensor undefined;
  expect_error_mentions(
      [&] { segment_reduce_forward(out, undefined, x, i64({0, 2, 4}), SegmentReduce::Max); },
      {"segment_reduce_forward", "argmax"});
  Tensor dx = Tensor::zeros({4, 2}, Dtype::F64);
  expect_error_mentions(
      [&] {
        segment_reduce_backward(dx, Tensor::zeros({2, 2}, Dtype::F64), i64({0, 2, 4}),
                                Tensor::from_vector<int64_t>({0, 3, 2, 3}, {2, 2}),
                                SegmentReduce::Max);
      },
      {"segment_reduce_backward", "argmax[0, 1] = 3", "segment 0"});
}

// ---------------------------------------------------------------- F64 gradient checks

TEST(Index, GradientsF64) {
  Generator gen(3);
  const int64_t n = 6, m = 9, c = 4, v = 5;
  Tensor x = Tensor::randn({n, c}, gen, Dtype::F64);
  Tensor gidx = Tensor::randint({m}, gen, 0, n, Dtype::I64);
  {  // gather: out [m, c]
    Tensor G = Tensor::randn({m, c}, gen, Dtype::F64);
    Tensor dx = like(x, {n, c});
    gather_rows_backward(dx, G, gidx);
    auto loss = [&] {
      Tensor out = Tensor::empty({m, c}, Dtype::F64);
      gather_rows_forward(out, x, gidx);
      return dot(G, out);
    };
    EXPECT_TRUE(gradient_matches(loss, x, dx));
  }
  {  // scatter-add: src [m, c] into [n, c]
    Tensor src = Tensor::randn({m, c}, gen, Dtype::F64);
    Tensor G = Tensor::randn({n, c}, gen, Dtype::F64);
    Tensor dsrc = like(src, {m, c});
    scatter_add_rows_backward(dsrc, G, gidx);
    auto loss = [&] {
      Tensor out = Tensor::empty({n, c}, Dtype::F64);
      scatter_add_rows_forward(out, src, gidx);
      return dot(G, out);
    };
    EXPECT_TRUE(gradient_matches(loss, src, dsrc));
  }
  {  // embedding: table [v, c], indices [m] with repeats
    Tensor table = Tensor::randn({v, c}, gen, Dtype::F64);
    Tensor idx = Tensor::randint({m}, gen, 0, v, Dtype::I32);
    Tensor G = Tensor::randn({m, c}, gen, Dtype::F64);
    Tensor dtable = Tensor::zeros({v, c}, Dtype::F64);
    embedding_backward(dtable, G, idx);
    auto loss = [&] {
      Tensor out = Tensor::empty({m, c}, Dtype::F64);
      embedding_forward(out, idx, table);
      return dot(G, out);
    };
    EXPECT_TRUE(gradient_matches(loss, table, dtable));
  }
  // Segment reductions (distinct random values: Max has no ties to flip under perturbation).
  Tensor ptr = i64({0, 2, 2, 5, 6});
  Tensor G = Tensor::randn({4, c}, gen, Dtype::F64);
  for (SegmentReduce kind : {SegmentReduce::Sum, SegmentReduce::Mean, SegmentReduce::Max}) {
    SCOPED_TRACE(segment_reduce_name(kind));
    Tensor out = Tensor::empty({4, c}, Dtype::F64), am = Tensor::empty({4, c}, Dtype::I64);
    segment_reduce_forward(out, am, x, ptr, kind);
    Tensor dx = like(x, {n, c});
    segment_reduce_backward(dx, G, ptr, am, kind);
    auto loss = [&] {
      Tensor o = Tensor::empty({4, c}, Dtype::F64), a = Tensor::empty({4, c}, Dtype::I64);
      segment_reduce_forward(o, a, x, ptr, kind);
      return dot(G, o);
    };
    EXPECT_TRUE(gradient_matches(loss, x, dx));
  }
}

// ---------------------------------------------------------------- CUDA

// Random segment pointers over n rows into b segments (some empty).
Tensor random_ptr(int64_t n, int64_t b, Generator& gen, Dtype dt) {
  std::vector<int64_t> cuts = Tensor::randint({b - 1 > 0 ? b - 1 : 0}, gen, 0, n + 1)
                                  .to_vector<int64_t>();
  std::sort(cuts.begin(), cuts.end());
  std::vector<int64_t> p = {0};
  for (int64_t v : cuts) p.push_back(v);
  p.push_back(n);
  return i64(p).to(dt);
}

// f32: gathers copy exactly; scatter-adds use atomics in an arbitrary order: atol 1e-5,
// rtol 1e-4. f64: 1e-12. Segment reductions accumulate in float on CUDA, double on the CPU.
double atol_for(Dtype dt) { return dt == Dtype::F32 ? 1e-5 : 1e-12; }
double rtol_for(Dtype dt) { return dt == Dtype::F32 ? 1e-4 : 1e-12; }
#define EXPECT_CLOSE(a, b, dt) EXPECT_TRUE(all_close(a, b, atol_for(dt), rtol_for(dt)))

TEST(IndexCuda, GatherScatterEmbeddingMatchCpu) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  const Device d = Device::cuda();
  for (Dtype dt : {Dtype::F32, Dtype::F64}) {
    for (Dtype it : {Dtype::I32, Dtype::I64}) {
      for (int64_t n : testing::odd_sizes()) {
        for (int64_t c : {int64_t(1), int64_t(33)}) {
          SCOPED_TRACE(::testing::Message() << dtype_name(dt) << " " << dtype_name(it)
                                            << " n=" << n << " c=" << c);
          Generator gen(n * 100 + c);
          const int64_t m = 2 * n + 1;
          Tensor x = Tensor::randn({n, c}, gen, dt);
          Tensor idx = Tensor::randint({m}, gen, 0, n, it);
          Tensor xd = x.to(d), idxd = idx.to(d);
          Tensor oh = Tensor::empty({m, c}, dt), od = Tensor::empty({m, c}, dt, d);
          gather_rows_forward(oh, x, idx);
          gather_rows_forward(od, xd, idxd);
          EXPECT_TRUE(bitwise_equal(od, oh));
          Tensor G = Tensor::randn({m, c}, gen, dt), Gd = G.to(d);
          Tensor dh = like(x, {n, c}), dd = like(xd, {n, c});
          gather_rows_backward(dh, G, idx);
          gather_rows_backward(dd, Gd, idxd);
          EXPECT_CLOSE(dd, dh, dt);
          Tensor sh = like(x, {n, c}), sd = like(xd, {n, c});
          scatter_add_rows_forward(sh, G, idx);
          scatter_add_rows_forward(sd, Gd, idxd);
          EXPECT_CLOSE(sd, sh, dt);
          Tensor bh = like(G, {m, c}), bd = like(Gd, {m, c});
          scatter_add_rows_backward(bh, x, idx);
          scatter_add_rows_backward(bd, xd, idxd);
          EXPECT_TRUE(bitwise_equal(bd, bh));
          embedding_forward(oh, idx, x);
          embedding_forward(od, idxd, xd);
          EXPECT_TRUE(bitwise_equal(od, oh));
          Tensor th = Tensor::full({n, c}, 0.5, dt), td = th.to(d);
          embedding_backward(th, G, idx);
          embedding_backward(td, Gd, idxd);
          EXPECT_CLOSE(td, th, dt);
        }
      }
    }
  }
}

TEST(IndexCuda, SegmentReduceMatchesCpu) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  const Device d = Device::cuda();
  for (Dtype dt : {Dtype::F32, Dtype::F64}) {
    for (int64_t n : {int64_t(0), int64_t(1), int64_t(7), int64_t(32), int64_t(33),
                      int64_t(257)}) {
      for (int64_t b : {int64_t(1), int64_t(5), int64_t(40)}) {
        for (SegmentReduce kind : {SegmentReduce::Sum, SegmentReduce::Mean, SegmentReduce::Max}) {
          SCOPED_TRACE(::testing::Message() << dtype_name(dt) << " n=" << n << " b=" << b << " "
                                            << segment_reduce_name(kind));
          Generator gen(n * 1000 + b);
          const int64_t c = 7;
          Tensor x = Tensor::randn({n, c}, gen, dt);
          Tensor ptr = random_ptr(n, b, gen, b % 2 ? Dtype::I64 : Dtype::I32);
          Tensor xd = x.to(d), ptrd = ptr.to(d);
          Tensor oh = Tensor::empty({b, c}, dt), od = Tensor::empty({b, c}, dt, d);
          Tensor ah = Tensor::empty({b, c}, Dtype::I64), ad = Tensor::empty({b, c}, Dtype::I64, d);
          segment_reduce_forward(oh, ah, x, ptr, kind);
          segment_reduce_forward(od, ad, xd, ptrd, kind);
          // Sums of up to 257 rows in float (CUDA) vs double (CPU): f32 atol 1e-4.
          EXPECT_TRUE(all_close(od, oh, dt == Dtype::F32 ? 1e-4 : 1e-12, rtol_for(dt)));
          if (kind == SegmentReduce::Max) {
            EXPECT_TRUE(bitwise_equal(od, oh));
            EXPECT_TRUE(bitwise_equal(ad, ah));
          }
          Tensor G = Tensor::randn({b, c}, gen, dt);
          Tensor dh = like(x, {n, c}), dd = like(xd, {n, c});
          segment_reduce_backward(dh, G, ptr, ah, kind);
          segment_reduce_backward(dd, G.to(d), ptrd, ad, kind);
          EXPECT_TRUE(bitwise_equal(dd, dh));  // no sums: copies and one division
          // Deterministic forward: a second run gives the same bits.
          Tensor od2 = Tensor::empty({b, c}, dt, d);
          segment_reduce_forward(od2, ad, xd, ptrd, kind);
          EXPECT_TRUE(bitwise_equal(od2, od));
        }
      }
    }
  }
}

TEST(IndexCuda, OutOfRangeIndexErrorsAtNextReadback) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  const Device d = Device::cuda();
  Tensor x = Tensor::zeros({3, 2}, Dtype::F32, d);
  Tensor out = Tensor::zeros({2, 2}, Dtype::F32, d);
  gather_rows_forward(out, x, i64({0, 3}).to(d));  // no throw yet: the check is on the device
  expect_error_mentions([&] { out.to_vector<float>(); }, {"out of range"});
  // The error was cleared: the next correct op and readback work.
  gather_rows_forward(out, x, i64({0, 2}).to(d));
  EXPECT_NO_THROW(out.to_vector<float>());
  Tensor big = Tensor::zeros({3, 2}, Dtype::F32, d);
  scatter_add_rows_forward(big, Tensor::zeros({2, 2}, Dtype::F32, d), i32({-1, 0}).to(d));
  expect_error_mentions([&] { big.to_vector<float>(); }, {"out of range"});
  embedding_backward(x, out, i64({7, 0}).to(d));
  expect_error_mentions([&] { x.to_vector<float>(); }, {"out of range"});
  // Bad segment pointers.
  Tensor seg = Tensor::zeros({2, 2}, Dtype::F32, d);
  Tensor am = Tensor::zeros({2, 2}, Dtype::I64, d);
  segment_reduce_forward(seg, am, Tensor::zeros({4, 2}, Dtype::F32, d), i64({0, 3, 2}).to(d),
                         SegmentReduce::Sum);
  expect_error_mentions([&] { seg.to_vector<float>(); }, {"segment pointers"});
  Tensor dx = Tensor::zeros({4, 2}, Dtype::F32, d);
  segment_reduce_backward(dx, seg, i64({0, 2, 5}).to(d), am, SegmentReduce::Sum);
  expect_error_mentions([&] { dx.to_vector<float>(); }, {"segment pointers"});
  EXPECT_NO_THROW(dx.to_vector<float>());
}

TEST(IndexCuda, MixedDevicesThrow) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  Tensor x = Tensor::zeros({3, 2}, Dtype::F32, Device::cuda());
  Tensor out = Tensor::zeros({2, 2}, Dtype::F32, Device::cuda());
  expect_error_mentions([&] { gather_rows_forward(out, x, i64({0, 1})); },
                        {"gather_rows_forward", "index", "cpu"});
}

}  // namespace
}  // namespace lapis
