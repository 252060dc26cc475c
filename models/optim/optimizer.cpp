#include "models/optim/optimizer.h"

namespace lapis {
namespace optim {

Optimizer::Optimizer(std::vector<nn::Parameter*> params, double lr)
    : params_(std::move(params)), lr_(lr) {
  for (size_t i = 0; i < params_.size(); ++i) {
    LAPIS_CHECK(params_[i] != nullptr, "Optimizer", "parameter ", i, " is null");
    check_defined("Optimizer", params_[i]->name.c_str(), params_[i]->value);
  }
  LAPIS_CHECK(lr >= 0.0, "Optimizer", "learning rate must be >= 0, got ", lr);
}

void Optimizer::zero_grad() {
  std::vector<Tensor*> grads;
  grads.reserve(params_.size());
  for (nn::Parameter* p : params_) {
    check_defined("Optimizer::zero_grad", p->name.c_str(), p->grad);
    grads.push_back(&p->grad);
  }
  zero_multi(grads, &zero_plan_);
}

void Optimizer::set_lr(double lr) {
  LAPIS_CHECK(lr >= 0.0, "Optimizer::set_lr", "learning rate must be >= 0, got ", lr);
  lr_ = lr;
}

void Optimizer::set_step_count(int64_t step) {
  LAPIS_CHECK(step >= 0, "Optimizer::set_step_count", "step must be >= 0, got ", step);
  step_ = step;
}

// ---- Adam / AdamW ----

Adam::Adam(std::vector<nn::Parameter*> params, const AdamHyper& hyper, bool decoupled)
    : Optimizer(std::move(params), hyper.lr), hyper_(hyper) {
  hyper_.decoupled = decoupled;
  LAPIS_CHECK(hyper.beta1 >= 0.0 && hyper.beta1 < 1.0 && hyper.beta2 >= 0.0 && hyper.beta2 < 1.0,
              name(), "betas must be in [0, 1), got ", hyper.beta1, ", ", hyper.beta2);
  LAPIS_CHECK(hyper.eps >= 0.0 && hyper.weight_decay >= 0.0, name(),
              "eps and weight_decay must be >= 0, got ", hyper.eps, ", ", hyper.weight_decay);
  ensure_state();
}

Adam::Adam(std::vector<nn::Parameter*> params, const AdamHyper& hyper)
    : Adam(std::move(params), hyper, false) {}

Adam::Adam(std::vector<nn::Parameter*> params, double lr, double weight_decay)
    : Adam(std::move(params), AdamHyper{lr, 0.9, 0.999, 1e-8, weight_decay, false}, false) {}

void Adam::ensure_state() {
  exp_avg_.resize(params_.size());
  exp_avg_sq_.resize(params_.size());
  for (size_t i = 0; i < params_.size(); ++i) {
    const Tensor& p = params_[i]->value;
    for (Tensor* s : {&exp_avg_[i], &exp_avg_sq_[i]}) {
      if (!s->defined()) {
        *s = Tensor::zeros(p.shape(), p.dtype(), p.device());
        continue;
      }
      LAPIS_CHECK(s->shape() == p.shape(), name(), "parameter '", params_[i]->name,
                  "' changed shape to ", p.describe(), " (state is ", s->describe(), ")");
      if (s->dtype() != p.dtype()) *s = s->to(p.dtype());
      if (s->device() != p.device()) *s = s->to(p.device());
    }
  }
}

void Adam::step() {
  ensure_state();
  AdamHyper h = hyper_;
  h.lr = lr_;
  const int64_t t = step_ + 1;
  std::vector<AdamTensors> tensors(params_.size());
  for (size_t i = 0; i < params_.size(); ++i) {
    tensors[i] = {&params_[i]->value, &exp_avg_[i], &exp_avg_sq_[i], &params_[i]->grad};
  }
  // Entry i is parameter i, so an error's "grad[i]" names params()[i].
  adam_step_multi(tensors, h, t, &step_plan_);
  step_ = t;
}

std::vector<std::pair<std::string, Tensor*>> Adam::state() {
  ensure_state();
  std::vector<std::pair<std::string, Tensor*>> out;
  for (size_t i = 0; i < params_.size(); ++i) {
    out.emplace_back(params_[i]->name + ".exp_avg", &exp_avg_[i]);
    out.emplace_back(params_[i]->name + ".exp_avg_sq", &exp_avg_sq_[i]);
  }
  return out;
}

AdamW::AdamW(std::vector<nn::Parameter*> params, const AdamHyper& hyper)
    : Adam(std::move(params), hyper, true) {}

AdamW::AdamW(std::vector<nn::Parameter*> params, double lr, double weight_decay)
    : Adam(std::move(params), AdamHyper{lr, 0.9, 0.999, 1e-8, weight_decay, true}, true) {}

}  // namespace optim
}  // namespace lapis
