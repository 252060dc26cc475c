// CPU reference for dense matrix products (Eigen on row-major maps). Arguments are checked by
// the dispatch in kernels/matmul.cpp.
#pragma once

#include "core/tensor.h"

namespace lapis {
namespace cpu {

// out [M, N] = alpha * op(a) @ op(b) + beta * out; beta == 0 ignores out's old contents.
void matmul(Tensor& out, const Tensor& a, const Tensor& b, bool trans_a, bool trans_b,
            double alpha, double beta);

}  // namespace cpu
}  // namespace lapis
