#include "models/io/checkpoint.h"

#include <cstdio>
#include <set>
#include <utility>
#include <vector>

#include "models/io/safetensors.h"

namespace lapis {
namespace io {
namespace {

constexpr const char* kFormatKey = "lapis_format";
constexpr const char* kFormatVersion = "1";

bool starts_with(const std::string& s, const std::string& prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}

bool is_reserved_key(const std::string& key) {
  return starts_with(key, "lapis_") || starts_with(key, "optim_");
}

std::string format_double(double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.17g", v);
  return buf;
}

// The (file name, destination) pairs a model (and optimizer) expects.
std::vector<std::pair<std::string, Tensor*>> expected_tensors(nn::Module& model,
                                                              optim::Optimizer* opt) {
  std::vector<std::pair<std::string, Tensor*>> out;
  for (nn::Parameter* p : model.parameters()) out.emplace_back("model." + p->name, &p->value);
  for (auto& b : model.buffers()) out.emplace_back("buffer." + b.first, b.second);
  if (opt != nullptr) {
    for (auto& s : opt->state()) out.emplace_back("optim." + s.first, s.second);
  }
  return out;
}

}  // namespace

void save_checkpoint(const std::string& path, nn::Module& model, optim::Optimizer* opt,
                     const std::map<std::string, std::string>& metadata) {
  std::map<std::string, std::string> meta;
  for (const auto& kv : metadata) {
    LAPIS_CHECK(!is_reserved_key(kv.first), "save_checkpoint", "'", path, "': metadata key '",
                kv.first, "' is reserved (keys starting with lapis_ or optim_)");
    meta[kv.first] = kv.second;
  }
  meta[kFormatKey] = kFormatVersion;
  if (opt != nullptr) {
    meta["optim_name"] = opt->name();
    meta["optim_step"] = std::to_string(opt->step_count());
    meta["optim_lr"] = format_double(opt->lr());
  }
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (auto& nt : expected_tensors(model, opt)) {
    LAPIS_CHECK(nt.second->defined(), "save_checkpoint", "'", path, "': tensor '", nt.first,
                "' is undefined");
    tensors.emplace_back(nt.first, *nt.second);
  }
  save_safetensors(path, tensors, meta);
}

std::map<std::string, std::string> load_checkpoint(const std::string& path, nn::Module& model,
                                                   optim::Optimizer* opt) {
  const char* op = "load_checkpoint";
  SafetensorsFile file = load_safetensors(path);
  const auto format = file.metadata.find(kFormatKey);
  LAPIS_CHECK(format != file.metadata.end(), op, "'", path,
              "' is not a Lapis checkpoint (no lapis_format in its metadata)");
  LAPIS_CHECK(format->second == kFormatVersion, op, "'", path, "' has lapis_format '",
              format->second, "', this build reads '", kFormatVersion, "'");

  int64_t step = 0;
  double lr = 0.0;
  if (opt != nullptr) {
    const auto name = file.metadata.find("optim_name");
    LAPIS_CHECK(name != file.metadata.end(), op, "'", path,
                "' holds no optimizer state (saved without an optimizer)");
    LAPIS_CHECK(name->second == opt->name(), op, "'", path, "' holds state of optimizer '",
                name->second, "' but the optimizer is '", opt->name(), "'");
    try {
      step = std::stoll(file.metadata.at("optim_step"));
      lr = std::stod(file.metadata.at("optim_lr"));
    } catch (const std::exception&) {
      LAPIS_FAIL(op, "'", path, "': bad or missing optim_step / optim_lr in the metadata");
    }
  }

  // Check everything first so a failed load leaves the model untouched.
  const auto expected = expected_tensors(model, opt);
  std::set<std::string> used;
  std::vector<std::string> problems;
  std::vector<std::pair<Tensor*, Tensor>> copies;
  for (const auto& nt : expected) {
    const auto it = file.tensors.find(nt.first);
    if (it == file.tensors.end()) {
      problems.push_back(str_cat("missing tensor '", nt.first, "' (expected ",
                                 nt.second->describe(), ")"));
      continue;
    }
    used.insert(nt.first);
    const Tensor& src = it->second;
    const Tensor& dst = *nt.second;
    if (src.shape() != dst.shape()) {
      problems.push_back(str_cat("tensor '", nt.first, "' has shape ",
                                 shape_to_string(src.shape()), " in the file but ",
                                 shape_to_string(dst.shape()), " in the model"));
      continue;
    }
    if (src.dtype() != dst.dtype() && !(is_floating(src.dtype()) && is_floating(dst.dtype()))) {
      problems.push_back(str_cat("tensor '", nt.first, "' has dtype ", dtype_name(src.dtype()),
                                 " in the file but ", dtype_name(dst.dtype()), " in the model"));
      continue;
    }
    copies.emplace_back(nt.second, src.dtype() == dst.dtype() ? src : src.to(dst.dtype()));
  }
  for (const auto& kv : file.tensors) {
    const bool ours = starts_with(kv.first, "model.") || starts_with(kv.first, "buffer.") ||
                      (opt != nullptr && starts_with(kv.first, "optim."));
    if (ours && used.count(kv.first) == 0) {
      problems.push_back(str_cat("unexpected tensor '", kv.first, "' ",
                                 shape_to_string(kv.second.shape()), " (not in the model)"));
    }
  }
  if (!problems.empty()) {
    std::string all;
    for (size_t i = 0; i < problems.size(); ++i) all += (i ? "; " : "") + problems[i];
    LAPIS_FAIL(op, "'", path, "' does not match the model: ", all);
  }

  for (auto& c : copies) c.first->copy_from(c.second);
  if (opt != nullptr) {
    opt->set_step_count(step);
    opt->set_lr(lr);
  }
  std::map<std::string, std::string> out;
  for (const auto& kv : file.metadata) {
    if (!is_reserved_key(kv.first)) out.insert(kv);
  }
  return out;
}

}  // namespace io
}  // namespace lapis
