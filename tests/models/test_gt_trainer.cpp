// The graph-transformer trainer (models/gt/trainer.h) on a tiny slice of the shipped ZINC bundle:
// golden losses, exact resume after an interruption, checkpoints that evaluate to the recorded
// loss, the log files, config overrides and validation, and CPU vs CUDA training.
//
// The data comes from data/zinc (found through $LAPIS_SOURCE_DIR, which ctest sets); encodings
// are cached in a private temporary folder per test.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "models/gt/graph_transformer.h"
#include "models/gt/trainer.h"
#include "models/gt/training_report.h"
#include "models/io/checkpoint.h"
#include "models/io/safetensors.h"
#include "tests/common/test_util.h"
#include "tests/common/temp_dir.h"

namespace lapis {
namespace gt {
namespace {

using lapis::testing::TempDir;

namespace fs = std::filesystem;
using testing::expect_error_mentions;


std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// The tiny configuration of the tests (the `zinc` config shrunk): 64 training graphs, 32 val and
// 32 test graphs, L=2, C=16, H=4, LapPE k=4, batch 16 (4 batches per epoch), 3 epochs, seed 7.
TrainConfig tiny_config(const std::string& cache_dir, const std::string& out_dir = "") {
  TrainConfig c = builtin_config("zinc");
  c.max_train_graphs = 64;
  c.max_eval_graphs = 32;
  c.model.layers = 2;
  c.model.hidden = 16;
  c.model.heads = 4;
  c.model.pe_dim = 4;
  c.batch_size = 16;
  c.max_epochs = 3;
  c.seed = 7;
  c.cache_dir = cache_dir;
  c.out_dir = out_dir;
  c.progress = false;
  return c;
}

// Every field except the wall times, compared exactly (a resumed CPU run must reproduce the
// uninterrupted one bit for bit).
void expect_same_records(const std::vector<EpochRecord>& a, const std::vector<EpochRecord>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    SCOPED_TRACE("epoch " + std::to_string(i + 1));
    EXPECT_EQ(a[i].epoch, b[i].epoch);
    EXPECT_EQ(a[i].train_loss, b[i].train_loss);
    EXPECT_EQ(a[i].val_loss, b[i].val_loss);
    EXPECT_EQ(a[i].val_metric, b[i].val_metric);
    EXPECT_EQ(a[i].test_loss, b[i].test_loss);
    EXPECT_EQ(a[i].test_metric, b[i].test_metric);
    EXPECT_EQ(a[i].lr, b[i].lr);
  }
}

// ---- golden losses ----

TEST(GtTrainer, TinyZincGoldenLosses) {
  TempDir dir;
  const TrainResult r = train_graph_transformer(tiny_config(dir.file("cache")), nullptr);
  // Recorded once from this very configuration (CPU, Release build, F32) with
  //   tiny_config(): zinc, max_train_graphs 64, max_eval_graphs 32, layers 2, hidden 16, heads 4,
  //   pe_dim 4, batch 16, 3 epochs, seed 7
  // by printing r.history[i].train_loss with %.6g. They pin the whole pipeline (data, LapPE,
  // batching order, initialisation, kernels, Adam); a deliberate change to any of these must
  // re-record them.
  const double golden[3] = {1.22119, 1.21946, 1.21659};
  ASSERT_EQ(r.history.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_NEAR(r.history[static_cast<size_t>(i)].train_loss, golden[i], 1e-4 * golden[i])
        << "epoch " << i + 1;
  }
  EXPECT_LT(r.history[2].train_loss, r.history[0].train_loss);  // it learns
  EXPECT_EQ(r.metric_name, "MAE");
  EXPECT_FALSE(r.higher_is_better);
  EXPECT_EQ(r.stop_reason, "max epochs");
  EXPECT_GE(r.best_epoch, 1);
  EXPECT_LE(r.best_epoch, 3);
  for (const EpochRecord& e : r.history) {
    EXPECT_TRUE(std::isfinite(e.val_loss));
    EXPECT_EQ(e.val_metric, e.val_loss);  // regression: the metric is the MAE
    EXPECT_EQ(e.lr, 7e-4);                // no plateau within 3 epochs (patience 15)
  }
}

// ---- resume ----

void check_resume_reproduces(TrainConfig base) {
  TempDir dir;
  base.cache_dir = dir.file("cache");
  TrainConfig a = base;
  a.out_dir = dir.file("a");
  const TrainResult ra = train_graph_transformer(a, nullptr);

  TrainConfig b = base;
  b.out_dir = dir.file("b");
  b.max_epochs = 1;  // "interrupted" after epoch 1
  const TrainResult rb1 = train_graph_transformer(b, nullptr);
  ASSERT_EQ(rb1.history.size(), 1u);
  b.max_epochs = 3;
  b.resume = true;
  const TrainResult rb = train_graph_transformer(b, nullptr);
  expect_same_records(ra.history, rb.history);
  EXPECT_EQ(ra.best_epoch, rb.best_epoch);
  EXPECT_EQ(ra.test_metric_at_best, rb.test_metric_at_best);

  // The final weights, optimizer state and buffers are identical too.
  const io::SafetensorsFile fa = io::load_safetensors(a.out_dir + "/checkpoint_last.safetensors");
  const io::SafetensorsFile fb = io::load_safetensors(b.out_dir + "/checkpoint_last.safetensors");
  ASSERT_EQ(fa.tensors.size(), fb.tensors.size());
  for (const auto& [name, t] : fa.tensors) {
    ASSERT_TRUE(fb.tensors.count(name)) << name;
    EXPECT_TRUE(testing::bitwise_equal(t, fb.tensors.at(name))) << name;
  }
  // The resumed run's log holds all three epochs.
  std::istringstream log(read_text(b.out_dir + "/log.jsonl"));
  std::string line;
  int lines = 0;
  while (std::getline(log, line)) ++lines;
  EXPECT_EQ(lines, 3);
}

TEST(GtTrainer, ResumeAfterInterruptionEqualsUninterruptedRun) {
  check_resume_reproduces(tiny_config(""));
}

// With dropout every mask must also be a function of (seed, epoch, batch), not of how many
// forwards this process has run.
TEST(GtTrainer, ResumeWithDropoutEqualsUninterruptedRun) {
  TrainConfig c = tiny_config("");
  c.model.dropout = 0.2;
  c.model.in_feat_dropout = 0.1;
  check_resume_reproduces(c);
}

TEST(GtTrainer, ResumeWithoutCheckpointStartsFromScratch) {
  TempDir dir;
  TrainConfig c = tiny_config(dir.file("cache"), dir.file("out"));
  c.max_epochs = 1;
  const TrainResult fresh = train_graph_transformer(c, nullptr);
  TempDir dir2;
  TrainConfig r = tiny_config(dir.file("cache"), dir2.file("out"));
  r.max_epochs = 1;
  r.resume = true;
  expect_same_records(fresh.history, train_graph_transformer(r, nullptr).history);
  // A checkpoint of another seed is refused, naming the seeds.
  TrainConfig other = tiny_config(dir.file("cache"), dir.file("out"));
  other.seed = 8;
  other.resume = true;
  expect_error_mentions([&] { train_graph_transformer(other, nullptr); }, {"seed", "8"});
}

// The model's initialisation follows TrainConfig::seed (so runs with several seeds differ in
// their initial weights, not only in the batch order). With a negligible learning rate the
// weights after one epoch are the initial ones.
TEST(GtTrainer, InitialisationFollowsSeed) {
  TempDir dir;
  TrainConfig c = tiny_config(dir.file("cache"), dir.file("out"));
  c.max_epochs = 1;
  c.lr = 1e-12;
  c.min_lr = 0.0;  // else the run stops before its first epoch
  train_graph_transformer(c, nullptr);
  GraphTransformerConfig m = c.model;
  m.num_node_types = 28;
  m.num_edge_types = 4;
  m.out_dim = 1;
  GraphTransformer trained(m);
  io::load_checkpoint(dir.file("out") + "/checkpoint_last.safetensors", trained, nullptr);
  m.seed = 7;
  GraphTransformer seed7(m);
  m.seed = 8;
  GraphTransformer seed8(m);
  const auto pt = trained.parameters(), p7 = seed7.parameters(), p8 = seed8.parameters();
  ASSERT_EQ(pt.size(), p7.size());
  bool differs_from_8 = false;
  for (size_t i = 0; i < pt.size(); ++i) {
    EXPECT_TRUE(testing::all_close(pt[i]->value, p7[i]->value, 1e-8, 0.0)) << pt[i]->name;
    if (!testing::all_close(pt[i]->value, p8[i]->value, 1e-8, 0.0)) differs_from_8 = true;
  }
  EXPECT_TRUE(differs_from_8);
}

// ---- checkpoints and logs ----

TEST(GtTrainer, CheckpointsEvaluateToTheRecordedLoss) {
  TempDir dir;
  // evaluate_checkpoint takes the cache folder from the environment (it is not part of the
  // saved config): keep it inside the scratch folder.
  ::setenv("LAPIS_CACHE_DIR", dir.file("cache").c_str(), 1);
  TrainConfig c = tiny_config(dir.file("cache"), dir.file("out"));
  const TrainResult r = train_graph_transformer(c, nullptr);
  ASSERT_EQ(r.history.size(), 3u);
  const std::string best = dir.file("out") + "/checkpoint_best.safetensors";
  const std::string last = dir.file("out") + "/checkpoint_last.safetensors";
  ASSERT_TRUE(fs::exists(best));
  ASSERT_TRUE(fs::exists(last));

  const EpochRecord& at_best = r.history[static_cast<size_t>(r.best_epoch - 1)];
  const EvalResult eb = evaluate_checkpoint(best, "", "test", Device::cpu(), nullptr);
  EXPECT_EQ(eb.graphs, 32);
  EXPECT_EQ(eb.metric_name, "MAE");
  EXPECT_NEAR(eb.loss, at_best.test_loss, 1e-6 * at_best.test_loss);
  EXPECT_NEAR(eb.metric, r.test_metric_at_best, 1e-6 * r.test_metric_at_best);
  const EvalResult ev = evaluate_checkpoint(last, "", "val", Device::cpu(), nullptr);
  EXPECT_EQ(ev.graphs, 32);
  EXPECT_NEAR(ev.loss, r.history.back().val_loss, 1e-6 * r.history.back().val_loss);

  expect_error_mentions([&] { evaluate_checkpoint(last, "", "dev", Device::cpu(), nullptr); },
                        {"split", "dev"});
  expect_error_mentions(
      [&] { evaluate_checkpoint(dir.file("missing.safetensors"), "", "test", Device::cpu(), nullptr); },
      {"missing.safetensors"});
  ::unsetenv("LAPIS_CACHE_DIR");
}

TEST(GtTrainer, WritesLogsAndCurves) {
  TempDir dir;
  TrainConfig c = tiny_config(dir.file("cache"), dir.file("out"));
  c.max_epochs = 2;
  std::ostringstream console;
  const TrainResult r = train_graph_transformer(c, &console);
  ASSERT_EQ(r.history.size(), 2u);
  EXPECT_NE(console.str().find("parameters"), std::string::npos) << console.str();

  // log.jsonl: one JSON object per epoch with the recorded values.
  std::istringstream jsonl(read_text(dir.file("out") + "/log.jsonl"));
  std::string line;
  int epoch = 0;
  while (std::getline(jsonl, line)) {
    const nlohmann::json j = nlohmann::json::parse(line);
    const EpochRecord& e = r.history[static_cast<size_t>(epoch)];
    EXPECT_EQ(j.at("epoch").get<int64_t>(), epoch + 1);
    EXPECT_NEAR(j.at("train_loss").get<double>(), e.train_loss, 1e-8 * e.train_loss);
    EXPECT_NEAR(j.at("val_loss").get<double>(), e.val_loss, 1e-8 * e.val_loss);
    EXPECT_EQ(j.at("metric").get<std::string>(), "MAE");
    ++epoch;
  }
  EXPECT_EQ(epoch, 2);

  // log.csv: a header and one row per epoch.
  std::istringstream csv(read_text(dir.file("out") + "/log.csv"));
  std::vector<std::string> rows;
  while (std::getline(csv, line)) rows.push_back(line);
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0].rfind("epoch,train_loss,val_loss", 0), 0u) << rows[0];
  EXPECT_EQ(rows[2].rfind("2,", 0), 0u) << rows[2];

