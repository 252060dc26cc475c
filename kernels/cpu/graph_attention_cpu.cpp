#include "kernels/cpu/graph_attention_cpu.h"

#include <algorithm>
#include <cmath>

#include "kernels/cpu/graph_parallel.h"

namespace lapis {
namespace cpu {

namespace {

// Raw pointers and sizes shared by both paths. e, dedge, edge_out... are nullptr when absent.
template <typename T>
struct Args {
  const int32_t *in_ptr, *src, *out_ptr, *out_edge, *out_dst;
  int64_t n, e_count, h, d;
  T c;  // 1/sqrt(D)
  const T *q, *k, *v, *e;
};

template <typename T>
Args<T> make_args(const CsrGraphView& g, const Tensor& q, const Tensor& k, const Tensor& v,
                  const Tensor& e_proj) {
  Args<T> a{};
  a.in_ptr = g.in_ptr.data<int32_t>();
  a.src = g.src.data<int32_t>();
  a.out_ptr = g.out_ptr.defined() ? g.out_ptr.data<int32_t>() : nullptr;
  a.out_edge = g.out_edge.defined() ? g.out_edge.data<int32_t>() : nullptr;
  a.out_dst = g.out_dst.defined() ? g.out_dst.data<int32_t>() : nullptr;
  a.n = g.num_nodes;
  a.e_count = g.num_edges;
  a.h = q.size(1);
  a.d = q.size(2);
  a.c = T(1) / std::sqrt(static_cast<T>(a.d));
  a.q = q.data<T>();
  a.k = k.data<T>();
  a.v = v.data<T>();
  a.e = e_proj.defined() ? e_proj.data<T>() : nullptr;
  return a;
}

template <typename T>
T clamp_score(T s) {
  const T lim = static_cast<T>(kGraphAttentionClamp);
  return std::min(std::max(s, -lim), lim);
}

// torch.clamp's gradient: passes where min <= s <= max.
template <typename T>
bool clamp_passes(T s) {
  const T lim = static_cast<T>(kGraphAttentionClamp);
  return s >= -lim && s <= lim;
}

// Forward of destination rows [r0, r1).
template <typename T>
void forward_rows(const Args<T>& a, T* out, T* edge_out, T* score, T* z, int64_t r0, int64_t r1) {
  const int64_t hd = a.h * a.d;
  const T eps = static_cast<T>(kGraphAttentionEps);
  for (int64_t i = r0; i < r1; ++i) {
    for (int64_t h = 0; h < a.h; ++h) {
      T* o = out + i * hd + h * a.d;
      const T* qi = a.q + i * hd + h * a.d;
      for (int64_t d = 0; d < a.d; ++d) o[d] = T(0);
      T zsum = T(0);
      for (int64_t e = a.in_ptr[i]; e < a.in_ptr[i + 1]; ++e) {
        const int64_t j = a.src[e];
        const T* kj = a.k + j * hd + h * a.d;
        const T* vj = a.v + j * hd + h * a.d;
        const T* ee = a.e != nullptr ? a.e + e * hd + h * a.d : nullptr;
        T s = T(0);
        for (int64_t d = 0; d < a.d; ++d) {
          T t = kj[d] * qi[d] * a.c;
          if (ee != nullptr) t *= ee[d];
          if (edge_out != nullptr) edge_out[e * hd + h * a.d + d] = t;
          s += t;
        }
        score[e * a.h + h] = s;
        const T w = std::exp(clamp_score(s));
        zsum += w;
        for (int64_t d = 0; d < a.d; ++d) o[d] += w * vj[d];
      }
      z[i * a.h + h] = zsum;
      for (int64_t d = 0; d < a.d; ++d) o[d] /= (zsum + eps);
    }
  }
}

template <typename T>
void forward_impl(bool parallel, Tensor& out, Tensor& edge_out, GraphAttentionContext& ctx,
                  const CsrGraphView& g, const Tensor& q, const Tensor& k, const Tensor& v,
                  const Tensor& e_proj) {
  const Args<T> a = make_args<T>(g, q, k, v, e_proj);
  T* po = out.data<T>();
  T* pe = edge_out.defined() ? edge_out.data<T>() : nullptr;
  T* ps = ctx.score.data<T>();
  T* pz = ctx.z.data<T>();
  if (parallel) {
    parallel_rows(a.in_ptr, a.n, a.h * a.d,
                  [&](int64_t r0, int64_t r1) { forward_rows(a, po, pe, ps, pz, r0, r1); });
  } else {
    forward_rows(a, po, pe, ps, pz, 0, a.n);
  }
}

// Naive backward: one loop over (destination, head, edge) scattering into dK and dV.
template <typename T>
void backward_naive(Tensor& dL_dq, Tensor& dL_dk, Tensor& dL_dv, Tensor& dL_de,
                    const Tensor& dL_dout, const Tensor& dL_dedge_out, const CsrGraphView& g,
                    const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& e_proj,
                    const Tensor& out, const GraphAttentionContext& ctx) {
  const Args<T> a = make_args<T>(g, q, k, v, e_proj);
  const int64_t hd = a.h * a.d;
  const T eps = static_cast<T>(kGraphAttentionEps);
  dL_dq.zero();
  dL_dk.zero();
  dL_dv.zero();
  if (dL_de.defined()) dL_de.zero();
  T* dq = dL_dq.data<T>();
  T* dk = dL_dk.data<T>();
  T* dv = dL_dv.data<T>();
  T* de = dL_de.defined() ? dL_de.data<T>() : nullptr;
  const T* go = dL_dout.data<T>();
  const T* gt = dL_dedge_out.defined() ? dL_dedge_out.data<T>() : nullptr;
  const T* po = out.data<T>();
  const T* score = ctx.score.data<T>();
  const T* z = ctx.z.data<T>();
  T* dscore = ctx.dscore.data<T>();
  for (int64_t i = 0; i < a.n; ++i) {
    for (int64_t h = 0; h < a.h; ++h) {
      const int64_t ih = i * hd + h * a.d;
      const T inv = T(1) / (z[i * a.h + h] + eps);
      for (int64_t e = a.in_ptr[i]; e < a.in_ptr[i + 1]; ++e) {
        const int64_t j = a.src[e];
        const int64_t jh = j * hd + h * a.d, eh = e * hd + h * a.d;
        const T s = score[e * a.h + h];
        const T w = std::exp(clamp_score(s));
        // out_i = sum w V_j / (z + eps)  =>  d out_i / d w_e = (V_j - out_i) / (z + eps).
        T dw = T(0);
        for (int64_t d = 0; d < a.d; ++d) dw += go[ih + d] * (a.v[jh + d] - po[ih + d]);
        dw *= inv;
        const T ds = clamp_passes(s) ? dw * w : T(0);
        dscore[e * a.h + h] = ds;
        for (int64_t d = 0; d < a.d; ++d) {
          const T dt = ds + (gt != nullptr ? gt[eh + d] : T(0));
          const T ed = a.e != nullptr ? a.e[eh + d] : T(1);
          dq[ih + d] += dt * a.k[jh + d] * a.c * ed;
          dk[jh + d] += dt * a.q[ih + d] * a.c * ed;
          if (de != nullptr) de[eh + d] = dt * a.k[jh + d] * a.q[ih + d] * a.c;
          dv[jh + d] += w * inv * go[ih + d];
        }
      }
    }
  }
}

// Parallel backward pass 1 over destination rows [r0, r1): dscore, dQ, dE.
template <typename T>
void backward_dst_rows(const Args<T>& a, T* dq, T* de, T* dscore, const T* go, const T* gt,
                       const T* po, const T* score, const T* z, int64_t r0, int64_t r1) {
  const int64_t hd = a.h * a.d;
  const T eps = static_cast<T>(kGraphAttentionEps);
  for (int64_t i = r0; i < r1; ++i) {
    for (int64_t h = 0; h < a.h; ++h) {
      const int64_t ih = i * hd + h * a.d;
      const T inv = T(1) / (z[i * a.h + h] + eps);
      for (int64_t d = 0; d < a.d; ++d) dq[ih + d] = T(0);
      for (int64_t e = a.in_ptr[i]; e < a.in_ptr[i + 1]; ++e) {
        const int64_t jh = static_cast<int64_t>(a.src[e]) * hd + h * a.d, eh = e * hd + h * a.d;
        const T s = score[e * a.h + h];
        T dw = T(0);
        for (int64_t d = 0; d < a.d; ++d) dw += go[ih + d] * (a.v[jh + d] - po[ih + d]);
        const T ds = clamp_passes(s) ? dw * inv * std::exp(clamp_score(s)) : T(0);
        dscore[e * a.h + h] = ds;
        for (int64_t d = 0; d < a.d; ++d) {
          const T dt = ds + (gt != nullptr ? gt[eh + d] : T(0));
          const T ed = a.e != nullptr ? a.e[eh + d] : T(1);
          dq[ih + d] += dt * a.k[jh + d] * a.c * ed;
          if (de != nullptr) de[eh + d] = dt * a.k[jh + d] * a.q[ih + d] * a.c;
        }
      }
    }
  }
}

// Parallel backward pass 2 over source rows [r0, r1) of the CSC: dK, dV.
template <typename T>
void backward_src_rows(const Args<T>& a, T* dk, T* dv, const T* dscore, const T* go, const T* gt,
                       const T* score, const T* z, int64_t r0, int64_t r1) {
  const int64_t hd = a.h * a.d;
  const T eps = static_cast<T>(kGraphAttentionEps);
  for (int64_t j = r0; j < r1; ++j) {
    for (int64_t h = 0; h < a.h; ++h) {
      const int64_t jh = j * hd + h * a.d;
      for (int64_t d = 0; d < a.d; ++d) dk[jh + d] = dv[jh + d] = T(0);
      for (int64_t p = a.out_ptr[j]; p < a.out_ptr[j + 1]; ++p) {
        const int64_t e = a.out_edge[p], i = a.out_dst[p];
        const int64_t ih = i * hd + h * a.d, eh = e * hd + h * a.d;
        const T ds = dscore[e * a.h + h];
        const T wn = std::exp(clamp_score(score[e * a.h + h])) / (z[i * a.h + h] + eps);
        for (int64_t d = 0; d < a.d; ++d) {
          const T dt = ds + (gt != nullptr ? gt[eh + d] : T(0));
          const T ed = a.e != nullptr ? a.e[eh + d] : T(1);
          dk[jh + d] += dt * a.q[ih + d] * a.c * ed;
          dv[jh + d] += wn * go[ih + d];
        }
      }
    }
  }
}

template <typename T>
void backward_parallel(Tensor& dL_dq, Tensor& dL_dk, Tensor& dL_dv, Tensor& dL_de,
                       const Tensor& dL_dout, const Tensor& dL_dedge_out, const CsrGraphView& g,
                       const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& e_proj,
                       const Tensor& out, const GraphAttentionContext& ctx) {
  const Args<T> a = make_args<T>(g, q, k, v, e_proj);
  T* dq = dL_dq.data<T>();
  T* dk = dL_dk.data<T>();
  T* dv = dL_dv.data<T>();
  T* de = dL_de.defined() ? dL_de.data<T>() : nullptr;
  const T* go = dL_dout.data<T>();
  const T* gt = dL_dedge_out.defined() ? dL_dedge_out.data<T>() : nullptr;
  const T* po = out.data<T>();
  const T* score = ctx.score.data<T>();
  const T* z = ctx.z.data<T>();
  T* dscore = ctx.dscore.data<T>();
  const int64_t cost = a.h * a.d;
  parallel_rows(a.in_ptr, a.n, cost, [&](int64_t r0, int64_t r1) {
    backward_dst_rows(a, dq, de, dscore, go, gt, po, score, z, r0, r1);
  });
  parallel_rows(a.out_ptr, a.n, cost, [&](int64_t r0, int64_t r1) {
    backward_src_rows(a, dk, dv, dscore, go, gt, score, z, r0, r1);
  });
}

}  // namespace

void graph_attention_forward(Tensor& out, Tensor& edge_out, GraphAttentionContext& ctx,
                             const CsrGraphView& g, const Tensor& q, const Tensor& k,
                             const Tensor& v, const Tensor& e_proj) {
  LAPIS_DISPATCH_FLOAT(q.dtype(), "graph_attention_forward", [&] {
    forward_impl<scalar_t>(false, out, edge_out, ctx, g, q, k, v, e_proj);
  });
}

void graph_attention_forward_parallel(Tensor& out, Tensor& edge_out, GraphAttentionContext& ctx,
                                      const CsrGraphView& g, const Tensor& q, const Tensor& k,
                                      const Tensor& v, const Tensor& e_proj) {
  LAPIS_DISPATCH_FLOAT(q.dtype(), "graph_attention_forward", [&] {
    forward_impl<scalar_t>(true, out, edge_out, ctx, g, q, k, v, e_proj);
  });
}

void graph_attention_backward(Tensor& dL_dq, Tensor& dL_dk, Tensor& dL_dv, Tensor& dL_de,
                              const Tensor& dL_dout, const Tensor& dL_dedge_out,
                              const CsrGraphView& g, const Tensor& q, const Tensor& k,
                              const Tensor& v, const Tensor& e_proj, const Tensor& out,
                              const GraphAttentionContext& ctx) {
  LAPIS_DISPATCH_FLOAT(q.dtype(), "graph_attention_backward", [&] {
    backward_naive<scalar_t>(dL_dq, dL_dk, dL_dv, dL_de, dL_dout, dL_dedge_out, g, q, k, v,
                             e_proj, out, ctx);
  });
}

void graph_attention_backward_parallel(Tensor& dL_dq, Tensor& dL_dk, Tensor& dL_dv,
                                       Tensor& dL_de, const Tensor& dL_dout,
                                       const Tensor& dL_dedge_out, const CsrGraphView& g,
                                       const Tensor& q, const Tensor& k, const Tensor& v,
                                       const Tensor& e_proj, const Tensor& out,
                                       const GraphAttentionContext& ctx) {
  LAPIS_DISPATCH_FLOAT(q.dtype(), "graph_attention_backward", [&] {
    backward_parallel<scalar_t>(dL_dq, dL_dk, dL_dv, dL_de, dL_dout, dL_dedge_out, g, q, k, v,
                                e_proj, out, ctx);
  });
}

}  // namespace cpu
}  // namespace lapis
