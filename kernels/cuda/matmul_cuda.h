// CUDA dense matrix products through cuBLAS (host-only declarations, no CUDA types).
#pragma once

#include "core/tensor.h"

namespace lapis {
namespace cuda {

// out [M, N] = alpha * op(a) @ op(b) + beta * out on the library stream; beta == 0 ignores
// out's old contents. F32 uses TF32 tensor cores only when allow_tf32() is on.
void matmul(Tensor& out, const Tensor& a, const Tensor& b, bool trans_a, bool trans_b,
            double alpha, double beta);

}  // namespace cuda
}  // namespace lapis
