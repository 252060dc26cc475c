// `lapis train-graph` and `lapis eval-graph`: the graph transformer on ZINC, PATTERN, CLUSTER
// or a TU folder (see models/gt/trainer.h).
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>

#include "apps/lapis/commands.h"
#include "core/check.h"
#include "core/device.h"
#include "models/gt/trainer.h"

namespace lapis {
namespace apps {
namespace {

std::string read_file(const std::string& path) {
  std::ifstream f(path);
  LAPIS_CHECK(f.good(), "train-graph", "cannot read config file ", path);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

std::string check_device(const std::string& text) {
  try {
    Device::parse(text);
    return "";
  } catch (const Error& e) {
    return e.what();
  }
}

struct TrainGraphArgs {
  std::string dataset, config_name, config_file, device = "cpu", out;
  int64_t epochs = 0, batch_size = 0, layers = 0, hidden = 0, max_train = 0, max_eval = 0;
  double lr = 0, max_hours = 0;
  uint64_t seed = 0;
  bool seed_given = false, resume = false, quiet = false, tf32 = false;
  std::string cache_dir, data_dir;
};

int run_train_graph(CLI::App* app, const TrainGraphArgs& a) {
  const bool known = a.dataset == "zinc" || a.dataset == "pattern" || a.dataset == "cluster" ||
                     a.dataset.rfind("tu:", 0) == 0;
  LAPIS_CHECK(known, "train-graph", "unknown dataset '", a.dataset,
              "' (expected zinc, pattern, cluster or tu:PATH)");
  // The config: --config NAME|FILE, else the built-in one named like the dataset.
  std::string base = a.config_name;
  if (base.empty()) {
    base = a.dataset.rfind("tu:", 0) == 0 ? "tu" : a.dataset;
  }
  gt::TrainConfig c;
  const bool is_builtin = base == "zinc" || base == "pattern" || base == "cluster" || base == "tu";
  if (is_builtin) {
    c = gt::builtin_config(base);
  } else {
    c = gt::builtin_config(a.dataset.rfind("tu:", 0) == 0 ? "tu" : "zinc");
    apply_json_overrides(c, read_file(base));
  }
  if (!a.config_file.empty()) apply_json_overrides(c, read_file(a.config_file));
  c.dataset = a.dataset;
  c.device = Device::parse(a.device);
  if (app->count("--epochs")) c.max_epochs = a.epochs;
  if (app->count("--batch-size")) c.batch_size = a.batch_size;
  if (app->count("--lr")) c.lr = a.lr;
  if (app->count("--layers")) c.model.layers = a.layers;
  if (app->count("--hidden")) c.model.hidden = a.hidden;
  if (app->count("--max-hours")) c.max_hours = a.max_hours;
  if (app->count("--seed")) c.seed = a.seed;
  if (app->count("--max-train-graphs")) c.max_train_graphs = a.max_train;
  if (app->count("--max-eval-graphs")) c.max_eval_graphs = a.max_eval;
  c.out_dir = a.out;
  c.resume = a.resume;
  c.cache_dir = a.cache_dir;
  c.data_dir = a.data_dir;
  c.allow_tf32 = a.tf32;
  c.progress = !a.quiet;
  c.validate();
  const gt::TrainResult r = gt::train_graph_transformer(c, &std::cout);
  if (!r.history.empty()) {
    double train_s = 0;
    for (const gt::EpochRecord& e : r.history) train_s += e.train_seconds;
    std::cout << "final: best epoch " << r.best_epoch << ", val " << r.metric_name << " "
              << r.best_val_metric << ", test " << r.metric_name << " " << r.test_metric_at_best
              << "; mean training epoch " << train_s / static_cast<double>(r.history.size())
              << " s" << (c.out_dir.empty() ? "" : "; logs and checkpoints in " + c.out_dir)
              << std::endl;
  }
  return 0;
}

}  // namespace

Subcommand add_train_graph_command(CLI::App& parent) {
  auto a = std::make_shared<TrainGraphArgs>();
  CLI::App* app = parent.add_subcommand(
      "train-graph",
      "Train the Dwivedi & Bresson graph transformer (sparse attention, LapPE, BatchNorm) on zinc, "
      "pattern, cluster or tu:PATH, with the published configs built in");
  app->add_option("--dataset", a->dataset, "zinc, pattern, cluster or tu:PATH")->required();
  app->add_option("--config", a->config_name,
                  "Built-in config (zinc, pattern, cluster, tu) or a JSON file of a whole config "
                  "(default: the dataset's built-in config)");
  app->add_option("--overrides", a->config_file,
                  "JSON file of overrides applied on top, e.g. {\"lr\": 1e-3, \"model\": "
                  "{\"layers\": 4}}");
  app->add_option("--device", a->device, "cpu, cuda or cuda:N")
      ->capture_default_str()
      ->check(check_device);
  app->add_option("--epochs", a->epochs, "Maximum epochs")->check(CLI::Range(int64_t{1}, int64_t{1000000}));
  app->add_option("--batch-size", a->batch_size, "Graphs per batch")->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  app->add_option("--lr", a->lr, "Initial learning rate")->check(CLI::PositiveNumber);
  app->add_option("--layers", a->layers, "Transformer layers L")->check(CLI::Range(int64_t{1}, int64_t{1000}));
  app->add_option("--hidden", a->hidden, "Hidden width C (multiple of the heads)")->check(CLI::Range(int64_t{4}, int64_t{1} << 16));
  app->add_option("--max-hours", a->max_hours, "Wall-time limit")->check(CLI::PositiveNumber);
  app->add_option("--seed", a->seed, "Seed of initialisation, batch order and sign flips");
  app->add_option("--max-train-graphs", a->max_train, "Train on the first N training graphs only")->check(CLI::Range(int64_t{1}, int64_t{1} << 40));
  app->add_option("--max-eval-graphs", a->max_eval, "Evaluate on the first N val/test graphs only")->check(CLI::Range(int64_t{1}, int64_t{1} << 40));
  app->add_option("--out", a->out, "Folder for log.jsonl, log.csv, curves.svg and checkpoints");
  app->add_flag("--resume", a->resume, "Continue the run in --out from its last checkpoint");
  app->add_option("--cache-dir", a->cache_dir, "Cache folder for encodings and generated datasets");
  app->add_option("--data", a->data_dir, "Data folder holding zinc/ (default: the shipped data)");
  app->add_flag("--tf32", a->tf32,
                "Allow TF32 tensor cores for F32 cuBLAS matmuls on CUDA (linear layers of more "
                "than 65,536 rows; smaller ones run fused F32 kernels either way)");
  app->add_flag("--quiet", a->quiet, "No per-batch progress line");
  return {app, [app, a] { return run_train_graph(app, *a); }};
}

namespace {
struct EvalGraphArgs {
  std::string checkpoint, dataset, split = "test", device = "cpu", cache_dir;
};
}  // namespace

Subcommand add_eval_graph_command(CLI::App& parent) {
  auto a = std::make_shared<EvalGraphArgs>();
  CLI::App* app = parent.add_subcommand(
      "eval-graph", "Evaluate a train-graph checkpoint on a split of its dataset");
  app->add_option("--checkpoint", a->checkpoint, "checkpoint_best.safetensors or _last")
      ->required()
      ->check(CLI::ExistingFile);
  app->add_option("--dataset", a->dataset, "Dataset (default: the checkpoint's)");
  app->add_option("--split", a->split, "train, val or test")
      ->capture_default_str()
      ->check(CLI::IsMember({"train", "val", "test"}));
  app->add_option("--device", a->device, "cpu, cuda or cuda:N")
      ->capture_default_str()
      ->check(check_device);
  app->add_option("--cache-dir", a->cache_dir, "Cache folder for encodings (as train-graph)");
  return {app, [a] {
            const gt::EvalResult r =
                gt::evaluate_checkpoint(a->checkpoint, a->dataset, a->split,
                                        Device::parse(a->device), &std::cout, a->cache_dir);
            std::cout << a->split << ": " << r.graphs << " graphs, loss " << r.loss << ", "
                      << r.metric_name << " " << r.metric << std::endl;
            return 0;
          }};
}

}  // namespace apps
}  // namespace lapis
