// Fused graph attention on CUDA (kernels/graph_attention.h). One head group of ceil(D/4) lanes
// per (destination row, head) (kernels/cuda/graph_rows.cuh): the forward reads each incoming
// edge's K_j, E_e and V_j slices once, writes the edge output, and accumulates w V_j and z in
// registers in CSR order, so the whole layer is one pass over the edges. No max subtraction is
// needed (scores are clamped to [-5, 5]), so there is no second pass.
// The backward is two passes, neither with atomics: (1) per destination row over the CSR:
// dL_dscore, dL_dQ, dL_dE; (2) per source row over the CSC: dL_dK, dL_dV. Every sum runs in a
// fixed order, so two runs give identical bits.
// Load balance: rows are independent work items, so a hub of degree d costs one group d edge
// iterations while the rest of the GPU proceeds; with N*H/16 warps in flight this only matters
// for hubs with a sizeable fraction of all edges (then split rows; not needed by the targets).
#include "kernels/cuda/graph_attention_cuda.h"

#include "core/cuda/cuda_check.h"
#include "kernels/cuda/graph_rows.cuh"

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

template <typename T>
struct FwdArgs {
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
  int64_t n, num_edges;
  int heads, dim, ns;
  T c;
  int* error_flag;
};

template <typename T, bool VEC, bool HAS_E, bool WRITE_EDGE>
__global__ void graph_attention_forward_kernel(const FwdArgs<T> a) {
  HeadGroup g;
  if (!head_group(a.n, a.heads, a.ns, g)) return;
  const int64_t hd = static_cast<int64_t>(a.heads) * a.dim;
  const int off = g.h * a.dim + g.s * kSliceWidth;
  const int valid = min(kSliceWidth, a.dim - g.s * kSliceWidth);
  T qi[4], acc[4] = {T(0), T(0), T(0), T(0)};
  load4<T, VEC>(qi, a.q + g.row * hd + off, valid);
  T zsum = T(0);
  const int64_t e0 = a.in_ptr[g.row], e1 = a.in_ptr[g.row + 1];
  if (!segment_valid(e0, e1, a.num_edges)) {
    if (g.s == 0) report_device_error(a.error_flag, kBadSegmentPointers);
  } else {
    for (int64_t e = e0; e < e1; ++e) {
      const int64_t j = a.src[e];
      if (j < 0 || j >= a.n) {
        if (g.s == 0) report_device_error(a.error_flag, kIndexOutOfRange);
        continue;
      }
      T kj[4], vj[4], ee[4];
      load4<T, VEC>(kj, a.k + j * hd + off, valid);
      load4<T, VEC>(vj, a.v + j * hd + off, valid);
      if (HAS_E) load4<T, VEC>(ee, a.e + e * hd + off, valid);
      T t[4], p = T(0);
#pragma unroll
      for (int x = 0; x < 4; ++x) {
        t[x] = kj[x] * qi[x] * a.c;
        if (HAS_E) t[x] *= ee[x];
        p += t[x];
      }
      if (WRITE_EDGE) store4<T, VEC>(a.edge_out + e * hd + off, t, valid);
      const T s = group_sum(p, g, a.ns);
      if (g.s == 0) a.score[e * a.heads + g.h] = s;
      const T w = dev_exp(clamp_score(s));
      zsum += w;
#pragma unroll
      for (int x = 0; x < 4; ++x) acc[x] += w * vj[x];
    }
  }
  if (g.s == 0) a.z[g.row * a.heads + g.h] = zsum;
  const T denom = zsum + T(kGraphAttentionEps);
#pragma unroll
  for (int x = 0; x < 4; ++x) acc[x] = acc[x] / denom;
  store4<T, VEC>(a.out + g.row * hd + off, acc, valid);
}

template <typename T>
struct BwdArgs {
  T* dq;
  T* dk;
  T* dv;
  T* de;      // nullptr without edge features
  T* dscore;  // [E, H] workspace
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
  int64_t n, num_edges;
  int heads, dim, ns;
  T c;
  int* error_flag;
};

