// CUDA Adam / AdamW update (host-only declarations; kernels/adam.h documents the semantics).
#pragma once

#include <cstdint>

#include "core/tensor.h"
#include "kernels/adam.h"

namespace lapis {
namespace cuda {

// One fused element-wise kernel: decay, moment updates and the parameter step in one pass.
void adam_step(Tensor& param, Tensor& m, Tensor& v, const Tensor& grad, const AdamHyper& hyper,
               int64_t step);

}  // namespace cuda
}  // namespace lapis
