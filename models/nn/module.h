// Module and Parameter: the base of every trainable layer (explicit backward, no tape).
//
// A Module owns its Parameters (value + accumulated grad) and names them; children are
// registered by pointer, so parameter names are hierarchical ("layers.0.weight") and
// parameters() walks the tree depth-first (own parameters first, then children in
// registration order). Modules are neither copyable nor movable (children are held by pointer):
// keep them in place or behind std::unique_ptr.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace lapis {
namespace nn {

struct Parameter {
  std::string name;  // full hierarchical name, e.g. "layers.0.weight"
  Tensor value;
  Tensor grad;  // same shape, dtype and device as value; zero-initialised; backward adds (+=)
};

class Module {
 public:
  Module() = default;
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;
  Module(Module&&) = delete;
  Module& operator=(Module&&) = delete;

  // This module's and its children's parameters, depth-first. Pointers stay valid for the
  // module's lifetime (to() and load_checkpoint change the tensors, not the Parameter objects).
  std::vector<Parameter*> parameters();
  // Non-trained state (e.g. BatchNorm running_mean), named like parameters.
  std::vector<std::pair<std::string, Tensor*>> buffers();

  // Sets training mode here and in every child (BatchNorm statistics, Dropout).
  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }

  // Moves parameters, grads and buffers (values kept).
  void to(Device device);
  // Converts floating parameters, grads and buffers to a floating dtype (f32 <-> f64), e.g. for
  // F64 gradient checks. Grads are converted too (values kept).
  void to(Dtype dtype);
  // Sets every parameter's grad to zero.
  void zero_grad();
  // Total element count of all parameters.
  int64_t num_parameters();

 protected:
  // Registers a parameter with a zero grad of the same shape; the reference stays valid.
  Parameter& register_parameter(const std::string& name, Tensor value);
  // Registers a member tensor as a buffer (the module keeps owning it).
  void register_buffer(const std::string& name, Tensor* buffer);
  // Registers a child (owned by this module, e.g. a member or a unique_ptr); its parameter and
  // buffer names get the prefix "<name>.".
  void register_child(const std::string& name, Module* child);

 private:
  void set_prefix(const std::string& prefix);  // renames own parameters and, recursively, children

  struct LocalParameter {
    std::string local_name;
    std::unique_ptr<Parameter> param;
  };
  std::string prefix_;  // "" at the root, "layers.0." for a child
  std::vector<LocalParameter> params_;
  std::vector<std::pair<std::string, Tensor*>> buffers_;  // local names
  std::vector<std::pair<std::string, Module*>> children_;
  bool training_ = true;
};

}  // namespace nn
}  // namespace lapis
