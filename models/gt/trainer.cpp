#include "models/gt/trainer.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iomanip>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "core/cuda_api.h"
#include "graph/data_loader.h"
#include "graph/dataset_cache.h"
#include "graph/encoding_cache.h"
#include "graph/laplacian_pe.h"
#include "graph/random_walk_se.h"
#include "graph/sbm.h"
#include "graph/tu_dataset.h"
#include "graph/zinc.h"
#include "kernels/elementwise.h"
#include "kernels/loss.h"
#include "kernels/reduce.h"
#include "models/gt/training_report.h"
#include "models/io/checkpoint.h"
#include "models/io/safetensors.h"
#include "models/optim/optimizer.h"
#include "models/optim/scheduler.h"

namespace lapis {
namespace gt {

namespace fs = std::filesystem;
using nlohmann::json;
using graph::GraphBatch;
using graph::GraphDataset;
using graph::GraphSample;

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

enum class Task { GraphRegression, GraphClassification, NodeClassification };

// The dataset with the encodings attached and the indices of the per-node extras the model reads.
struct PreparedData {
  GraphDataset dataset;
  Task task = Task::GraphRegression;
  int attr_index = -1;  // node_extras index of continuous node attributes (-1: categorical)
  int pe_index = -1;
  int rwse_index = -1;
  bool edge_types = false;
};

std::string dataset_key(const std::string& dataset) {
  if (dataset.rfind("tu:", 0) == 0) {
    std::string path = dataset.substr(3);
    while (path.size() > 1 && path.back() == '/') path.pop_back();
    return "tu_" + fs::path(path).filename().string();
  }
  return dataset;
}

GraphDataset load_dataset(const TrainConfig& c, std::ostream* log) {
  if (c.dataset == "zinc") return graph::load_zinc(c.data_dir);
  if (c.dataset == "pattern" || c.dataset == "cluster") {
    graph::SbmOptions o;
    o.cache_dir = c.cache_dir;
    if (log) o.progress = [log](const std::string& line) { *log << line << std::endl; };
    return c.dataset == "pattern" ? graph::load_pattern(o) : graph::load_cluster(o);
  }
  if (c.dataset.rfind("tu:", 0) == 0) {
    graph::TuOptions o;
    o.val_fraction = 0.1;
    o.test_fraction = 0.1;
    o.seed = 0;  // the split is part of the dataset, not of the training seed
    return graph::load_tu_dataset(c.dataset.substr(3), o);
  }
  LAPIS_FAIL("train_graph_transformer", "unknown dataset '", c.dataset,
             "' (expected zinc, pattern, cluster or tu:PATH)");
}

void truncate(std::vector<GraphSample>& samples, int64_t max_graphs) {
  if (max_graphs > 0 && static_cast<int64_t>(samples.size()) > max_graphs)
    samples.resize(static_cast<size_t>(max_graphs));
}

// Loads the dataset, resolves the model's input/output sizes and attaches LapPE / RWSE (through
// the on-disk cache) as per-node extras.
PreparedData prepare(const TrainConfig& c, GraphTransformerConfig& model, std::ostream* log) {
  const auto t0 = Clock::now();
  PreparedData p;
  p.dataset = load_dataset(c, log);
  GraphDataset& ds = p.dataset;
  LAPIS_CHECK(!ds.train.empty() && !ds.val.empty(), "train_graph_transformer", "dataset '",
              c.dataset, "' needs non-empty train and val splits (got ", ds.train.size(), " and ",
              ds.val.size(), ")");
  truncate(ds.train, c.max_train_graphs);
  truncate(ds.val, c.max_eval_graphs);
  truncate(ds.test, c.max_eval_graphs);

  if (ds.task == graph::TaskLevel::Node) {
    LAPIS_CHECK(ds.num_classes > 0, "train_graph_transformer",
                "node-level regression is not supported (dataset ", ds.name, ")");
    p.task = Task::NodeClassification;
  } else {
    p.task = ds.num_classes > 0 ? Task::GraphClassification : Task::GraphRegression;
  }
  LAPIS_CHECK(p.task == Task::NodeClassification || model.readout != Readout::None,
              "train_graph_transformer", "graph-level dataset ", ds.name,
              " needs a readout (mean or sum), got none");
  LAPIS_CHECK(p.task != Task::NodeClassification || model.readout == Readout::None,
              "train_graph_transformer", "node-level dataset ", ds.name,
              " needs readout none, got ", readout_name(model.readout));

  // Node input: categorical types when the dataset has them, else continuous attributes, else
  // one constant type (structure only).
  model.num_node_types = 0;
  model.node_in_dim = 0;
  if (ds.num_node_types > 0) {
    model.num_node_types = ds.num_node_types;
  } else if (ds.node_attr_dim > 0) {
    model.node_in_dim = ds.node_attr_dim;
    p.attr_index = 0;
  } else {
    for (auto* split : {&ds.train, &ds.val, &ds.test})
      for (GraphSample& s : *split)
        s.graph.node_features = Tensor::zeros({s.graph.num_nodes, 1}, Dtype::I32);
    model.num_node_types = 1;
  }
  p.edge_types = c.use_edge_features && ds.num_edge_types > 0;
  model.num_edge_types = p.edge_types ? ds.num_edge_types : 0;
  model.edge_in_dim = 0;
  model.out_dim = p.task == Task::GraphRegression ? ds.num_targets : ds.num_classes;
  if (log) {
    char t[32];
    std::snprintf(t, sizeof t, "%.2f", seconds_since(t0));
    *log << "dataset " << ds.name << ": " << ds.train.size() << " train / " << ds.val.size()
         << " val / " << ds.test.size() << " test graphs, loaded in " << t << " s" << std::endl;
  }

  const std::string cache = graph::cache_dir(c.cache_dir);
  auto attach = [&](const char* what, int64_t dim, int* index) {
    if (dim <= 0) return;
    const auto t1 = Clock::now();
    const char* names[] = {"train", "val", "test"};
    std::vector<GraphSample>* splits[] = {&ds.train, &ds.val, &ds.test};
    for (int s = 0; s < 3; ++s) {
      std::vector<const graph::Graph*> graphs;
      for (const GraphSample& sample : *splits[s]) graphs.push_back(&sample.graph);
      const std::string path = (fs::path(cache) / (dataset_key(c.dataset) + "_" + names[s] + "_" +
                                                    what + std::to_string(dim) + ".bin"))
                                   .string();
      graph::CacheInfo info;
      std::vector<Tensor> enc =
          std::string(what) == "lappe_k"
              ? graph::laplacian_pe_cached(graphs, static_cast<int>(dim), path, {}, &info)
              : graph::random_walk_se_cached(graphs, static_cast<int>(dim), path, {}, &info);
      for (size_t i = 0; i < enc.size(); ++i) (*splits[s])[i].node_extras.push_back(enc[i]);
    }
    *index = static_cast<int>(ds.train.front().node_extras.size()) - 1;
    if (log) {
      char t[32];
      std::snprintf(t, sizeof t, "%.2f", seconds_since(t1));
      *log << (std::string(what) == "lappe_k" ? "LapPE k=" : "RWSE K=") << dim << " for "
           << ds.size() << " graphs in " << t << " s (cache " << cache << ")" << std::endl;
    }
  };
  attach("lappe_k", model.pe_dim, &p.pe_index);
  attach("rwse_k", model.rwse_dim, &p.rwse_index);
  return p;
}

// benchmarking-gnns' per-batch class weights for SBM node classification:
// w_c = (V - n_c) / V for classes present in the batch, 0 for absent ones (V nodes).
Tensor sbm_class_weights(const std::vector<int32_t>& labels, int64_t classes) {
  std::vector<int64_t> count(static_cast<size_t>(classes), 0);
  for (int32_t l : labels) ++count[static_cast<size_t>(l)];
  const double V = static_cast<double>(labels.size());
  std::vector<float> w(static_cast<size_t>(classes), 0.0f);
  for (int64_t c = 0; c < classes; ++c)
    if (count[static_cast<size_t>(c)] > 0)
      w[static_cast<size_t>(c)] = static_cast<float>((V - count[static_cast<size_t>(c)]) / V);
  return Tensor::from_vector<float>(w, {classes});
}

// benchmarking-gnns accuracy_SBM: 100 * mean over the classes seen (in labels or predictions)
// of the per-class recall (0 for a predicted class absent from the labels).
double sbm_weighted_accuracy(const std::vector<int32_t>& labels,
                             const std::vector<int64_t>& preds) {
  std::set<int64_t> classes(preds.begin(), preds.end());
  classes.insert(labels.begin(), labels.end());
  if (classes.empty()) return 0.0;
  std::map<int64_t, int64_t> total, hit;
  for (size_t i = 0; i < labels.size(); ++i) {
    ++total[labels[i]];
    if (preds[i] == labels[i]) ++hit[labels[i]];
  }
  double sum = 0.0;
  for (int64_t c : classes)
    if (total[c] > 0) sum += static_cast<double>(hit[c]) / static_cast<double>(total[c]);
  return 100.0 * sum / static_cast<double>(classes.size());
}

struct Runner {
  const TrainConfig& config;
  const PreparedData& data;
  GraphTransformer& model;

