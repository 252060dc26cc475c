// Fused graph attention on CUDA (kernels/graph_attention.h). One head group of ceil(D/4) lanes
// per (destination row, head) (kernels/cuda/graph_rows.cuh): the forward reads each incoming
// edge's K_j, E_e and V_j slices once, writes the edge output, and accumulates w V_j and z in
// registers in CSR order, so the whole layer is one pass over the edges. No max subtraction is
// needed (scores are clamped to [-5, 5]), so there is no second pass.
// The backward is two passes, neither with atomics: (1) per destination row over the CSR:
// dL_dscore, dL_dQ, dL_dE; (2) per source row over the CSC: dL_dK, dL_dV. Every sum runs in a
// fixed order, so two runs give identical bits.
// Load balance: rows are independent work items, so a group walks its row's edges alone; rows
// longer than kHeavyRowEdges are split into pieces reduced by separate groups and combined in a
// fixed order (see run_pass), unless the graph view says no row is that long.
#include "kernels/cuda/graph_attention_cuda.h"

#include "core/cuda/cuda_check.h"
#include "kernels/cuda/graph_rows.cuh"
#include "kernels/cuda/overlapped_launch.cuh"

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

// Rows (destinations in the CSR passes, sources in the CSC pass) with more than kHeavyRowEdges
// edges are not walked by one head group: their edges are cut at the multiples of
// kHeavyRowEdges into pieces, each piece is reduced by its own group (the window kernel) into a
// partial sum, and a combine kernel adds a row's partials in window order, so the result is
// still deterministic. A window of kHeavyRowEdges positions holds pieces of at most two heavy
// rows (a heavy row is longer than the window): slot 0 for the row containing the window's first
// position, slot 1 for the row containing its last. 128 edges bound the serial work of one group
// to ~128 dependent gather rounds; the power-law benchmark's hub (~329k edges) becomes ~2.6k
// independent pieces.
constexpr int64_t kHeavyRowEdges = 128;

// What one lane accumulates over a run of edges.
template <typename T>
struct Partial {
  T v[2][4];  // up to two 4-value slices (forward: sum w V; dst pass: dQ; src pass: dK, dV)
  T s;        // one scalar, the same on every lane of the group (forward: z)

  __device__ void zero() {
#pragma unroll
    for (int x = 0; x < 4; ++x) v[0][x] = v[1][x] = T(0);
    s = T(0);
  }
  __device__ void add(const Partial& o) {
#pragma unroll
    for (int x = 0; x < 4; ++x) {
      v[0][x] += o.v[0][x];
      v[1][x] += o.v[1][x];
    }
    s += o.s;
  }
};

// The lane's slice of a [rows, H, D] row: hd = H*D, its 4 values start at off, valid of them.
struct Slice {
  int64_t hd;
  int off, valid;
};

template <class A>
__device__ inline Slice slice_of(const A& a, const HeadGroup& g) {
  Slice sl;
  sl.hd = static_cast<int64_t>(a.heads) * a.dim;
  sl.off = g.h * a.dim + g.s * kSliceWidth;
  sl.valid = min(kSliceWidth, a.dim - g.s * kSliceWidth);
  return sl;
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

// Forward, per destination i over its CSR edges: writes edge_out and score, accumulates w V_j and
// z; finish writes z and out = sum w V_j / (z + eps).
template <typename T, bool VEC, bool HAS_E, bool WRITE_EDGE>
struct ForwardPass {
  using Scalar = T;
  using Args = FwdArgs<T>;
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
      if (j < 0 || j >= a.n) {
        if (g.s == 0) report_device_error(a.error_flag, kIndexOutOfRange);
        continue;
      }
      T kj[4], vj[4], ee[4];
      load4<T, VEC>(kj, a.k + j * sl.hd + sl.off, sl.valid);
      load4<T, VEC>(vj, a.v + j * sl.hd + sl.off, sl.valid);
      if (HAS_E) load4<T, VEC>(ee, a.e + e * sl.hd + sl.off, sl.valid);
      T t[4], p = T(0);
#pragma unroll
      for (int x = 0; x < 4; ++x) {
        t[x] = kj[x] * r.q[x] * a.c;
        if (HAS_E) t[x] *= ee[x];
        p += t[x];
      }
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

// Backward pass 1, per destination i over its CSR edges: writes dL_dscore and dL_dE per edge,
// accumulates dL_dQ_i; finish writes dL_dQ (overwritten).
template <typename T, bool VEC, bool HAS_E, bool HAS_GT>
struct BackwardDstPass {
  using Scalar = T;
  using Args = BwdArgs<T>;
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
      if (j < 0 || j >= a.n) {
        if (g.s == 0) report_device_error(a.error_flag, kIndexOutOfRange);
        continue;
      }
      const int64_t eh = e * sl.hd + sl.off;
      T kj[4], vj[4], ee[4], gte[4];
      load4<T, VEC>(kj, a.k + j * sl.hd + sl.off, sl.valid);
      load4<T, VEC>(vj, a.v + j * sl.hd + sl.off, sl.valid);
      if (HAS_E) load4<T, VEC>(ee, a.e + eh, sl.valid);
      if (HAS_GT) load4<T, VEC>(gte, a.gt + eh, sl.valid);
      T p = T(0);
#pragma unroll
      for (int x = 0; x < 4; ++x) p += r.go[x] * (vj[x] - r.o[x]);
      const T dw = group_sum(p, g, a.ns) * r.inv;
      const T s = a.score[e * a.heads + g.h];
      const T ds = clamp_passes(s) ? dw * dev_exp(clamp_score(s)) : T(0);
      if (g.s == 0) a.dscore[e * a.heads + g.h] = ds;
      T det[4];
#pragma unroll
      for (int x = 0; x < 4; ++x) {
        const T dt = HAS_GT ? ds + gte[x] : ds;
        const T ed = HAS_E ? ee[x] : T(1);
        acc.v[0][x] += dt * kj[x] * a.c * ed;
        det[x] = dt * kj[x] * r.q[x] * a.c;
      }
      if (HAS_E) store4<T, VEC>(a.de + eh, det, sl.valid);
    }
  }
  __device__ static void finish(const Args& a, const HeadGroup&, const Slice& sl, int64_t i,
                                const Row&, const Partial<T>& acc) {
    store4<T, VEC>(a.dq + i * sl.hd + sl.off, acc.v[0], sl.valid);
  }
};

