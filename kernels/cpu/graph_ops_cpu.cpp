#include "kernels/cpu/graph_ops_cpu.h"

#include <algorithm>
#include <cmath>

#include "kernels/cpu/graph_parallel.h"

namespace lapis {
namespace cpu {

namespace {

// Runs fn(r0, r1) over all rows, threaded or not.
template <typename Fn>
void rows(bool parallel, const int32_t* ptr, int64_t n, int64_t cost, Fn&& fn) {
  if (parallel) {
    parallel_rows(ptr, n, cost, fn);
  } else if (n > 0) {
    fn(int64_t(0), n);
  }
}

template <typename T>
T* opt(const Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}

// ---- SDDMM: score[e,h] = scale * <A[dst], B[src]> ----
template <typename T>
void sddmm_fwd(Tensor& score, const CsrGraphView& g, const Tensor& a, const Tensor& b,
               double scale, bool parallel) {
  const int32_t *ip = g.in_ptr.data<int32_t>(), *src = opt<int32_t>(g.src);
  const int64_t h = a.size(1), d = a.size(2), hd = h * d;
  const T *pa = a.data<T>(), *pb = b.data<T>();
  T* ps = opt<T>(score);
  const T sc = static_cast<T>(scale);
  rows(parallel, ip, g.num_nodes, hd, [&](int64_t r0, int64_t r1) {
    for (int64_t i = r0; i < r1; ++i) {
      for (int64_t e = ip[i]; e < ip[i + 1]; ++e) {
        const int64_t j = src[e];
        for (int64_t k = 0; k < h; ++k) {
          T s = T(0);
          for (int64_t x = 0; x < d; ++x) s += pa[i * hd + k * d + x] * pb[j * hd + k * d + x];
          ps[e * h + k] = s * sc;
        }
      }
    }
  });
}

template <typename T>
void sddmm_bwd(Tensor& dL_da, Tensor& dL_db, const Tensor& dL_dscore, const CsrGraphView& g,
               const Tensor& a, const Tensor& b, double scale, bool parallel) {
  const int32_t *ip = g.in_ptr.data<int32_t>(), *src = opt<int32_t>(g.src);
  const int64_t n = g.num_nodes, h = a.size(1), d = a.size(2), hd = h * d;
  const T *pa = a.data<T>(), *pb = b.data<T>(), *gs = opt<T>(dL_dscore);
  T *da = opt<T>(dL_da), *db = opt<T>(dL_db);
  const T sc = static_cast<T>(scale);
  if (!parallel) {  // naive: one loop over edges, scattering into both gradients
    if (da != nullptr) dL_da.zero();
    if (db != nullptr) dL_db.zero();
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t e = ip[i]; e < ip[i + 1]; ++e) {
        const int64_t j = src[e];
        for (int64_t k = 0; k < h; ++k) {
          const T gsc = gs[e * h + k] * sc;
          for (int64_t x = 0; x < d; ++x) {
            if (da != nullptr) da[i * hd + k * d + x] += gsc * pb[j * hd + k * d + x];
            if (db != nullptr) db[j * hd + k * d + x] += gsc * pa[i * hd + k * d + x];
          }
        }
      }
    }
    return;
  }
  if (da != nullptr) {
    parallel_rows(ip, n, hd, [&](int64_t r0, int64_t r1) {
      for (int64_t i = r0; i < r1; ++i) {
        T* row = da + i * hd;
        std::fill(row, row + hd, T(0));
        for (int64_t e = ip[i]; e < ip[i + 1]; ++e) {
          const T* bj = pb + static_cast<int64_t>(src[e]) * hd;
          for (int64_t k = 0; k < h; ++k) {
            const T gsc = gs[e * h + k] * sc;
            for (int64_t x = 0; x < d; ++x) row[k * d + x] += gsc * bj[k * d + x];
          }
        }
      }
    });
  }
  if (db != nullptr) {
    const int32_t *op = g.out_ptr.data<int32_t>(), *oe = opt<int32_t>(g.out_edge),
                  *od = opt<int32_t>(g.out_dst);
    parallel_rows(op, n, hd, [&](int64_t r0, int64_t r1) {
      for (int64_t j = r0; j < r1; ++j) {
        T* row = db + j * hd;
        std::fill(row, row + hd, T(0));
        for (int64_t p = op[j]; p < op[j + 1]; ++p) {
          const int64_t e = oe[p];
          const T* ai = pa + static_cast<int64_t>(od[p]) * hd;
          for (int64_t k = 0; k < h; ++k) {
            const T gsc = gs[e * h + k] * sc;
            for (int64_t x = 0; x < d; ++x) row[k * d + x] += gsc * ai[k * d + x];
          }
        }
      }
    });
  }
}

// ---- segment softmax over CSR segments, per head ----
template <typename T>
void softmax_fwd(Tensor& alpha, const Tensor& score, const Tensor& in_ptr, bool parallel) {
  const int32_t* ip = in_ptr.data<int32_t>();
  const int64_t n = in_ptr.numel() - 1, h = score.size(1);
  const T* ps = opt<T>(score);
  T* pa = opt<T>(alpha);
  rows(parallel, ip, n, h * 4, [&](int64_t r0, int64_t r1) {
    for (int64_t i = r0; i < r1; ++i) {
      for (int64_t k = 0; k < h; ++k) {
        if (ip[i] == ip[i + 1]) continue;
        T m = ps[static_cast<int64_t>(ip[i]) * h + k];
        for (int64_t e = ip[i]; e < ip[i + 1]; ++e) m = std::max(m, ps[e * h + k]);
        T sum = T(0);
        for (int64_t e = ip[i]; e < ip[i + 1]; ++e) sum += std::exp(ps[e * h + k] - m);
        for (int64_t e = ip[i]; e < ip[i + 1]; ++e) pa[e * h + k] = std::exp(ps[e * h + k] - m) / sum;
      }
    }
  });
}

template <typename T>
void softmax_bwd(Tensor& dL_dscore, const Tensor& dL_dalpha, const Tensor& alpha,
                 const Tensor& in_ptr, bool parallel) {
  const int32_t* ip = in_ptr.data<int32_t>();
  const int64_t n = in_ptr.numel() - 1, h = alpha.size(1);
  const T *pa = opt<T>(alpha), *pg = opt<T>(dL_dalpha);
  T* pd = opt<T>(dL_dscore);
  rows(parallel, ip, n, h * 3, [&](int64_t r0, int64_t r1) {
    for (int64_t i = r0; i < r1; ++i) {
      for (int64_t k = 0; k < h; ++k) {
        T dot = T(0);
        for (int64_t e = ip[i]; e < ip[i + 1]; ++e) dot += pa[e * h + k] * pg[e * h + k];
        for (int64_t e = ip[i]; e < ip[i + 1]; ++e) {
          pd[e * h + k] = pa[e * h + k] * (pg[e * h + k] - dot);
        }
      }
    }
  });
}

// ---- SpMM: out[i,h,:] = sum_e alpha[e,h] X[src(e),h,:] ----
template <typename T>
void spmm_fwd(Tensor& out, const CsrGraphView& g, const Tensor& alpha, const Tensor& x,
              bool parallel) {
  const int32_t *ip = g.in_ptr.data<int32_t>(), *src = opt<int32_t>(g.src);
  const int64_t h = x.size(1), d = x.size(2), hd = h * d;
  const T *pal = opt<T>(alpha), *px = x.data<T>();
  T* po = out.data<T>();
  rows(parallel, ip, g.num_nodes, hd, [&](int64_t r0, int64_t r1) {
    for (int64_t i = r0; i < r1; ++i) {
      T* row = po + i * hd;
      std::fill(row, row + hd, T(0));
      for (int64_t e = ip[i]; e < ip[i + 1]; ++e) {
        const T* xj = px + static_cast<int64_t>(src[e]) * hd;
        for (int64_t k = 0; k < h; ++k) {
          const T w = pal[e * h + k];
          for (int64_t c = 0; c < d; ++c) row[k * d + c] += w * xj[k * d + c];
        }
      }
    }
  });
}

template <typename T>
void spmm_bwd(Tensor& dL_dalpha, Tensor& dL_dx, const Tensor& dL_dout, const CsrGraphView& g,
              const Tensor& alpha, const Tensor& x, bool parallel) {
  const int32_t *ip = g.in_ptr.data<int32_t>(), *src = opt<int32_t>(g.src);
  const int64_t n = g.num_nodes, h = x.size(1), d = x.size(2), hd = h * d;
  const T *pal = opt<T>(alpha), *px = x.data<T>(), *go = dL_dout.data<T>();
  T *dal = dL_dalpha.defined() ? opt<T>(dL_dalpha) : nullptr;
  T* dx = dL_dx.defined() ? dL_dx.data<T>() : nullptr;
  if (!parallel) {  // naive: one loop over edges, scattering into dL_dx
    if (dx != nullptr) dL_dx.zero();
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t e = ip[i]; e < ip[i + 1]; ++e) {
        const int64_t j = src[e];
        for (int64_t k = 0; k < h; ++k) {
          T s = T(0);
          for (int64_t c = 0; c < d; ++c) {
            s += go[i * hd + k * d + c] * px[j * hd + k * d + c];
            if (dx != nullptr) dx[j * hd + k * d + c] += pal[e * h + k] * go[i * hd + k * d + c];
          }
          if (dal != nullptr) dal[e * h + k] = s;
        }
      }
    }
    return;
  }
  if (dal != nullptr) {
    parallel_rows(ip, n, hd, [&](int64_t r0, int64_t r1) {
      for (int64_t i = r0; i < r1; ++i) {
        for (int64_t e = ip[i]; e < ip[i + 1]; ++e) {
          const T* xj = px + static_cast<int64_t>(src[e]) * hd;
          for (int64_t k = 0; k < h; ++k) {
            T s = T(0);
            for (int64_t c = 0; c < d; ++c) s += go[i * hd + k * d + c] * xj[k * d + c];
            dal[e * h + k] = s;
          }
        }
      }
    });
  }
  if (dx != nullptr) {
    const int32_t *op = g.out_ptr.data<int32_t>(), *oe = opt<int32_t>(g.out_edge),
                  *od = opt<int32_t>(g.out_dst);
    parallel_rows(op, n, hd, [&](int64_t r0, int64_t r1) {
      for (int64_t j = r0; j < r1; ++j) {
        T* row = dx + j * hd;
        std::fill(row, row + hd, T(0));
        for (int64_t p = op[j]; p < op[j + 1]; ++p) {
          const int64_t e = oe[p];
          const T* gi = go + static_cast<int64_t>(od[p]) * hd;
          for (int64_t k = 0; k < h; ++k) {
            const T w = pal[e * h + k];
            for (int64_t c = 0; c < d; ++c) row[k * d + c] += w * gi[k * d + c];
          }
        }
      }
    });
  }
}

}  // namespace

