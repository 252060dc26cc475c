// The UCI optical digits data (data/digits, 1,797 8x8 images of handwritten digits), compiled
// into the binary so the `lapis` command needs no data files at run time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace lapis {
namespace apps {

constexpr int64_t kDigitsFeatures = 64;  // 8x8 pixels, row-major
constexpr int64_t kDigitsClasses = 10;
// The split is fixed (independent of the training seed) so that test accuracies of runs with
// different seeds are measured on the same 360 images.
constexpr uint64_t kDigitsSplitSeed = 0;

// Rows of the CSV as read: pixels [rows * 64] scaled to [0, 1] (value / 16), labels [rows].
struct DigitsTable {
  int64_t rows = 0;
  std::vector<float> pixels;
  std::vector<int64_t> labels;
};

// Parses CSV text: one row per line, 64 pixel values (numbers in 0..16) then an integer label
// in 0..9, comma-separated; blank lines and '\r' are ignored. Throws lapis::Error naming
// `source` and the 1-based line number of a malformed row.
DigitsTable parse_digits_csv(const char* text, size_t size, const std::string& source);

// The embedded copy of data/digits/digits.csv (not NUL-counted).
const char* embedded_digits_csv_data();
size_t embedded_digits_csv_size();

// Reads `path` (or the embedded copy when path is empty) and parses it.
DigitsTable load_digits_table(const std::string& path);

// A shuffled train/test split as tensors on the CPU: x [rows, 64] f32, y [rows] i64.
struct DigitsSplit {
  Tensor train_x, train_y;
  Tensor test_x, test_y;
};
// Shuffles the row order with Generator(seed) (Fisher-Yates) and puts the last
// ceil(0.2 * rows) rows into the test set, as sklearn's test_size=0.2: the 1,797 embedded rows
// give 1,437 train / 360 test. Needs at least 2 rows.
DigitsSplit split_digits(const DigitsTable& table, uint64_t seed = kDigitsSplitSeed);

// load_digits_table + split_digits with the fixed split seed.
DigitsSplit load_digits(const std::string& path = "");

}  // namespace apps
}  // namespace lapis