  // curves.svg: an SVG document with the four curves (train/val loss, val/test metric).
  const std::string svg = read_text(dir.file("out") + "/curves.svg");
  EXPECT_EQ(svg.rfind("<svg", 0), 0u) << svg.substr(0, 80);
  EXPECT_NE(svg.find("</svg>"), std::string::npos);
  size_t polylines = 0;
  for (size_t p = svg.find("<polyline"); p != std::string::npos; p = svg.find("<polyline", p + 1))
    ++polylines;
  EXPECT_EQ(polylines, 4u);
  // No temporary files are left behind by the atomic writes.
  for (const auto& entry : fs::directory_iterator(dir.file("out")))
    EXPECT_EQ(entry.path().filename().string().find(".tmp"), std::string::npos)
        << entry.path();
}

TEST(GtTrainingReport, SvgOfEmptyAndSingleEpochHistories) {
  for (size_t n : {0u, 1u}) {
    std::vector<EpochRecord> h(n);
    if (n) h[0] = EpochRecord{1, 0.5, 0.6, 0.6, 0.7, 0.7, 1e-3, 1.0, 0.8};
    const std::string svg = learning_curve_svg(h, "MAE");
    EXPECT_EQ(svg.rfind("<svg", 0), 0u);
    EXPECT_EQ(svg.find("nan"), std::string::npos) << svg;
    EXPECT_EQ(svg.find("inf"), std::string::npos) << svg;
  }
}

