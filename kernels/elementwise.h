// Element-wise arithmetic, bias add and activations.
#pragma once

#include <string>

#include "core/tensor.h"

namespace lapis {

// out = a + b (same shapes). out may alias a or b.
void add(Tensor& out, const Tensor& a, const Tensor& b);
// y += alpha * x (same shapes).
void axpy(Tensor& y, double alpha, const Tensor& x);
// out = alpha * x. out may alias x.
void scale(Tensor& out, const Tensor& x, double alpha);

// out [N, C] = x [N, C] + bias [C] broadcast over rows, then + residual [N, C] when given (one
// pass with the rounding of two adds: (x + bias) + residual). out may alias x or residual.
void bias_add_forward(Tensor& out, const Tensor& x, const Tensor& bias,
                      const Tensor& residual = Tensor());
// dL_dbias [C] += column sums of dL_dout [N, C]. (dL_dx equals dL_dout.)
void bias_add_backward(Tensor& dL_dbias, const Tensor& dL_dout);

enum class Activation { ReLU, GELU, SiLU };
const char* activation_name(Activation act);
// Parses "relu", "gelu" or "silu".
Activation parse_activation(const std::string& name);

// out = act(x), any shape. GELU is the exact erf form (PyTorch's default),
// 0.5 x (1 + erf(x / sqrt 2)); SiLU is x * sigmoid(x). out must not alias x: backward needs x.
void activation_forward(Tensor& out, const Tensor& x, Activation act);
// dL_dx = dL_dout * act'(x) (overwritten). ReLU'(0) = 0.
void activation_backward(Tensor& dL_dx, const Tensor& dL_dout, const Tensor& x, Activation act);

// Inverted dropout: element i is kept with probability 1 - p; mask[i] is 1/(1-p) when kept and
// 0 when dropped, out = x * mask. The draw for element i is uniform01(seed, offset + i), so the
// CPU and CUDA masks are identical for the same (seed, offset). mask has x's shape and dtype.
// p in [0, 1); p == 0 gives mask = 1.
void dropout_forward(Tensor& out, Tensor& mask, const Tensor& x, double p, uint64_t seed,
                     uint64_t offset);
// dL_dx = dL_dout * mask.
void dropout_backward(Tensor& dL_dx, const Tensor& dL_dout, const Tensor& mask);

}  // namespace lapis