// Backward pass 2, per source j over its CSC edges (out_edge gives the CSR edge id):
// accumulates dL_dK_j and dL_dV_j; finish writes them (overwritten).
template <typename T, bool VEC, bool HAS_E, bool HAS_GT>
struct BackwardSrcPass {
  using Scalar = T;
  using Args = BwdArgs<T>;
  struct Row {};
  __device__ static const int32_t* ptr(const Args& a) { return a.out_ptr; }
  __device__ static void load_row(const Args&, const HeadGroup&, const Slice&, int64_t, Row&) {}
  __device__ static void edges(const Args& a, const HeadGroup& g, const Slice& sl, const Row&,
                               int64_t b, int64_t end, Partial<T>& acc) {
    for (int64_t p = b; p < end; ++p) {
      const int64_t e = a.out_edge[p], i = a.out_dst[p];
      if (e < 0 || e >= a.num_edges || i < 0 || i >= a.n) {
        if (g.s == 0) report_device_error(a.error_flag, kIndexOutOfRange);
        continue;
      }
      const int64_t eh = e * sl.hd + sl.off, ih = i * sl.hd + sl.off;
      T qi[4], gi[4], ee[4], gte[4];
      load4<T, VEC>(qi, a.q + ih, sl.valid);
      load4<T, VEC>(gi, a.go + ih, sl.valid);
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
  __device__ static void finish(const Args& a, const HeadGroup&, const Slice& sl, int64_t j,
                                const Row&, const Partial<T>& acc) {
    store4<T, VEC>(a.dk + j * sl.hd + sl.off, acc.v[0], sl.valid);
    store4<T, VEC>(a.dv + j * sl.hd + sl.off, acc.v[1], sl.valid);
  }
};

// One group per (row, head) walks the whole row. SPLIT: rows longer than kHeavyRowEdges are
// left to heavy_window_kernel + heavy_combine_kernel.
template <class P, bool SPLIT>
__global__ void rows_kernel(const typename P::Args a) {
  wait_for_previous_kernel();
  using T = typename P::Scalar;
  HeadGroup g;
  if (!head_group(a.n, a.heads, a.ns, g)) return;
  const int32_t* ptr = P::ptr(a);
  const int64_t b = ptr[g.row], e = ptr[g.row + 1];
  const bool valid = segment_valid(b, e, a.num_edges);
  if (!valid && g.s == 0) report_device_error(a.error_flag, kBadSegmentPointers);
  if (SPLIT && valid && e - b > kHeavyRowEdges) return;
  const Slice sl = slice_of(a, g);
  typename P::Row r;
  P::load_row(a, g, sl, g.row, r);
  Partial<T> acc;
  acc.zero();
  if (valid) P::edges(a, g, sl, r, b, e, acc);
  P::finish(a, g, sl, g.row, r, acc);
}

// The row owning position pos of a pointer array: the largest r in [0, n) with ptr[r] <= pos
// (empty rows own nothing, so they are never the answer for a well-formed array).
__device__ inline int64_t row_of_position(const int32_t* ptr, int64_t n, int64_t pos) {
  int64_t lo = 0, hi = n - 1;
  while (lo < hi) {
    const int64_t mid = (lo + hi + 1) >> 1;
    if (ptr[mid] <= pos) lo = mid; else hi = mid - 1;
  }
  return lo;
}

// One group per (window, head): the pieces of heavy rows inside window [w0, w1) into
// part[window, slot, head, lane].
template <class P>
__global__ void heavy_window_kernel(const typename P::Args a, Partial<typename P::Scalar>* part,
                                    int64_t windows) {
  wait_for_previous_kernel();
  using T = typename P::Scalar;
  HeadGroup g;
  if (!head_group(windows, a.heads, a.ns, g)) return;
  const int32_t* ptr = P::ptr(a);
  const int64_t w0 = g.row * kHeavyRowEdges;
  const int64_t w1 = min(w0 + kHeavyRowEdges, a.num_edges);
  const Slice sl = slice_of(a, g);
  int64_t prev = -1;
  for (int slot = 0; slot < 2; ++slot) {
    const int64_t r = row_of_position(ptr, a.n, slot == 0 ? w0 : w1 - 1);
    if (r == prev) break;
    prev = r;
    const int64_t b = ptr[r], e = ptr[r + 1];
    if (!segment_valid(b, e, a.num_edges) || e - b <= kHeavyRowEdges) continue;
    typename P::Row row;
    P::load_row(a, g, sl, r, row);
    Partial<T> acc;
    acc.zero();
    P::edges(a, g, sl, row, max(b, w0), min(e, w1), acc);
    part[((g.row * 2 + slot) * a.heads + g.h) * a.ns + g.s] = acc;
  }
}

// One group per (row, head); heavy rows only: adds the row's pieces in window order, finishes.
template <class P>
__global__ void heavy_combine_kernel(const typename P::Args a,
                                     const Partial<typename P::Scalar>* part) {
  wait_for_previous_kernel();
  using T = typename P::Scalar;
  HeadGroup g;
  if (!head_group(a.n, a.heads, a.ns, g)) return;
  const int32_t* ptr = P::ptr(a);
  const int64_t b = ptr[g.row], e = ptr[g.row + 1];
  if (!segment_valid(b, e, a.num_edges) || e - b <= kHeavyRowEdges) return;
  Partial<T> acc;
  acc.zero();
  for (int64_t c = b / kHeavyRowEdges; c <= (e - 1) / kHeavyRowEdges; ++c) {
    const int slot = c * kHeavyRowEdges >= b ? 0 : 1;  // only the first window can start before b
    acc.add(part[((c * 2 + slot) * a.heads + g.h) * a.ns + g.s]);
  }
  const Slice sl = slice_of(a, g);
  typename P::Row r;
  P::load_row(a, g, sl, g.row, r);
  P::finish(a, g, sl, g.row, r, acc);
}

// Runs pass P over all rows. max_degree: the largest row length if known, else -1; rows can only
// be split when some row may exceed kHeavyRowEdges (a wrong bound costs speed, never results: the
// unsplit kernel walks every row whole).
template <class P>
void run_pass(const typename P::Args& a, int64_t max_degree, Device device) {
  using T = typename P::Scalar;
  const unsigned blocks = head_group_blocks(a.n, a.heads, a.ns);
  const bool split =
      a.num_edges > kHeavyRowEdges && (max_degree < 0 || max_degree > kHeavyRowEdges);
  if (!split) {
    launch_overlapped(rows_kernel<P, false>, dim3(blocks), dim3(kGraphBlock), a);
    return;
  }
  launch_overlapped(rows_kernel<P, true>, dim3(blocks), dim3(kGraphBlock), a);
  const int64_t windows = (a.num_edges + kHeavyRowEdges - 1) / kHeavyRowEdges;
  static_assert(sizeof(Partial<T>) == 9 * sizeof(T), "Partial is packed");
  // Slots of rows that are not heavy are never read, so the workspace is not cleared.
  const int64_t part_values = windows * 2 * a.heads * a.ns * 9;
  Tensor part = Tensor::empty(Shape{part_values}, dtype_of<T>(), device);
  auto* pp = reinterpret_cast<Partial<T>*>(part.data<T>());
  launch_overlapped(heavy_window_kernel<P>, dim3(head_group_blocks(windows, a.heads, a.ns)),
                    dim3(kGraphBlock), a, pp, windows);
  launch_overlapped(heavy_combine_kernel<P>, dim3(blocks), dim3(kGraphBlock), a,
                    static_cast<const Partial<T>*>(pp));
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
