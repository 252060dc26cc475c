// CPU reference for the Adam / AdamW update (kernels/adam.h).
#pragma once

#include <cstdint>

#include "core/tensor.h"
#include "kernels/adam.h"

namespace lapis {
namespace cpu {

// param, m, v, grad: same shape and floating dtype, on the CPU (checked by the dispatcher).
void adam_step(Tensor& param, Tensor& m, Tensor& v, const Tensor& grad, const AdamHyper& hyper,
               int64_t step);

}  // namespace cpu
}  // namespace lapis
