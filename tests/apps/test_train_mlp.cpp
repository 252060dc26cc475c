// The digits loader and the train-mlp loop (apps/lapis): parsing and split, reproducibility
// against recorded losses, CPU/CUDA agreement and the accuracy the README promises.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <string>

#include "apps/lapis/digits.h"
#include "apps/lapis/train_mlp.h"
#include "core/cuda_api.h"
#include "tests/common/test_util.h"

namespace lapis {
namespace apps {
namespace {

std::string csv_row(int label, int pixel_value = 3, int pixels = 64) {
  std::string row;
  for (int j = 0; j < pixels; ++j) row += std::to_string(pixel_value) + ",";
  return row + std::to_string(label) + "\n";
}

std::string error_of(const std::string& text) {
  try {
    parse_digits_csv(text.data(), text.size(), "test.csv");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Digits, EmbeddedTableIsComplete) {
  const DigitsTable t = load_digits_table("");
  ASSERT_EQ(t.rows, 1797);
  ASSERT_EQ(t.pixels.size(), 1797u * 64u);
  ASSERT_EQ(t.labels.size(), 1797u);
  EXPECT_GE(*std::min_element(t.pixels.begin(), t.pixels.end()), 0.0f);
  EXPECT_LE(*std::max_element(t.pixels.begin(), t.pixels.end()), 1.0f);
  EXPECT_EQ(*std::max_element(t.pixels.begin(), t.pixels.end()), 1.0f);  // 16 / 16 occurs
  std::array<int, 10> per_class{};
  for (int64_t y : t.labels) {
    ASSERT_GE(y, 0);
    ASSERT_LT(y, 10);
    ++per_class[y];
  }
  for (int c = 0; c < 10; ++c) EXPECT_GT(per_class[c], 170) << "class " << c;
  // First row of digits.csv: "0,0,5,13,9,1,0,0,..." with label 0.
  EXPECT_EQ(t.pixels[2], 5.0f / 16.0f);
  EXPECT_EQ(t.pixels[3], 13.0f / 16.0f);
  EXPECT_EQ(t.labels[0], 0);
}

TEST(Digits, SplitIsFixedAndPartitionsTheRows) {
  const DigitsTable t = load_digits_table("");
  const DigitsSplit a = split_digits(t);
  const DigitsSplit b = load_digits("");
  ASSERT_EQ(a.train_x.shape(), (Shape{1437, 64}));
  ASSERT_EQ(a.train_y.shape(), (Shape{1437}));
  ASSERT_EQ(a.test_x.shape(), (Shape{360, 64}));
  ASSERT_EQ(a.test_y.shape(), (Shape{360}));
  EXPECT_EQ(a.train_x.dtype(), Dtype::F32);
  EXPECT_EQ(a.train_y.dtype(), Dtype::I64);
  EXPECT_TRUE(testing::bitwise_equal(a.train_x, b.train_x));
  EXPECT_TRUE(testing::bitwise_equal(a.test_y, b.test_y));

  // Train and test together hold every row once: compare per-class counts and pixel sums.
  std::array<int, 10> counts{};
  double pixel_sum = 0;
  for (const Tensor* y : {&a.train_y, &a.test_y}) {
    for (int64_t v : y->to_vector<int64_t>()) ++counts[v];
  }
  for (const Tensor* x : {&a.train_x, &a.test_x}) {
    for (float v : x->to_vector<float>()) pixel_sum += v;
  }
  std::array<int, 10> expected{};
  for (int64_t v : t.labels) ++expected[v];
  double expected_sum = 0;
  for (float v : t.pixels) expected_sum += v;
  EXPECT_EQ(counts, expected);
  EXPECT_NEAR(pixel_sum, expected_sum, 1e-6 * expected_sum);

  // Shuffled: the test set is not simply the last 360 rows.
  const std::vector<int64_t> test_labels = a.test_y.to_vector<int64_t>();
  const std::vector<int64_t> tail(t.labels.end() - 360, t.labels.end());
  EXPECT_NE(test_labels, tail);
  // Another seed gives another split.
  EXPECT_FALSE(testing::bitwise_equal(split_digits(t, 1).test_y, a.test_y));
}

TEST(Digits, ParsesCrLfAndBlankLines) {
  const std::string text = csv_row(3, 16) + "\r\n\n" + csv_row(7, 0);
  std::string crlf = csv_row(1, 8);
  crlf.insert(crlf.size() - 1, "\r");
  const std::string all = text + crlf;
  const DigitsTable t = parse_digits_csv(all.data(), all.size(), "test.csv");
  ASSERT_EQ(t.rows, 3);
  EXPECT_EQ(t.labels, (std::vector<int64_t>{3, 7, 1}));
  EXPECT_EQ(t.pixels[0], 1.0f);
  EXPECT_EQ(t.pixels[64], 0.0f);
  EXPECT_EQ(t.pixels[128], 0.5f);
}

TEST(Digits, MalformedRowsNameTheLine) {
  EXPECT_NE(error_of(csv_row(1) + csv_row(2, 3, 63)).find("test.csv line 2: expected 65"),
            std::string::npos)
      << error_of(csv_row(1) + csv_row(2, 3, 63));
  EXPECT_NE(error_of(csv_row(1) + csv_row(2) + csv_row(2, 17)).find("line 3: pixel 0 = 17"),
            std::string::npos);
  EXPECT_NE(error_of(csv_row(10)).find("line 1: label '10'"), std::string::npos);
  EXPECT_NE(error_of("x" + csv_row(1)).find("line 1: pixel 0 is not a number: 'x3'"),
            std::string::npos)
      << error_of("x" + csv_row(1));
  std::string trailing = csv_row(1);
  trailing.insert(trailing.size() - 1, ",");
  EXPECT_NE(error_of(trailing).find("got 66"), std::string::npos) << error_of(trailing);
  EXPECT_NE(error_of("\n\n").find("no data rows"), std::string::npos);
  EXPECT_THROW(load_digits_table("/nonexistent/digits.csv"), Error);
}

MlpTrainOptions small_run(Device device, int epochs) {
  MlpTrainOptions o;
  o.epochs = epochs;
  o.seed = 0;
  o.device = device;
  return o;
}

// Golden per-epoch mean training losses of `train_mlp` with the defaults (hidden 64, batch 64,
// AdamW lr 1e-3, weight decay 0.01, seed 0) for 3 epochs on the CPU, recorded from this
// implementation with `lapis train-mlp --epochs 3 --seed 0` (6 significant digits). They pin the
// whole pipeline: data split, initialisation, batch order, kernels and optimizer. A deliberate
// change to any of those must re-record them (and say so in the commit).
TEST(TrainMlp, CpuLossesMatchRecordedValues) {
  const std::vector<double> golden = {2.22660, 1.96836, 1.49317};
  const MlpTrainResult r = train_mlp(small_run(Device::cpu(), 3), nullptr);
  ASSERT_EQ(r.train_loss.size(), golden.size());
  for (size_t i = 0; i < golden.size(); ++i) {
    EXPECT_NEAR(r.train_loss[i], golden[i], 1e-4 * golden[i]) << "epoch " << i + 1;
  }
  // The same seed repeats exactly.
  const MlpTrainResult again = train_mlp(small_run(Device::cpu(), 3), nullptr);
  EXPECT_EQ(again.train_loss, r.train_loss);
  EXPECT_EQ(again.test_acc, r.test_acc);
}

// CPU and CUDA start from the same weights (initialised on the CPU) and see the same batches;
// only floating-point summation order differs (cuBLAS vs Eigen, parallel reductions), so the
// per-epoch losses agree to rel 1e-3 over 3 epochs.
TEST(TrainMlpCuda, MatchesCpu) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  const MlpTrainResult cpu = train_mlp(small_run(Device::cpu(), 3), nullptr);
  const MlpTrainResult gpu = train_mlp(small_run(Device::cuda(), 3), nullptr);
  ASSERT_EQ(gpu.train_loss.size(), cpu.train_loss.size());
  for (size_t i = 0; i < cpu.train_loss.size(); ++i) {
    EXPECT_NEAR(gpu.train_loss[i], cpu.train_loss[i], 1e-3 * cpu.train_loss[i])
        << "epoch " << i + 1;
    // At most 2 of the 360 test images may flip near a decision boundary.
    EXPECT_NEAR(gpu.test_acc[i], cpu.test_acc[i], 2.0 / 360 + 1e-12) << "epoch " << i + 1;
  }
}

// The caching allocator's promise: once the sizes of a training run have been seen, training does
// no cudaMalloc at all. A second identical run must be served entirely from the cache.
TEST(TrainMlpCuda, SteadyStateDoesNoCudaMalloc) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  train_mlp(small_run(Device::cuda(), 2), nullptr);
  const cuda::AllocatorStats before = cuda::allocator_stats();
  train_mlp(small_run(Device::cuda(), 2), nullptr);
  const cuda::AllocatorStats after = cuda::allocator_stats();
  EXPECT_EQ(after.cuda_malloc_calls, before.cuda_malloc_calls);
  EXPECT_EQ(after.cuda_free_calls, before.cuda_free_calls);
  EXPECT_GT(after.cache_hits, before.cache_hits);
}

TEST(TrainMlp, ReachesHighAccuracyIn30Epochs) {
  const MlpTrainResult r = train_mlp(small_run(Device::cpu(), 30), nullptr);
  ASSERT_EQ(r.test_acc.size(), 30u);
  EXPECT_GE(r.test_acc.back(), 0.93);
  EXPECT_LT(r.train_loss.back(), r.train_loss.front());
  EXPECT_GT(r.num_parameters, 0);
}

TEST(TrainMlp, RejectsBadOptions) {
  MlpTrainOptions o;
  o.hidden = 0;
  try {
    train_mlp(o, nullptr);
    FAIL() << "expected lapis::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--hidden"), std::string::npos) << e.what();
  }
  o = MlpTrainOptions();
  o.dropout = 1.0;
  EXPECT_THROW(train_mlp(o, nullptr), Error);
  o = MlpTrainOptions();
  o.data_path = "/nonexistent/digits.csv";
  EXPECT_THROW(train_mlp(o, nullptr), Error);
}

}  // namespace
}  // namespace apps
}  // namespace lapis
