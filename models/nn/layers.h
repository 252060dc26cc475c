// Basic layers on the kernels of kernels/: Linear, Embedding, BatchNorm1d, LayerNorm, RMSNorm,
// Dropout, ActivationLayer and MLP.
//
// Each module has a small Ctx struct holding what its backward needs. forward(x, ctx) fills ctx
// and returns a new tensor; backward(dL_dout, ctx) returns dL_dx and adds (+=) into the
// parameters' grads. Inputs are [N, C] (N rows, C channels). Modules are created on the CPU in
// f32; Module::to(Device) / to(Dtype) move or convert them.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/random.h"
#include "core/tensor.h"
#include "kernels/elementwise.h"
#include "kernels/norm.h"
#include "models/nn/module.h"

namespace lapis {
namespace nn {

// ---- Linear: out [N, OUT] = x [N, IN] @ weight [OUT, IN]^T + bias [OUT] ----
struct LinearCtx {
  Tensor x;  // [N, IN]
};
class Linear : public Module {
 public:
  // Initialised as torch.nn.Linear: weight and bias ~ U(-1/sqrt(in), 1/sqrt(in)), drawn from gen
  // (weight first, then bias).
  Linear(int64_t in, int64_t out, bool bias, Generator& gen);
  // residual [N, out] (optional) is added to the output in the same pass as the bias; relu
  // applies before the residual (out = relu(x W^T + b) + residual).
  Tensor forward(const Tensor& x, LinearCtx& ctx, const Tensor& residual = Tensor(),
                 bool relu = false);
  // Returns dL/dx, plus `plus` [N, in] when given (a residual branch's gradient, added in the
  // same kernel). through_relu: x came out of a ReLU; returns the gradient w.r.t. the ReLU's
  // input instead (the mask x > 0 applied in the same kernel as the product).
  Tensor backward(const Tensor& dL_dout, const LinearCtx& ctx, bool through_relu = false,
                  const Tensor& plus = Tensor());
  // Only the parameter gradients, for a Linear whose input needs none (raw input features):
  // the input-gradient product is not formed.
  void backward_params(const Tensor& dL_dout, const LinearCtx& ctx);
  int64_t in_features() const { return in_; }
  int64_t out_features() const { return out_; }
  Parameter& weight() { return *weight_; }
  Parameter* bias() { return bias_; }  // nullptr without bias

 private:
  int64_t in_, out_;
  Parameter* weight_;
  Parameter* bias_ = nullptr;
};

// ---- Embedding: out [N, DIM] = table [NUM, DIM] rows picked by indices [N] (i32/i64) ----
struct EmbeddingCtx {
  Tensor indices;  // [N]
};
class Embedding : public Module {
 public:
  // weight ~ N(0, 1) as torch.nn.Embedding.
  Embedding(int64_t num, int64_t dim, Generator& gen);
  Tensor forward(const Tensor& indices, EmbeddingCtx& ctx);
  // Adds into weight.grad; there is no gradient w.r.t. integer indices.
  void backward(const Tensor& dL_dout, const EmbeddingCtx& ctx);
  Parameter& weight() { return *weight_; }

 private:
  int64_t num_, dim_;
  Parameter* weight_;
};

// ---- BatchNorm1d over rows of x [N, C] (torch.nn.BatchNorm1d, affine, running stats) ----
struct BatchNormCtx {
  Tensor x;
  BatchNormCache cache;
};
class BatchNorm1d : public Module {
 public:
  BatchNorm1d(int64_t channels, double eps = 1e-5, double momentum = 0.1);
  // Training: batch statistics (needs N >= 2) and running-statistics update; eval: running stats.
  Tensor forward(const Tensor& x, BatchNormCtx& ctx);
  Tensor backward(const Tensor& dL_dout, const BatchNormCtx& ctx);
  Parameter& weight() { return *weight_; }  // [C], ones
  Parameter& bias() { return *bias_; }      // [C], zeros
  Tensor& running_mean() { return running_mean_; }  // [C], zeros (buffer "running_mean")
  Tensor& running_var() { return running_var_; }    // [C], ones  (buffer "running_var")

 private:
  int64_t channels_;
  double eps_, momentum_;
  Parameter* weight_;
  Parameter* bias_;
  Tensor running_mean_, running_var_;
};

// ---- LayerNorm over each row's C channels (torch.nn.LayerNorm(C)) ----
struct LayerNormCtx {
  Tensor x;
  LayerNormCache cache;
};
class LayerNorm : public Module {
 public:
  explicit LayerNorm(int64_t channels, double eps = 1e-5);
  Tensor forward(const Tensor& x, LayerNormCtx& ctx);
  Tensor backward(const Tensor& dL_dout, const LayerNormCtx& ctx);
  Parameter& weight() { return *weight_; }  // [C], ones
  Parameter& bias() { return *bias_; }      // [C], zeros

