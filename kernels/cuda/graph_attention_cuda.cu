// Fused graph attention on CUDA (kernels/graph_attention.h). One head group of ceil(D/4) lanes
// per (destination row, head) (kernels/cuda/graph_rows.cuh): the forward reads each incoming
// edge's K_j, E_e and V_j slices once, writes the edge output, and accumulates w V_j and z in
// registers in CSR order, so the whole layer is one pass over the edges. No max subtraction is
// needed (scores are clamped to [-5, 5]), so there is no second pass.
// The backward is two passes, neither with atomics: (1) per destination row over the CSR:
// dL_dscore, dL_dQ, dL_dE; (2) per source row over the CSC: dL_dK, dL_dV. Every sum runs in a
// fixed order, so two runs give identical bits. Pass 1 recomputes the scores from the K_j, E_e
// and Q_i it loads anyway instead of reading them. With edge features and an edge-output
// gradient (the Graph Transformer layer), pass 1 also writes each edge's dL_dK term and
// normalised weight, so pass 2 gathers those (256 + 32 bytes per edge at H = 8, D = 8) next to
// dL_dout_i instead of Q_i, E_e, dL_dedge_out_e and three scalars (864 bytes; BackwardDstPass).
// Load balance: rows are independent work items, so a group walks its row's edges alone; rows
// longer than kHeavyRowEdges are split into pieces reduced by separate groups and combined in a
// fixed order (kernels/cuda/split_rows.cuh), unless the graph view says no row is that long.
#include "kernels/cuda/graph_attention_cuda.h"

#include "core/cuda/cuda_check.h"
#include "kernels/cuda/split_rows.cuh"

