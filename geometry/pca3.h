// Closed-form eigen solve of a symmetric 3x3 matrix and the PCA normal of a neighbourhood,
// shared by the CPU code (g++) and the CUDA kernels (nvcc), so both run the same arithmetic.
//
// Eigenvalues by the trigonometric method (Smith 1961) on the matrix scaled by its largest
// entry; eigenvectors as in Eberly's "robust eigensolver for 3x3 symmetric matrices"
// (Geometric Tools): the eigenvector of the well-separated extreme eigenvalue first (largest
// cross product of two rows of A - lambda I), the middle one inside its orthogonal complement
// (a 2x2 problem), the remaining one as a cross product. This stays accurate when the two
// smallest eigenvalues are close, where the plain cross-product method loses all digits.
#pragma once

#include <cmath>

#if defined(__CUDACC__)
#define LAPIS_GEOMETRY_HD __host__ __device__ inline
#else
#define LAPIS_GEOMETRY_HD inline
#endif

namespace lapis {
namespace geometry {
namespace pca3 {

LAPIS_GEOMETRY_HD void cross(const double a[3], const double b[3], double out[3]) {
  out[0] = a[1] * b[2] - a[2] * b[1];
  out[1] = a[2] * b[0] - a[0] * b[2];
  out[2] = a[0] * b[1] - a[1] * b[0];
}

LAPIS_GEOMETRY_HD double dot(const double a[3], const double b[3]) {
  return a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
}

// v^T A v for A = {a00, a01, a02, a11, a12, a22}.
LAPIS_GEOMETRY_HD double quadratic_form(const double a[6], const double v[3]) {
  const double av[3] = {a[0] * v[0] + a[1] * v[1] + a[2] * v[2],
                        a[1] * v[0] + a[3] * v[1] + a[4] * v[2],
                        a[2] * v[0] + a[4] * v[1] + a[5] * v[2]};
  return dot(v, av);
}

// A = [a00 a01 a02; a01 a11 a12; a02 a12 a22] given as {a00, a01, a02, a11, a12, a22}.
LAPIS_GEOMETRY_HD void eigenvector_of_extreme(const double a[6], double eval, double evec[3]) {
  const double row0[3] = {a[0] - eval, a[1], a[2]};
  const double row1[3] = {a[1], a[3] - eval, a[4]};
  const double row2[3] = {a[2], a[4], a[5] - eval};
  double r0r1[3], r0r2[3], r1r2[3];
  cross(row0, row1, r0r1);
  cross(row0, row2, r0r2);
  cross(row1, row2, r1r2);
  const double d0 = dot(r0r1, r0r1), d1 = dot(r0r2, r0r2), d2 = dot(r1r2, r1r2);
  const double* best = r0r1;
  double dmax = d0;
  if (d1 > dmax) {
    dmax = d1;
    best = r0r2;
  }
  if (d2 > dmax) {
    dmax = d2;
    best = r1r2;
  }
  if (!(dmax > 0.0)) {  // A - eval I is (numerically) zero: every vector is an eigenvector
    evec[0] = 0.0;
    evec[1] = 0.0;
    evec[2] = 1.0;
    return;
  }
  const double inv = 1.0 / sqrt(dmax);
  for (int c = 0; c < 3; ++c) evec[c] = best[c] * inv;
}

// Eigenvector of eval1 orthogonal to the unit eigenvector evec0.
LAPIS_GEOMETRY_HD void eigenvector_in_complement(const double a[6], const double evec0[3],
                                                 double eval1, double evec1[3]) {
  double u[3], v[3];
  if (fabs(evec0[0]) > fabs(evec0[1])) {
    const double inv = 1.0 / sqrt(evec0[0] * evec0[0] + evec0[2] * evec0[2]);
    u[0] = -evec0[2] * inv;
    u[1] = 0.0;
    u[2] = evec0[0] * inv;
  } else {
    const double inv = 1.0 / sqrt(evec0[1] * evec0[1] + evec0[2] * evec0[2]);
    u[0] = 0.0;
    u[1] = evec0[2] * inv;
    u[2] = -evec0[1] * inv;
  }
  cross(evec0, u, v);
  const double au[3] = {a[0] * u[0] + a[1] * u[1] + a[2] * u[2],
                        a[1] * u[0] + a[3] * u[1] + a[4] * u[2],
                        a[2] * u[0] + a[4] * u[1] + a[5] * u[2]};
  const double av[3] = {a[0] * v[0] + a[1] * v[1] + a[2] * v[2],
                        a[1] * v[0] + a[3] * v[1] + a[4] * v[2],
                        a[2] * v[0] + a[4] * v[1] + a[5] * v[2]};
  double m00 = dot(u, au) - eval1, m01 = dot(u, av), m11 = dot(v, av) - eval1;
  const double abs00 = fabs(m00), abs01 = fabs(m01), abs11 = fabs(m11);
  double cu = 1.0, cv = 0.0;  // evec1 = cu * u + cv * v
  if (abs00 >= abs11) {
    if (fmax(abs00, abs01) > 0.0) {
      if (abs00 >= abs01) {
        m01 /= m00;
        m00 = 1.0 / sqrt(1.0 + m01 * m01);
        m01 *= m00;
      } else {
        m00 /= m01;
        m01 = 1.0 / sqrt(1.0 + m00 * m00);
        m00 *= m01;
      }
      cu = m01;
      cv = -m00;
    }
  } else {
    if (fmax(abs11, abs01) > 0.0) {
      if (abs11 >= abs01) {
        m01 /= m11;
        m11 = 1.0 / sqrt(1.0 + m01 * m01);
        m01 *= m11;
      } else {
        m11 /= m01;
        m01 = 1.0 / sqrt(1.0 + m11 * m11);
        m11 *= m01;
      }
      cu = m11;
      cv = -m01;
    }
  }
  for (int c = 0; c < 3; ++c) evec1[c] = cu * u[c] + cv * v[c];
}

// Eigenvalues (ascending, in eval) and the unit eigenvector of the smallest one. Returns false
// for a zero or non-finite matrix (nothing written then).
LAPIS_GEOMETRY_HD bool smallest_eigenvector(const double m[6], double eval[3], double evec[3]) {
  double max_abs = 0.0;
  for (int c = 0; c < 6; ++c) {
    if (!(m[c] - m[c] == 0.0)) return false;  // NaN or infinite
    max_abs = fmax(max_abs, fabs(m[c]));
  }
  if (!(max_abs > 0.0)) return false;
  const double inv_scale = 1.0 / max_abs;
  double a[6];
  for (int c = 0; c < 6; ++c) a[c] = m[c] * inv_scale;
  const double norm = a[1] * a[1] + a[2] * a[2] + a[4] * a[4];
  if (norm > 0.0) {
    const double q = (a[0] + a[3] + a[5]) / 3.0;
    const double b00 = a[0] - q, b11 = a[3] - q, b22 = a[5] - q;
    const double p = sqrt((b00 * b00 + b11 * b11 + b22 * b22 + 2.0 * norm) / 6.0);
    const double c00 = b11 * b22 - a[4] * a[4];
    const double c01 = a[1] * b22 - a[4] * a[2];
    const double c02 = a[1] * a[4] - b11 * a[2];
    const double det = (b00 * c00 - a[1] * c01 + a[2] * c02) / (p * p * p);
    double half_det = 0.5 * det;
    half_det = fmin(fmax(half_det, -1.0), 1.0);
    const double angle = acos(half_det) / 3.0;
    const double two_thirds_pi = 2.09439510239319549;
    const double beta2 = cos(angle) * 2.0;
    const double beta0 = cos(angle + two_thirds_pi) * 2.0;
    const double beta1 = -(beta0 + beta2);
    eval[0] = q + p * beta0;
    eval[1] = q + p * beta1;
    eval[2] = q + p * beta2;
    // The trigonometric eigenvalues lose about half the digits near a double root (acos near
    // +-1), so the eigenvalues whose vectors are known are replaced by Rayleigh quotients,
    // accurate to machine precision relative to the largest: that keeps lambda1 of a collinear
    // neighbourhood (a double root at 0) at ~1e-16 instead of ~1e-8.
    if (half_det >= 0.0) {
      // eval2 is the well-separated one: largest first, then middle, smallest by cross product.
      double v2[3], v1[3];
      eigenvector_of_extreme(a, eval[2], v2);
      eigenvector_in_complement(a, v2, eval[1], v1);
      cross(v1, v2, evec);
      eval[1] = quadratic_form(a, v1);
      eval[2] = quadratic_form(a, v2);
    } else {
      eigenvector_of_extreme(a, eval[0], evec);
    }
  } else {
    // Diagonal matrix: the axes are the eigenvectors.
    const double d[3] = {a[0], a[3], a[5]};
    int lo = d[1] < d[0] ? 1 : 0;
    if (d[2] < d[lo]) lo = 2;
    const int o1 = (lo + 1) % 3, o2 = (lo + 2) % 3;
    eval[0] = d[lo];
    eval[1] = fmin(d[o1], d[o2]);
    eval[2] = fmax(d[o1], d[o2]);
    evec[0] = evec[1] = evec[2] = 0.0;
    evec[lo] = 1.0;
  }
  const double len = sqrt(dot(evec, evec));
  if (!(len > 0.0)) return false;
  for (int c = 0; c < 3; ++c) evec[c] /= len;
  if (norm > 0.0) eval[0] = quadratic_form(a, evec);
  for (int c = 0; c < 3; ++c) eval[c] *= max_abs;
  return true;
}

// Relative size below which the middle eigenvalue counts as zero (collinear neighbourhood).
constexpr double kCollinearRatio = 1e-10;

// PCA normal of a neighbourhood from its covariance {xx, xy, xz, yy, yz, zz}: the unit
// eigenvector of the smallest eigenvalue and curvature = lambda0 / (lambda0 + lambda1 +
// lambda2). Returns false (normal undefined) for a zero covariance (coincident points) or a
// rank-1 one (collinear points).
LAPIS_GEOMETRY_HD bool normal_from_covariance(const double cov[6], double normal[3],
                                              double* curvature) {
  double eval[3];
  if (!smallest_eigenvector(cov, eval, normal)) return false;
  const double l0 = fmax(eval[0], 0.0), l1 = fmax(eval[1], 0.0), l2 = fmax(eval[2], 0.0);
  const double sum = l0 + l1 + l2;
  if (!(sum > 0.0) || !(l1 > kCollinearRatio * l2)) return false;
  *curvature = l0 / sum;
  return true;
}

// Covariance {xx, xy, xz, yy, yz, zz} (divided by the count) of the points idx[0..k) of pts
// (row-major n x 3), skipping idx < 0; two passes (mean first) in double. Returns the count.
LAPIS_GEOMETRY_HD int neighbourhood_covariance(const float* pts, const int* idx, int k,
                                               double cov[6]) {
  double mean[3] = {0.0, 0.0, 0.0};
  int count = 0;
  for (int j = 0; j < k; ++j) {
    const int i = idx[j];
    if (i < 0) continue;
    for (int c = 0; c < 3; ++c) mean[c] += static_cast<double>(pts[3 * static_cast<long long>(i) + c]);
    ++count;
  }
  for (int c = 0; c < 6; ++c) cov[c] = 0.0;
  if (count == 0) return 0;
  for (int c = 0; c < 3; ++c) mean[c] /= count;
  for (int j = 0; j < k; ++j) {
    const int i = idx[j];
    if (i < 0) continue;
    const float* p = pts + 3 * static_cast<long long>(i);
    const double dx = p[0] - mean[0], dy = p[1] - mean[1], dz = p[2] - mean[2];
    cov[0] += dx * dx;
    cov[1] += dx * dy;
    cov[2] += dx * dz;
    cov[3] += dy * dy;
    cov[4] += dy * dz;
    cov[5] += dz * dz;
  }
  for (int c = 0; c < 6; ++c) cov[c] /= count;
  return count;
}

// PCA normal of the neighbourhood idx[0..k) (idx < 0 skipped): writes a unit normal and the
// curvature and returns true, or writes NaN and returns false when it is undefined.
LAPIS_GEOMETRY_HD bool pca_normal(const float* pts, const int* idx, int k, float normal[3],
                                  float* curvature) {
  double cov[6], n[3], curv = 0.0;
  const int count = neighbourhood_covariance(pts, idx, k, cov);
  if (count >= 3 && normal_from_covariance(cov, n, &curv)) {
    for (int c = 0; c < 3; ++c) normal[c] = static_cast<float>(n[c]);
    *curvature = static_cast<float>(curv);
    return true;
  }
  const float nan = nanf("");
  normal[0] = normal[1] = normal[2] = nan;
  *curvature = nan;
  return false;
}

}  // namespace pca3
}  // namespace geometry
}  // namespace lapis
