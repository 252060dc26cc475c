// Adam and AdamW parameter updates (one fused element-wise kernel on CUDA), matching
// torch.optim.Adam / AdamW with amsgrad=False; and the multi-tensor forms an optimizer uses on
// CUDA: one launch updates (or zeroes) every tensor of a dtype, instead of one launch each.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/tensor.h"

namespace lapis {

struct AdamHyper {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
  // true: AdamW, decoupled decay p -= lr * weight_decay * p before the Adam step.
  // false: Adam with L2, g += weight_decay * p.
  bool decoupled = true;
};

// One update of param with its gradient; m and v (same shape, zero-initialised) are the first
// and second moment estimates, updated in place. step is 1 for the first update (bias
// correction uses beta^step).
void adam_step(Tensor& param, Tensor& m, Tensor& v, const Tensor& grad, const AdamHyper& hyper,
               int64_t step);

// One parameter of adam_step_multi: param, m, v and grad of the same shape, floating dtype and
// device (the arguments of adam_step).
struct AdamTensors {
  Tensor* param;
  Tensor* m;
  Tensor* v;
  const Tensor* grad;
};

// The device-side tables of adam_step_multi / zero_multi, kept between calls so that a training
// loop's steady state uploads nothing and never synchronises. A table lists, for each fixed-size
// chunk of elements, its tensor and start, and for each tensor its data pointers and size; there
// is one table per device and dtype. A call compares the tensors' pointers and sizes with the
// cached table on the host and uploads a new table only when they differ (a tensor replaced,
// resized, or moved by Module::to). Use one plan per call site (an optimizer owns one for its
// update and one for zero_grad). Device memory comes from the library allocator and is returned
// by the destructor. Not thread-safe: one call at a time per plan.
class MultiTensorPlan {
 public:
  MultiTensorPlan();
  ~MultiTensorPlan();
  MultiTensorPlan(MultiTensorPlan&& other) noexcept;
  MultiTensorPlan& operator=(MultiTensorPlan&& other) noexcept;
  MultiTensorPlan(const MultiTensorPlan&) = delete;
  MultiTensorPlan& operator=(const MultiTensorPlan&) = delete;

  // Tables built and uploaded so far (steady state: constant).
  int64_t uploads() const;
  // Device tables held now (one per device and dtype of the last call).
  int64_t num_tables() const;
  // Frees the device tables; the next call uploads them again.
  void release() noexcept;

 private:
  struct Impl;
  friend void adam_step_multi(const std::vector<AdamTensors>& tensors, const AdamHyper& hyper,
                              int64_t step, MultiTensorPlan* plan);
  friend void zero_multi(const std::vector<Tensor*>& tensors, MultiTensorPlan* plan);
  std::unique_ptr<Impl> impl_;
};

// adam_step on every entry of tensors, with results bitwise identical to calling adam_step for
// each (on CUDA both share one element update). CUDA tensors take one launch per device and
// dtype; CPU tensors are updated one by one; empty tensors are skipped. Every entry is checked
// before anything is updated (errors name the entry: "grad[3]"). On CUDA the entries are updated
// concurrently, so no param, m or v buffer may be shared with another entry or with any grad
// (checked when a table is built). plan caches the device tables between calls; nullptr builds
// and uploads a temporary one.
void adam_step_multi(const std::vector<AdamTensors>& tensors, const AdamHyper& hyper, int64_t step,
                     MultiTensorPlan* plan = nullptr);

// Sets every element of every tensor (any dtype) to zero, as Tensor::zero() on each. CUDA tensors
// take one launch per device; CPU tensors are cleared one by one. plan: as adam_step_multi.
void zero_multi(const std::vector<Tensor*>& tensors, MultiTensorPlan* plan = nullptr);

}  // namespace lapis
