#include "kernels/matmul.h"

#include <vector>

#include "core/cuda_api.h"
#include "kernels/cpu/matmul_cpu.h"
#include "kernels/cuda/linear_cuda.h"
#include "kernels/cuda/matmul_cuda.h"
#include "kernels/elementwise.h"
#include "kernels/launch_batch.h"

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

namespace {

// Output groups of a linear layer's out / dL_dout: [N, OUT] is one group, [G, N, OUT / G] is G.
int64_t linear_groups(const char* op, const char* name, const Tensor& t, int64_t N,
                      int64_t OUT) {
  LAPIS_CHECK(t.dim() == 2 || t.dim() == 3, op, name, " must be [N, OUT] = [", N, ", ", OUT,
              "] or grouped [G, N, OUT / G], got ", t.describe());
  const int64_t G = t.dim() == 3 ? t.size(0) : 1;
  const bool ok = t.dim() == 2 ? (t.size(0) == N && t.size(1) == OUT)
                               : (G > 0 && t.size(1) == N && t.size(2) * G == OUT);
  LAPIS_CHECK(ok, op, name, " must be [", N, ", ", OUT, "] or grouped [G, ", N,
              ", OUT / G] with OUT = ", OUT, ", got ", t.describe());
  return G;
}

// Group g of a [N, OUT] / [G, N, OUT / G] tensor as a [N, OUT / G] matrix.
Tensor group_matrix(const Tensor& t, int64_t g, int64_t G) {
  if (G == 1) return t.dim() == 2 ? t : t.reshape({t.size(1), t.size(2)});
  return t.slice(g, g + 1).reshape({t.size(1), t.size(2)});
}

bool use_fused_linear(const Tensor& x, int64_t max_rows) {
  return x.is_cuda() && x.size(0) <= max_rows;
}

// dL_dweight += dL_dout^T x and dL_dbias += column sums, for one linear_backward call.
struct WeightGradWork {
  Tensor dL_dweight, dL_dbias, dL_dout, x;
  int64_t groups;
};

void weight_grad_now(const WeightGradWork& w) {
  const int64_t G = w.groups, OG = w.dL_dweight.size(0) / G;
  if (use_fused_linear(w.x, kFusedWeightGradMaxRows)) {
    Tensor dw = w.dL_dweight, db = w.dL_dbias;
    LAPIS_CUDA_CALL(cuda::weight_grad_fused, dw, db, w.dL_dout, w.x, G);
    return;
  }
  // dL_dweight_g [OG, IN] += dL_dout_g^T [OG, N] @ x [N, IN]; dL_dbias_g += column sums.
  for (int64_t g = 0; g < G; ++g) {
    const Tensor dy = group_matrix(w.dL_dout, g, G);
    Tensor dw = w.dL_dweight.slice(g * OG, (g + 1) * OG);
    matmul(dw, dy, w.x, /*trans_a=*/true, /*trans_b=*/false, 1.0, 1.0);
    if (w.dL_dbias.defined()) {
      Tensor db = w.dL_dbias.slice(g * OG, (g + 1) * OG);
      bias_add_backward(db, dy);
    }
  }
}

// The queue of the DeferredWeightGrads active on this thread.
struct WeightGradQueue {
  bool active = false;
  std::vector<WeightGradWork> work;
};
thread_local WeightGradQueue t_weight_grads;

bool defer_weight_grad(const WeightGradWork& w) {
  if (!t_weight_grads.active) return false;
  t_weight_grads.work.push_back(w);
  return true;
}

// Runs queued work: the fused CUDA items in batched launches of distinct gradient tensors (in
// queue order), everything else one by one.
void run_weight_grads(std::vector<WeightGradWork> work) {
  std::vector<WeightGradWork> batch;
  auto flush = [&] {
    if (batch.empty()) return;
    std::vector<cuda::WeightGradItem> items;
    for (const WeightGradWork& w : batch) {
      items.push_back({w.dL_dweight, w.dL_dbias, w.dL_dout, w.x, w.groups});
    }
    LAPIS_CUDA_CALL(cuda::weight_grad_fused_batch, items);
    batch.clear();
  };
  auto in_batch = [&](const WeightGradWork& w) {
    for (const WeightGradWork& b : batch) {
      if (b.dL_dweight.raw_data() == w.dL_dweight.raw_data()) return true;
      if (b.dL_dbias.defined() && w.dL_dbias.defined() &&
          b.dL_dbias.raw_data() == w.dL_dbias.raw_data()) {
        return true;
      }
    }
    return false;
  };
  for (const WeightGradWork& w : work) {
    const bool fused = use_fused_linear(w.x, kFusedWeightGradMaxRows);
    if (!fused) {
      flush();  // keep queue order for gradients that two items may share
      weight_grad_now(w);
      continue;
    }
    if (!batch.empty() && (batch.front().x.dtype() != w.x.dtype() || in_batch(w))) flush();
    batch.push_back(w);
  }
  flush();
}

}  // namespace

