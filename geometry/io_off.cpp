#include "geometry/io_off.h"

#include <vector>

#include "core/check.h"
#include "geometry/io_util.h"

namespace lapis {
namespace geometry {
namespace {

struct OffData {
  PointCloud cloud;
  std::vector<int32_t> triangles;
};

OffData read_off(const std::string& path, const std::string& op, bool want_faces) {
  detail::TextFile file(path, op);
  if (!file.next_content_line()) file.fail("empty file (expected 'OFF')");
  const std::string magic = file.next_token();
  bool normals = false;
  if (magic == "OFF" || magic == "COFF") {
    normals = false;
  } else if (magic == "NOFF" || magic == "CNOFF") {
    normals = true;
  } else {
    file.fail(str_cat("not an OFF file: the first word is '", magic, "' (expected OFF, COFF or "
                      "NOFF)"));
  }
  if (file.at_line_end() && !file.next_content_line()) {
    file.fail("file ends before the '#vertices #faces #edges' line");
  }
  const int64_t nv = file.next_int("the vertex count");
  const int64_t nf = file.next_int("the face count");
  if (!file.at_line_end()) file.next_int("the edge count");
  file.expect_line_end("counts");
  if (nv < 0 || nf < 0) file.fail(str_cat("negative counts ", nv, " ", nf));

  OffData out;
  out.cloud.positions.resize(nv, 3);
  if (normals) out.cloud.normals.resize(nv, 3);
  for (int64_t i = 0; i < nv; ++i) {
    if (!file.next_content_line()) {
      file.fail(str_cat("file ends after ", i, " of ", nv, " vertices (truncated, or the count is "
                        "wrong)"));
    }
    static const char* kCoord[3] = {"x", "y", "z"};
    static const char* kNormal[3] = {"nx", "ny", "nz"};
    for (int k = 0; k < 3; ++k) {
      out.cloud.positions(i, k) = static_cast<float>(file.next_finite(kCoord[k]));
    }
    if (normals) {
      for (int k = 0; k < 3; ++k) {
        out.cloud.normals(i, k) = static_cast<float>(file.next_finite(kNormal[k]));
      }
    }
    // Anything further on the line (colors, texture coordinates) is ignored, but must be numeric.
    while (!file.at_line_end()) file.next_double("a vertex attribute");
  }
  for (int64_t f = 0; f < nf; ++f) {
    if (!file.next_content_line()) {
      file.fail(str_cat("file ends after ", f, " of ", nf, " faces (truncated, or the count is "
                        "wrong)"));
    }
    const int64_t n = file.next_int("the face's vertex count");
    if (n < 3) file.fail(str_cat("face ", f, " has ", n, " vertices (at least 3 needed)"));
    int64_t first = 0, prev = 0;
    for (int64_t j = 0; j < n; ++j) {
      const int64_t v = file.next_int("a vertex index");
      if (v < 0 || v >= nv) {
        file.fail(str_cat("face ", f, " refers to vertex ", v, " but the file has ", nv,
                          " vertices"));
      }
      if (j == 0) first = v;
      if (j >= 2 && want_faces) {
        out.triangles.push_back(static_cast<int32_t>(first));
        out.triangles.push_back(static_cast<int32_t>(prev));
        out.triangles.push_back(static_cast<int32_t>(v));
      }
      prev = v;
    }
    while (!file.at_line_end()) file.next_double("a face color value");
  }
  while (file.next_content_line()) {
    file.fail("unexpected data after the last face (the counts are too small)");
  }
  return out;
}

}  // namespace

TriangleMesh read_off_mesh(const std::string& path) {
  OffData d = read_off(path, "read_off_mesh", true);
  TriangleMesh mesh;
  mesh.vertices = std::move(d.cloud.positions);
  mesh.faces = Eigen::Map<const Faces>(d.triangles.data(),
                                       static_cast<Eigen::Index>(d.triangles.size() / 3), 3);
  return mesh;
}

PointCloud read_off_point_cloud(const std::string& path) {
  return read_off(path, "read_off_point_cloud", false).cloud;
}

void write_off(const std::string& path, const TriangleMesh& mesh) {
  mesh.validate(str_cat("write_off: ", path));
  std::string out = "OFF\n";
  out += std::to_string(mesh.num_vertices()) + " " + std::to_string(mesh.num_faces()) + " 0\n";
  for (Eigen::Index i = 0; i < mesh.vertices.rows(); ++i) {
    for (int k = 0; k < 3; ++k) {
      if (k) out += ' ';
      detail::append_float(out, mesh.vertices(i, k));
    }
    out += '\n';
  }
  for (Eigen::Index f = 0; f < mesh.faces.rows(); ++f) {
    out += '3';
    for (int k = 0; k < 3; ++k) { out += ' '; detail::append_int(out, mesh.faces(f, k)); }
    out += '\n';
  }
  detail::write_file_atomic(path, out, "write_off");
}

void write_off(const std::string& path, const PointCloud& input) {
  const PointCloud cloud = input.compacted();
  cloud.validate(str_cat("write_off: ", path));
  std::string out = cloud.has_normals() ? "NOFF\n" : "OFF\n";
  out += std::to_string(cloud.size()) + " 0 0\n";
  for (Eigen::Index i = 0; i < cloud.positions.rows(); ++i) {
    for (int k = 0; k < 3; ++k) {
      if (k) out += ' ';
      detail::append_float(out, cloud.positions(i, k));
    }
    if (cloud.has_normals()) {
      for (int k = 0; k < 3; ++k) { out += ' '; detail::append_float(out, cloud.normals(i, k)); }
    }
    out += '\n';
  }
  detail::write_file_atomic(path, out, "write_off");
}

}  // namespace geometry
}  // namespace lapis
