#include "kernels/matmul.h"

#include "core/cuda_api.h"
#include "kernels/cpu/matmul_cpu.h"
#include "kernels/cuda/matmul_cuda.h"
#include "kernels/elementwise.h"

namespace lapis {

void matmul(Tensor& out, const Tensor& a, const Tensor& b, bool trans_a, bool trans_b,
            double alpha, double beta) {
  const char* op = "matmul";
  check_floating(op, "a", a);
  check_dim(op, "a", a, 2);
  check_dim(op, "b", b, 2);
  check_dim(op, "out", out, 2);
  check_dtype(op, "b", b, a.dtype());
  check_dtype(op, "out", out, a.dtype());
  check_same_device(op, "b", b, "a", a);
  check_same_device(op, "out", out, "a", a);
  const int64_t M = trans_a ? a.size(1) : a.size(0);
  const int64_t K = trans_a ? a.size(0) : a.size(1);
  const int64_t Kb = trans_b ? b.size(1) : b.size(0);
  const int64_t N = trans_b ? b.size(0) : b.size(1);
  LAPIS_CHECK(K == Kb, op, "inner dimensions differ: op(a) is [", M, ", ", K, "] but op(b) is [",
              Kb, ", ", N, "] (a ", a.describe(), trans_a ? " transposed" : "", ", b ",
              b.describe(), trans_b ? " transposed" : "", ")");
  LAPIS_CHECK(out.size(0) == M && out.size(1) == N, op, "out must have shape [", M, ", ", N,
              "], got ", out.describe());
  LAPIS_CHECK(out.numel() == 0 || (out.raw_data() != a.raw_data() &&
                                   out.raw_data() != b.raw_data()),
              op, "out must not alias a or b (out ", out.describe(), ")");
  if (out.is_cuda()) LAPIS_CUDA_CALL(cuda::matmul, out, a, b, trans_a, trans_b, alpha, beta);
  else cpu::matmul(out, a, b, trans_a, trans_b, alpha, beta);
}

void linear_forward(Tensor& out, const Tensor& x, const Tensor& weight, const Tensor& bias,
                    const Tensor& residual) {
  const char* op = "linear_forward";
  check_floating(op, "x", x);
  check_dim(op, "x", x, 2);
  check_dim(op, "weight", weight, 2);
  LAPIS_CHECK(x.size(1) == weight.size(1), op, "x has ", x.size(1), " columns but weight has ",
              weight.size(1), " (x ", x.describe(), ", weight ", weight.describe(), ")");
  // out [N, OUT] = x [N, IN] @ weight^T [IN, OUT], then + bias [OUT] per row.
  matmul(out, x, weight, /*trans_a=*/false, /*trans_b=*/true);
  if (bias.defined()) {
    bias_add_forward(out, out, bias, residual);
  } else if (residual.defined()) {
    add(out, out, residual);
  }
}

void linear_backward(Tensor& dL_dx, Tensor& dL_dweight, Tensor& dL_dbias, const Tensor& dL_dout,
                     const Tensor& x, const Tensor& weight) {
  const char* op = "linear_backward";
  check_floating(op, "dL_dout", dL_dout);
  check_dim(op, "dL_dout", dL_dout, 2);
  check_dim(op, "x", x, 2);
  check_dim(op, "weight", weight, 2);
  LAPIS_CHECK(dL_dout.size(0) == x.size(0) && dL_dout.size(1) == weight.size(0) &&
                  x.size(1) == weight.size(1),
              op, "shapes disagree: dL_dout ", dL_dout.describe(), ", x ", x.describe(),
              ", weight ", weight.describe(), " (expected dL_dout [N, OUT], x [N, IN], ",
              "weight [OUT, IN])");
  check_shape(op, "dL_dweight", dL_dweight, weight.shape());
  // dL_dx [N, IN] = dL_dout [N, OUT] @ weight [OUT, IN] (overwritten).
  if (dL_dx.defined()) matmul(dL_dx, dL_dout, weight, false, false, 1.0, 0.0);
  // dL_dweight [OUT, IN] += dL_dout^T [OUT, N] @ x [N, IN].
  matmul(dL_dweight, dL_dout, x, /*trans_a=*/true, /*trans_b=*/false, 1.0, 1.0);
  if (dL_dbias.defined()) bias_add_backward(dL_dbias, dL_dout);
}

}  // namespace lapis