// ---- configs ----

TEST(GtTrainConfig, BuiltinConfigs) {
  const TrainConfig z = builtin_config("zinc");
  EXPECT_EQ(z.dataset, "zinc");
  EXPECT_EQ(z.model.layers, 10);
  EXPECT_EQ(z.model.hidden, 64);
  EXPECT_EQ(z.model.heads, 8);
  EXPECT_EQ(z.model.pe_dim, 8);
  EXPECT_EQ(z.batch_size, 128);
  EXPECT_EQ(z.lr, 7e-4);
  const TrainConfig p = builtin_config("pattern");
  EXPECT_EQ(p.model.readout, Readout::None);
  EXPECT_EQ(p.model.hidden, 80);
  const TrainConfig cl = builtin_config("cluster");
  EXPECT_EQ(cl.model.pe_dim, 10);
  expect_error_mentions([] { builtin_config("mnist"); }, {"mnist"});
  z.validate();
  p.validate();
  cl.validate();
}

TEST(GtTrainConfig, JsonOverrides) {
  TrainConfig c = builtin_config("zinc");
  apply_json_overrides(c, R"({"lr": 1e-3, "batch_size": 32, "seed": 5,
                              "model": {"layers": 4, "norm": "layer", "readout": "sum"}})");
  EXPECT_EQ(c.lr, 1e-3);
  EXPECT_EQ(c.batch_size, 32);
  EXPECT_EQ(c.seed, 5u);
  EXPECT_EQ(c.model.layers, 4);
  EXPECT_EQ(c.model.norm, NormKind::Layer);
  EXPECT_EQ(c.model.readout, Readout::Sum);
  EXPECT_EQ(c.model.hidden, 64);  // untouched

  // config_to_json round-trips through apply_json_overrides.
  TrainConfig d = builtin_config("pattern");
  apply_json_overrides(d, config_to_json(c));
  EXPECT_EQ(config_to_json(d), config_to_json(c));
}