  // The model's view of a batch already on the model's device; `host` is the CPU batch it was
  // copied from (the degree bounds come from there, without a device readback).
  GraphTransformerInput input(const GraphBatch& b, const GraphBatch& host) const {
    GraphTransformerInput in;
    in.graph = make_graph_view(b.graph.in_ptr, b.graph.src, b.graph.out_ptr, b.graph.out_edge,
                               b.graph.out_dst);
    // A view of CPU tensors already has its bounds (make_graph_view scanned the pointers).
    if (b.graph.in_ptr.is_cuda()) {
      set_degree_bounds(in.graph, host.graph.in_ptr, host.graph.out_ptr);
    }
    in.node_x = data.attr_index >= 0
                    ? b.node_extras[static_cast<size_t>(data.attr_index)]
                    : b.graph.node_features.reshape({b.graph.num_nodes});
    if (data.edge_types) in.edge_x = b.graph.edge_features.reshape({b.graph.num_edges});
    if (data.pe_index >= 0) in.pe = b.node_extras[static_cast<size_t>(data.pe_index)];
    if (data.rwse_index >= 0) in.rwse = b.node_extras[static_cast<size_t>(data.rwse_index)];
    in.node_ptr = b.node_ptr;
    return in;
  }

  // Loss of one batch on the device ([1], no host sync) and the gradient w.r.t. the output when
  // dL_dout is not null. labels_host: the i32 labels on the host (classification).
  Tensor loss(const Tensor& out, const GraphBatch& b, const std::vector<int32_t>& labels_host,
              Tensor* dL_dout) const {
    Tensor loss = Tensor::empty({1}, out.dtype(), out.device());
    if (data.task == Task::GraphRegression) {
      const Tensor y = b.y.reshape(out.shape());
      l1_loss_forward(loss, out, y);
      if (dL_dout) {
        *dL_dout = Tensor::empty(out.shape(), out.dtype(), out.device());
        l1_loss_backward(*dL_dout, 1.0, out, y);
      }
      return loss;
    }
    CrossEntropyCache cache{Tensor::empty(out.shape(), out.dtype(), out.device()),
                            Tensor::empty({1}, out.dtype(), out.device())};
    Tensor weights;
    if (data.task == Task::NodeClassification)
      weights = sbm_class_weights(labels_host, data.dataset.num_classes).to(out.device());
    const Tensor labels = b.y.reshape({out.size(0)});
    cross_entropy_forward(loss, cache, out, labels, weights);
    if (dL_dout) {
      *dL_dout = Tensor::empty(out.shape(), out.dtype(), out.device());
      cross_entropy_backward(*dL_dout, 1.0, cache, labels, weights);
    }
    return loss;
  }
};

struct EvalTotals {
  double loss = 0, metric = 0;
  int64_t graphs = 0;
};

// Loss and metric averaged over batches, as benchmarking-gnns reports them (MAE and accuracy_SBM
// per batch, then the mean over batches); TU accuracy over all graphs.
EvalTotals evaluate(Runner& run, const std::vector<GraphSample>& samples, int64_t batch_size) {
  EvalTotals t;
  if (samples.empty()) return t;
  run.model.eval();
  graph::DataLoaderOptions o;
  o.batch_size = batch_size;
  o.shuffle = false;
  graph::GraphDataLoader loader(samples, o);
  loader.start_epoch(0);
  GraphBatch cpu;
  int64_t batches = 0, correct = 0;
  const Device device = run.config.device;
  Tensor loss_sum = Tensor::zeros({1}, Dtype::F32, device);
  double metric_sum = 0.0;
  while (loader.next(cpu)) {
    const GraphBatch b = cpu.to(device);
    std::vector<int32_t> labels;
    if (run.data.task != Task::GraphRegression) labels = cpu.y.to_vector<int32_t>();
    GraphTransformerCtx ctx;
    const Tensor out = run.model.forward(run.input(b, cpu), ctx);
    axpy(loss_sum, 1.0, run.loss(out, b, labels, nullptr));
    if (run.data.task != Task::GraphRegression) {
      Tensor pred = Tensor::empty({out.size(0)}, Dtype::I64, device);
      argmax_rows(pred, out);
      const std::vector<int64_t> p = pred.to_vector<int64_t>();
      if (run.data.task == Task::NodeClassification) {
        metric_sum += sbm_weighted_accuracy(labels, p);
      } else {
        for (size_t i = 0; i < p.size(); ++i) correct += p[i] == labels[i] ? 1 : 0;
      }
    }
    ++batches;
    t.graphs += cpu.num_graphs;
  }
  t.loss = loss_sum.item() / static_cast<double>(batches);
  if (run.data.task == Task::GraphRegression) t.metric = t.loss;  // MAE
  else if (run.data.task == Task::NodeClassification) t.metric = metric_sum / batches;
  else t.metric = 100.0 * static_cast<double>(correct) / static_cast<double>(t.graphs);
  return t;
}

std::string metric_name(Task task) {
  switch (task) {
    case Task::GraphRegression: return "MAE";
    case Task::NodeClassification: return "weighted accuracy %";
    case Task::GraphClassification: return "accuracy %";
  }
  return "";
}

json history_json(const std::vector<EpochRecord>& history) {
  json a = json::array();
  for (const EpochRecord& r : history)
    a.push_back({{"epoch", r.epoch}, {"train_loss", r.train_loss}, {"val_loss", r.val_loss},
                 {"val_metric", r.val_metric}, {"test_loss", r.test_loss},
                 {"test_metric", r.test_metric}, {"lr", r.lr}, {"seconds", r.seconds},
                 {"train_seconds", r.train_seconds}});
  return a;
}

std::vector<EpochRecord> history_from_json(const json& a) {
  std::vector<EpochRecord> h;
  for (const json& r : a) {
    EpochRecord e;
    e.epoch = r.at("epoch").get<int64_t>();
    e.train_loss = r.at("train_loss").get<double>();
    e.val_loss = r.at("val_loss").get<double>();
    e.val_metric = r.at("val_metric").get<double>();
    e.test_loss = r.at("test_loss").get<double>();
    e.test_metric = r.at("test_metric").get<double>();
    e.lr = r.at("lr").get<double>();
    e.seconds = r.at("seconds").get<double>();
    e.train_seconds = r.at("train_seconds").get<double>();
    h.push_back(e);
  }
  return h;
}

// Per-batch generator for the LapPE sign flips: a function of (seed, epoch, batch) only, so a
// resumed run draws the same signs.
Generator flip_generator(uint64_t seed, int64_t epoch, int64_t batch) {
  return Generator(mix64(seed ^ mix64(static_cast<uint64_t>(epoch) * 1000003ull +
                                      static_cast<uint64_t>(batch))));
}

}  // namespace

TrainResult train_graph_transformer(const TrainConfig& config_in, std::ostream* log) {
  TrainConfig config = config_in;
  config.validate();
  config.model.seed = config.seed;  // initialisation and dropout seeds follow the run's seed
  if (config.device.is_cuda()) {
    LAPIS_CHECK(cuda_available(), "train_graph_transformer",
                "--device cuda but no CUDA device is available",
                built_with_cuda() ? "" : " (lapis built without CUDA)");
    cuda::set_allow_tf32(config.allow_tf32);
  }
  const auto run_start = Clock::now();
  PreparedData data = prepare(config, config.model, log);
  GraphTransformer model(config.model);
  model.to(config.device);
  const std::vector<nn::Dropout*> dropouts = model.dropouts();
  AdamHyper hyper;
  hyper.lr = config.lr;
  hyper.weight_decay = config.weight_decay;
  optim::Adam opt(model.parameters(), hyper);
  optim::ReduceLROnPlateau scheduler(opt, config.lr_factor, config.patience, 0.0);

  TrainResult result;
  result.metric_name = metric_name(data.task);
  result.higher_is_better = data.task != Task::GraphRegression;
  result.num_parameters = model.num_parameters();

  const fs::path out_dir = config.out_dir;
  const std::string last_path = config.out_dir.empty() ? "" : (out_dir / "checkpoint_last.safetensors").string();
  const std::string best_path = config.out_dir.empty() ? "" : (out_dir / "checkpoint_best.safetensors").string();
  if (!config.out_dir.empty()) fs::create_directories(out_dir);

  int64_t start_epoch = 1;
  double best_val_loss = INFINITY;
  double elapsed_before = 0.0;
  if (config.resume) {
    LAPIS_CHECK(!last_path.empty(), "train_graph_transformer", "--resume needs --out DIR");
    if (fs::exists(last_path)) {
      const auto meta = io::load_checkpoint(last_path, model, &opt);
      const json saved = json::parse(meta.at("config"));
      LAPIS_CHECK(saved.at("dataset") == config.dataset && saved.at("seed") == config.seed,
                  "train_graph_transformer", "checkpoint ", last_path,
                  " was written for dataset ", saved.at("dataset").dump(), " seed ",
                  saved.at("seed").dump(), ", not ", config.dataset, " seed ", config.seed);
      std::map<std::string, double> sched;
      // Values are strings so that +-inf (ReduceLROnPlateau's initial best) survive JSON.
      const json saved_scheduler = json::parse(meta.at("scheduler"));
      for (auto it = saved_scheduler.begin(); it != saved_scheduler.end(); ++it)
        sched[it.key()] = std::stod(it.value().get<std::string>());
      scheduler.load_state(sched);
      result.history = history_from_json(json::parse(meta.at("history")));
      start_epoch = std::stoll(meta.at("epoch")) + 1;
      best_val_loss = std::stod(meta.at("best_val_loss"));
      result.best_epoch = std::stoll(meta.at("best_epoch"));
      elapsed_before = std::stod(meta.at("elapsed_seconds"));
      if (log) *log << "resumed from " << last_path << " after epoch " << start_epoch - 1 << std::endl;
    } else if (log) {
      *log << "no checkpoint in " << config.out_dir << ": starting from scratch" << std::endl;
    }
  }
  if (log) {
    *log << "model: GraphTransformer L=" << config.model.layers << " C=" << config.model.hidden
         << " H=" << config.model.heads << " norm=" << norm_kind_name(config.model.norm)
         << " pe=" << config.model.pe_dim << " edges=" << (data.edge_types ? "yes" : "no")
         << ", " << result.num_parameters << " parameters; Adam lr " << config.lr << ", batch "
         << config.batch_size << ", device " << config.device.to_string() << std::endl;
  }

  Runner run{config, data, model};
  graph::DataLoaderOptions lo;
  lo.batch_size = config.batch_size;
  lo.shuffle = true;
  lo.seed = config.seed;
  graph::GraphDataLoader train_loader(data.dataset.train, lo);
  TrainingReport report(config.out_dir, result.metric_name);
  if (!result.history.empty()) report.restore(result.history);
  const bool show_progress = config.progress && isatty(2);

  result.stop_reason = "max epochs";
  for (int64_t epoch = start_epoch; epoch <= config.max_epochs; ++epoch) {
    if (opt.lr() < config.min_lr) {
      result.stop_reason = "lr below min_lr";
      break;
    }
    if (elapsed_before + seconds_since(run_start) > config.max_hours * 3600.0) {
      result.stop_reason = "max hours";
      break;
    }
    const auto t_epoch = Clock::now();
    model.train();
    train_loader.start_epoch(epoch - 1);
    // Dropout masks as a function of (seed, epoch, batch): each epoch starts its Dropouts at
    // counter epoch * 2^40 (an epoch draws far fewer: ZINC ~3e7 per Dropout), so a resumed run
    // draws the same masks as an uninterrupted one.
    for (nn::Dropout* d : dropouts) d->set_offset(static_cast<uint64_t>(epoch) << 40);
    Tensor loss_sum = Tensor::zeros({1}, Dtype::F32, config.device);
    GraphBatch cpu;
    int64_t batches = 0;
    const int64_t total_batches = train_loader.num_batches();
    while (train_loader.next(cpu)) {
      if (data.pe_index >= 0) {
        // One random sign per LapPE column per batch (training only), as the reference. The
        // batch's extras are fresh concatenations (batch_samples), so flipping in place leaves
        // the dataset's encodings untouched.
        Tensor& pe = cpu.node_extras[static_cast<size_t>(data.pe_index)];
        Generator gen = flip_generator(config.seed, epoch, batches);
        graph::flip_signs_random(pe, gen);
      }
      const GraphBatch b = cpu.to(config.device);
      std::vector<int32_t> labels;
      if (data.task == Task::NodeClassification) labels = cpu.y.to_vector<int32_t>();
      GraphTransformerCtx ctx;
      const Tensor out = model.forward(run.input(b, cpu), ctx);
      Tensor dL_dout;
      axpy(loss_sum, 1.0, run.loss(out, b, labels, &dL_dout));
      opt.zero_grad();
      model.backward(dL_dout, ctx);
      opt.step();
      ++batches;
      if (show_progress) {
        const double t = seconds_since(t_epoch);
        std::fprintf(stderr, "\r  epoch %lld  batch %lld/%lld  %.1fs  ETA %.1fs   ",
                     static_cast<long long>(epoch), static_cast<long long>(batches),
                     static_cast<long long>(total_batches), t,
                     t / static_cast<double>(batches) * static_cast<double>(total_batches - batches));
      }
    }
    if (show_progress) std::fprintf(stderr, "\r%70s\r", "");
    EpochRecord r;
    r.epoch = epoch;
    r.train_loss = loss_sum.item() / static_cast<double>(std::max<int64_t>(batches, 1));
    r.train_seconds = seconds_since(t_epoch);
    r.lr = opt.lr();
    const EvalTotals val = evaluate(run, data.dataset.val, config.batch_size);
    const EvalTotals test = evaluate(run, data.dataset.test, config.batch_size);
    r.val_loss = val.loss;
    r.val_metric = val.metric;
    r.test_loss = test.loss;
    r.test_metric = test.metric;
    r.seconds = seconds_since(t_epoch);
    LAPIS_CHECK(std::isfinite(r.train_loss) && std::isfinite(r.val_loss), "train_graph_transformer",
                "loss is not finite at epoch ", epoch, " (train ", r.train_loss, ", val ",
                r.val_loss, "); try a lower lr");
    result.history.push_back(r);
    scheduler.step(r.val_loss);

    const bool best = r.val_loss < best_val_loss;
    if (best) {
      best_val_loss = r.val_loss;
      result.best_epoch = epoch;
    }
    report.add(r, log);
    if (!config.out_dir.empty()) {
      std::map<std::string, std::string> meta;
      meta["config"] = config_to_json(config);
      json sched = json::object();
      for (const auto& [k, v] : scheduler.state()) {
        char text[40];
        std::snprintf(text, sizeof text, "%.17g", v);
        sched[k] = text;
      }
      meta["scheduler"] = sched.dump();
      meta["history"] = history_json(result.history).dump();
      meta["epoch"] = std::to_string(epoch);
      std::ostringstream bv;
      bv << std::setprecision(17) << best_val_loss;
      meta["best_val_loss"] = bv.str();
      meta["best_epoch"] = std::to_string(result.best_epoch);
      meta["elapsed_seconds"] = std::to_string(elapsed_before + seconds_since(run_start));
      meta["metric"] = result.metric_name;
      if (best) io::save_checkpoint(best_path, model, &opt, meta);
      io::save_checkpoint(last_path, model, &opt, meta);  // last: written after best
    }
  }
  for (const EpochRecord& r : result.history) {
    if (r.epoch == result.best_epoch) {
      result.best_val_metric = r.val_metric;
      result.test_metric_at_best = r.test_metric;
    }
  }
  if (log && !result.history.empty()) {
    *log << "stopped (" << result.stop_reason << ") after epoch " << result.history.back().epoch
         << "; best val loss at epoch " << result.best_epoch << ": val " << result.metric_name
         << " " << result.best_val_metric << ", test " << result.metric_name << " "
         << result.test_metric_at_best << std::endl;
  }
  return result;
}

EvalResult evaluate_checkpoint(const std::string& checkpoint_path, const std::string& dataset,
                               const std::string& split, Device device, std::ostream* log,
                               const std::string& cache_dir) {
  const io::SafetensorsFile file = io::load_safetensors(checkpoint_path);
  const auto it = file.metadata.find("config");
  LAPIS_CHECK(it != file.metadata.end(), "evaluate_checkpoint", checkpoint_path,
              " has no training config in its metadata (not written by train-graph)");
  TrainConfig config = builtin_config("zinc");
  apply_json_overrides(config, it->second);
  if (!dataset.empty()) config.dataset = dataset;
  config.device = device;
  config.cache_dir = cache_dir;
  config.resume = false;
  config.max_train_graphs = 1;  // only the requested split is evaluated
  if (split == "train") config.max_train_graphs = 0;
  LAPIS_CHECK(split == "train" || split == "val" || split == "test", "evaluate_checkpoint",
              "unknown split '", split, "' (expected train, val or test)");
  PreparedData data = prepare(config, config.model, log);
  GraphTransformer model(config.model);
  model.to(device);
  io::load_checkpoint(checkpoint_path, model, nullptr);
  Runner run{config, data, model};
  const std::vector<GraphSample>& samples =
      split == "train" ? data.dataset.train : split == "val" ? data.dataset.val : data.dataset.test;
  const EvalTotals t = evaluate(run, samples, config.batch_size);
  EvalResult r;
  r.loss = t.loss;
  r.metric = t.metric;
  r.metric_name = metric_name(data.task);
  r.graphs = t.graphs;
  return r;
}

}  // namespace gt
}  // namespace lapis
