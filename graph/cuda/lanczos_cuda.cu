#include "graph/cuda/lanczos_cuda.h"

#include <vector>

#include "core/cuda/cuda_check.h"
#include "core/cuda_api.h"
#include "graph/cuda/lanczos_core.h"

namespace lapis {
namespace cuda {
namespace {

// out = alpha x + beta sx + gamma z (z may alias out).
__global__ void lanczos_combine_kernel(int64_t n, const double* x, const double* sx,
                                       const double* z, double* out, double alpha, double beta,
                                       double gamma) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    double r = alpha * x[i] + beta * sx[i];
    if (z != nullptr) r += gamma * z[i];
    out[i] = r;
  }
}

__global__ void lanczos_scale_kernel(int64_t n, const double* x, double s, double* out) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    out[i] = x[i] * s;
  }
}

// Device buffer freed by the caching allocator.
struct Buffer {
  void* p = nullptr;
  explicit Buffer(size_t bytes) : p(bytes ? device_alloc(bytes) : nullptr) {}
  ~Buffer() { if (p) device_free(p); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  double* d() const { return static_cast<double*>(p); }
};

constexpr int kBlock = 256;

class CudaBackend {
 public:
  CudaBackend(int64_t n, const int64_t* ptr, const int32_t* col, const double* val, int m,
              int degree, double a)
      : n_(n), m_(m), degree_(degree), a_(a),
        nnz_(ptr[n]),
        V_(sizeof(double) * static_cast<size_t>(n) * (m + 1)), w_(sizeof(double) * n),
        t0_(sizeof(double) * n), t1_(sizeof(double) * n), sx_(sizeof(double) * n),
        h_(sizeof(double) * (m + 1)), Y_(sizeof(double) * static_cast<size_t>(m) * m),
        rot_(sizeof(double) * static_cast<size_t>(n) * m),
        dptr_(sizeof(int32_t) * (n + 1)), dcol_(sizeof(int32_t) * (nnz_ > 0 ? nnz_ : 1)),
        dval_(sizeof(double) * (nnz_ > 0 ? nnz_ : 1)) {
    LAPIS_CHECK(nnz_ < 2147483647LL && n < 2147483647LL, "lanczos_cuda",
                "graph too large for 32-bit cuSPARSE indices (n ", n, ", nnz ", nnz_, ")");
    std::vector<int32_t> p32(ptr, ptr + n + 1);
    copy_host_to_device(dptr_.p, p32.data(), sizeof(int32_t) * (n + 1));
    if (nnz_ > 0) {
      copy_host_to_device(dcol_.p, col, sizeof(int32_t) * nnz_);
      copy_host_to_device(dval_.p, val, sizeof(double) * nnz_);
    }
    LAPIS_CUSPARSE_CHECK(cusparseCreateCsr(&mat_, n, n, nnz_, dptr_.p, dcol_.p, dval_.p,
                                           CUSPARSE_INDEX_32I, CUSPARSE_INDEX_32I,
                                           CUSPARSE_INDEX_BASE_ZERO, CUDA_R_64F));
    LAPIS_CUSPARSE_CHECK(cusparseCreateDnVec(&vx_, n, w_.p, CUDA_R_64F));
    LAPIS_CUSPARSE_CHECK(cusparseCreateDnVec(&vy_, n, sx_.p, CUDA_R_64F));
    const double one = 1.0, zero = 0.0;
    size_t bytes = 0;
    LAPIS_CUSPARSE_CHECK(cusparseSpMV_bufferSize(cusparse_handle(),
                                                 CUSPARSE_OPERATION_NON_TRANSPOSE, &one, mat_,
                                                 vx_, &zero, vy_, CUDA_R_64F,
                                                 CUSPARSE_SPMV_CSR_ALG2, &bytes));
    spmv_buf_ = bytes ? device_alloc(bytes) : nullptr;
  }
  ~CudaBackend() {
    cusparseDestroySpMat(mat_);
    cusparseDestroyDnVec(vx_);
    cusparseDestroyDnVec(vy_);
    if (spmv_buf_) device_free(spmv_buf_);
  }
  double* col(int j) const { return V_.d() + static_cast<size_t>(j) * n_; }
  int64_t spmvs = 0;

