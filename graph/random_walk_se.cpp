#include "graph/random_walk_se.h"

#include <Eigen/Dense>

#include "graph/laplacian_pe.h"

namespace lapis {
namespace graph {
namespace {

Tensor rwse_impl(const SymmetricAdjacency& a, int K) {
  const char* op = "random_walk_se";
  LAPIS_CHECK(K >= 1, op, "K must be >= 1, got ", K);
  const int64_t N = a.num_nodes;
  Tensor out = Tensor::zeros({N, K}, Dtype::F32);
  float* o = out.data<float>();
  auto deg = [&](int64_t i) { return a.ptr[i + 1] - a.ptr[i]; };
  if (N <= 64) {
    Eigen::MatrixXd P = Eigen::MatrixXd::Zero(N, N);
    for (int64_t i = 0; i < N; ++i) {
      for (int64_t p = a.ptr[i]; p < a.ptr[i + 1]; ++p) P(i, a.col[p]) = 1.0 / deg(i);
    }
    Eigen::MatrixXd M = P;
    for (int t = 0; t < K; ++t) {
      if (t > 0) M = M * P;
      for (int64_t i = 0; i < N; ++i) o[i * K + t] = static_cast<float>(M(i, i));
    }
    return out;
  }
  std::vector<double> x(N, 0.0), y(N, 0.0);
  std::vector<char> in_y(N, 0);
  std::vector<int32_t> active, next;
  for (int64_t s = 0; s < N; ++s) {
    if (deg(s) == 0) continue;
    active.assign(1, static_cast<int32_t>(s));
    x[s] = 1.0;
    for (int t = 0; t < K; ++t) {
      next.clear();
      for (int32_t u : active) {  // push mass of u to its neighbours
        const double m = x[u] / deg(u);
        for (int64_t p = a.ptr[u]; p < a.ptr[u + 1]; ++p) {
          const int32_t v = a.col[p];
          if (!in_y[v]) { in_y[v] = 1; next.push_back(v); }
          y[v] += m;
        }
      }
      for (int32_t u : active) x[u] = 0.0;
      for (int32_t v : next) { x[v] = y[v]; y[v] = 0.0; in_y[v] = 0; }
      o[s * K + t] = static_cast<float>(x[s]);
      active.swap(next);
    }
    for (int32_t u : active) x[u] = 0.0;
  }
  return out;
}

}  // namespace

Tensor random_walk_se(const Graph& g, int K) { return rwse_impl(symmetric_adjacency(g), K); }

Tensor random_walk_se(int64_t num_nodes, const std::vector<int32_t>& src,
                      const std::vector<int32_t>& dst, int K) {
  return rwse_impl(symmetric_adjacency(num_nodes, src, dst), K);
}

}  // namespace graph
}  // namespace lapis
