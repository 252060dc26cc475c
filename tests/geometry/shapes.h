// Test shapes with known normals (sphere, plane, cylinder, cube surface), generated, no files.
#pragma once

#include <cmath>
#include <random>

#include "geometry/point_cloud.h"

namespace lapis {
namespace geometry {
namespace testshapes {

// Fibonacci sphere of radius r around c; normals outward.
inline PointCloud sphere(int64_t n, float r = 1.f, Eigen::Vector3f c = Eigen::Vector3f::Zero()) {
  PointCloud pc;
  pc.positions.resize(n, 3);
  pc.normals.resize(n, 3);
  const double golden = M_PI * (3.0 - std::sqrt(5.0));
  for (int64_t i = 0; i < n; ++i) {
    const double z = 1.0 - 2.0 * (static_cast<double>(i) + 0.5) / static_cast<double>(n);
    const double rad = std::sqrt(std::max(0.0, 1.0 - z * z));
    const double phi = golden * static_cast<double>(i);
    const Eigen::Vector3f u(static_cast<float>(rad * std::cos(phi)),
                            static_cast<float>(rad * std::sin(phi)), static_cast<float>(z));
    pc.normals.row(i) = u.transpose();
    pc.positions.row(i) = (c + r * u).transpose();
  }
  return pc;
}

// Random points on the plane through the origin with unit normal nrm (side 2).
inline PointCloud plane(int64_t n, Eigen::Vector3f nrm, uint32_t seed) {
  nrm.normalize();
  const Eigen::Vector3f a = nrm.unitOrthogonal();
  const Eigen::Vector3f b = nrm.cross(a);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  PointCloud pc;
  pc.positions.resize(n, 3);
  pc.normals.resize(n, 3);
  for (int64_t i = 0; i < n; ++i) {
    pc.positions.row(i) = (u(rng) * a + u(rng) * b).transpose();
    pc.normals.row(i) = nrm.transpose();
  }
  return pc;
}

// Regular grid on a cylinder of radius r around the z axis, height h; normals radial.
inline PointCloud cylinder(int around, int rows, float r = 1.f, float h = 2.f) {
  PointCloud pc;
  pc.positions.resize(static_cast<int64_t>(around) * rows, 3);
  pc.normals.resize(pc.positions.rows(), 3);
  int64_t i = 0;
  for (int j = 0; j < rows; ++j) {
    for (int a = 0; a < around; ++a, ++i) {
      const double t = 2.0 * M_PI * (a + 0.5 * (j % 2)) / around;
      const float cx = static_cast<float>(std::cos(t)), cy = static_cast<float>(std::sin(t));
      pc.positions.row(i) << r * cx, r * cy, h * (static_cast<float>(j) / (rows - 1) - 0.5f);
      pc.normals.row(i) << cx, cy, 0.f;
    }
  }
  return pc;
}

// Random points on the surface of the cube [-1, 1]^3 (per face), outward face normals.
inline PointCloud cube(int64_t per_face, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  PointCloud pc;
  pc.positions.resize(6 * per_face, 3);
  pc.normals.resize(6 * per_face, 3);
  int64_t i = 0;
  for (int axis = 0; axis < 3; ++axis) {
    for (const float side : {-1.f, 1.f}) {
      for (int64_t j = 0; j < per_face; ++j, ++i) {
        Eigen::Vector3f p(u(rng), u(rng), u(rng));
        p[axis] = side;
        Eigen::Vector3f nrm = Eigen::Vector3f::Zero();
        nrm[axis] = side;
        pc.positions.row(i) = p.transpose();
        pc.normals.row(i) = nrm.transpose();
      }
    }
  }
  return pc;
}

// Unoriented angle in degrees between two directions (atan2 of |cross| and |dot| in double:
// acos of a dot product near 1 would round small angles up to ~0.02 degrees).
inline double unoriented_angle_deg(const Eigen::Vector3f& a, const Eigen::Vector3f& b) {
  const Eigen::Vector3d x = a.cast<double>(), y = b.cast<double>();
  return std::atan2(x.cross(y).norm(), std::fabs(x.dot(y))) * 180.0 / M_PI;
}

}  // namespace testshapes
}  // namespace geometry
}  // namespace lapis