  void start(int j, const std::vector<double>& x) {
    copy_host_to_device(col(j), x.data(), sizeof(double) * n_);
  }
  void load(int j) { copy_device_to_device(w_.p, col(j), sizeof(double) * n_); }
  void matvec(int j) {
    const double* x = col(j);
    if (degree_ == 0) {  // w = x + S x
      apply(x, w_.d(), nullptr, 1.0, 1.0, 0.0);
      return;
    }
    const double c0 = (a_ + 2.0 - 2.0) / (2.0 - a_), c1 = 2.0 / (2.0 - a_);
    double* prev = t0_.d();
    double* cur = t1_.d();
    copy_device_to_device(prev, x, sizeof(double) * n_);
    apply(x, cur, nullptr, c0, c1, 0.0);
    for (int k = 2; k <= degree_; ++k) {
      apply(cur, prev, prev, 2.0 * c0, 2.0 * c1, -1.0);
      std::swap(prev, cur);
    }
    copy_device_to_device(w_.p, cur, sizeof(double) * n_);
  }
  void project(int cols, double* h) {
    const double one = 1.0, zero = 0.0;
    LAPIS_CUBLAS_CHECK(cublasDgemv(cublas_handle(), CUBLAS_OP_T, static_cast<int>(n_), cols,
                                   &one, V_.d(), static_cast<int>(n_), w_.d(), 1, &zero, h_.d(),
                                   1));
    copy_device_to_host(h, h_.p, sizeof(double) * cols);
  }
  void subtract(int cols, const double* h) {
    copy_host_to_device(h_.p, h, sizeof(double) * cols);
    const double minus = -1.0, one = 1.0;
    LAPIS_CUBLAS_CHECK(cublasDgemv(cublas_handle(), CUBLAS_OP_N, static_cast<int>(n_), cols,
                                   &minus, V_.d(), static_cast<int>(n_), h_.d(), 1, &one, w_.d(),
                                   1));
  }
  double norm() {
    double r = 0.0;
    LAPIS_CUBLAS_CHECK(cublasDnrm2(cublas_handle(), static_cast<int>(n_), w_.d(), 1, &r));
    synchronize();
    return r;
  }
  void store(int j, double scale) {
    LAPIS_LAUNCH(lanczos_scale_kernel, n_, kBlock, n_, w_.d(), scale, col(j));
  }
  void copy(int from, int to) {
    copy_device_to_device(col(to), col(from), sizeof(double) * n_);
  }
  void rotate(int m, const double* Y, int p) {
    copy_host_to_device(Y_.p, Y, sizeof(double) * static_cast<size_t>(m) * p);
    const double one = 1.0, zero = 0.0;
    LAPIS_CUBLAS_CHECK(cublasDgemm(cublas_handle(), CUBLAS_OP_N, CUBLAS_OP_N,
                                   static_cast<int>(n_), p, m, &one, V_.d(),
                                   static_cast<int>(n_), Y_.d(), m, &zero, rot_.d(),
                                   static_cast<int>(n_)));
    copy_device_to_device(V_.p, rot_.p, sizeof(double) * static_cast<size_t>(n_) * p);
  }

 private:
  // out = alpha x + beta S x + gamma z.
  void apply(const double* x, double* out, const double* z, double alpha, double beta,
             double gamma) {
    ++spmvs;
    const double one = 1.0, zero = 0.0;
    LAPIS_CUSPARSE_CHECK(cusparseDnVecSetValues(vx_, const_cast<double*>(x)));
    LAPIS_CUSPARSE_CHECK(cusparseSpMV(cusparse_handle(), CUSPARSE_OPERATION_NON_TRANSPOSE, &one,
                                      mat_, vx_, &zero, vy_, CUDA_R_64F, CUSPARSE_SPMV_CSR_ALG2,
                                      spmv_buf_));
    LAPIS_LAUNCH(lanczos_combine_kernel, n_, kBlock, n_, x, sx_.d(), z, out, alpha, beta, gamma);
  }

  int64_t n_;
  int m_, degree_;
  double a_;
  int64_t nnz_;
  Buffer V_, w_, t0_, t1_, sx_, h_, Y_, rot_, dptr_, dcol_, dval_;
  cusparseSpMatDescr_t mat_ = nullptr;
  cusparseDnVecDescr_t vx_ = nullptr, vy_ = nullptr;
  void* spmv_buf_ = nullptr;
};

}  // namespace

bool lanczos_laplacian_largest(int64_t n, const int64_t* ptr, const int32_t* col,
                               const double* val, int nev, int ncv, int degree, double a,
                               double tol, int max_restarts, double* values, double* vectors,
                               int64_t* spmvs) {
  CudaBackend be(n, ptr, col, val, ncv, degree, a);
  graph::detail::KrylovSchurOptions o;
  o.nev = nev;
  o.ncv = ncv;
  o.tol = tol;
  o.max_restarts = max_restarts;
  const auto r = graph::detail::krylov_schur_largest(be, n, o);
  for (int j = 0; j < nev; ++j) values[j] = r.values[j];
  copy_device_to_host(vectors, be.col(0), sizeof(double) * static_cast<size_t>(n) * nev);
  *spmvs = be.spmvs;
  return r.converged;
}

}  // namespace cuda
}  // namespace lapis
