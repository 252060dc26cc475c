#include "models/optim/scheduler.h"

#include <cmath>
#include <limits>

namespace lapis {
namespace optim {
namespace {

double get_key(const std::map<std::string, double>& state, const char* key, const char* op) {
  const auto it = state.find(key);
  LAPIS_CHECK(it != state.end(), op, "scheduler state has no '", key, "'");
  return it->second;
}

}  // namespace

// ---- ReduceLROnPlateau ----

ReduceLROnPlateau::ReduceLROnPlateau(Optimizer& opt, double factor, int patience, double min_lr,
                                     double threshold, int cooldown, double eps)
    : Scheduler(opt),
      factor_(factor),
      min_lr_(min_lr),
      threshold_(threshold),
      eps_(eps),
      patience_(patience),
      cooldown_(cooldown),
      best_(std::numeric_limits<double>::infinity()) {
  LAPIS_CHECK(factor > 0.0 && factor < 1.0, "ReduceLROnPlateau", "factor must be in (0, 1), got ",
              factor);
  LAPIS_CHECK(patience >= 0 && cooldown >= 0 && min_lr >= 0.0 && threshold >= 0.0,
              "ReduceLROnPlateau", "patience, cooldown, min_lr and threshold must be >= 0, got ",
              patience, ", ", cooldown, ", ", min_lr, ", ", threshold);
}

void ReduceLROnPlateau::step(double metric) {
  // As torch (mode "min", threshold_mode "rel"); a NaN metric is never an improvement.
  ++last_epoch_;
  if (metric < best_ * (1.0 - threshold_)) {
    best_ = metric;
    num_bad_epochs_ = 0;
  } else {
    ++num_bad_epochs_;
  }
  if (cooldown_counter_ > 0) {
    --cooldown_counter_;
    num_bad_epochs_ = 0;  // bad epochs during cooldown do not count
  }
  if (num_bad_epochs_ > patience_) {
    const double old_lr = opt_->lr();
    const double new_lr = std::max(old_lr * factor_, min_lr_);
    if (old_lr - new_lr > eps_) opt_->set_lr(new_lr);
    cooldown_counter_ = cooldown_;
    num_bad_epochs_ = 0;
  }
}

std::map<std::string, double> ReduceLROnPlateau::state() const {
  return {{"best", best_},
          {"num_bad_epochs", num_bad_epochs_},
          {"cooldown_counter", cooldown_counter_},
          {"last_epoch", last_epoch_},
          {"lr", opt_->lr()}};
}

void ReduceLROnPlateau::load_state(const std::map<std::string, double>& state) {
  const char* op = "ReduceLROnPlateau::load_state";
  best_ = get_key(state, "best", op);
  num_bad_epochs_ = static_cast<int>(get_key(state, "num_bad_epochs", op));
  cooldown_counter_ = static_cast<int>(get_key(state, "cooldown_counter", op));
  last_epoch_ = static_cast<int>(get_key(state, "last_epoch", op));
  opt_->set_lr(get_key(state, "lr", op));
}

// ---- StepLR ----

// ---- EpochScheduler ----

void EpochScheduler::step() {
  ++epoch_;
  opt_->set_lr(lr_at(epoch_));
}

std::map<std::string, double> EpochScheduler::state() const {
  return {{"base_lr", base_lr_}, {"epoch", epoch_}};
}

void EpochScheduler::load_state(const std::map<std::string, double>& state) {
  const std::string op = std::string(name_) + "::load_state";
  base_lr_ = get_key(state, "base_lr", op.c_str());
  epoch_ = static_cast<int>(get_key(state, "epoch", op.c_str()));
  opt_->set_lr(lr_at(epoch_));
}

// ---- StepLR ----

StepLR::StepLR(Optimizer& opt, int step_size, double gamma)
    : EpochScheduler(opt, "StepLR"), step_size_(step_size), gamma_(gamma) {
  LAPIS_CHECK(step_size > 0, "StepLR", "step_size must be positive, got ", step_size);
  LAPIS_CHECK(gamma > 0.0, "StepLR", "gamma must be positive, got ", gamma);
}

double StepLR::lr_at(int epoch) const {
  return base_lr_ * std::pow(gamma_, static_cast<double>(epoch / step_size_));
}

// ---- CosineAnnealingLR ----

CosineAnnealingLR::CosineAnnealingLR(Optimizer& opt, int t_max, double eta_min)
    : EpochScheduler(opt, "CosineAnnealingLR"), t_max_(t_max), eta_min_(eta_min) {
  LAPIS_CHECK(t_max > 0, "CosineAnnealingLR", "t_max must be positive, got ", t_max);
  LAPIS_CHECK(eta_min >= 0.0, "CosineAnnealingLR", "eta_min must be >= 0, got ", eta_min);
}

double CosineAnnealingLR::lr_at(int epoch) const {
  const double pi = 3.14159265358979323846;
  return eta_min_ + (base_lr_ - eta_min_) * (1.0 + std::cos(pi * epoch / t_max_)) / 2.0;
}

}  // namespace optim
}  // namespace lapis
