#include "models/nn/module.h"

namespace lapis {
namespace nn {

std::vector<Parameter*> Module::parameters() {
  std::vector<Parameter*> out;
  for (auto& p : params_) out.push_back(p.param.get());
  for (auto& child : children_) {
    for (Parameter* p : child.second->parameters()) out.push_back(p);
  }
  return out;
}

std::vector<std::pair<std::string, Tensor*>> Module::buffers() {
  std::vector<std::pair<std::string, Tensor*>> out;
  for (auto& b : buffers_) out.emplace_back(prefix_ + b.first, b.second);
  for (auto& child : children_) {
    for (auto& b : child.second->buffers()) out.push_back(b);
  }
  return out;
}

void Module::train(bool on) {
  training_ = on;
  for (auto& child : children_) child.second->train(on);
}

void Module::to(Device device) {
  for (auto& p : params_) {
    p.param->value = p.param->value.to(device);
    p.param->grad = p.param->grad.to(device);
  }
  for (auto& b : buffers_) {
    if (b.second->defined()) *b.second = b.second->to(device);
  }
  for (auto& child : children_) child.second->to(device);
}

void Module::to(Dtype dtype) {
  LAPIS_CHECK(is_floating(dtype), "Module::to", "expected a floating dtype, got ",
              dtype_name(dtype));
  auto convert = [dtype](Tensor& t) {
    if (t.defined() && is_floating(t.dtype()) && t.dtype() != dtype) t = t.to(dtype);
  };
  for (auto& p : params_) {
    convert(p.param->value);
    convert(p.param->grad);
  }
  for (auto& b : buffers_) convert(*b.second);
  for (auto& child : children_) child.second->to(dtype);
}

void Module::zero_grad() {
  for (Parameter* p : parameters()) p->grad.zero();
}

int64_t Module::num_parameters() {
  int64_t n = 0;
  for (Parameter* p : parameters()) n += p->value.numel();
  return n;
}

Parameter& Module::register_parameter(const std::string& name, Tensor value) {
  LAPIS_CHECK(!name.empty() && name.find('.') == std::string::npos, "Module::register_parameter",
              "bad parameter name '", name, "' (non-empty, no '.')");
  check_defined("Module::register_parameter", name.c_str(), value);
  for (auto& p : params_) {
    LAPIS_CHECK(p.local_name != name, "Module::register_parameter", "duplicate parameter '",
                name, "'");
  }
  auto param = std::make_unique<Parameter>();
  param->name = prefix_ + name;
  param->grad = Tensor::zeros(value.shape(), value.dtype(), value.device());
  param->value = std::move(value);
  Parameter& ref = *param;
  params_.push_back({name, std::move(param)});
  return ref;
}

void Module::register_buffer(const std::string& name, Tensor* buffer) {
  LAPIS_CHECK(buffer != nullptr, "Module::register_buffer", "buffer '", name, "' is null");
  LAPIS_CHECK(!name.empty() && name.find('.') == std::string::npos, "Module::register_buffer",
              "bad buffer name '", name, "' (non-empty, no '.')");
  buffers_.emplace_back(name, buffer);
}

void Module::register_child(const std::string& name, Module* child) {
  LAPIS_CHECK(child != nullptr && child != this, "Module::register_child", "bad child '", name,
              "'");
  LAPIS_CHECK(!name.empty(), "Module::register_child", "empty child name");
  for (auto& c : children_) {
    LAPIS_CHECK(c.first != name, "Module::register_child", "duplicate child '", name, "'");
  }
  children_.emplace_back(name, child);
  child->set_prefix(prefix_ + name + ".");
}

void Module::set_prefix(const std::string& prefix) {
  prefix_ = prefix;
  for (auto& p : params_) p.param->name = prefix_ + p.local_name;
  for (auto& child : children_) child.second->set_prefix(prefix_ + child.first + ".");
}

}  // namespace nn
}  // namespace lapis
