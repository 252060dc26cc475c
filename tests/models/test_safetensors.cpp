#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "models/io/safetensors.h"
#include "tests/common/test_util.h"

namespace lapis {
namespace {

namespace fs = std::filesystem;
using Bytes = std::vector<unsigned char>;

// A fresh directory per test, removed afterwards.
class SafetensorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           ("lapis_st_" + std::to_string(::getpid()) + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  fs::path dir_;
};

Bytes read_bytes(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void write_bytes(const std::string& p, const Bytes& b) {
  std::ofstream out(p, std::ios::binary);
  out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

// A file with the given header text (not padded) and data bytes.
Bytes make_file(const std::string& header, const Bytes& data) {
  Bytes b;
  b.reserve(8 + header.size() + data.size());
  for (int i = 0; i < 8; ++i) b.push_back(static_cast<unsigned char>(header.size() >> (8 * i)));
  b.insert(b.end(), header.begin(), header.end());
  b.insert(b.end(), data.begin(), data.end());
  return b;
}

// Loading must fail with a lapis::Error naming the file and containing `problem`.
void expect_load_error(const std::string& p, const std::string& problem) {
  try {
    io::load_safetensors(p);
    ADD_FAILURE() << "expected an error containing '" << problem << "' for " << p;
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(p), std::string::npos) << "message does not name the file: " << msg;
    EXPECT_NE(msg.find(problem), std::string::npos) << "expected '" << problem << "' in: " << msg;
  }
}

TEST_F(SafetensorsTest, RoundTripAllDtypesAndEmptyTensors) {
  Generator gen(1);
  std::vector<std::pair<std::string, Tensor>> tensors = {
      {"w.f32", Tensor::randn({3, 5}, gen)},
      {"b.f64", Tensor::randn({7}, gen, Dtype::F64)},
      {"idx.i32", Tensor::randint({2, 2, 3}, gen, -100, 100, Dtype::I32)},
      {"idx.i64", Tensor::from_vector<int64_t>({int64_t(1) << 40, -5, 0}, {3})},
      {"empty.f32", Tensor::zeros({0, 4})},
      {"empty.i64", Tensor::zeros({0}, Dtype::I64)},
      {"scalar", Tensor::full({}, 3.5, Dtype::F64)},
  };
  const std::map<std::string, std::string> meta = {{"epoch", "3"}, {"note", "héllo \"q\""}};
  io::save_safetensors(path("a.safetensors"), tensors, meta);
  const io::SafetensorsFile f = io::load_safetensors(path("a.safetensors"));
  EXPECT_EQ(f.metadata, meta);
  ASSERT_EQ(f.tensors.size(), tensors.size());
  for (const auto& nt : tensors) {
    const auto it = f.tensors.find(nt.first);
    ASSERT_NE(it, f.tensors.end()) << nt.first;
    EXPECT_EQ(it->second.dtype(), nt.second.dtype()) << nt.first;
    EXPECT_EQ(it->second.shape(), nt.second.shape()) << nt.first;
    EXPECT_TRUE(it->second.device().is_cpu());
    EXPECT_TRUE(testing::bitwise_equal(it->second, nt.second)) << nt.first;
  }
  // No temporary file is left next to the target.
  int files = 0;
  for (const auto& e : fs::directory_iterator(dir_)) { (void)e; ++files; }
  EXPECT_EQ(files, 1);
}

TEST_F(SafetensorsTest, NoTensorsAndNoMetadata) {
  io::save_safetensors(path("e.safetensors"), {}, {});
  // Header "{}" padded to 8 bytes.
  const Bytes b = read_bytes(path("e.safetensors"));
  ASSERT_EQ(b.size(), 16u);
  EXPECT_EQ(b[0], 8);
  EXPECT_EQ(std::string(b.begin() + 8, b.end()), "{}      ");
  const io::SafetensorsFile f = io::load_safetensors(path("e.safetensors"));
  EXPECT_TRUE(f.tensors.empty());
  EXPECT_TRUE(f.metadata.empty());
}

TEST_F(SafetensorsTest, ByteLayoutMatchesHandBuiltFile) {
  io::save_safetensors(path("h.safetensors"),
                       {{"a", Tensor::from_vector<float>({1.0f, -2.0f}, {2})}}, {{"k", "v"}});
  // Header: 79 characters of JSON (keys sorted, no spaces) plus 1 space of padding = 80 = 0x50.
  const std::string json =
      "{\"__metadata__\":{\"k\":\"v\"},\"a\":{\"data_offsets\":[0,8],\"dtype\":\"F32\","
      "\"shape\":[2]}}";
  ASSERT_EQ(json.size(), 79u);
  Bytes expected = {0x50, 0, 0, 0, 0, 0, 0, 0};
  expected.insert(expected.end(), json.begin(), json.end());
  expected.push_back(' ');
  // 1.0f = 0x3F800000 and -2.0f = 0xC0000000, little-endian.
  const Bytes data = {0x00, 0x00, 0x80, 0x3F, 0x00, 0x00, 0x00, 0xC0};
  expected.insert(expected.end(), data.begin(), data.end());
  EXPECT_EQ(read_bytes(path("h.safetensors")), expected);

  // And the hand-built bytes load back (an unpadded header is accepted too).
  write_bytes(path("hand.safetensors"), make_file(json, data));
  const io::SafetensorsFile f = io::load_safetensors(path("hand.safetensors"));
  EXPECT_EQ(f.tensors.at("a").to_vector<float>(), (std::vector<float>{1.0f, -2.0f}));
  EXPECT_EQ(f.metadata.at("k"), "v");
}

TEST_F(SafetensorsTest, TensorsAreSortedByNameInTheData) {
  io::save_safetensors(path("s.safetensors"),
                       {{"z", Tensor::full({1}, 1.0)}, {"a", Tensor::full({1}, 2.0)}}, {});
  const Bytes b = read_bytes(path("s.safetensors"));
  float first, second;
  std::memcpy(&first, b.data() + b.size() - 8, 4);
  std::memcpy(&second, b.data() + b.size() - 4, 4);
  EXPECT_EQ(first, 2.0f);   // "a"
  EXPECT_EQ(second, 1.0f);  // "z"
}

TEST_F(SafetensorsTest, OverwritesAtomicallyAndRejectsBadNames) {
  const std::string p = path("o.safetensors");
  io::save_safetensors(p, {{"x", Tensor::full({2}, 1.0)}}, {});
  io::save_safetensors(p, {{"x", Tensor::full({3}, 2.0)}}, {});
  EXPECT_EQ(io::load_safetensors(p).tensors.at("x").numel(), 3);
  EXPECT_THROW(io::save_safetensors(p, {{"x", Tensor::zeros({1})}, {"x", Tensor::zeros({1})}}),
               Error);
  EXPECT_THROW(io::save_safetensors(p, {{"", Tensor::zeros({1})}}), Error);
  EXPECT_THROW(io::save_safetensors(p, {{"__metadata__", Tensor::zeros({1})}}), Error);
  EXPECT_THROW(io::save_safetensors(p, {{"u", Tensor()}}), Error);
  // The failed saves left the previous file intact and no temporaries behind.
  EXPECT_EQ(io::load_safetensors(p).tensors.at("x").numel(), 3);
  int files = 0;
  for (const auto& e : fs::directory_iterator(dir_)) { (void)e; ++files; }
  EXPECT_EQ(files, 1);
  // A directory that does not exist: the error names the path.
  try {
    io::save_safetensors(path("nodir/x.safetensors"), {{"x", Tensor::zeros({1})}});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("nodir/x.safetensors"), std::string::npos) << e.what();
  }
}

TEST_F(SafetensorsTest, RejectsMissingFile) {
  expect_load_error(path("missing.safetensors"), "cannot open");
}

TEST_F(SafetensorsTest, RejectsTruncatedData) {
  const std::string p = path("t.safetensors");
  io::save_safetensors(p, {{"a", Tensor::zeros({4})}, {"b", Tensor::zeros({4})}}, {});
  Bytes b = read_bytes(p);
  b.resize(b.size() - 3);
  write_bytes(p, b);
  expect_load_error(p, "out of bounds");
}

TEST_F(SafetensorsTest, RejectsTruncatedHeader) {
  const std::string p = path("th.safetensors");
  io::save_safetensors(p, {{"a", Tensor::zeros({4})}}, {});
  Bytes b = read_bytes(p);
  b.resize(20);  // inside the JSON header
  write_bytes(p, b);
  expect_load_error(p, "header length");
  b.resize(5);  // inside the length field
  write_bytes(p, b);
  expect_load_error(p, "too short");
}

TEST_F(SafetensorsTest, RejectsHeaderLengthLargerThanFile) {
  const std::string p = path("hl.safetensors");
  Bytes b = make_file("{}", {});
  b[0] = 0xFF;
  b[5] = 0x01;  // 2^40 + 255
  write_bytes(p, b);
  expect_load_error(p, "exceeds");
}

TEST_F(SafetensorsTest, RejectsBadJson) {
  const std::string p = path("j.safetensors");
  write_bytes(p, make_file("{\"a\": {\"dtype\": \"F32\",", {}));
  expect_load_error(p, "bad header JSON");
  write_bytes(p, make_file("[1, 2]", {}));
  expect_load_error(p, "bad header JSON");
  write_bytes(p, make_file("{\"__metadata__\": {\"k\": 1}}", {}));
  expect_load_error(p, "bad metadata");
  write_bytes(p, make_file("{\"a\": {\"dtype\": \"F32\", \"shape\": [1]}}", {0, 0, 0, 0}));
  expect_load_error(p, "needs dtype, shape and data_offsets");
  write_bytes(p, make_file("{\"a\": {\"dtype\": \"F32\", \"shape\": [-1], "
                           "\"data_offsets\": [0, 4]}}", {0, 0, 0, 0}));
  expect_load_error(p, "bad shape");
}

TEST_F(SafetensorsTest, RejectsOffsetsOutOfBounds) {
  const std::string p = path("ob.safetensors");
  write_bytes(p, make_file("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}",
                           Bytes(8, 0)));
  expect_load_error(p, "out of bounds");
  write_bytes(p, make_file("{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,0]}}",
                           Bytes(8, 0)));
  expect_load_error(p, "begin > end");
}

TEST_F(SafetensorsTest, RejectsOverlapsGapsAndTrailingBytes) {
  const std::string p = path("ov.safetensors");
  write_bytes(p, make_file("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                           "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                           Bytes(8, 0)));
  expect_load_error(p, "overlap");
  write_bytes(p, make_file("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                           Bytes(8, 0)));
  expect_load_error(p, "gap");
  write_bytes(p, make_file("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
                           Bytes(8, 0)));
  expect_load_error(p, "trailing");
}

TEST_F(SafetensorsTest, RejectsShapeOffsetSizeMismatch) {
  const std::string p = path("sm.safetensors");
  write_bytes(p, make_file("{\"a\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[0,8]}}",
                           Bytes(8, 0)));
  expect_load_error(p, "size mismatch");
}

TEST_F(SafetensorsTest, RejectsUnknownDtype) {
  const std::string p = path("dt.safetensors");
  write_bytes(p, make_file("{\"a\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[0,8]}}",
                           Bytes(8, 0)));
  expect_load_error(p, "unknown dtype 'BF16'");
}

// CUDA cases live in a suite whose name ends with "Cuda".
class SafetensorsCuda : public SafetensorsTest {};

TEST_F(SafetensorsCuda, SavesCudaTensors) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  Generator gen(5);
  const Tensor host = Tensor::randn({33, 7}, gen);
  const Tensor idx = Tensor::randint({31}, gen, 0, 1000, Dtype::I64);
  io::save_safetensors(path("cuda.safetensors"),
                       {{"x", host.to(Device::cuda())}, {"i", idx.to(Device::cuda())},
                        {"e", Tensor::zeros({0, 3}, Dtype::F64, Device::cuda())}},
                       {});
  const io::SafetensorsFile f = io::load_safetensors(path("cuda.safetensors"));
  EXPECT_TRUE(testing::bitwise_equal(f.tensors.at("x"), host));
  EXPECT_TRUE(testing::bitwise_equal(f.tensors.at("i"), idx));
  EXPECT_EQ(f.tensors.at("e").shape(), (Shape{0, 3}));
}

}  // namespace
}  // namespace lapis
