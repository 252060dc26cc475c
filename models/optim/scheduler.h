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

// lr = base_lr * gamma^floor(epoch / step_size); epoch starts at 0 and step() adds 1.
class StepLR : public Scheduler {
 public:
  StepLR(Optimizer& opt, int step_size, double gamma = 0.1);
  void step();
  int epoch() const { return epoch_; }
  double lr_at(int epoch) const;
  // Keys: base_lr, epoch.
  std::map<std::string, double> state() const override;
  void load_state(const std::map<std::string, double>& state) override;

 private:
  int step_size_;
  double gamma_;
  double base_lr_;
  int epoch_ = 0;
};

// lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / t_max)) / 2 (torch's closed form;
// beyond t_max it continues as the cosine, rising again).
class CosineAnnealingLR : public Scheduler {
 public:
  CosineAnnealingLR(Optimizer& opt, int t_max, double eta_min = 0.0);
  void step();
  int epoch() const { return epoch_; }
  double lr_at(int epoch) const;
  // Keys: base_lr, epoch.
  std::map<std::string, double> state() const override;
  void load_state(const std::map<std::string, double>& state) override;

 private:
  int t_max_;
  double eta_min_;
  double base_lr_;
  int epoch_ = 0;
};

}  // namespace optim
}  // namespace lapis