TEST(GtTrainConfig, JsonOverrideErrorsNameTheKey) {
  auto apply = [](const std::string& text) {
    TrainConfig c = builtin_config("zinc");
    apply_json_overrides(c, text);
  };
  expect_error_mentions([&] { apply(R"({"learning_rate": 1})"); }, {"unknown key", "learning_rate"});
  expect_error_mentions([&] { apply(R"({"model": {"width": 8}})"); }, {"unknown key", "model.width"});
  expect_error_mentions([&] { apply(R"({"lr": "fast"})"); }, {"lr"});
  expect_error_mentions([&] { apply(R"({"batch_size": "16"})"); }, {"batch_size"});
  expect_error_mentions([&] { apply(R"({"model": {"layers": "ten"}})"); }, {"model.layers"});
  expect_error_mentions([&] { apply(R"({"model": 3})"); }, {"model"});
  expect_error_mentions([&] { apply(R"({"model": {"norm": "group"}})"); }, {"norm", "group"});
  expect_error_mentions([&] { apply("[1, 2]"); }, {"JSON object"});
  expect_error_mentions([&] { apply("{\"lr\": "); }, {"invalid JSON"});
  // Values are validated after applying.
  expect_error_mentions([&] { apply(R"({"batch_size": 0})"); }, {"batch_size", "0"});
  expect_error_mentions([&] { apply(R"({"model": {"hidden": 30}})"); }, {"hidden", "30", "heads"});
}

