// Laplacian positional encodings (LapPE) of a graph.
//
// The Laplacian is L = I - D^-1/2 A D^-1/2 of the SIMPLE UNDIRECTED version of the graph: every
// directed edge u -> v counts as the undirected edge {u, v}; edge multiplicity is ignored (A is
// 0/1) and self loops are dropped. Degrees are those of this simple graph. An isolated node
// (degree 0) has an identity row in L (as the reference's degree clip(1) gives): its eigenvalue
// is 1 with the unit vector e_i, NOT 0.
//
// What a user gets: the spectrum of L is the union of the spectra of its connected components.
// We decompose into components (isolated nodes included), take up to k+1 smallest eigenpairs of
// each, merge them in ascending eigenvalue order (equal eigenvalues ordered by component, the
// component numbered by its smallest node id; eigenvalues below 1e-9 count as exactly 0), skip
// the first pair and return the next k as columns of an f32 [N, k] tensor.
//  * Connected graph: exactly the k eigenvectors after the trivial one (D^1/2 1).
//  * c components of >= 2 nodes: eigenvalue 0 has multiplicity c; the user gets the c-1 trivial
//    vectors of components 2..c (D^1/2 1 restricted to the component, unit norm) first, then the
//    smallest non-zero ones. Every vector is supported on one component.
//  * Repeated eigenvalues (symmetric graphs: cycles, stars, grids) make the eigenvectors of that
//    eigenspace basis dependent: they are a valid orthonormal basis, deterministic for a given
//    input and build, but not unique (and not equivariant to node relabelling).
//  * N < k+1 (or fewer than k+1 eigenpairs overall): the missing columns are zero and their
//    eigenvalues are reported as 0 with `num_valid` telling how many columns are real.
// Signs: each column is made deterministic by making its largest-magnitude entry positive (ties
// within a relative 1e-6 go to the lowest node index). Training randomises them again with
// flip_signs_random.
//
// Solvers (per connected component of n nodes):
//  * n <= dense_max_nodes: dense Eigen SelfAdjointEigenSolver, O(n^3).
//  * larger: Krylov-Schur (thick-restart Lanczos, full reorthogonalisation, threaded SpMV and
//    orthogonalisation) for the largest eigenvalues of 2I - L, i.e. the smallest of L, or Spectra's
//    SymEigsSolver on the same operator (method = Spectra). Shift-and-invert is not used: the
//    sparse factorisation of expander-like graphs (random extra edges) fills in catastrophically.
// Switch point (measured with bench_lappe grid --side S --extra S*S --k 8 --method dense|lanczos,
// 1 thread): dense Eigen costs ~6n^3 flops with unblocked QR sweeps: ~1 ms at n=144, 10 ms at
// 225, 70 ms at 400, 0.6 s at 784, 15 s at 1600, 170 s at 3136, while Krylov-Schur takes < 5 ms
// up to n=784 and 0.17 s at 3136; below ~150 both are ~1 ms. Hence dense_max_nodes = 160.
// Spectra (plain implicitly restarted Lanczos on 2I - L) is kept as an option: on the clustered
// spectrum of grid + random edges it needs ~3x our time (its orthogonalisation is single
// threaded and runs once per SpMV; the Chebyshev filter here runs it once per 12 SpMVs).
#pragma once

#include <cstdint>
#include <vector>

#include "core/random.h"
#include "core/tensor.h"
#include "graph/graph.h"

namespace lapis {
namespace graph {

enum class EigenMethod {
  Auto,     // dense for small components, Lanczos (Krylov-Schur) for large ones
  Dense,    // dense for every component (O(n^3): only for small graphs)
  Lanczos,  // our threaded Krylov-Schur for components larger than min_sparse_nodes
  Spectra,  // Spectra SymEigsSolver on 2I - L for components larger than min_sparse_nodes
};

struct LapPEOptions {
  int k = 8;
  EigenMethod method = EigenMethod::Auto;
  // Components with at most this many nodes use the dense solver (Auto).
  int64_t dense_max_nodes = 160;
  // Sparse methods need n well above the basis size; below this they fall back to dense.
  int64_t min_sparse_nodes = 64;
  // Relative residual tolerance of the sparse solvers on 2I - L (eigenvalues in [0, 2]):
  // ||(2I - L) u - theta u|| <= tol * theta.
  double tol = 1e-6;
  int ncv = 0;             // basis size for the sparse solvers (0: max(2(k+1)+1, 3(k+1)+..))
  int max_restarts = 5000;
  // Degree of the Chebyshev filter of the Lanczos path (SpMVs per Krylov step; 0: no filter).
  int filter_degree = 12;
  int num_threads = 0;     // threads for the sparse solvers (0: hardware_concurrency)
  // Solve the large components (the Lanczos path) on the GPU (graph/cuda/lanczos_cuda.h);
  // small components still use the dense CPU solver. Throws in a build without CUDA.
  bool cuda = false;
};

struct LapPE {
  Tensor vectors;                 // f32 [N, k]
  std::vector<double> eigenvalues;  // k ascending eigenvalues of L (0 for padded columns)
  int num_valid = 0;              // columns holding real eigenvectors (the rest are zero)
  int64_t matvecs = 0;            // sparse-solver operator applications (diagnostics)
  double max_residual = 0.0;      // max ||L u - lambda u|| over returned columns (f64 solve)
};

// The encoding of g (any device; computed on the host). Throws lapis::Error for k < 1 or when a
// sparse solver does not converge within max_restarts.
LapPE laplacian_pe(const Graph& g, const LapPEOptions& options = {});
// The same from a raw edge list (src[i] -> dst[i]), for callers without a Graph.
LapPE laplacian_pe(int64_t num_nodes, const std::vector<int32_t>& src,
                   const std::vector<int32_t>& dst, const LapPEOptions& options = {});

// Multiplies each column of pe ([N, k] or [k] f32/f64, CPU) by an independent random sign drawn
// from gen (one draw per column), in place. Used per batch during training.
void flip_signs_random(Tensor& pe, Generator& gen);

// The simple undirected graph used above, as symmetric CSR (sorted neighbours, no self loops,
// no duplicates). Exposed for tests and the CUDA path.
struct SymmetricAdjacency {
  int64_t num_nodes = 0;
  std::vector<int64_t> ptr;  // [N+1]
  std::vector<int32_t> col;  // [nnz]
};
SymmetricAdjacency symmetric_adjacency(const Graph& g);
SymmetricAdjacency symmetric_adjacency(int64_t num_nodes, const std::vector<int32_t>& src,
                                       const std::vector<int32_t>& dst);

}  // namespace graph
}  // namespace lapis
