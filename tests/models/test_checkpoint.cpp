#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "models/io/checkpoint.h"
#include "models/io/safetensors.h"
#include "models/nn/layers.h"
#include "models/optim/optimizer.h"
#include "tests/common/test_util.h"

namespace lapis {
namespace {

namespace fs = std::filesystem;

// MLP followed by a BatchNorm, so that checkpoints hold parameters and buffers.
class Net : public nn::Module {
 public:
  Net(std::vector<int64_t> dims, uint64_t seed)
      : gen_(seed), mlp_(dims, Activation::ReLU, 0.0, gen_), bn_(dims.back()) {
    register_child("mlp", &mlp_);
    register_child("bn", &bn_);
  }
  Tensor forward(const Tensor& x) { return bn_.forward(mlp_.forward(x, mlp_ctx_), bn_ctx_); }
  void backward(const Tensor& g) { mlp_.backward(bn_.backward(g, bn_ctx_), mlp_ctx_); }

 private:
  Generator gen_;
  nn::MLP mlp_;
  nn::BatchNorm1d bn_;
  nn::MLPCtx mlp_ctx_;
  nn::BatchNormCtx bn_ctx_;
};

class CheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           ("lapis_ckpt_" + std::to_string(::getpid()) + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  fs::path dir_;
};

// One training step on loss = dot(G, net(x)).
void train_step(Net& net, optim::Optimizer& opt, const Tensor& x, const Tensor& G) {
  opt.zero_grad();
  net.forward(x);
  net.backward(G);
  opt.step();
}

::testing::AssertionResult same_parameters(nn::Module& a, nn::Module& b) {
  const auto pa = a.parameters(), pb = b.parameters();
  if (pa.size() != pb.size()) return ::testing::AssertionFailure() << "parameter counts differ";
  for (size_t i = 0; i < pa.size(); ++i) {
    auto r = testing::bitwise_equal(pa[i]->value, pb[i]->value);
    if (!r) return r << " (" << pa[i]->name << ")";
  }
  const auto ba = a.buffers(), bb = b.buffers();
  for (size_t i = 0; i < ba.size(); ++i) {
    auto r = testing::bitwise_equal(*ba[i].second, *bb[i].second);
    if (!r) return r << " (" << ba[i].first << ")";
  }
  return ::testing::AssertionSuccess();
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST_F(CheckpointTest, ResumesIdentically) {
  Generator gen(7);
  const Tensor x = Tensor::randn({9, 6}, gen);
  const Tensor G = Tensor::randn({9, 3}, gen);
  Net net({6, 8, 3}, 1);
  optim::AdamW opt(net.parameters(), 0.01);
  for (int i = 0; i < 3; ++i) train_step(net, opt, x, G);
  opt.set_lr(0.005);
  io::save_checkpoint(path("c.safetensors"), net, &opt, {{"epoch", "3"}, {"seed", "1"}});

  // The file holds the documented names.
  const io::SafetensorsFile file = io::load_safetensors(path("c.safetensors"));
  EXPECT_EQ(file.tensors.count("model.mlp.layers.0.weight"), 1u);
  EXPECT_EQ(file.tensors.count("buffer.bn.running_mean"), 1u);
  EXPECT_EQ(file.tensors.count("optim.mlp.layers.1.bias.exp_avg_sq"), 1u);
  EXPECT_EQ(file.tensors.size(), 6u + 2u + 12u);  // parameters, buffers, 2 moments each
  EXPECT_EQ(file.metadata.at("lapis_format"), "1");
  EXPECT_EQ(file.metadata.at("optim_step"), "3");

  Net fresh({6, 8, 3}, 99);
  optim::AdamW fresh_opt(fresh.parameters(), 0.5);
  const auto meta = io::load_checkpoint(path("c.safetensors"), fresh, &fresh_opt);
  EXPECT_EQ(meta, (std::map<std::string, std::string>{{"epoch", "3"}, {"seed", "1"}}));
  EXPECT_EQ(fresh_opt.step_count(), 3);
  EXPECT_EQ(fresh_opt.lr(), 0.005);
  EXPECT_TRUE(same_parameters(net, fresh));

  // Identical outputs in eval (running stats) and training mode, and an identical next step.
  net.eval();
  fresh.eval();
  EXPECT_TRUE(testing::bitwise_equal(fresh.forward(x), net.forward(x)));
  net.train();
  fresh.train();
  train_step(net, opt, x, G);
  train_step(fresh, fresh_opt, x, G);
  EXPECT_TRUE(same_parameters(net, fresh));
  const auto sa = opt.state(), sb = fresh_opt.state();
  for (size_t i = 0; i < sa.size(); ++i) {
    EXPECT_TRUE(testing::bitwise_equal(*sa[i].second, *sb[i].second)) << sa[i].first;
  }
}

TEST_F(CheckpointTest, ModelOnlyAndDtypeConversion) {
  Net net({4, 5, 2}, 3);
  io::save_checkpoint(path("m.safetensors"), net, nullptr);
  Net f64({4, 5, 2}, 4);
  f64.to(Dtype::F64);
  io::load_checkpoint(path("m.safetensors"), f64, nullptr);
  EXPECT_EQ(f64.parameters()[0]->value.dtype(), Dtype::F64);
  EXPECT_TRUE(testing::bitwise_equal(f64.parameters()[0]->value.to(Dtype::F32),
                                     net.parameters()[0]->value));
  // An optimizer cannot be restored from a file without optimizer state.
  optim::AdamW opt(f64.parameters());
  EXPECT_NE(error_of([&] { io::load_checkpoint(path("m.safetensors"), f64, &opt); })
                .find("no optimizer state"),
            std::string::npos);
  // A checkpoint with optimizer state loads into a model alone.
  Net other({4, 5, 2}, 5);
  optim::Adam adam(other.parameters());
  io::save_checkpoint(path("o.safetensors"), other, &adam);
  io::load_checkpoint(path("o.safetensors"), net, nullptr);
  EXPECT_TRUE(same_parameters(net, other));
  // ... but not into a different optimizer type.
  EXPECT_NE(error_of([&] { io::load_checkpoint(path("o.safetensors"), f64, &opt); })
                .find("'adam' but the optimizer is 'adamw'"),
            std::string::npos);
}

TEST_F(CheckpointTest, MismatchedModelNamesTensorAndShapes) {
  Net net({6, 8, 3}, 1);
  io::save_checkpoint(path("c.safetensors"), net, nullptr);
  Net wrong({6, 9, 3}, 2);
  const std::vector<float> before = wrong.parameters()[0]->value.to_vector<float>();
  const std::string msg =
      error_of([&] { io::load_checkpoint(path("c.safetensors"), wrong, nullptr); });
  EXPECT_NE(msg.find(path("c.safetensors")), std::string::npos) << msg;
  EXPECT_NE(msg.find("'model.mlp.layers.0.weight' has shape [8, 6] in the file but [9, 6] in "
                     "the model"),
            std::string::npos)
      << msg;
  EXPECT_NE(msg.find("'model.mlp.layers.1.weight' has shape [3, 8] in the file but [3, 9]"),
            std::string::npos)
      << msg;
  // Nothing was written.
  EXPECT_EQ(wrong.parameters()[0]->value.to_vector<float>(), before);

  // Missing and unexpected tensors are named too.
  Net deeper({6, 8, 8, 3}, 1);
  const std::string msg2 =
      error_of([&] { io::load_checkpoint(path("c.safetensors"), deeper, nullptr); });
  EXPECT_NE(msg2.find("missing tensor 'model.mlp.layers.2.weight'"), std::string::npos) << msg2;
  Net shallower({6, 3}, 1);
  const std::string msg3 =
      error_of([&] { io::load_checkpoint(path("c.safetensors"), shallower, nullptr); });
  EXPECT_NE(msg3.find("unexpected tensor 'model.mlp.layers.1.weight' [3, 8]"), std::string::npos)
      << msg3;
}

TEST_F(CheckpointTest, RejectsCorruptedAndForeignFiles) {
  Net net({6, 8, 3}, 1);
  optim::AdamW opt(net.parameters());
  io::save_checkpoint(path("c.safetensors"), net, &opt, {{"epoch", "1"}});
  std::vector<char> bytes;
  {
    std::ifstream in(path("c.safetensors"), std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  bytes.resize(bytes.size() - 10);
  {
    std::ofstream out(path("t.safetensors"), std::ios::binary);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }
  const std::string msg = error_of([&] { io::load_checkpoint(path("t.safetensors"), net, &opt); });
  EXPECT_NE(msg.find(path("t.safetensors")), std::string::npos) << msg;
  EXPECT_NE(msg.find("truncated"), std::string::npos) << msg;

  io::save_safetensors(path("plain.safetensors"), {{"model.x", Tensor::zeros({1})}}, {});
  EXPECT_NE(error_of([&] { io::load_checkpoint(path("plain.safetensors"), net, nullptr); })
                .find("not a Lapis checkpoint"),
            std::string::npos);
  EXPECT_NE(error_of([&] { io::load_checkpoint(path("absent.safetensors"), net, nullptr); })
                .find("cannot open"),
            std::string::npos);
  EXPECT_THROW(io::save_checkpoint(path("r.safetensors"), net, nullptr, {{"lapis_format", "2"}}),
               Error);
}

class CheckpointCuda : public CheckpointTest {};

TEST_F(CheckpointCuda, SavesFromCudaLoadsOnCpu) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  Generator gen(7);
  const Tensor x = Tensor::randn({9, 6}, gen);
  const Tensor G = Tensor::randn({9, 3}, gen);
  Net net({6, 8, 3}, 1);
  net.to(Device::cuda());
  optim::AdamW opt(net.parameters(), 0.01);
  for (int i = 0; i < 3; ++i) train_step(net, opt, x.to(Device::cuda()), G.to(Device::cuda()));
  io::save_checkpoint(path("g.safetensors"), net, &opt);

  Net cpu({6, 8, 3}, 2);
  optim::AdamW cpu_opt(cpu.parameters());
  io::load_checkpoint(path("g.safetensors"), cpu, &cpu_opt);
  const auto pg = net.parameters(), pc = cpu.parameters();
  for (size_t i = 0; i < pg.size(); ++i) {
    EXPECT_TRUE(testing::bitwise_equal(pc[i]->value, pg[i]->value.to(Device::cpu())));
  }
  // And back onto the GPU: a model moved to CUDA loads in place.
  Net back({6, 8, 3}, 3);
  back.to(Device::cuda());
  optim::AdamW back_opt(back.parameters());
  io::load_checkpoint(path("g.safetensors"), back, &back_opt);
  EXPECT_TRUE(back.parameters()[0]->value.is_cuda());
  EXPECT_TRUE(back_opt.state()[0].second->is_cuda());
  EXPECT_TRUE(same_parameters(back, net));
}

}  // namespace
}  // namespace lapis