DeferredWeightGrads::DeferredWeightGrads() : owner_(!t_weight_grads.active) {
  if (owner_) {
    t_weight_grads.active = true;
    t_weight_grads.work.clear();
  }
}

DeferredWeightGrads::~DeferredWeightGrads() {
  if (owner_ && t_weight_grads.active) {
    t_weight_grads.active = false;
    t_weight_grads.work.clear();
  }
}

void DeferredWeightGrads::run() {
  if (!owner_ || !t_weight_grads.active) return;
  t_weight_grads.active = false;
  std::vector<WeightGradWork> work;
  work.swap(t_weight_grads.work);
  run_weight_grads(std::move(work));
}

void linear_forward(Tensor& out, const Tensor& x, const Tensor& weight, const Tensor& bias,
                    const Tensor& residual, bool relu) {
  const char* op = "linear_forward";
  check_floating(op, "x", x);
  check_dim(op, "x", x, 2);
  check_dim(op, "weight", weight, 2);
  check_dtype(op, "weight", weight, x.dtype());
  check_same_device(op, "weight", weight, "x", x);
  LAPIS_CHECK(x.size(1) == weight.size(1), op, "x has ", x.size(1), " columns but weight has ",
              weight.size(1), " (x ", x.describe(), ", weight ", weight.describe(), ")");
  const int64_t N = x.size(0), OUT = weight.size(0);
  check_defined(op, "out", out);
  const int64_t G = linear_groups(op, "out", out, N, OUT);
  check_dtype(op, "out", out, x.dtype());
  check_same_device(op, "out", out, "x", x);
  LAPIS_CHECK(out.numel() == 0 || out.raw_data() != x.raw_data(), op,
              "out must not alias x (out ", out.describe(), ")");
  if (bias.defined()) check_like(op, "bias", bias, {OUT}, "x", x);
  if (residual.defined()) check_like(op, "residual", residual, {N, OUT}, "x", x);
  LAPIS_CHECK(G == 1 || (!residual.defined() && !relu), op,
              "a grouped output [G, N, OUT / G] takes no residual and no relu (out ",
              out.describe(), ")");
  if (use_fused_linear(x, kFusedLinearMaxRows)) {
    if (detail::queue_linear_forward({out, x, weight, bias, residual, relu, G})) return;
    LAPIS_CUDA_CALL(cuda::linear_forward_fused, out, x, weight, bias, residual, relu, G);
    return;
  }
  // Composed path (CPU, or CUDA above kFusedLinearMaxRows): per group out_g = x @ weight_g^T,
  // then bias, relu, residual with the rounding of separate ops ((x + b), relu, + residual).
  const int64_t OG = OUT / G;
  for (int64_t g = 0; g < G; ++g) {
    Tensor out_g = group_matrix(out, g, G);
    matmul(out_g, x, weight.slice(g * OG, (g + 1) * OG), /*trans_a=*/false, /*trans_b=*/true);
    const Tensor bias_g = bias.defined() ? bias.slice(g * OG, (g + 1) * OG) : Tensor();
    if (!x.is_cuda()) {
      cpu::linear_forward_epilogue(out_g, bias_g, relu, residual);  // one pass on the CPU
    } else if (bias_g.defined()) {
      bias_add_forward(out_g, out_g, bias_g);
    }
  }
  if (!x.is_cuda()) return;
  if (relu) {
    const Tensor pre = out.clone();
    activation_forward(out, pre, Activation::ReLU);
  }
  if (residual.defined()) add(out, out, residual);
}

