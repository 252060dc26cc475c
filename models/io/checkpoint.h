// Training checkpoints as safetensors files (see docs/checkpoints.md).
//
// Tensor names: "model.<param>" (parameter values), "buffer.<buffer>" (e.g. BatchNorm running
// stats), "optim.<state name>" (e.g. "optim.layers.0.weight.exp_avg"). Metadata (string ->
// string): the caller's entries (epoch, seed, scheduler state as JSON, ...) plus
// "lapis_format": "1" and, with an optimizer, "optim_name", "optim_step" and "optim_lr".
#pragma once

#include <map>
#include <string>

#include "models/nn/module.h"
#include "models/optim/optimizer.h"

namespace lapis {
namespace io {

// Saves the model's parameters and buffers and, when opt is not null, its state and step count.
// Atomic (see save_safetensors). Metadata keys must not start with "lapis_" or "optim_".
void save_checkpoint(const std::string& path, nn::Module& model, optim::Optimizer* opt,
                     const std::map<std::string, std::string>& metadata = {});

// Loads into an existing model (and optimizer when not null), on their current devices and
// dtypes (floating values are converted). All-or-nothing: everything is checked before anything
// is written. Errors name the file and every missing, unexpected or mismatched tensor with both
// shapes. Returns the caller's metadata (without the "lapis_" / "optim_" entries).
std::map<std::string, std::string> load_checkpoint(const std::string& path, nn::Module& model,
                                                   optim::Optimizer* opt);

}  // namespace io
}  // namespace lapis