namespace lapis {
namespace cuda {

namespace {

template <typename T>
__device__ inline T clamp_score(T s) {
  const T lim = T(kGraphAttentionClamp);
  return s < -lim ? -lim : (s > lim ? lim : s);
}

// torch.clamp's gradient convention: passes where -5 <= s <= 5.
template <typename T>
__device__ inline bool clamp_passes(T s) {
  const T lim = T(kGraphAttentionClamp);
  return s >= -lim && s <= lim;
}

// The lane's part of edge e's products t = K_j * Q_i * c (* E_e) and their sum (the lane's share
// of the score). The forward and the backward's recomputation share it, so they agree bit for bit.
template <typename T, bool HAS_E>
__device__ inline T edge_products(T (&t)[4], const T (&kj)[4], const T (&qi)[4], const T (&ee)[4],
                                  T c) {
  T p = T(0);
#pragma unroll
  for (int x = 0; x < 4; ++x) {
    t[x] = kj[x] * qi[x] * c;
    if (HAS_E) t[x] *= ee[x];
    p += t[x];
  }
  return p;
}

template <typename T>
struct FwdArgs : RowPassShape {
  T* out;
  T* edge_out;  // nullptr when not written
  T* score;
  T* z;
  const int32_t* in_ptr;
  const int32_t* src;
  const T* q;
  const T* k;
  const T* v;
  const T* e;  // nullptr without edge features
  T c;  // 1 / sqrt(D)
};

// Forward, per destination i over its CSR edges: writes edge_out and score, accumulates w V_j and
// z; finish writes z and out = sum w V_j / (z + eps).
template <typename T, bool VEC, bool HAS_E, bool WRITE_EDGE>
struct ForwardPass : SumPartials<T> {
  using Scalar = T;
  using Args = FwdArgs<T>;
  static constexpr bool kReduces = true;
  struct Row {
    T q[4];
  };
  __device__ static const int32_t* ptr(const Args& a) { return a.in_ptr; }
  __device__ static void load_row(const Args& a, const HeadGroup&, const Slice& sl, int64_t i,
                                  Row& r) {
    load4<T, VEC>(r.q, a.q + i * sl.hd + sl.off, sl.valid);
  }
  __device__ static void edges(const Args& a, const HeadGroup& g, const Slice& sl, const Row& r,
                               int64_t b, int64_t end, Partial<T>& acc) {
    for (int64_t e = b; e < end; ++e) {
      const int64_t j = a.src[e];
      if (!edge_indices_ok(a, g, j)) continue;
      T kj[4], vj[4], ee[4];
      load4<T, VEC>(kj, a.k + j * sl.hd + sl.off, sl.valid);
      load4<T, VEC>(vj, a.v + j * sl.hd + sl.off, sl.valid);
      if (HAS_E) load4<T, VEC>(ee, a.e + e * sl.hd + sl.off, sl.valid);
      T t[4];
      const T p = edge_products<T, HAS_E>(t, kj, r.q, ee, a.c);
      if (WRITE_EDGE) store4<T, VEC>(a.edge_out + e * sl.hd + sl.off, t, sl.valid);
      const T s = group_sum(p, g, a.ns);
      if (g.s == 0) a.score[e * a.heads + g.h] = s;
      const T w = dev_exp(clamp_score(s));
      acc.s += w;
#pragma unroll
      for (int x = 0; x < 4; ++x) acc.v[0][x] += w * vj[x];
    }
  }
  __device__ static void finish(const Args& a, const HeadGroup& g, const Slice& sl, int64_t i,
                                const Row&, const Partial<T>& acc) {
    if (g.s == 0) a.z[i * a.heads + g.h] = acc.s;
    const T denom = acc.s + T(kGraphAttentionEps);
    T o[4];
#pragma unroll
    for (int x = 0; x < 4; ++x) o[x] = acc.v[0][x] / denom;
    store4<T, VEC>(a.out + i * sl.hd + sl.off, o, sl.valid);
  }
};

template <typename T>
struct BwdArgs : RowPassShape {
  T* dq;
  T* dk;
  T* dv;
  T* de;      // nullptr without edge features
  T* dscore;  // [E, H] workspace: dL_dscore, or with FOLD the normalised weight w / (z_i + eps)
  T* dkc;     // [E, H, D] workspace with FOLD: edge e's term of dL_dK_j, else nullptr
  const T* go;  // dL_dout
  const T* gt;  // dL_dedge_out or nullptr
  const T* out;
  const T* score;
  const T* z;
  const int32_t* in_ptr;
  const int32_t* src;
  const int32_t* out_ptr;
  const int32_t* out_edge;
  const int32_t* out_dst;
  const T* q;
  const T* k;
  const T* v;
  const T* e;
  T c;  // 1 / sqrt(D)
};

// FOLD: pass 1 hands pass 2 each edge's dL_dK term (dt * Q_i * c * E_e, 256 bytes at H = 8,
// D = 8) and its normalised weight w / (z_i + eps) instead of dL_dscore. Worth it only when both
// E and dL_dedge_out exist: otherwise pass 2 gathers as many bytes as the term costs to write.
template <bool HAS_E, bool HAS_GT>
constexpr bool kFoldKeyGrad = HAS_E && HAS_GT;

// Backward pass 1, per destination i over its CSR edges: writes dL_dscore (or, with FOLD, the dL_dK
// term and normalised weight) and dL_dE per edge, accumulates dL_dQ_i; finish writes dL_dQ
// (overwritten).
template <typename T, bool VEC, bool HAS_E, bool HAS_GT>
struct BackwardDstPass : SumPartials<T> {
  using Scalar = T;
  using Args = BwdArgs<T>;
  static constexpr bool kReduces = true;
  static constexpr bool FOLD = kFoldKeyGrad<HAS_E, HAS_GT>;
  struct Row {
    T q[4], go[4], o[4];
    T inv;  // 1 / (z_i + eps)
  };
  __device__ static const int32_t* ptr(const Args& a) { return a.in_ptr; }
  __device__ static void load_row(const Args& a, const HeadGroup& g, const Slice& sl, int64_t i,
                                  Row& r) {
    const int64_t ih = i * sl.hd + sl.off;
    load4<T, VEC>(r.q, a.q + ih, sl.valid);
    load4<T, VEC>(r.go, a.go + ih, sl.valid);
    load4<T, VEC>(r.o, a.out + ih, sl.valid);
    r.inv = T(1) / (a.z[i * a.heads + g.h] + T(kGraphAttentionEps));
  }
  __device__ static void edges(const Args& a, const HeadGroup& g, const Slice& sl, const Row& r,
                               int64_t b, int64_t end, Partial<T>& acc) {
    for (int64_t e = b; e < end; ++e) {
      const int64_t j = a.src[e];
      if (!edge_indices_ok(a, g, j)) continue;
      const int64_t eh = e * sl.hd + sl.off;
      T kj[4], vj[4], ee[4], gte[4];
      load4<T, VEC>(kj, a.k + j * sl.hd + sl.off, sl.valid);
      load4<T, VEC>(vj, a.v + j * sl.hd + sl.off, sl.valid);
      if (HAS_E) load4<T, VEC>(ee, a.e + eh, sl.valid);
      if (HAS_GT) load4<T, VEC>(gte, a.gt + eh, sl.valid);
      T t[4], p = T(0);
      const T s = group_sum(edge_products<T, HAS_E>(t, kj, r.q, ee, a.c), g, a.ns);
#pragma unroll
      for (int x = 0; x < 4; ++x) p += r.go[x] * (vj[x] - r.o[x]);
      const T dw = group_sum(p, g, a.ns) * r.inv;
      const T w = dev_exp(clamp_score(s));
      const T ds = clamp_passes(s) ? dw * w : T(0);
      if (g.s == 0) a.dscore[e * a.heads + g.h] = FOLD ? w * r.inv : ds;
      T det[4], dkt[4];
#pragma unroll
      for (int x = 0; x < 4; ++x) {
        const T dt = HAS_GT ? ds + gte[x] : ds;
        const T ed = HAS_E ? ee[x] : T(1);
        acc.v[0][x] += dt * kj[x] * a.c * ed;
        det[x] = dt * kj[x] * r.q[x] * a.c;
        dkt[x] = dt * r.q[x] * a.c * ed;
      }
      if (HAS_E) store4<T, VEC>(a.de + eh, det, sl.valid);
      if (FOLD) store4<T, VEC>(a.dkc + eh, dkt, sl.valid);
    }
  }
  __device__ static void finish(const Args& a, const HeadGroup&, const Slice& sl, int64_t i,
                                const Row&, const Partial<T>& acc) {
    store4<T, VEC>(a.dq + i * sl.hd + sl.off, acc.v[0], sl.valid);
  }
};

// Backward pass 2, per source j over its CSC edges (out_edge gives the CSR edge id):
// accumulates dL_dK_j and dL_dV_j (with FOLD from pass 1's per-edge terms, adding them in the
// same order as the unfolded sum); finish writes them (overwritten).
template <typename T, bool VEC, bool HAS_E, bool HAS_GT>
struct BackwardSrcPass : SumPartials<T> {
  using Scalar = T;
  using Args = BwdArgs<T>;
  static constexpr bool kReduces = true;
  struct Row {};
  __device__ static const int32_t* ptr(const Args& a) { return a.out_ptr; }
  __device__ static void load_row(const Args&, const HeadGroup&, const Slice&, int64_t, Row&) {}
  __device__ static void edges(const Args& a, const HeadGroup& g, const Slice& sl, const Row&,
                               int64_t b, int64_t end, Partial<T>& acc) {
    for (int64_t p = b; p < end; ++p) {
      const int64_t e = a.out_edge[p], i = a.out_dst[p];
      if (!edge_indices_ok(a, g, i, e)) continue;
      const int64_t eh = e * sl.hd + sl.off, ih = i * sl.hd + sl.off;
      T gi[4];
      load4<T, VEC>(gi, a.go + ih, sl.valid);
      if constexpr (kFoldKeyGrad<HAS_E, HAS_GT>) {
        T dkt[4];
        load4<T, VEC>(dkt, a.dkc + eh, sl.valid);
        const T wn = a.dscore[e * a.heads + g.h];
#pragma unroll
        for (int x = 0; x < 4; ++x) {
          acc.v[0][x] += dkt[x];
          acc.v[1][x] += wn * gi[x];
        }
      } else {
        T qi[4], ee[4], gte[4];
        load4<T, VEC>(qi, a.q + ih, sl.valid);
        if (HAS_E) load4<T, VEC>(ee, a.e + eh, sl.valid);
        if (HAS_GT) load4<T, VEC>(gte, a.gt + eh, sl.valid);
        const T ds = a.dscore[e * a.heads + g.h];
        const T wn = dev_exp(clamp_score(a.score[e * a.heads + g.h])) /
                     (a.z[i * a.heads + g.h] + T(kGraphAttentionEps));
#pragma unroll
        for (int x = 0; x < 4; ++x) {
          const T dt = HAS_GT ? ds + gte[x] : ds;
          const T ed = HAS_E ? ee[x] : T(1);
          acc.v[0][x] += dt * qi[x] * a.c * ed;
          acc.v[1][x] += wn * gi[x];
        }
      }
    }
  }
  __device__ static void finish(const Args& a, const HeadGroup&, const Slice& sl, int64_t j,
                                const Row&, const Partial<T>& acc) {
    store4<T, VEC>(a.dk + j * sl.hd + sl.off, acc.v[0], sl.valid);
    store4<T, VEC>(a.dv + j * sl.hd + sl.off, acc.v[1], sl.valid);
  }
};

template <typename T>
bool all_aligned(std::initializer_list<const void*> ptrs) {
  for (const void* p : ptrs) {
    if (p != nullptr && !aligned16(p)) return false;
  }
  return true;
}

template <typename T>
T* ptr_or_null(const Tensor& t) {
  return t.defined() && t.numel() > 0 ? t.data<T>() : nullptr;
}

template <typename T>
void forward_typed(Tensor& out, Tensor& edge_out, GraphAttentionContext& ctx,
                   const CsrGraphView& g, const Tensor& q, const Tensor& k, const Tensor& v,
                   const Tensor& e_proj) {
  FwdArgs<T> a{};
  a.out = out.data<T>();
  a.edge_out = ptr_or_null<T>(edge_out);
  a.score = ptr_or_null<T>(ctx.score);
  a.z = ctx.z.data<T>();
  a.in_ptr = g.in_ptr.data<int32_t>();
  a.src = ptr_or_null<int32_t>(g.src);
  a.q = q.data<T>();
  a.k = k.data<T>();
  a.v = v.data<T>();
  a.e = ptr_or_null<T>(e_proj);
  static_cast<RowPassShape&>(a) = row_pass_shape(g.num_nodes, g.num_edges, q.size(1), q.size(2));
  a.c = T(1) / sqrt(static_cast<T>(a.dim));
  const bool vec = a.dim % 4 == 0 && all_aligned<T>({a.out, a.edge_out, a.q, a.k, a.v, a.e});
  const bool has_e = e_proj.defined(), write_edge = a.edge_out != nullptr;
  with_flag(vec, [&](auto vec_c) {
    with_flag(has_e, [&](auto e_c) {
      with_flag(write_edge, [&](auto w_c) {
        constexpr bool V = decltype(vec_c)::value, HE = decltype(e_c)::value,
                       WE = decltype(w_c)::value;
        run_pass<ForwardPass<T, V, HE, WE>>(a, g.max_in_degree, q.device());
      });
    });
  });
}

template <typename T>
void backward_typed(Tensor& dL_dq, Tensor& dL_dk, Tensor& dL_dv, Tensor& dL_de,
                    const Tensor& dL_dout, const Tensor& dL_dedge_out, const CsrGraphView& g,
                    const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& e_proj,
                    const Tensor& out, const GraphAttentionContext& ctx) {
  BwdArgs<T> a{};
  a.dq = dL_dq.data<T>();
  a.dk = dL_dk.data<T>();
  a.dv = dL_dv.data<T>();
  a.de = ptr_or_null<T>(dL_de);
  a.dscore = ptr_or_null<T>(ctx.dscore);
  a.go = dL_dout.data<T>();
  a.gt = ptr_or_null<T>(dL_dedge_out);
  a.out = out.data<T>();
  a.score = ptr_or_null<T>(ctx.score);
  a.z = ctx.z.data<T>();
  a.in_ptr = g.in_ptr.data<int32_t>();
  a.src = ptr_or_null<int32_t>(g.src);
  a.out_ptr = g.out_ptr.data<int32_t>();
  a.out_edge = ptr_or_null<int32_t>(g.out_edge);
  a.out_dst = ptr_or_null<int32_t>(g.out_dst);
  a.q = q.data<T>();
  a.k = k.data<T>();
  a.v = v.data<T>();
  a.e = ptr_or_null<T>(e_proj);
  static_cast<RowPassShape&>(a) = row_pass_shape(g.num_nodes, g.num_edges, q.size(1), q.size(2));
  a.c = T(1) / sqrt(static_cast<T>(a.dim));
  const bool has_e = e_proj.defined(), has_gt = a.gt != nullptr;
  Tensor key_terms;  // [E, H, D] workspace of the folded backward
  if (has_e && has_gt) {
    key_terms = Tensor::empty(Shape{g.num_edges, a.heads, a.dim}, dtype_of<T>(), q.device());
    a.dkc = ptr_or_null<T>(key_terms);
  }
  const bool vec = a.dim % 4 == 0 && all_aligned<T>({a.dq, a.dk, a.dv, a.de, a.go, a.gt, a.out,
                                                     a.q, a.k, a.v, a.e, a.dkc});
  with_flag(vec, [&](auto vec_c) {
    with_flag(has_e, [&](auto e_c) {
      with_flag(has_gt, [&](auto gt_c) {
        constexpr bool V = decltype(vec_c)::value, HE = decltype(e_c)::value,
                       HG = decltype(gt_c)::value;
        run_pass<BackwardDstPass<T, V, HE, HG>>(a, g.max_in_degree, q.device());
        run_pass<BackwardSrcPass<T, V, HE, HG>>(a, g.max_out_degree, q.device());
      });
    });
  });
}

}  // namespace

void graph_attention_forward(Tensor& out, Tensor& edge_out, GraphAttentionContext& ctx,
                             const CsrGraphView& g, const Tensor& q, const Tensor& k,
                             const Tensor& v, const Tensor& e_proj) {
  if (g.num_nodes == 0) return;
  LAPIS_DISPATCH_FLOAT(q.dtype(), "graph_attention_forward", [&] {
    forward_typed<scalar_t>(out, edge_out, ctx, g, q, k, v, e_proj);
  });
}

void graph_attention_backward(Tensor& dL_dq, Tensor& dL_dk, Tensor& dL_dv, Tensor& dL_de,
                              const Tensor& dL_dout, const Tensor& dL_dedge_out,
                              const CsrGraphView& g, const Tensor& q, const Tensor& k,
                              const Tensor& v, const Tensor& e_proj, const Tensor& out,
                              const GraphAttentionContext& ctx) {
  if (g.num_nodes == 0) return;
  LAPIS_DISPATCH_FLOAT(q.dtype(), "graph_attention_backward", [&] {
    backward_typed<scalar_t>(dL_dq, dL_dk, dL_dv, dL_de, dL_dout, dL_dedge_out, g, q, k, v,
                             e_proj, out, ctx);
  });
}

}  // namespace cuda
}  // namespace lapis