 private:
  int64_t channels_;
  double eps_;
  Parameter* weight_;
  Parameter* bias_;
};

// ---- RMSNorm: out = x * rsqrt(mean(x_row^2) + eps) * weight ----
struct RMSNormCtx {
  Tensor x;
  RMSNormCache cache;
};
class RMSNorm : public Module {
 public:
  explicit RMSNorm(int64_t channels, double eps = 1e-6);
  Tensor forward(const Tensor& x, RMSNormCtx& ctx);
  Tensor backward(const Tensor& dL_dout, const RMSNormCtx& ctx);
  Parameter& weight() { return *weight_; }  // [C], ones

 private:
  int64_t channels_;
  double eps_;
  Parameter* weight_;
};

// ---- Dropout (inverted), any shape ----
struct DropoutCtx {
  Tensor mask;          // x's shape; undefined when the forward was the identity
};
class Dropout : public Module {
 public:
  // p in [0, 1). The mask of each training forward uses counters offset .. offset + numel - 1 of
  // `seed`, and the offset then advances by numel, so successive calls draw fresh masks and a
  // run is reproducible from (seed, offset).
  Dropout(double p, uint64_t seed);
  // Training with p > 0: out = x * mask; otherwise the identity (returns x itself, no copy).
  Tensor forward(const Tensor& x, DropoutCtx& ctx);
  Tensor backward(const Tensor& dL_dout, const DropoutCtx& ctx);
  double p() const { return p_; }
  uint64_t seed() const { return seed_; }
  uint64_t offset() const { return offset_; }
  void set_offset(uint64_t offset) { offset_ = offset; }

 private:
  double p_;
  uint64_t seed_;
  uint64_t offset_ = 0;
};

// ---- Activation (ReLU, GELU (erf), SiLU), any shape; no parameters ----
struct ActivationCtx {
  Tensor x;
};
class ActivationLayer : public Module {
 public:
  explicit ActivationLayer(Activation act) : act_(act) {}
  Tensor forward(const Tensor& x, ActivationCtx& ctx);
  Tensor backward(const Tensor& dL_dout, const ActivationCtx& ctx);
  Activation activation() const { return act_; }

 private:
  Activation act_;
};

// ---- MLP: Linear -> act -> (dropout) -> ... -> Linear (no activation after the last) ----
struct MLPCtx {
  std::vector<LinearCtx> linear;          // one per Linear
  std::vector<ActivationCtx> activation;  // one per hidden layer
  std::vector<DropoutCtx> dropout;        // one per hidden layer
};
class MLP : public Module {
 public:
  // dims = {in, hidden..., out} (at least 2 entries); every Linear has a bias. Linears are named
  // "layers.<i>" (i = 0 .. dims.size() - 2), so parameters are "layers.0.weight", ...
  // Dropout (p = dropout, seed drawn from gen) follows each hidden activation when dropout > 0.
  MLP(std::vector<int64_t> dims, Activation act, double dropout, Generator& gen);
  // residual [N, out] (optional) is added to the last Linear's output in its bias pass.
  Tensor forward(const Tensor& x, MLPCtx& ctx, const Tensor& residual = Tensor());
  // Returns dL/dx, plus `plus` [N, in] when given (the residual block x + MLP(x) passes its
  // output gradient here), added inside the first layer's product.
  Tensor backward(const Tensor& dL_dout, const MLPCtx& ctx, const Tensor& plus = Tensor());
  // The same, one Linear at a time (to interleave two MLPs' steps): prepare_ctx, then
  // forward_layer(i) for i = 0 .. n-1 (the Linear, then for hidden layers the activation and
  // dropout; residual only on the last), and backward_layer(i) for i = n-1 .. 0 (plus only on
  // i == 0). With ReLU and no dropout each step is exactly one linear_forward / linear_backward
  // call (the activation runs in the product).
  void prepare_ctx(MLPCtx& ctx) const;
  Tensor forward_layer(size_t i, const Tensor& h, MLPCtx& ctx, const Tensor& residual);
  Tensor backward_layer(size_t i, const Tensor& g, const MLPCtx& ctx, const Tensor& plus);
  // Whether each step is exactly one linear call (see above).
  bool single_op_layers() const;
  int64_t num_layers() const { return static_cast<int64_t>(linears_.size()); }
  Linear& layer(int64_t i) { return *linears_.at(static_cast<size_t>(i)); }
  // The Dropout after hidden layer i, or nullptr when the MLP has no dropout.
  Dropout* dropout(int64_t i) {
    return dropouts_.empty() ? nullptr : dropouts_.at(static_cast<size_t>(i)).get();
  }

 private:
  std::vector<int64_t> dims_;
  std::vector<std::unique_ptr<Linear>> linears_;
  std::vector<std::unique_ptr<ActivationLayer>> activations_;
  std::vector<std::unique_ptr<Dropout>> dropouts_;  // empty when dropout == 0

  bool relu_folded(size_t i) const;  // hidden activation i's backward runs in layer i + 1's
};

}  // namespace nn
}  // namespace lapis
