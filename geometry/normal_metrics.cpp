#include "geometry/normal_metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include <Eigen/Geometry>

#include "core/check.h"
#include "geometry/knn.h"

namespace lapis {
namespace geometry {
namespace {

constexpr double kRadToDeg = 57.29577951308232;

void check_inputs(const char* op, const Points& pred, const Points& gt, const Indices& subset) {
  LAPIS_CHECK(pred.rows() == gt.rows(), op, "prediction has ", pred.rows(),
              " normals but ground truth has ", gt.rows());
  for (int64_t i : subset) {
    LAPIS_CHECK(i >= 0 && i < pred.rows(), op, "subset index ", i, " is out of range (",
                pred.rows(), " points)");
  }
}

// Cosine between the normalised vectors of row i; NaN when one has zero length.
double cosine(const char* op, const Points& pred, const Points& gt, int64_t i) {
  const Eigen::Vector3d n = pred.row(i).cast<double>().transpose();
  const Eigen::Vector3d g = gt.row(i).cast<double>().transpose();
  LAPIS_CHECK(n.allFinite(), op, "predicted normal ", i, " is not finite (", n.transpose(), ")");
  LAPIS_CHECK(g.allFinite(), op, "ground truth normal ", i, " is not finite (", g.transpose(),
              ")");
  const double ln = n.norm(), lg = g.norm();
  if (ln == 0 || lg == 0) return std::nan("");
  return std::max(-1.0, std::min(1.0, n.dot(g) / (ln * lg)));
}

template <typename F>
std::vector<double> angles(const char* op, const Points& pred, const Points& gt,
                           const Indices& subset, F angle_of_cos) {
  check_inputs(op, pred, gt, subset);
  std::vector<double> out;
  const int64_t n = subset.empty() ? pred.rows() : static_cast<int64_t>(subset.size());
  out.reserve(static_cast<size_t>(n));
  for (int64_t k = 0; k < n; ++k) {
    const int64_t i = subset.empty() ? k : subset[static_cast<size_t>(k)];
    const double c = cosine(op, pred, gt, i);
    out.push_back(std::isnan(c) ? 90.0 : angle_of_cos(c));
  }
  return out;
}

double rmse(const std::vector<double>& a) {
  double s = 0;
  for (double v : a) s += v * v;
  return std::sqrt(s / static_cast<double>(a.size()));
}

}  // namespace

std::vector<double> unoriented_angles_deg(const Points& pred, const Points& gt,
                                          const Indices& subset) {
  return angles("unoriented_angles_deg", pred, gt, subset,
                [](double c) { return std::acos(std::fabs(c)) * kRadToDeg; });
}

std::vector<double> oriented_angles_deg(const Points& pred, const Points& gt,
                                        const Indices& subset) {
  return angles("oriented_angles_deg", pred, gt, subset,
                [](double c) { return std::acos(c) * kRadToDeg; });
}

NormalMetrics normal_metrics(const Points& pred, const Points& gt, const Indices& subset) {
  const std::vector<double> un = unoriented_angles_deg(pred, gt, subset);
  std::vector<double> ori = oriented_angles_deg(pred, gt, subset);
  LAPIS_CHECK(!un.empty(), "normal_metrics", "no points to evaluate (", pred.rows(),
              " normals, subset of ", subset.size(), ")");
  NormalMetrics m;
  m.count = static_cast<int64_t>(un.size());
  m.unoriented_rmse_deg = rmse(un);
  int64_t wrong = 0, good5 = 0, good10 = 0;
  for (size_t k = 0; k < un.size(); ++k) {
    wrong += ori[k] > 90.0;
    good5 += un[k] < 5.0;
    good10 += un[k] < 10.0;
  }
  if (2 * wrong > m.count) {  // more than half flipped: flip the whole shape
    m.flipped = true;
    for (double& a : ori) a = 180.0 - a;
  }
  m.oriented_rmse_deg = rmse(ori);
  m.pgp5 = 100.0 * static_cast<double>(good5) / static_cast<double>(m.count);
  m.pgp10 = 100.0 * static_cast<double>(good10) / static_cast<double>(m.count);
  return m;
}

namespace {

// Squared distance from p to triangle abc (Ericson, Real-Time Collision Detection, 5.1.5).
double point_triangle_sq_distance(const Eigen::Vector3d& p, const Eigen::Vector3d& a,
                                  const Eigen::Vector3d& b, const Eigen::Vector3d& c) {
  const Eigen::Vector3d ab = b - a, ac = c - a, ap = p - a;
  const double d1 = ab.dot(ap), d2 = ac.dot(ap);
  if (d1 <= 0 && d2 <= 0) return ap.squaredNorm();
  const Eigen::Vector3d bp = p - b;
  const double d3 = ab.dot(bp), d4 = ac.dot(bp);
  if (d3 >= 0 && d4 <= d3) return bp.squaredNorm();
  const double vc = d1 * d4 - d3 * d2;
  if (vc <= 0 && d1 >= 0 && d3 <= 0) {
    const double v = d1 / (d1 - d3);
    return (p - (a + v * ab)).squaredNorm();
  }
  const Eigen::Vector3d cp = p - c;
  const double d5 = ab.dot(cp), d6 = ac.dot(cp);
  if (d6 >= 0 && d5 <= d6) return cp.squaredNorm();
  const double vb = d5 * d2 - d1 * d6;
  if (vb <= 0 && d2 >= 0 && d6 <= 0) {
    const double w = d2 / (d2 - d6);
    return (p - (a + w * ac)).squaredNorm();
  }
  const double va = d3 * d6 - d5 * d4;
  if (va <= 0 && (d4 - d3) >= 0 && (d5 - d6) >= 0) {
    const double w = (d4 - d3) / ((d4 - d3) + (d5 - d6));
    return (p - (b + w * (c - b))).squaredNorm();
  }
  const double denom = 1.0 / (va + vb + vc);
  const double v = vb * denom, w = vc * denom;
  return (p - (a + ab * v + ac * w)).squaredNorm();
}

}  // namespace

Points nearest_face_normals(const TriangleMesh& mesh, const Points& points, Indices* face_ids,
                            int num_threads) {
  const char* op = "nearest_face_normals";
  LAPIS_CHECK(mesh.num_faces() > 0, op, "the mesh has no faces (", mesh.num_vertices(),
              " vertices)");
  mesh.validate(op);
  const Eigen::Index nf = mesh.faces.rows();
  Points centroids(nf, 3);
  double max_radius = 0;  // largest centroid-to-vertex distance
  std::vector<Eigen::Vector3d> corner(static_cast<size_t>(3 * nf));
  for (Eigen::Index f = 0; f < nf; ++f) {
    Eigen::Vector3d sum = Eigen::Vector3d::Zero();
    for (int k = 0; k < 3; ++k) {
      corner[static_cast<size_t>(3 * f + k)] =
          mesh.vertices.row(mesh.faces(f, k)).cast<double>().transpose();
      sum += corner[static_cast<size_t>(3 * f + k)];
    }
    const Eigen::Vector3d g = sum / 3.0;
    centroids.row(f) = g.cast<float>().transpose();
    for (int k = 0; k < 3; ++k) {
      max_radius = std::max(max_radius, (corner[static_cast<size_t>(3 * f + k)] - g).norm());
    }
  }
  const Points fn = mesh.face_normals();
  const KdTree tree(centroids);
  const int k = static_cast<int>(std::min<Eigen::Index>(nf, 16));
  const KnnResult cand = tree.knn(points, k, num_threads);
  Points out(points.rows(), 3);
  if (face_ids) face_ids->assign(static_cast<size_t>(points.rows()), 0);
  for (Eigen::Index i = 0; i < points.rows(); ++i) {
    const Eigen::Vector3d p = points.row(i).cast<double>().transpose();
    LAPIS_CHECK(p.allFinite(), op, "point ", i, " is not finite (", p.transpose(), ")");
    double best = std::numeric_limits<double>::infinity();
    int64_t best_face = -1;
    auto consider = [&](int64_t f) {
      const size_t c = static_cast<size_t>(3 * f);
      const double d = point_triangle_sq_distance(p, corner[c], corner[c + 1], corner[c + 2]);
      if (d < best || (d == best && f < best_face)) { best = d; best_face = f; }
    };
    for (int j = 0; j < k; ++j) consider(cand.indices(i, j));
    // A face not among the candidates has its centroid farther than the k-th candidate's; it can
    // only be closer when that centroid distance is below sqrt(best) + max_radius.
    const double reach = std::sqrt(best) + max_radius;
    if (k < nf && std::sqrt(static_cast<double>(cand.sq_distances(i, k - 1))) <= reach) {
      const RadiusResult r =
          tree.radius_search(points.row(i), static_cast<float>(reach * (1 + 1e-6) + 1e-12), 0, 1);
      for (int32_t f : r.indices) consider(f);
    }
    out.row(i) = fn.row(best_face);
    if (face_ids) (*face_ids)[static_cast<size_t>(i)] = best_face;
  }
  return out;
}

}  // namespace geometry
}  // namespace lapis