void sddmm_forward(Tensor& score, const CsrGraphView& g, const Tensor& a, const Tensor& b,
                   double scale, bool parallel) {
  LAPIS_DISPATCH_FLOAT(a.dtype(), "sddmm_forward",
                       [&] { sddmm_fwd<scalar_t>(score, g, a, b, scale, parallel); });
}
void sddmm_backward(Tensor& dL_da, Tensor& dL_db, const Tensor& dL_dscore, const CsrGraphView& g,
                    const Tensor& a, const Tensor& b, double scale, bool parallel) {
  LAPIS_DISPATCH_FLOAT(a.dtype(), "sddmm_backward", [&] {
    sddmm_bwd<scalar_t>(dL_da, dL_db, dL_dscore, g, a, b, scale, parallel);
  });
}
void segment_softmax_forward(Tensor& alpha, const Tensor& score, const Tensor& in_ptr,
                             bool parallel) {
  LAPIS_DISPATCH_FLOAT(score.dtype(), "segment_softmax_forward",
                       [&] { softmax_fwd<scalar_t>(alpha, score, in_ptr, parallel); });
}
void segment_softmax_backward(Tensor& dL_dscore, const Tensor& dL_dalpha, const Tensor& alpha,
                              const Tensor& in_ptr, bool parallel) {
  LAPIS_DISPATCH_FLOAT(alpha.dtype(), "segment_softmax_backward", [&] {
    softmax_bwd<scalar_t>(dL_dscore, dL_dalpha, alpha, in_ptr, parallel);
  });
}
void spmm_forward(Tensor& out, const CsrGraphView& g, const Tensor& alpha, const Tensor& x,
                  bool parallel) {
  LAPIS_DISPATCH_FLOAT(x.dtype(), "spmm_forward",
                       [&] { spmm_fwd<scalar_t>(out, g, alpha, x, parallel); });
}
void spmm_backward(Tensor& dL_dalpha, Tensor& dL_dx, const Tensor& dL_dout, const CsrGraphView& g,
                   const Tensor& alpha, const Tensor& x, bool parallel) {
  LAPIS_DISPATCH_FLOAT(x.dtype(), "spmm_backward", [&] {
    spmm_bwd<scalar_t>(dL_dalpha, dL_dx, dL_dout, g, alpha, x, parallel);
  });
}

}  // namespace cpu
}  // namespace lapis
