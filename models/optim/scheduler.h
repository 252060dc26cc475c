// Learning-rate schedulers, matching torch.optim.lr_scheduler. Each sets the optimizer's lr on
// construction (base lr = the optimizer's lr then) and on every step, and exposes its state as a
// string -> double map for checkpoints (load_state restores it and sets the lr again).
#pragma once

#include <map>
#include <string>

#include "models/optim/optimizer.h"

namespace lapis {
namespace optim {

class Scheduler {
 public:
  explicit Scheduler(Optimizer& opt) : opt_(&opt) {}
  virtual ~Scheduler() = default;
  virtual std::map<std::string, double> state() const = 0;
  virtual void load_state(const std::map<std::string, double>& state) = 0;

 protected:
  Optimizer* opt_;
};

// Mode "min", threshold_mode "rel": a metric is an improvement when it is below
// best * (1 - threshold). After more than `patience` epochs without improvement the lr becomes
// max(lr * factor, min_lr) (changed only when that lowers it by more than eps), then `cooldown`
// epochs are ignored.
class ReduceLROnPlateau : public Scheduler {
 public:
  ReduceLROnPlateau(Optimizer& opt, double factor = 0.5, int patience = 10, double min_lr = 0.0,
                    double threshold = 1e-4, int cooldown = 0, double eps = 1e-8);
  // Call once per epoch with the validation metric (lower is better).
  void step(double metric);
  int num_bad_epochs() const { return num_bad_epochs_; }
  double best() const { return best_; }
  // Keys: best, num_bad_epochs, cooldown_counter, last_epoch, lr.
  std::map<std::string, double> state() const override;
  void load_state(const std::map<std::string, double>& state) override;

 private:
  double factor_, min_lr_, threshold_, eps_;
  int patience_, cooldown_;
  double best_;
  int num_bad_epochs_ = 0;
  int cooldown_counter_ = 0;
  int last_epoch_ = 0;
};

// A schedule that is a closed form of the epoch: epoch starts at 0, step() adds 1 and sets the
// lr to lr_at(epoch).
class EpochScheduler : public Scheduler {
 public:
  void step();
  int epoch() const { return epoch_; }
  virtual double lr_at(int epoch) const = 0;
  // Keys: base_lr, epoch.
  std::map<std::string, double> state() const override;
  void load_state(const std::map<std::string, double>& state) override;

 protected:
  // name: the class, for error messages.
  EpochScheduler(Optimizer& opt, const char* name)
      : Scheduler(opt), name_(name), base_lr_(opt.lr()) {}
  const char* name_;
  double base_lr_;
  int epoch_ = 0;
};

// lr = base_lr * gamma^floor(epoch / step_size).
class StepLR : public EpochScheduler {
 public:
  StepLR(Optimizer& opt, int step_size, double gamma = 0.1);
  double lr_at(int epoch) const override;

 private:
  int step_size_;
  double gamma_;
};

// lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / t_max)) / 2 (torch's closed form;
// beyond t_max it continues as the cosine, rising again).
class CosineAnnealingLR : public EpochScheduler {
 public:
  CosineAnnealingLR(Optimizer& opt, int t_max, double eta_min = 0.0);
  double lr_at(int epoch) const override;

 private:
  int t_max_;
  double eta_min_;
};

}  // namespace optim
}  // namespace lapis