TEST(GtTrainConfig, ValidateNamesTheField) {
  auto bad = [](const std::function<void(TrainConfig&)>& edit) {
    TrainConfig c = builtin_config("zinc");
    edit(c);
    return c;
  };
  expect_error_mentions([&] { bad([](TrainConfig& c) { c.dataset = ""; }).validate(); },
                        {"dataset"});
  expect_error_mentions([&] { bad([](TrainConfig& c) { c.batch_size = 0; }).validate(); },
                        {"batch_size", "0"});
  expect_error_mentions([&] { bad([](TrainConfig& c) { c.lr = -1; }).validate(); }, {"lr", "-1"});
  expect_error_mentions([&] { bad([](TrainConfig& c) { c.lr_factor = 1.0; }).validate(); },
                        {"lr_factor", "1"});
  expect_error_mentions([&] { bad([](TrainConfig& c) { c.max_epochs = 0; }).validate(); },
                        {"max_epochs", "0"});
  expect_error_mentions([&] { bad([](TrainConfig& c) { c.max_hours = 0; }).validate(); },
                        {"max_hours"});
  expect_error_mentions([&] { bad([](TrainConfig& c) { c.model.layers = 0; }).validate(); },
                        {"layers", "0"});
  expect_error_mentions([&] { bad([](TrainConfig& c) { c.model.hidden = 30; }).validate(); },
                        {"hidden", "30", "heads", "8"});
  expect_error_mentions([&] { bad([](TrainConfig& c) { c.model.dropout = 1.5; }).validate(); },
                        {"dropout", "1.5"});
  // train_graph_transformer validates before touching any data.
  expect_error_mentions(
      [&] { train_graph_transformer(bad([](TrainConfig& c) { c.model.heads = 0; }), nullptr); },
      {"heads"});
  TempDir dir;
  expect_error_mentions(
      [&] {
        TrainConfig c = tiny_config(dir.file("cache"));
        c.dataset = "qm9";
        train_graph_transformer(c, nullptr);
      },
      {"unknown dataset", "qm9"});
  expect_error_mentions(
      [&] {
        TrainConfig c = tiny_config(dir.file("cache"));
        c.resume = true;
        train_graph_transformer(c, nullptr);
      },
      {"resume", "out"});
}

// ---- CUDA ----

TEST(GtTrainerCuda, TrainLossMatchesCpu) {
  LAPIS_REQUIRE_CUDA_OR_SKIP();
  TempDir dir;
  TrainConfig c = tiny_config(dir.file("cache"));
  c.max_epochs = 2;
  const TrainResult cpu = train_graph_transformer(c, nullptr);
  c.device = Device::cuda();
  const TrainResult gpu = train_graph_transformer(c, nullptr);
  ASSERT_EQ(cpu.history.size(), 2u);
  ASSERT_EQ(gpu.history.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    // f32 on both; different summation orders compound over 8 Adam steps: rel 2e-3.
    EXPECT_NEAR(gpu.history[i].train_loss, cpu.history[i].train_loss,
                2e-3 * cpu.history[i].train_loss)
        << "epoch " << i + 1;
    EXPECT_NEAR(gpu.history[i].val_loss, cpu.history[i].val_loss, 2e-3 * cpu.history[i].val_loss)
        << "epoch " << i + 1;
  }
}

}  // namespace
}  // namespace gt
}  // namespace lapis
