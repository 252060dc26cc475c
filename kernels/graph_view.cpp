#include "kernels/graph_view.h"

#include <algorithm>

namespace lapis {

namespace {

bool is_pointer_array(const Tensor& ptr) {
  return ptr.defined() && ptr.dtype() == Dtype::I32 && ptr.dim() == 1 && ptr.numel() >= 1;
}

}  // namespace

CsrGraphView make_graph_view(const Tensor& in_ptr, const Tensor& src, const Tensor& out_ptr,
                             const Tensor& out_edge, const Tensor& out_dst) {
  CsrGraphView g{in_ptr, src, out_ptr, out_edge, out_dst, 0, 0};
  g.num_nodes = in_ptr.defined() ? in_ptr.numel() - 1 : 0;
  g.num_edges = src.defined() ? src.numel() : 0;
  // Bounds only from well-formed host arrays: a malformed view is reported by the op's checks,
  // with the op's name, not here.
  if (is_pointer_array(in_ptr) && !in_ptr.is_cuda()) g.max_in_degree = max_segment_length(in_ptr);
  if (is_pointer_array(out_ptr) && !out_ptr.is_cuda()) {
    g.max_out_degree = max_segment_length(out_ptr);
  }
  return g;
}

int64_t max_segment_length(const Tensor& ptr) {
  if (!ptr.defined()) return -1;
  LAPIS_CHECK(is_pointer_array(ptr), "max_segment_length",
              "expects an i32 pointer array [N+1], got ", ptr.describe());
  const Tensor host = ptr.is_cuda() ? ptr.to(Device::cpu()) : ptr;
  const int32_t* p = host.data<int32_t>();
  int64_t best = 0;
  for (int64_t i = 0; i + 1 < host.numel(); ++i) {
    best = std::max<int64_t>(best, static_cast<int64_t>(p[i + 1]) - p[i]);
  }
  return best;
}

void set_degree_bounds(CsrGraphView& g, const Tensor& in_ptr, const Tensor& out_ptr) {
  g.max_in_degree = max_segment_length(in_ptr);
  g.max_out_degree = max_segment_length(out_ptr);
}

namespace {

void check_field(const char* op, const char* name, const Tensor& t, int64_t count, Device device) {
  check_defined(op, name, t);
  check_dtype(op, name, t, Dtype::I32);
  check_dim(op, name, t, 1);
  LAPIS_CHECK(t.numel() == count, op, "graph field ", name, " must have ", count,
              " entries, got ", t.describe());
  LAPIS_CHECK(t.device() == device, op, "graph field ", name, " is on ", t.device().to_string(),
              " but the data is on ", device.to_string(), " (", name, " ", t.describe(), ")");
}

// ptr [n + 1]: starts at 0, ends at e, never decreases.
void check_ptr_values(const char* op, const char* name, const Tensor& ptr, int64_t n, int64_t e) {
  const int32_t* p = ptr.data<int32_t>();
  LAPIS_CHECK(p[0] == 0, op, name, "[0] must be 0, got ", p[0]);
  LAPIS_CHECK(p[n] == e, op, name, "[N] must equal E = ", e, ", got ", p[n], " (N = ", n, ")");
  for (int64_t i = 0; i < n; ++i) {
    LAPIS_CHECK(p[i] <= p[i + 1], op, name, " decreases at ", i, ": ", p[i], " > ", p[i + 1]);
  }
}

void check_range(const char* op, const char* name, const Tensor& t, int64_t limit) {
  const int32_t* p = t.data<int32_t>();
  for (int64_t i = 0; i < t.numel(); ++i) {
    LAPIS_CHECK(p[i] >= 0 && p[i] < limit, op, name, "[", i, "] = ", p[i],
                " is out of range [0, ", limit, ")");
  }
}

}  // namespace

void check_graph_view(const char* op, const CsrGraphView& g, Device device, bool need_csc) {
  LAPIS_CHECK(g.num_nodes >= 0 && g.num_edges >= 0 && g.num_nodes <= INT32_MAX &&
                  g.num_edges <= INT32_MAX,
              op, "graph sizes must fit i32, got N = ", g.num_nodes, ", E = ", g.num_edges);
  const int64_t n = g.num_nodes, e = g.num_edges;
  check_field(op, "in_ptr", g.in_ptr, n + 1, device);
  check_field(op, "src", g.src, e, device);
  if (need_csc) {
    check_field(op, "out_ptr", g.out_ptr, n + 1, device);
    check_field(op, "out_edge", g.out_edge, e, device);
    check_field(op, "out_dst", g.out_dst, e, device);
  }
  if (!device.is_cpu()) return;  // CUDA kernels report bad indices on the device
  check_ptr_values(op, "in_ptr", g.in_ptr, n, e);
  check_range(op, "src", g.src, n);
  if (need_csc) {
    check_ptr_values(op, "out_ptr", g.out_ptr, n, e);
    check_range(op, "out_edge", g.out_edge, e);
    check_range(op, "out_dst", g.out_dst, n);
  }
}

}  // namespace lapis
