#include "models/nn/layers.h"

#include <cmath>

#include "kernels/index.h"
#include "kernels/matmul.h"

namespace lapis {
namespace nn {

// ---- Linear ----

Linear::Linear(int64_t in, int64_t out, bool bias, Generator& gen) : in_(in), out_(out) {
  LAPIS_CHECK(in > 0 && out > 0, "Linear", "in and out must be positive, got in = ", in,
              ", out = ", out);
  const double bound = 1.0 / std::sqrt(static_cast<double>(in));
  weight_ = &register_parameter("weight", Tensor::rand_uniform({out, in}, gen, -bound, bound));
  if (bias) bias_ = &register_parameter("bias", Tensor::rand_uniform({out}, gen, -bound, bound));
}

Tensor Linear::forward(const Tensor& x, LinearCtx& ctx, const Tensor& residual, bool relu) {
  check_defined("Linear::forward", "x", x);
  check_dim("Linear::forward", "x", x, 2);
  if (residual.defined()) check_shape("Linear::forward", "residual", residual, {x.size(0), out_});
  Tensor out = Tensor::empty({x.size(0), out_}, x.dtype(), x.device());
  linear_forward(out, x, weight_->value, bias_ ? bias_->value : Tensor(), residual, relu);
  ctx.x = x;
  return out;
}

Tensor Linear::backward(const Tensor& dL_dout, const LinearCtx& ctx, bool through_relu,
                        const Tensor& plus) {
  check_defined("Linear::backward", "ctx.x (forward not run?)", ctx.x);
  Tensor dL_dx = Tensor::empty(ctx.x.shape(), ctx.x.dtype(), ctx.x.device());
  Tensor no_bias;
  linear_backward(dL_dx, weight_->grad, bias_ ? bias_->grad : no_bias, dL_dout, ctx.x,
                  weight_->value, plus, through_relu);
  return dL_dx;
}

void Linear::backward_params(const Tensor& dL_dout, const LinearCtx& ctx) {
  check_defined("Linear::backward_params", "ctx.x (forward not run?)", ctx.x);
  Tensor no_dx, no_bias;
  linear_backward(no_dx, weight_->grad, bias_ ? bias_->grad : no_bias, dL_dout, ctx.x,
                  weight_->value);
}

// ---- Embedding ----

Embedding::Embedding(int64_t num, int64_t dim, Generator& gen) : num_(num), dim_(dim) {
  LAPIS_CHECK(num > 0 && dim > 0, "Embedding", "num and dim must be positive, got num = ", num,
              ", dim = ", dim);
  weight_ = &register_parameter("weight", Tensor::randn({num, dim}, gen));
}

Tensor Embedding::forward(const Tensor& indices, EmbeddingCtx& ctx) {
  check_defined("Embedding::forward", "indices", indices);
  check_dim("Embedding::forward", "indices", indices, 1);
  Tensor out = Tensor::empty({indices.size(0), dim_}, weight_->value.dtype(),
                             weight_->value.device());
  embedding_forward(out, indices, weight_->value);
  ctx.indices = indices;
  return out;
}

void Embedding::backward(const Tensor& dL_dout, const EmbeddingCtx& ctx) {
  check_defined("Embedding::backward", "ctx.indices (forward not run?)", ctx.indices);
  embedding_backward(weight_->grad, dL_dout, ctx.indices);
}

// ---- BatchNorm1d ----

BatchNorm1d::BatchNorm1d(int64_t channels, double eps, double momentum)
    : channels_(channels), eps_(eps), momentum_(momentum) {
  LAPIS_CHECK(channels > 0, "BatchNorm1d", "channels must be positive, got ", channels);
  weight_ = &register_parameter("weight", Tensor::full({channels}, 1.0));
  bias_ = &register_parameter("bias", Tensor::zeros({channels}));
  running_mean_ = Tensor::zeros({channels});
  running_var_ = Tensor::full({channels}, 1.0);
  register_buffer("running_mean", &running_mean_);
  register_buffer("running_var", &running_var_);
}

Tensor BatchNorm1d::forward(const Tensor& x, BatchNormCtx& ctx) {
  check_defined("BatchNorm1d::forward", "x", x);
  check_dim("BatchNorm1d::forward", "x", x, 2);
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  ctx.cache.mean = Tensor::empty({channels_}, x.dtype(), x.device());
  ctx.cache.rstd = Tensor::empty({channels_}, x.dtype(), x.device());
  ctx.cache.training = is_training();
  if (is_training()) {
    batchnorm_forward_train(out, ctx.cache, running_mean_, running_var_, x, weight_->value,
                            bias_->value, momentum_, eps_);
  } else {
    batchnorm_forward_eval(out, ctx.cache, x, weight_->value, bias_->value, running_mean_,
                           running_var_, eps_);
  }
  ctx.cache.training = is_training();
  ctx.x = x;
  return out;
}

Tensor BatchNorm1d::backward(const Tensor& dL_dout, const BatchNormCtx& ctx) {
  check_defined("BatchNorm1d::backward", "ctx.x (forward not run?)", ctx.x);
  Tensor dL_dx = Tensor::empty(ctx.x.shape(), ctx.x.dtype(), ctx.x.device());
  batchnorm_backward(dL_dx, weight_->grad, bias_->grad, dL_dout, ctx.x, weight_->value,
                     ctx.cache);
  return dL_dx;
}

// ---- LayerNorm ----

LayerNorm::LayerNorm(int64_t channels, double eps) : channels_(channels), eps_(eps) {
  LAPIS_CHECK(channels > 0, "LayerNorm", "channels must be positive, got ", channels);
  weight_ = &register_parameter("weight", Tensor::full({channels}, 1.0));
  bias_ = &register_parameter("bias", Tensor::zeros({channels}));
}

Tensor LayerNorm::forward(const Tensor& x, LayerNormCtx& ctx) {
  check_defined("LayerNorm::forward", "x", x);
  check_dim("LayerNorm::forward", "x", x, 2);
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  ctx.cache.mean = Tensor::empty({x.size(0)}, x.dtype(), x.device());
  ctx.cache.rstd = Tensor::empty({x.size(0)}, x.dtype(), x.device());
  layernorm_forward(out, ctx.cache, x, weight_->value, bias_->value, eps_);
  ctx.x = x;
  return out;
}

Tensor LayerNorm::backward(const Tensor& dL_dout, const LayerNormCtx& ctx) {
  check_defined("LayerNorm::backward", "ctx.x (forward not run?)", ctx.x);
  Tensor dL_dx = Tensor::empty(ctx.x.shape(), ctx.x.dtype(), ctx.x.device());
  layernorm_backward(dL_dx, weight_->grad, bias_->grad, dL_dout, ctx.x, weight_->value,
                     ctx.cache);
  return dL_dx;
}

// ---- RMSNorm ----

RMSNorm::RMSNorm(int64_t channels, double eps) : channels_(channels), eps_(eps) {
  LAPIS_CHECK(channels > 0, "RMSNorm", "channels must be positive, got ", channels);
  weight_ = &register_parameter("weight", Tensor::full({channels}, 1.0));
}

Tensor RMSNorm::forward(const Tensor& x, RMSNormCtx& ctx) {
  check_defined("RMSNorm::forward", "x", x);
  check_dim("RMSNorm::forward", "x", x, 2);
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  ctx.cache.rstd = Tensor::empty({x.size(0)}, x.dtype(), x.device());
  rmsnorm_forward(out, ctx.cache, x, weight_->value, eps_);
  ctx.x = x;
  return out;
}

Tensor RMSNorm::backward(const Tensor& dL_dout, const RMSNormCtx& ctx) {
  check_defined("RMSNorm::backward", "ctx.x (forward not run?)", ctx.x);
  Tensor dL_dx = Tensor::empty(ctx.x.shape(), ctx.x.dtype(), ctx.x.device());
  rmsnorm_backward(dL_dx, weight_->grad, dL_dout, ctx.x, weight_->value, ctx.cache);
  return dL_dx;
}

// ---- Dropout ----

Dropout::Dropout(double p, uint64_t seed) : p_(p), seed_(seed) {
  LAPIS_CHECK(p >= 0.0 && p < 1.0, "Dropout", "p must be in [0, 1), got ", p);
}

Tensor Dropout::forward(const Tensor& x, DropoutCtx& ctx) {
  check_defined("Dropout::forward", "x", x);
  if (!is_training() || p_ == 0.0) {
    ctx.mask = Tensor();
    return x;
  }
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  ctx.mask = Tensor::empty(x.shape(), x.dtype(), x.device());
  dropout_forward(out, ctx.mask, x, p_, seed_, offset_);
  offset_ += static_cast<uint64_t>(x.numel());
  return out;
}

Tensor Dropout::backward(const Tensor& dL_dout, const DropoutCtx& ctx) {
  if (!ctx.mask.defined()) return dL_dout;
  Tensor dL_dx = Tensor::empty(dL_dout.shape(), dL_dout.dtype(), dL_dout.device());
  dropout_backward(dL_dx, dL_dout, ctx.mask);
  return dL_dx;
}

// ---- ActivationLayer ----

Tensor ActivationLayer::forward(const Tensor& x, ActivationCtx& ctx) {
  check_defined("ActivationLayer::forward", "x", x);
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  activation_forward(out, x, act_);
  ctx.x = x;
  return out;
}

Tensor ActivationLayer::backward(const Tensor& dL_dout, const ActivationCtx& ctx) {
  check_defined("ActivationLayer::backward", "ctx.x (forward not run?)", ctx.x);
  Tensor dL_dx = Tensor::empty(ctx.x.shape(), ctx.x.dtype(), ctx.x.device());
  activation_backward(dL_dx, dL_dout, ctx.x, act_);
  return dL_dx;
}

// ---- MLP ----

MLP::MLP(std::vector<int64_t> dims, Activation act, double dropout, Generator& gen)
    : dims_(std::move(dims)) {
  LAPIS_CHECK(dims_.size() >= 2, "MLP", "needs at least 2 dims (in, out), got ", dims_.size());
  LAPIS_CHECK(dropout >= 0.0 && dropout < 1.0, "MLP", "dropout must be in [0, 1), got ",
              dropout);
  const size_t n = dims_.size() - 1;
  for (size_t i = 0; i < n; ++i) {
    linears_.push_back(std::make_unique<Linear>(dims_[i], dims_[i + 1], true, gen));
    register_child(str_cat("layers.", i), linears_.back().get());
    if (i + 1 < n) {
      activations_.push_back(std::make_unique<ActivationLayer>(act));
      if (dropout > 0.0) {
        // A seed of its own per Dropout, drawn from gen so the model is reproducible from one seed.
        const uint64_t seed = random_bits(gen.seed(), gen.advance(1));
        dropouts_.push_back(std::make_unique<Dropout>(dropout, seed));
        register_child(str_cat("dropout.", i), dropouts_.back().get());
      }
    }
  }
}

void MLP::prepare_ctx(MLPCtx& ctx) const {
  const size_t n = linears_.size();
  ctx.linear.assign(n, LinearCtx());
  ctx.activation.assign(n - 1, ActivationCtx());
  ctx.dropout.assign(dropouts_.empty() ? 0 : n - 1, DropoutCtx());
}

Tensor MLP::forward_layer(size_t i, const Tensor& h, MLPCtx& ctx, const Tensor& residual) {
  const size_t n = linears_.size();
  LAPIS_CHECK(i < n && ctx.linear.size() == n, "MLP::forward_layer", "layer ", i, " of ", n,
              " (ctx prepared for ", ctx.linear.size(), ")");
  if (i + 1 == n) return linears_[i]->forward(h, ctx.linear[i], residual);
  // ReLU runs in the Linear's epilogue. Its backward needs only the sign of the input, which
  // the output has too (relu(x) > 0 exactly when x > 0), so ctx keeps the output.
  const bool fused_relu = activations_[i]->activation() == Activation::ReLU;
  Tensor out = linears_[i]->forward(h, ctx.linear[i], Tensor(), fused_relu);
  if (fused_relu) {
    ctx.activation[i].x = out;
  } else {
    out = activations_[i]->forward(out, ctx.activation[i]);
  }
  if (!dropouts_.empty()) out = dropouts_[i]->forward(out, ctx.dropout[i]);
  return out;
}

Tensor MLP::forward(const Tensor& x, MLPCtx& ctx, const Tensor& residual) {
  prepare_ctx(ctx);
  Tensor h = x;
  for (size_t i = 0; i < linears_.size(); ++i) {
    h = forward_layer(i, h, ctx, i + 1 == linears_.size() ? residual : Tensor());
  }
  return h;
}

// Without dropout, a ReLU's backward folds into the product of the Linear after it (whose input
// is the ReLU's output, so its sign is the mask).
bool MLP::relu_folded(size_t i) const {
  return dropouts_.empty() && activations_[i]->activation() == Activation::ReLU;
}

bool MLP::single_op_layers() const {
  for (size_t i = 0; i + 1 < linears_.size(); ++i) {
    if (!relu_folded(i)) return false;
  }
  return true;
}

Tensor MLP::backward_layer(size_t i, const Tensor& g_out, const MLPCtx& ctx, const Tensor& plus) {
  const size_t n = linears_.size();
  LAPIS_CHECK(i < n && ctx.linear.size() == n, "MLP::backward", "layer ", i, " of ", n,
              ": ctx holds ", ctx.linear.size(), " layers (forward not run?)");
  Tensor g = g_out;
  if (i + 1 < n && !relu_folded(i)) {
    if (!dropouts_.empty()) g = dropouts_[i]->backward(g, ctx.dropout[i]);
    g = activations_[i]->backward(g, ctx.activation[i]);
  }
  const bool through_relu = i > 0 && relu_folded(i - 1);
  return linears_[i]->backward(g, ctx.linear[i], through_relu, i == 0 ? plus : Tensor());
}

Tensor MLP::backward(const Tensor& dL_dout, const MLPCtx& ctx, const Tensor& plus) {
  Tensor g = dL_dout;
  for (size_t i = linears_.size(); i-- > 0;) g = backward_layer(i, g, ctx, plus);
  return g;
}

}  // namespace nn
}  // namespace lapis
