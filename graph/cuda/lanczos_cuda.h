// CUDA Krylov-Schur (thick-restart Lanczos) for the smallest eigenpairs of a normalised graph
// Laplacian L = I - S of one connected component. Host-only declarations (no CUDA types); the
// algorithm is graph/cuda/lanczos_core.h, the same as on the CPU, with a device backend: cuSPARSE
// SpMV (generic API, CSR, deterministic CSR_ALG2) for S, cuBLAS gemv/gemm for the full
// reorthogonalisation and restarts, and the small projected eigenproblem on the host (Jacobi).
// Called by laplacian_pe() when LapPEOptions::cuda is set (graph/laplacian_pe.h).
#pragma once

#include <cstdint>

namespace lapis {
namespace cuda {

// S is n x n CSR on the host (row pointers ptr[n+1], columns col, values val; nnz < 2^31).
// Runs Krylov-Schur on B = T_degree(t(L)) (the Chebyshev filter mapping [a, 2] to [-1, 1];
// degree 0: B = 2I - L) for its nev largest eigenvalues. Writes the Ritz values of B (descending)
// to values[nev] and the Ritz vectors to vectors (n x nev, column-major, host), the operator
// applications (SpMVs) to *spmvs. Returns whether all nev converged (max_restarts 0: one pass).
bool lanczos_laplacian_largest(int64_t n, const int64_t* ptr, const int32_t* col,
                               const double* val, int nev, int ncv, int degree, double a,
                               double tol, int max_restarts, double* values, double* vectors,
                               int64_t* spmvs);

}  // namespace cuda
}  // namespace lapis
