#include "geometry/io_xyz.h"

#include <cmath>
#include <initializer_list>
#include <vector>

#include "core/check.h"
#include "geometry/io_util.h"

namespace lapis {
namespace geometry {
namespace {

// Reads a whitespace table of finite numbers; every data line must have the same width, which
// must be one of `allowed` (e.g. {3, 6}). Returns the values row-major and sets `cols`.
std::vector<float> read_table(const std::string& path, const std::string& op,
                              std::initializer_list<int> allowed, int& cols) {
  detail::TextFile file(path, op);
  std::vector<float> values;
  cols = -1;
  static const char* kNames[6] = {"x", "y", "z", "nx", "ny", "nz"};
  while (file.next_content_line()) {
    const int n = file.remaining_tokens();
    if (cols < 0) {
      bool ok = false;
      for (int a : allowed) ok = ok || a == n;
      if (!ok) {
        std::string list;
        for (int a : allowed) list += (list.empty() ? "" : " or ") + std::to_string(a);
        file.fail(str_cat("expected ", list, " values per line, found ", n));
      }
      cols = n;
    } else if (n != cols) {
      file.fail(str_cat("expected ", cols, " values per line (like the first line), found ", n));
    }
    for (int k = 0; k < cols; ++k) {
      values.push_back(static_cast<float>(file.next_finite(cols <= 6 ? kNames[k] : "a value")));
    }
  }
  if (cols < 0) cols = *allowed.begin();
  return values;
}

Points to_points(const std::vector<float>& v, int cols, int first) {
  const Eigen::Index n = static_cast<Eigen::Index>(v.size() / static_cast<size_t>(cols));
  Points p(n, 3);
  for (Eigen::Index i = 0; i < n; ++i) {
    for (int k = 0; k < 3; ++k) p(i, k) = v[static_cast<size_t>(i * cols + first + k)];
  }
  return p;
}

std::string stem_xyz(const std::string& path) {
  return detail::lower_extension(path) == ".xyz" ? path : path + ".xyz";
}

}  // namespace

Points read_normals_file(const std::string& path) {
  int cols = 0;
  const std::vector<float> v = read_table(path, "read_normals_file", {3}, cols);
  return to_points(v, 3, 0);
}

PointCloud read_xyz(const std::string& path) {
  int cols = 0;
  const std::vector<float> v = read_table(path, "read_xyz", {3, 6}, cols);
  PointCloud cloud;
  cloud.positions = to_points(v, cols, 0);
  if (cols == 6) {
    cloud.normals = to_points(v, cols, 3);
  } else {
    const std::string normals_path = detail::replace_extension(path, ".normals");
    if (normals_path != path && detail::file_exists(normals_path)) {
      cloud.normals = read_normals_file(normals_path);
      LAPIS_CHECK(cloud.normals.rows() == cloud.positions.rows(), "read_xyz", "'", path,
                  "' has ", cloud.positions.rows(), " points but '", normals_path, "' has ",
                  cloud.normals.rows(), " normals");
    }
  }
  return cloud;
}

Indices read_pidx(const std::string& path, int64_t num_points) {
  detail::TextFile file(path, "read_pidx");
  Indices out;
  while (file.next_content_line()) {
    const int64_t i = file.next_int("a point index");
    if (i < 0 || (num_points >= 0 && i >= num_points)) {
      file.fail(str_cat("point index ", i, " is out of range (the cloud has ", num_points,
                        " points)"));
    }
    file.expect_line_end("index");
    out.push_back(i);
  }
  return out;
}

void write_xyz(const std::string& path, const PointCloud& input, bool normal_columns) {
  const PointCloud cloud = input.compacted();
  cloud.validate(str_cat("write_xyz: ", path));
  LAPIS_CHECK(!normal_columns || cloud.has_normals(), "write_xyz", "'", path,
              "': normal columns requested but the cloud has no normals");
  std::string out;
  out.reserve(static_cast<size_t>(cloud.size()) * (normal_columns ? 60 : 30));
  for (Eigen::Index i = 0; i < cloud.positions.rows(); ++i) {
    for (int k = 0; k < 3; ++k) {
      if (k) out += ' ';
      detail::append_float(out, cloud.positions(i, k));
    }
    if (normal_columns) {
      for (int k = 0; k < 3; ++k) { out += ' '; detail::append_float(out, cloud.normals(i, k)); }
    }
    out += '\n';
  }
  detail::write_file_atomic(path, out, "write_xyz");
}

void write_normals_file(const std::string& path, const Points& normals) {
  std::string out;
  out.reserve(static_cast<size_t>(normals.rows()) * 30);
  for (Eigen::Index i = 0; i < normals.rows(); ++i) {
    for (int k = 0; k < 3; ++k) {
      LAPIS_CHECK(std::isfinite(normals(i, k)), "write_normals_file", "'", path, "': normal ", i,
                  " is not finite (", normals(i, k), ")");
      if (k) out += ' ';
      detail::append_float(out, normals(i, k));
    }
    out += '\n';
  }
  detail::write_file_atomic(path, out, "write_normals_file");
}

void write_pidx(const std::string& path, const Indices& indices) {
  std::string out;
  for (int64_t i : indices) {
    detail::append_int(out, i);
    out += '\n';
  }
  detail::write_file_atomic(path, out, "write_pidx");
}

PcpnetShape read_pcpnet(const std::string& xyz_path) {
  const std::string xyz = stem_xyz(xyz_path);
  PcpnetShape shape;
  int cols = 0;
  const std::vector<float> v = read_table(xyz, "read_pcpnet", {3}, cols);
  shape.cloud.positions = to_points(v, 3, 0);
  const std::string normals = detail::replace_extension(xyz, ".normals");
  LAPIS_CHECK(detail::file_exists(normals), "read_pcpnet", "'", normals,
              "' is missing (PCPNet ground truth normals for '", xyz, "')");
  shape.cloud.normals = read_normals_file(normals);
  LAPIS_CHECK(shape.cloud.normals.rows() == shape.cloud.positions.rows(), "read_pcpnet", "'",
              xyz, "' has ", shape.cloud.positions.rows(), " points but '", normals, "' has ",
              shape.cloud.normals.rows(), " normals");
  const std::string pidx = detail::replace_extension(xyz, ".pidx");
  if (detail::file_exists(pidx)) shape.eval_indices = read_pidx(pidx, shape.cloud.size());
  return shape;
}

void write_pcpnet(const std::string& xyz_path, const PointCloud& cloud,
                  const Indices& eval_indices) {
  const std::string xyz = stem_xyz(xyz_path);
  LAPIS_CHECK(cloud.count_valid() == cloud.size(), "write_pcpnet", "'", xyz, "': the cloud has ",
              cloud.size() - cloud.count_valid(), " invalid points (compact it first)");
  for (int64_t i : eval_indices) {
    LAPIS_CHECK(i >= 0 && i < cloud.size(), "write_pcpnet", "'", xyz, "': evaluation index ", i,
                " is out of range (", cloud.size(), " points)");
  }
  write_xyz(xyz, cloud, false);
  if (cloud.has_normals()) {
    write_normals_file(detail::replace_extension(xyz, ".normals"), cloud.normals);
  }
  if (!eval_indices.empty()) write_pidx(detail::replace_extension(xyz, ".pidx"), eval_indices);
}

}  // namespace geometry
}  // namespace lapis
