// Optimizers over nn::Parameter lists: Adam (L2 weight decay) and AdamW (decoupled decay), on the
// fused kernel of kernels/adam.h, matching torch.optim.Adam / AdamW (amsgrad=False). On CUDA,
// step() and zero_grad() take one launch each per device and dtype (multi-tensor kernels), not
// one per parameter.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "kernels/adam.h"
#include "models/nn/module.h"

namespace lapis {
namespace optim {

class Optimizer {
 public:
  // params must outlive the optimizer (Module::parameters() pointers do).
  Optimizer(std::vector<nn::Parameter*> params, double lr);
  virtual ~Optimizer() = default;
  // Not copyable: a copy would share the state tensors with the original.
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  // One update of every parameter from its grad; advances step_count().
  virtual void step() = 0;
  // Sets every parameter's grad to zero (one launch per CUDA device).
  void zero_grad();
  void set_lr(double lr);
  double lr() const { return lr_; }
  // Number of step() calls so far (restored by checkpoints).
  int64_t step_count() const { return step_; }
  void set_step_count(int64_t step);
  // "adam", "adamw", ... (stored in checkpoints and checked on load).
  virtual std::string name() const = 0;
  const std::vector<nn::Parameter*>& params() const { return params_; }

  // State for checkpoints: named tensors ("<param name>.exp_avg", "<param name>.exp_avg_sq"),
  // allocated (zero) on each parameter's device and dtype. Writing into them (copy_from) sets the
  // state; the step count is separate (step_count / set_step_count).
  virtual std::vector<std::pair<std::string, Tensor*>> state() { return {}; }

 protected:
  std::vector<nn::Parameter*> params_;
  double lr_;
  int64_t step_ = 0;

 private:
  MultiTensorPlan zero_plan_;  // device table of the grads for zero_grad
};

class Adam : public Optimizer {
 public:
  // hyper.lr is the learning rate; hyper.decoupled is ignored (Adam uses L2: g += wd * p).
  Adam(std::vector<nn::Parameter*> params, const AdamHyper& hyper);
  explicit Adam(std::vector<nn::Parameter*> params, double lr = 1e-3,
                double weight_decay = 0.0);
  void step() override;
  std::string name() const override { return hyper_.decoupled ? "adamw" : "adam"; }
  std::vector<std::pair<std::string, Tensor*>> state() override;
  const AdamHyper& hyper() const { return hyper_; }

 protected:
  Adam(std::vector<nn::Parameter*> params, const AdamHyper& hyper, bool decoupled);
  // Allocates m/v for parameters that have none, and moves/converts existing ones to the
  // parameter's device and dtype (after Module::to). Throws when a shape changed.
  void ensure_state();

  AdamHyper hyper_;
  std::vector<Tensor> exp_avg_;     // m, one per parameter
  std::vector<Tensor> exp_avg_sq_;  // v, one per parameter
  MultiTensorPlan step_plan_;       // device table of (param, grad, m, v) for step
};

// AdamW: decoupled weight decay p -= lr * wd * p (torch default weight_decay 0.01).
class AdamW : public Adam {
 public:
  // hyper.decoupled is ignored (always decoupled).
  AdamW(std::vector<nn::Parameter*> params, const AdamHyper& hyper);
  explicit AdamW(std::vector<nn::Parameter*> params, double lr = 1e-3,
                 double weight_decay = 0.01);
};

}  // namespace optim
}  // namespace lapis
