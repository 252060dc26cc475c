// TrainConfig: the built-in published configurations, validation and JSON overrides.
#include <nlohmann/json.hpp>

#include "models/gt/trainer.h"

namespace lapis {
namespace gt {

using nlohmann::json;

void TrainConfig::validate() const {
  const char* op = "TrainConfig";
  LAPIS_CHECK(!dataset.empty(), op, "dataset is empty (expected zinc, pattern, cluster or tu:PATH)");
  LAPIS_CHECK(batch_size >= 1, op, "batch_size must be >= 1, got ", batch_size);
  LAPIS_CHECK(lr > 0.0, op, "lr must be > 0, got ", lr);
  LAPIS_CHECK(lr_factor > 0.0 && lr_factor < 1.0, op, "lr_factor must be in (0, 1), got ",
              lr_factor);
  LAPIS_CHECK(patience >= 0, op, "patience must be >= 0, got ", patience);
  LAPIS_CHECK(min_lr >= 0.0, op, "min_lr must be >= 0, got ", min_lr);
  LAPIS_CHECK(weight_decay >= 0.0, op, "weight_decay must be >= 0, got ", weight_decay);
  LAPIS_CHECK(max_epochs >= 1, op, "max_epochs must be >= 1, got ", max_epochs);
  LAPIS_CHECK(max_hours > 0.0, op, "max_hours must be > 0, got ", max_hours);
  // Checked here, before any data is loaded, rather than only when training starts.
  LAPIS_CHECK(!resume || !out_dir.empty(), op, "resume needs out_dir (--out DIR) to resume from");
  LAPIS_CHECK(max_train_graphs >= 0 && max_eval_graphs >= 0, op,
              "max_train_graphs / max_eval_graphs must be >= 0");
  LAPIS_CHECK(model.layers >= 1, op, "model.layers must be >= 1, got ", model.layers);
  LAPIS_CHECK(model.hidden >= 4 && model.heads >= 1 && model.hidden % model.heads == 0, op,
              "model.hidden (", model.hidden, ") must be >= 4 and a multiple of model.heads (",
              model.heads, ")");
  LAPIS_CHECK(model.pe_dim >= 0 && model.rwse_dim >= 0, op, "model.pe_dim and model.rwse_dim must be >= 0");
  LAPIS_CHECK(model.dropout >= 0.0 && model.dropout < 1.0, op,
              "model.dropout must be in [0, 1), got ", model.dropout);
}

TrainConfig builtin_config(const std::string& name) {
  TrainConfig c;
  c.name = name;
  c.model.layers = 10;
  c.model.heads = 8;
  c.model.norm = NormKind::Batch;
  c.model.dropout = 0.0;
  c.seed = 41;
  c.max_epochs = 1000;
  c.min_lr = 1e-6;
  c.lr_factor = 0.5;
  if (name == "zinc") {
    c.dataset = "zinc";
    c.model.hidden = 64;
    c.model.pe_dim = 8;
    c.model.readout = Readout::Mean;
    c.batch_size = 128;
    c.lr = 7e-4;
    c.patience = 15;
  } else if (name == "pattern") {
    c.dataset = "pattern";
    c.model.hidden = 80;
    c.model.pe_dim = 2;
    c.model.readout = Readout::None;
    c.batch_size = 26;
    c.lr = 5e-4;
    c.patience = 10;
  } else if (name == "cluster") {
    c.dataset = "cluster";
    c.model.hidden = 80;
    c.model.pe_dim = 10;
    c.model.readout = Readout::None;
    c.batch_size = 32;
    c.lr = 5e-4;
    c.patience = 10;
  } else if (name == "tu") {
    // Not a published GT configuration: a small model for TU graph classification.
    c.dataset = "";
    c.model.layers = 4;
    c.model.hidden = 64;
    c.model.pe_dim = 4;
    c.model.readout = Readout::Mean;
    c.batch_size = 64;
    c.lr = 1e-3;
    c.patience = 10;
    c.max_epochs = 200;
  } else {
    LAPIS_FAIL("builtin_config", "unknown config '", name,
               "' (expected zinc, pattern, cluster or tu)");
  }
  return c;
}

namespace {

// `key` receives the full name of the key being applied ("model.<k>") for error messages.
void apply_model(const json& j, GraphTransformerConfig& m, std::string& key) {
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& k = it.key();
    const json& v = it.value();
    key = "model." + k;
    if (k == "layers") m.layers = v.get<int64_t>();
    else if (k == "hidden") m.hidden = v.get<int64_t>();
    else if (k == "heads") m.heads = v.get<int64_t>();
    else if (k == "norm") m.norm = parse_norm_kind(v.get<std::string>());
    else if (k == "dropout") m.dropout = v.get<double>();
    else if (k == "in_feat_dropout") m.in_feat_dropout = v.get<double>();
    else if (k == "pe_dim") m.pe_dim = v.get<int64_t>();
    else if (k == "rwse_dim") m.rwse_dim = v.get<int64_t>();
    else if (k == "readout") m.readout = parse_readout(v.get<std::string>());
    else {
      LAPIS_FAIL("apply_json_overrides", "unknown key 'model.", k, "'");
    }
  }
}

}  // namespace

void apply_json_overrides(TrainConfig& c, const std::string& json_text) {
  json j;
  try {
    j = json::parse(json_text);
  } catch (const std::exception& e) {
    LAPIS_FAIL("apply_json_overrides", "invalid JSON: ", e.what());
  }
  LAPIS_CHECK(j.is_object(), "apply_json_overrides", "expected a JSON object");
  std::string key;  // the key being applied, named by type errors
  try {
    for (auto it = j.begin(); it != j.end(); ++it) {
      const std::string& k = it.key();
      const json& v = it.value();
      key = k;
      if (k == "model") {
        LAPIS_CHECK(v.is_object(), "apply_json_overrides", "'model' must be an object");
        apply_model(v, c.model, key);
      } else if (k == "dataset") c.dataset = v.get<std::string>();
      else if (k == "batch_size") c.batch_size = v.get<int64_t>();
      else if (k == "lr") c.lr = v.get<double>();
      else if (k == "lr_factor") c.lr_factor = v.get<double>();
      else if (k == "patience") c.patience = v.get<int>();
      else if (k == "min_lr") c.min_lr = v.get<double>();
      else if (k == "weight_decay") c.weight_decay = v.get<double>();
      else if (k == "max_epochs") c.max_epochs = v.get<int64_t>();
      else if (k == "max_hours") c.max_hours = v.get<double>();
      else if (k == "seed") c.seed = v.get<uint64_t>();
      else if (k == "device") c.device = Device::parse(v.get<std::string>());
      else if (k == "max_train_graphs") c.max_train_graphs = v.get<int64_t>();
      else if (k == "max_eval_graphs") c.max_eval_graphs = v.get<int64_t>();
      else if (k == "allow_tf32") c.allow_tf32 = v.get<bool>();
      else if (k == "name") c.name = v.get<std::string>();
      else if (k == "use_edge_features") c.use_edge_features = v.get<bool>();
      else LAPIS_FAIL("apply_json_overrides", "unknown key '", k, "'");
    }
  } catch (const json::exception& e) {
    LAPIS_FAIL("apply_json_overrides", "bad value for '", key, "': ", e.what());
  }
  c.validate();
}

std::string config_to_json(const TrainConfig& c) {
  json m = {{"layers", c.model.layers},       {"hidden", c.model.hidden},
            {"heads", c.model.heads},         {"norm", norm_kind_name(c.model.norm)},
            {"dropout", c.model.dropout},     {"in_feat_dropout", c.model.in_feat_dropout},
            {"pe_dim", c.model.pe_dim},       {"rwse_dim", c.model.rwse_dim},
            {"readout", readout_name(c.model.readout)}};
  json j = {{"name", c.name},
            {"dataset", c.dataset},
            {"model", m},
            {"batch_size", c.batch_size},
            {"lr", c.lr},
            {"lr_factor", c.lr_factor},
            {"patience", c.patience},
            {"min_lr", c.min_lr},
            {"weight_decay", c.weight_decay},
            {"max_epochs", c.max_epochs},
            {"max_hours", c.max_hours},
            {"seed", c.seed},
            {"device", c.device.to_string()},
            {"max_train_graphs", c.max_train_graphs},
            {"max_eval_graphs", c.max_eval_graphs},
            {"allow_tf32", c.allow_tf32},
            {"use_edge_features", c.use_edge_features}};
  return j.dump();
}

}  // namespace gt
}  // namespace lapis