// Pass 1, per (destination row, head): dL_dscore, dL_dQ (overwritten), dL_dE (overwritten).
template <typename T, bool VEC, bool HAS_E, bool HAS_GT>
__global__ void graph_attention_backward_dst_kernel(const BwdArgs<T> a) {
  HeadGroup g;
  if (!head_group(a.n, a.heads, a.ns, g)) return;
  const int64_t hd = static_cast<int64_t>(a.heads) * a.dim;
  const int off = g.h * a.dim + g.s * kSliceWidth;
  const int valid = min(kSliceWidth, a.dim - g.s * kSliceWidth);
  const int64_t ih = g.row * hd + off;
  T qi[4], gi[4], oi[4], acc[4] = {T(0), T(0), T(0), T(0)};
  load4<T, VEC>(qi, a.q + ih, valid);
  load4<T, VEC>(gi, a.go + ih, valid);
  load4<T, VEC>(oi, a.out + ih, valid);
  const T inv = T(1) / (a.z[g.row * a.heads + g.h] + T(kGraphAttentionEps));
  const int64_t e0 = a.in_ptr[g.row], e1 = a.in_ptr[g.row + 1];
  if (!segment_valid(e0, e1, a.num_edges)) {
    if (g.s == 0) report_device_error(a.error_flag, kBadSegmentPointers);
  } else {
    for (int64_t e = e0; e < e1; ++e) {
      const int64_t j = a.src[e];
      if (j < 0 || j >= a.n) {
        if (g.s == 0) report_device_error(a.error_flag, kIndexOutOfRange);
        continue;
      }
      const int64_t eh = e * hd + off;
      T kj[4], vj[4], ee[4], gte[4];
      load4<T, VEC>(kj, a.k + j * hd + off, valid);
      load4<T, VEC>(vj, a.v + j * hd + off, valid);
      if (HAS_E) load4<T, VEC>(ee, a.e + eh, valid);
      if (HAS_GT) load4<T, VEC>(gte, a.gt + eh, valid);
      T p = T(0);
#pragma unroll
      for (int x = 0; x < 4; ++x) p += gi[x] * (vj[x] - oi[x]);
      const T dw = group_sum(p, g, a.ns) * inv;
      const T s = a.score[e * a.heads + g.h];
      const T ds = clamp_passes(s) ? dw * dev_exp(clamp_score(s)) : T(0);
      if (g.s == 0) a.dscore[e * a.heads + g.h] = ds;
      T det[4];
#pragma unroll
      for (int x = 0; x < 4; ++x) {
        const T dt = HAS_GT ? ds + gte[x] : ds;
        const T ed = HAS_E ? ee[x] : T(1);
        acc[x] += dt * kj[x] * a.c * ed;
        det[x] = dt * kj[x] * qi[x] * a.c;
      }
      if (HAS_E) store4<T, VEC>(a.de + eh, det, valid);
    }
  }
  store4<T, VEC>(a.dq + ih, acc, valid);
}