void linear_backward(Tensor& dL_dx, Tensor& dL_dweight, Tensor& dL_dbias, const Tensor& dL_dout,
                     const Tensor& x, const Tensor& weight, const Tensor& dx_plus,
                     bool through_relu) {
  const char* op = "linear_backward";
  check_floating(op, "x", x);
  check_dim(op, "x", x, 2);
  check_dim(op, "weight", weight, 2);
  check_defined(op, "dL_dout", dL_dout);
  check_dtype(op, "weight", weight, x.dtype());
  check_same_device(op, "weight", weight, "x", x);
  LAPIS_CHECK(x.size(1) == weight.size(1), op, "shapes disagree: x ", x.describe(), ", weight ",
              weight.describe(), " (expected x [N, IN], weight [OUT, IN])");
  const int64_t N = x.size(0), IN = x.size(1), OUT = weight.size(0);
  const int64_t G = linear_groups(op, "dL_dout", dL_dout, N, OUT);
  check_dtype(op, "dL_dout", dL_dout, x.dtype());
  check_same_device(op, "dL_dout", dL_dout, "x", x);
  check_like(op, "dL_dweight", dL_dweight, weight.shape(), "x", x);
  if (dL_dbias.defined()) check_like(op, "dL_dbias", dL_dbias, {OUT}, "x", x);
  if (dL_dx.defined()) check_like(op, "dL_dx", dL_dx, {N, IN}, "x", x);
  const int64_t OG = OUT / G;
  if (dx_plus.defined()) {
    check_defined(op, "dL_dx (dx_plus given)", dL_dx);
    check_like(op, "dx_plus", dx_plus, {N, IN}, "x", x);
  }
  // dL_dx [N, IN] = (sum over groups of dL_dout_g [N, OG] @ weight_g [OG, IN]) * relu mask
  // + dx_plus.
  if (dL_dx.defined() && use_fused_linear(x, kFusedLinearMaxRows)) {
    const Tensor mask = through_relu ? x : Tensor();
    if (!detail::queue_input_grad({dL_dx, dL_dout, weight, mask, dx_plus, G})) {
      LAPIS_CUDA_CALL(cuda::input_grad_fused, dL_dx, dL_dout, weight, mask, dx_plus, G);
    }
  } else if (dL_dx.defined()) {
    // Composed path: the product goes to a temporary when a mask or dx_plus enter.
    const bool direct = !through_relu && !dx_plus.defined();
    Tensor product = direct ? dL_dx : Tensor::empty(dL_dx.shape(), x.dtype(), x.device());
    for (int64_t g = 0; g < G; ++g) {
      matmul(product, group_matrix(dL_dout, g, G), weight.slice(g * OG, (g + 1) * OG), false,
             false, 1.0, g > 0 ? 1.0 : 0.0);
    }
    if (!x.is_cuda() && !direct) {
      cpu::linear_input_grad_epilogue(dL_dx, product, through_relu ? x : Tensor(), dx_plus);
    } else if (!direct) {
      if (through_relu) {
        Tensor masked = Tensor::empty(dL_dx.shape(), x.dtype(), x.device());
        activation_backward(masked, product, x, Activation::ReLU);
        product = masked;
      }
      if (dx_plus.defined()) {
        add(dL_dx, product, dx_plus);
      } else {
        dL_dx.copy_from(product);
      }
    }
  }
  WeightGradWork work{dL_dweight, dL_dbias, dL_dout, x, G};
  if (!defer_weight_grad(work)) weight_grad_now(work);
}

}  // namespace lapis
