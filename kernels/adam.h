// Adam and AdamW parameter updates (one fused element-wise kernel on CUDA), matching
// torch.optim.Adam / AdamW with amsgrad=False.
#pragma once

#include <cstdint>

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

}  // namespace lapis
