#include "kernels/cpu/norm_cpu.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/parallel.h"
#include "kernels/cpu/graph_parallel.h"

namespace lapis {
namespace cpu {

namespace {

// ---------------------------------------------------------------- BatchNorm

// BatchNorm's channels are independent: large inputs split them into contiguous ranges, one
// per thread (graph_num_threads()); each channel's arithmetic is unchanged, so the results are
// the same bits for any thread count.
template <typename Fn>
void for_channel_ranges(int64_t n, int64_t c_count, Fn&& fn) {
  constexpr int64_t kMinElementsPerThread = int64_t{1} << 15;
  const int threads = static_cast<int>(std::min<int64_t>(
      {static_cast<int64_t>(graph_num_threads()), c_count,
       std::max<int64_t>(1, n * c_count / kMinElementsPerThread)}));
  parallel_chunks(c_count, threads, fn, /*min_chunk=*/1);
}

template <typename scalar_t>
void batchnorm_forward_train_impl(Tensor& out, BatchNormCache& cache, Tensor& running_mean,
                                  Tensor& running_var, const Tensor& x, const Tensor& weight,
                                  const Tensor& bias, double momentum, double eps) {
  const int64_t n = x.size(0), c_count = x.size(1);
  const scalar_t* px = x.data<scalar_t>();
  const scalar_t* pw = weight.data<scalar_t>();
  const scalar_t* pb = bias.data<scalar_t>();
  scalar_t* po = out.data<scalar_t>();
  scalar_t* pmean = cache.mean.data<scalar_t>();
  scalar_t* prstd = cache.rstd.data<scalar_t>();
  scalar_t* prm = running_mean.data<scalar_t>();
  scalar_t* prv = running_var.data<scalar_t>();
  for_channel_ranges(n, c_count, [&](int64_t c_begin, int64_t c_end) {
  for (int64_t c = c_begin; c < c_end; ++c) {
    // Two passes (mean, then squared deviations) for a stable biased variance.
    double sum = 0.0;
    for (int64_t r = 0; r < n; ++r) sum += px[r * c_count + c];
    const double mean = sum / static_cast<double>(n);
    double sq = 0.0;
    for (int64_t r = 0; r < n; ++r) {
      const double d = px[r * c_count + c] - mean;
      sq += d * d;
    }
    const double var = sq / static_cast<double>(n);
    const double rstd = 1.0 / std::sqrt(var + eps);
    for (int64_t r = 0; r < n; ++r) {
      const double xhat = (px[r * c_count + c] - mean) * rstd;
      po[r * c_count + c] = static_cast<scalar_t>(xhat * pw[c] + pb[c]);
    }
    pmean[c] = static_cast<scalar_t>(mean);
    prstd[c] = static_cast<scalar_t>(rstd);
    // Running statistics use the unbiased variance, as torch.nn.BatchNorm1d.
    const double unbiased = sq / static_cast<double>(n - 1);
    prm[c] = static_cast<scalar_t>((1.0 - momentum) * prm[c] + momentum * mean);
    prv[c] = static_cast<scalar_t>((1.0 - momentum) * prv[c] + momentum * unbiased);
  }
  });
  cache.training = true;
}

template <typename scalar_t>
void batchnorm_forward_eval_impl(Tensor& out, BatchNormCache& cache, const Tensor& x,
                                 const Tensor& weight, const Tensor& bias,
                                 const Tensor& running_mean, const Tensor& running_var,
                                 double eps) {
  const int64_t n = x.size(0), c_count = x.size(1);
  const scalar_t* px = x.data<scalar_t>();
  const scalar_t* pw = weight.data<scalar_t>();
  const scalar_t* pb = bias.data<scalar_t>();
  const scalar_t* prm = running_mean.data<scalar_t>();
  const scalar_t* prv = running_var.data<scalar_t>();
  scalar_t* po = out.data<scalar_t>();
  scalar_t* pmean = cache.mean.data<scalar_t>();
  scalar_t* prstd = cache.rstd.data<scalar_t>();
  for (int64_t c = 0; c < c_count; ++c) {
    const double mean = prm[c];
    const double rstd = 1.0 / std::sqrt(static_cast<double>(prv[c]) + eps);
    for (int64_t r = 0; r < n; ++r) {
      const double xhat = (px[r * c_count + c] - mean) * rstd;
      po[r * c_count + c] = static_cast<scalar_t>(xhat * pw[c] + pb[c]);
    }
    pmean[c] = static_cast<scalar_t>(mean);
    prstd[c] = static_cast<scalar_t>(rstd);
  }
  cache.training = false;
}

// Training: y = xhat * w + b with xhat = (x - mean) * rstd over the batch, so
//   dL_dx = rstd * w * (g - mean_r(g) - xhat * mean_r(g * xhat)).
// Eval: the statistics are constants, dL_dx = g * w * rstd.
template <typename scalar_t>
void batchnorm_backward_impl(Tensor& dL_dx, Tensor& dL_dweight, Tensor& dL_dbias,
                             const Tensor& dL_dout, const Tensor& x, const Tensor& weight,
                             const BatchNormCache& cache) {
  const int64_t n = x.size(0), c_count = x.size(1);
  const scalar_t* px = x.data<scalar_t>();
  const scalar_t* pg = dL_dout.data<scalar_t>();
  const scalar_t* pw = weight.data<scalar_t>();
  const scalar_t* pmean = cache.mean.data<scalar_t>();
  const scalar_t* prstd = cache.rstd.data<scalar_t>();
  scalar_t* pdx = dL_dx.data<scalar_t>();
  scalar_t* pdw = dL_dweight.data<scalar_t>();
  scalar_t* pdb = dL_dbias.data<scalar_t>();
  for_channel_ranges(n, c_count, [&](int64_t c_begin, int64_t c_end) {
  for (int64_t c = c_begin; c < c_end; ++c) {
    const double mean = pmean[c], rstd = prstd[c];
    double sum_g = 0.0, sum_g_xhat = 0.0;
    for (int64_t r = 0; r < n; ++r) {
      const double g = pg[r * c_count + c];
      sum_g += g;
      sum_g_xhat += g * (px[r * c_count + c] - mean) * rstd;
    }
    for (int64_t r = 0; r < n; ++r) {
      const double g = pg[r * c_count + c];
      double dx;
      if (cache.training) {
        const double xhat = (px[r * c_count + c] - mean) * rstd;
        dx = rstd * pw[c] * (g - sum_g / n - xhat * sum_g_xhat / n);
      } else {
        dx = g * pw[c] * rstd;
      }
      pdx[r * c_count + c] = static_cast<scalar_t>(dx);
    }
    pdw[c] = static_cast<scalar_t>(pdw[c] + sum_g_xhat);
    pdb[c] = static_cast<scalar_t>(pdb[c] + sum_g);
  }
  });
}

// ---------------------------------------------------------------- LayerNorm

template <typename scalar_t>
void layernorm_forward_impl(Tensor& out, LayerNormCache& cache, const Tensor& x,
                            const Tensor& weight, const Tensor& bias, double eps) {
  const int64_t n = x.size(0), c_count = x.size(1);
  const scalar_t* px = x.data<scalar_t>();
  const scalar_t* pw = weight.data<scalar_t>();
  const scalar_t* pb = bias.data<scalar_t>();
  scalar_t* po = out.data<scalar_t>();
  scalar_t* pmean = cache.mean.data<scalar_t>();
  scalar_t* prstd = cache.rstd.data<scalar_t>();
  for (int64_t r = 0; r < n; ++r) {
    const scalar_t* row = px + r * c_count;
    double sum = 0.0;
    for (int64_t c = 0; c < c_count; ++c) sum += row[c];
    const double mean = sum / static_cast<double>(c_count);
    double sq = 0.0;
    for (int64_t c = 0; c < c_count; ++c) sq += (row[c] - mean) * (row[c] - mean);
    const double rstd = 1.0 / std::sqrt(sq / static_cast<double>(c_count) + eps);
    for (int64_t c = 0; c < c_count; ++c) {
      po[r * c_count + c] = static_cast<scalar_t>((row[c] - mean) * rstd * pw[c] + pb[c]);
    }
    pmean[r] = static_cast<scalar_t>(mean);
    prstd[r] = static_cast<scalar_t>(rstd);
  }
}

// dxhat = g * w; dL_dx = rstd * (dxhat - mean_c(dxhat) - xhat * mean_c(dxhat * xhat)).
template <typename scalar_t>
void layernorm_backward_impl(Tensor& dL_dx, Tensor& dL_dweight, Tensor& dL_dbias,
                             const Tensor& dL_dout, const Tensor& x, const Tensor& weight,
                             const LayerNormCache& cache) {
  const int64_t n = x.size(0), c_count = x.size(1);
  const scalar_t* px = x.data<scalar_t>();
  const scalar_t* pg = dL_dout.data<scalar_t>();
  const scalar_t* pw = weight.data<scalar_t>();
  const scalar_t* pmean = cache.mean.data<scalar_t>();
  const scalar_t* prstd = cache.rstd.data<scalar_t>();
  scalar_t* pdx = dL_dx.data<scalar_t>();
  scalar_t* pdw = dL_dweight.data<scalar_t>();
  scalar_t* pdb = dL_dbias.data<scalar_t>();
  std::vector<double> dw(c_count, 0.0), db(c_count, 0.0);
  for (int64_t r = 0; r < n; ++r) {
    const double mean = pmean[r], rstd = prstd[r];
    double sum_dxhat = 0.0, sum_dxhat_xhat = 0.0;
    for (int64_t c = 0; c < c_count; ++c) {
      const double g = pg[r * c_count + c];
      const double xhat = (px[r * c_count + c] - mean) * rstd;
      sum_dxhat += g * pw[c];
      sum_dxhat_xhat += g * pw[c] * xhat;
      dw[c] += g * xhat;
      db[c] += g;
    }
    const double mean_dxhat = sum_dxhat / c_count, mean_dxhat_xhat = sum_dxhat_xhat / c_count;
    for (int64_t c = 0; c < c_count; ++c) {
      const double g = pg[r * c_count + c];
      const double xhat = (px[r * c_count + c] - mean) * rstd;
      pdx[r * c_count + c] =
          static_cast<scalar_t>(rstd * (g * pw[c] - mean_dxhat - xhat * mean_dxhat_xhat));
    }
  }
  for (int64_t c = 0; c < c_count; ++c) {
    pdw[c] = static_cast<scalar_t>(pdw[c] + dw[c]);
    pdb[c] = static_cast<scalar_t>(pdb[c] + db[c]);
  }
}

// ---------------------------------------------------------------- RMSNorm

template <typename scalar_t>
void rmsnorm_forward_impl(Tensor& out, RMSNormCache& cache, const Tensor& x,
                          const Tensor& weight, double eps) {
  const int64_t n = x.size(0), c_count = x.size(1);
  const scalar_t* px = x.data<scalar_t>();
  const scalar_t* pw = weight.data<scalar_t>();
  scalar_t* po = out.data<scalar_t>();
  scalar_t* prstd = cache.rstd.data<scalar_t>();
  for (int64_t r = 0; r < n; ++r) {
    const scalar_t* row = px + r * c_count;
    double sq = 0.0;
    for (int64_t c = 0; c < c_count; ++c) sq += static_cast<double>(row[c]) * row[c];
    const double rstd = 1.0 / std::sqrt(sq / static_cast<double>(c_count) + eps);
    for (int64_t c = 0; c < c_count; ++c) {
      po[r * c_count + c] = static_cast<scalar_t>(row[c] * rstd * pw[c]);
    }
    prstd[r] = static_cast<scalar_t>(rstd);
  }
}

// y_c = x_c * r * w_c with r = (mean(x^2) + eps)^(-1/2), dr/dx_i = -r^3 x_i / C, so
//   dL_dx_i = r * (g_i w_i - x_i * r^2 * mean_c(g_c w_c x_c)).
template <typename scalar_t>
void rmsnorm_backward_impl(Tensor& dL_dx, Tensor& dL_dweight, const Tensor& dL_dout,
                           const Tensor& x, const Tensor& weight, const RMSNormCache& cache) {
  const int64_t n = x.size(0), c_count = x.size(1);
  const scalar_t* px = x.data<scalar_t>();
  const scalar_t* pg = dL_dout.data<scalar_t>();
  const scalar_t* pw = weight.data<scalar_t>();
  const scalar_t* prstd = cache.rstd.data<scalar_t>();
  scalar_t* pdx = dL_dx.data<scalar_t>();
  scalar_t* pdw = dL_dweight.data<scalar_t>();
  std::vector<double> dw(c_count, 0.0);
  for (int64_t r = 0; r < n; ++r) {
    const double rstd = prstd[r];
    double sum_gwx = 0.0;
    for (int64_t c = 0; c < c_count; ++c) {
      const double g = pg[r * c_count + c], xv = px[r * c_count + c];
      sum_gwx += g * pw[c] * xv;
      dw[c] += g * xv * rstd;
    }
    const double mean_gwx = sum_gwx / c_count;
    for (int64_t c = 0; c < c_count; ++c) {
      const double g = pg[r * c_count + c], xv = px[r * c_count + c];
      pdx[r * c_count + c] =
          static_cast<scalar_t>(rstd * (g * pw[c] - xv * rstd * rstd * mean_gwx));
    }
  }
  for (int64_t c = 0; c < c_count; ++c) pdw[c] = static_cast<scalar_t>(pdw[c] + dw[c]);
}

}  // namespace

void batchnorm_forward_train(Tensor& out, BatchNormCache& cache, Tensor& running_mean,
                             Tensor& running_var, const Tensor& x, const Tensor& weight,
                             const Tensor& bias, double momentum, double eps) {
  LAPIS_DISPATCH_FLOAT(x.dtype(), "batchnorm_forward_train", [&] {
    batchnorm_forward_train_impl<scalar_t>(out, cache, running_mean, running_var, x, weight,
                                           bias, momentum, eps);
  });
}

void batchnorm_forward_eval(Tensor& out, BatchNormCache& cache, const Tensor& x,
                            const Tensor& weight, const Tensor& bias, const Tensor& running_mean,
                            const Tensor& running_var, double eps) {
  LAPIS_DISPATCH_FLOAT(x.dtype(), "batchnorm_forward_eval", [&] {
    batchnorm_forward_eval_impl<scalar_t>(out, cache, x, weight, bias, running_mean,
                                          running_var, eps);
  });
}

void batchnorm_backward(Tensor& dL_dx, Tensor& dL_dweight, Tensor& dL_dbias,
                        const Tensor& dL_dout, const Tensor& x, const Tensor& weight,
                        const BatchNormCache& cache) {
  LAPIS_DISPATCH_FLOAT(x.dtype(), "batchnorm_backward", [&] {
    batchnorm_backward_impl<scalar_t>(dL_dx, dL_dweight, dL_dbias, dL_dout, x, weight, cache);
  });
}

void layernorm_forward(Tensor& out, LayerNormCache& cache, const Tensor& x, const Tensor& weight,
                       const Tensor& bias, double eps) {
  LAPIS_DISPATCH_FLOAT(x.dtype(), "layernorm_forward", [&] {
    layernorm_forward_impl<scalar_t>(out, cache, x, weight, bias, eps);
  });
}

void layernorm_backward(Tensor& dL_dx, Tensor& dL_dweight, Tensor& dL_dbias,
                        const Tensor& dL_dout, const Tensor& x, const Tensor& weight,
                        const LayerNormCache& cache) {
  LAPIS_DISPATCH_FLOAT(x.dtype(), "layernorm_backward", [&] {
    layernorm_backward_impl<scalar_t>(dL_dx, dL_dweight, dL_dbias, dL_dout, x, weight, cache);
  });
}

void rmsnorm_forward(Tensor& out, RMSNormCache& cache, const Tensor& x, const Tensor& weight,
                     double eps) {
  LAPIS_DISPATCH_FLOAT(x.dtype(), "rmsnorm_forward",
                       [&] { rmsnorm_forward_impl<scalar_t>(out, cache, x, weight, eps); });
}

void rmsnorm_backward(Tensor& dL_dx, Tensor& dL_dweight, const Tensor& dL_dout, const Tensor& x,
                      const Tensor& weight, const RMSNormCache& cache) {
  LAPIS_DISPATCH_FLOAT(x.dtype(), "rmsnorm_backward", [&] {
    rmsnorm_backward_impl<scalar_t>(dL_dx, dL_dweight, dL_dout, x, weight, cache);
  });
}

}  // namespace cpu
}  // namespace lapis
