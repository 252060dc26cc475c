// Training and evaluation of the graph transformer on a GraphDataset (ZINC, PATTERN, CLUSTER or
// a TU folder), as graphdeeplearning/graphtransformer trains it: Adam, ReduceLROnPlateau on the
// validation loss, stop when the LR falls below min_lr or at max epochs / wall time, random
// LapPE sign flips per batch and column in training only.
//
// Outputs in out_dir: log.jsonl (one JSON object per epoch), log.csv, curves.svg (learning
// curves), checkpoint_last.safetensors and checkpoint_best.safetensors (atomic writes). A run
// killed at any moment resumes with `resume = true` from the last finished epoch; on the CPU the
// resumed run reproduces the uninterrupted one exactly (every random draw is a function of the
// seed, the epoch and the batch number).
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "core/device.h"
#include "models/gt/graph_transformer.h"

namespace lapis {
namespace gt {

struct TrainConfig {
  std::string name;                  // config name ("zinc", "pattern", "cluster", "tu")
  std::string dataset;               // "zinc", "pattern", "cluster" or "tu:PATH"
  GraphTransformerConfig model;      // input/output sizes are filled from the dataset
  int64_t batch_size = 128;
  double lr = 7e-4;
  double lr_factor = 0.5;
  int patience = 15;
  double min_lr = 1e-6;
  double weight_decay = 0.0;
  int64_t max_epochs = 1000;
  double max_hours = 24.0;
  uint64_t seed = 41;
  Device device = Device::cpu();
  std::string out_dir;               // "" = no files
  std::string cache_dir;             // encodings and generated datasets ("" = graph::cache_dir())
  std::string data_dir;              // shipped data ("" = search, see graph::find_data_file)
  bool resume = false;
  int64_t max_train_graphs = 0;      // > 0: train on the first this many training graphs
  int64_t max_eval_graphs = 0;       // > 0: evaluate on the first this many val/test graphs
  bool progress = true;              // per-batch progress line on a terminal
  bool allow_tf32 = false;
  bool use_edge_features = true;     // use the dataset's categorical edge types when it has them

  void validate() const;  // throws lapis::Error naming the field and value
};

// The published configurations (../shared/DESIGN.md): "zinc", "pattern", "cluster"; "tu" is a
// small default for TU graph classification. Throws on an unknown name.
TrainConfig builtin_config(const std::string& name);
// Applies a JSON object of overrides, e.g. {"lr": 1e-3, "model": {"layers": 4}}; unknown keys
// are errors naming the key.
void apply_json_overrides(TrainConfig& config, const std::string& json_text);
std::string config_to_json(const TrainConfig& config);

struct EpochRecord {
  int64_t epoch = 0;  // 1-based
  double train_loss = 0, val_loss = 0, val_metric = 0, test_loss = 0, test_metric = 0;
  double lr = 0;
  double seconds = 0;        // train + val + test time of the epoch
  double train_seconds = 0;  // the training pass alone
};

struct TrainResult {
  std::vector<EpochRecord> history;
  std::string metric_name;   // "MAE", "weighted accuracy %", "accuracy %"
  bool higher_is_better = false;
  int64_t best_epoch = 0;    // epoch with the lowest validation loss
  double best_val_metric = 0, test_metric_at_best = 0;
  int64_t num_parameters = 0;
  std::string stop_reason;
};

TrainResult train_graph_transformer(const TrainConfig& config, std::ostream* log);

struct EvalResult {
  double loss = 0, metric = 0;
  std::string metric_name;
  int64_t graphs = 0;
};
// Loads a checkpoint written by train_graph_transformer (its config travels in the metadata)
// and evaluates split "train", "val" or "test" of `dataset` ("" = the checkpoint's dataset).
EvalResult evaluate_checkpoint(const std::string& checkpoint_path, const std::string& dataset,
                               const std::string& split, Device device, std::ostream* log,
                               const std::string& cache_dir = "");

}  // namespace gt
}  // namespace lapis