// Pass 2, per (source row, head) over the CSC: dL_dK, dL_dV (overwritten).
template <typename T, bool VEC, bool HAS_E, bool HAS_GT>
__global__ void graph_attention_backward_src_kernel(const BwdArgs<T> a) {
  HeadGroup g;
  if (!head_group(a.n, a.heads, a.ns, g)) return;
  const int64_t hd = static_cast<int64_t>(a.heads) * a.dim;
  const int off = g.h * a.dim + g.s * kSliceWidth;
  const int valid = min(kSliceWidth, a.dim - g.s * kSliceWidth);
  T dk[4] = {T(0), T(0), T(0), T(0)}, dv[4] = {T(0), T(0), T(0), T(0)};
  const int64_t p0 = a.out_ptr[g.row], p1 = a.out_ptr[g.row + 1];
  if (!segment_valid(p0, p1, a.num_edges)) {
    if (g.s == 0) report_device_error(a.error_flag, kBadSegmentPointers);
  } else {
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t e = a.out_edge[p], i = a.out_dst[p];
      if (e < 0 || e >= a.num_edges || i < 0 || i >= a.n) {
        if (g.s == 0) report_device_error(a.error_flag, kIndexOutOfRange);
        continue;
      }
      const int64_t eh = e * hd + off, ih = i * hd + off;
      T qi[4], gi[4], ee[4], gte[4];
      load4<T, VEC>(qi, a.q + ih, valid);
      load4<T, VEC>(gi, a.go + ih, valid);
      if (HAS_E) load4<T, VEC>(ee, a.e + eh, valid);
      if (HAS_GT) load4<T, VEC>(gte, a.gt + eh, valid);
      const T ds = a.dscore[e * a.heads + g.h];
      const T wn = dev_exp(clamp_score(a.score[e * a.heads + g.h])) /
                   (a.z[i * a.heads + g.h] + T(kGraphAttentionEps));
#pragma unroll
      for (int x = 0; x < 4; ++x) {
        const T dt = HAS_GT ? ds + gte[x] : ds;
        const T ed = HAS_E ? ee[x] : T(1);
        dk[x] += dt * qi[x] * a.c * ed;
        dv[x] += wn * gi[x];
      }
    }
  }
  const int64_t jh = g.row * hd + off;
  store4<T, VEC>(a.dk + jh, dk, valid);
  store4<T, VEC>(a.dv + jh, dv, valid);
}

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
  a.n = g.num_nodes;
  a.num_edges = g.num_edges;
  a.heads = static_cast<int>(q.size(1));
  a.dim = static_cast<int>(q.size(2));
  a.ns = head_group_lanes(a.dim);
  a.c = T(1) / sqrt(static_cast<T>(a.dim));
  a.error_flag = device_error_flag();
  const bool vec = a.dim % 4 == 0 && all_aligned<T>({a.out, a.edge_out, a.q, a.k, a.v, a.e});
  const bool has_e = e_proj.defined(), write_edge = a.edge_out != nullptr;
  const unsigned blocks = head_group_blocks(a.n, a.heads, a.ns);
  with_flag(vec, [&](auto vec_c) {
    with_flag(has_e, [&](auto e_c) {
      with_flag(write_edge, [&](auto w_c) {
        graph_attention_forward_kernel<T, decltype(vec_c)::value, decltype(e_c)::value,
                                       decltype(w_c)::value>
            <<<blocks, kGraphBlock, 0, stream()>>>(a);
      });
    });
  });
  LAPIS_CUDA_CHECK(cudaGetLastError());
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
  a.n = g.num_nodes;
  a.num_edges = g.num_edges;
  a.heads = static_cast<int>(q.size(1));
  a.dim = static_cast<int>(q.size(2));
  a.ns = head_group_lanes(a.dim);
  a.c = T(1) / sqrt(static_cast<T>(a.dim));
  a.error_flag = device_error_flag();
  const bool vec = a.dim % 4 == 0 && all_aligned<T>({a.dq, a.dk, a.dv, a.de, a.go, a.gt, a.out,
                                                     a.q, a.k, a.v, a.e});
  const bool has_e = e_proj.defined(), has_gt = a.gt != nullptr;
  const unsigned blocks = head_group_blocks(a.n, a.heads, a.ns);
  with_flag(vec, [&](auto vec_c) {
    with_flag(has_e, [&](auto e_c) {
      with_flag(has_gt, [&](auto gt_c) {
        constexpr bool V = decltype(vec_c)::value, HE = decltype(e_c)::value,
                       HG = decltype(gt_c)::value;
        graph_attention_backward_dst_kernel<T, V, HE, HG><<<blocks, kGraphBlock, 0, stream()>>>(a);
        LAPIS_CUDA_CHECK(cudaGetLastError());
        graph_attention_backward_src_kernel<T, V, HE, HG><<<blocks, kGraphBlock, 0, stream()>>>(a);
        LAPIS_CUDA_CHECK(cudaGetLastError());
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
