// Plain XYZ and the PCPNet files.
//
// XYZ: one point per line, "x y z" or "x y z nx ny nz" (every line the same width); blank lines
// and '#' comments are skipped. PCPNet (Guerrero et al. 2018) keeps a shape as
//   <stem>.xyz      x y z per line
//   <stem>.normals  nx ny nz per line (same count)
//   <stem>.pidx     one 0-based point index per line: the evaluation subset
// read_xyz loads <stem>.normals automatically when the .xyz has 3 columns and the file exists.
// Errors (lapis::Error) name the file and line: non-numeric tokens, wrong column counts,
// NaN/inf, count mismatches between .xyz and .normals, indices out of range.
#pragma once

#include <string>

#include "geometry/point_cloud.h"

namespace lapis {
namespace geometry {

PointCloud read_xyz(const std::string& path);
// A PCPNet .normals file (3 columns).
Points read_normals_file(const std::string& path);
// A .pidx file; with num_points >= 0 every index must be in [0, num_points).
Indices read_pidx(const std::string& path, int64_t num_points = -1);

// Writes "x y z" per line (only valid points); with normal_columns, "x y z nx ny nz". Atomic.
void write_xyz(const std::string& path, const PointCloud& cloud, bool normal_columns = false);
void write_normals_file(const std::string& path, const Points& normals);
void write_pidx(const std::string& path, const Indices& indices);

// <stem>.xyz + <stem>.normals (required) + <stem>.pidx (optional; empty when absent).
struct PcpnetShape {
  PointCloud cloud;
  Indices eval_indices;
};
// `xyz_path` is the .xyz file (or the stem without extension).
PcpnetShape read_pcpnet(const std::string& xyz_path);
// Writes <stem>.xyz, <stem>.normals (when the cloud has normals) and <stem>.pidx (when
// eval_indices is not empty). The cloud must have no invalid points (indices refer to rows).
void write_pcpnet(const std::string& xyz_path, const PointCloud& cloud,
                  const Indices& eval_indices = {});

}  // namespace geometry
}  // namespace lapis
