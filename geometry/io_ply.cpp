#include "geometry/io_ply.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "core/check.h"
#include "geometry/io_util.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "geometry/io_ply.cpp assumes a little-endian host"
#endif

namespace lapis {
namespace geometry {
namespace {

enum class PlyType { i8, u8, i16, u16, i32, u32, f32, f64 };

bool parse_type(const std::string& s, PlyType& t) {
  if (s == "char" || s == "int8") t = PlyType::i8;
  else if (s == "uchar" || s == "uint8") t = PlyType::u8;
  else if (s == "short" || s == "int16") t = PlyType::i16;
  else if (s == "ushort" || s == "uint16") t = PlyType::u16;
  else if (s == "int" || s == "int32") t = PlyType::i32;
  else if (s == "uint" || s == "uint32") t = PlyType::u32;
  else if (s == "float" || s == "float32") t = PlyType::f32;
  else if (s == "double" || s == "float64") t = PlyType::f64;
  else return false;
  return true;
}

size_t type_size(PlyType t) {
  switch (t) {
    case PlyType::i8: case PlyType::u8: return 1;
    case PlyType::i16: case PlyType::u16: return 2;
    case PlyType::i32: case PlyType::u32: case PlyType::f32: return 4;
    case PlyType::f64: return 8;
  }
  return 0;
}

bool is_integer_type(PlyType t) { return t != PlyType::f32 && t != PlyType::f64; }

struct PlyProperty {
  std::string name;
  PlyType type = PlyType::f32;
  bool is_list = false;
  PlyType count_type = PlyType::u8;
};

struct PlyElement {
  std::string name;
  int64_t count = 0;
  std::vector<PlyProperty> props;
};

// What a vertex property is used for.
enum class Role { skip, x, y, z, nx, ny, nz, red, green, blue };

Role vertex_role(const std::string& n) {
  if (n == "x") return Role::x;
  if (n == "y") return Role::y;
  if (n == "z") return Role::z;
  if (n == "nx" || n == "normal_x") return Role::nx;
  if (n == "ny" || n == "normal_y") return Role::ny;
  if (n == "nz" || n == "normal_z") return Role::nz;
  if (n == "red" || n == "diffuse_red") return Role::red;
  if (n == "green" || n == "diffuse_green") return Role::green;
  if (n == "blue" || n == "diffuse_blue") return Role::blue;
  return Role::skip;
}

struct PlyData {
  PointCloud cloud;
  std::vector<int32_t> triangles;  // flattened #T x 3
};

// Values from the ASCII body: one element instance per line (blank lines are skipped).
class AsciiSource {
 public:
  explicit AsciiSource(detail::TextFile& file) : file_(file) {}
  void begin_instance(const PlyElement& e, int64_t i) {
    do {
      if (!file_.next_line()) {
        file_.fail(str_cat("file ends after ", i, " of ", e.count, " '", e.name,
                           "' elements (truncated, or the header count is wrong)"));
      }
    } while (file_.at_line_end());
  }
  void end_instance(const PlyElement& e) {
    file_.expect_line_end(e.name.c_str());
  }
  double value(PlyType type, const char* what) {
    const double v = file_.next_double(what);
    if (is_integer_type(type) && (v != std::floor(v) || !std::isfinite(v))) {
      file_.fail(str_cat("expected an integer for ", what, ", found ", v));
    }
    return v;
  }
  void finish() {
    while (file_.next_line()) {
      if (!file_.at_line_end()) {
        file_.fail("unexpected data after the last element (the header counts are too small)");
      }
    }
  }
  [[noreturn]] void fail(const std::string& msg) { file_.fail(msg); }

 private:
  detail::TextFile& file_;
};

// Values from the binary little-endian body; errors give the byte offset.
class BinarySource {
 public:
  BinarySource(const std::string& bytes, size_t offset, const std::string& path,
               const std::string& op)
      : bytes_(bytes), pos_(offset), path_(path), op_(op) {}
  void begin_instance(const PlyElement& e, int64_t i) {
    start_ = pos_;
    if (pos_ >= bytes_.size() && e.count > 0) {
      fail_at(pos_, str_cat("file ends after ", i, " of ", e.count, " '", e.name,
                            "' elements (truncated, or the header count is wrong)"));
    }
  }
  void end_instance(const PlyElement&) {}
  double value(PlyType type, const char* what) {
    const size_t n = type_size(type);
    if (pos_ + n > bytes_.size()) {
      fail_at(pos_, str_cat("file is truncated: ", what, " needs ", n, " bytes, ",
                            bytes_.size() - std::min(pos_, bytes_.size()), " left"));
    }
    const char* p = bytes_.data() + pos_;
    pos_ += n;
    switch (type) {
      case PlyType::i8: { int8_t v; std::memcpy(&v, p, 1); return v; }
      case PlyType::u8: { uint8_t v; std::memcpy(&v, p, 1); return v; }
      case PlyType::i16: { int16_t v; std::memcpy(&v, p, 2); return v; }
      case PlyType::u16: { uint16_t v; std::memcpy(&v, p, 2); return v; }
      case PlyType::i32: { int32_t v; std::memcpy(&v, p, 4); return v; }
      case PlyType::u32: { uint32_t v; std::memcpy(&v, p, 4); return v; }
      case PlyType::f32: { float v; std::memcpy(&v, p, 4); return v; }
      case PlyType::f64: { double v; std::memcpy(&v, p, 8); return v; }
    }
    return 0;
  }
  void finish() {
    if (pos_ != bytes_.size()) {
      fail_at(pos_, str_cat(bytes_.size() - pos_,
                            " unexpected bytes after the last element (the header counts are "
                            "too small)"));
    }
  }
  [[noreturn]] void fail(const std::string& msg) { fail_at(start_, msg); }

 private:
  [[noreturn]] void fail_at(size_t offset, const std::string& msg) {
    LAPIS_FAIL(op_, path_, ": byte offset ", offset, ": ", msg);
  }
  const std::string& bytes_;
  size_t pos_;
  size_t start_ = 0;
  const std::string& path_;
  const std::string& op_;
};

template <typename Source>
void read_body(Source& src, const std::vector<PlyElement>& elements, PlyData& out) {
  int64_t num_vertices = -1;
  for (const PlyElement& e : elements) {
    if (e.name == "vertex") num_vertices = e.count;
  }
  for (const PlyElement& e : elements) {
    const bool is_vertex = e.name == "vertex";
    const bool is_face = e.name == "face";
    std::vector<Role> roles(e.props.size(), Role::skip);
    bool has_normals = false, has_colors = false;
    if (is_vertex) {
      int count[10] = {0};
      for (size_t k = 0; k < e.props.size(); ++k) {
        if (e.props[k].is_list) continue;
        roles[k] = vertex_role(e.props[k].name);
        ++count[static_cast<int>(roles[k])];
      }
      auto all_three = [&](Role first) {
        const int f = static_cast<int>(first);
        return count[f] > 0 && count[f + 1] > 0 && count[f + 2] > 0;
      };
      if (!all_three(Role::x)) src.fail("the vertex element lacks an x, y or z property");
      // Normals and colors only when all three components are there; else they are skipped.
      has_normals = all_three(Role::nx);
      has_colors = all_three(Role::red);
      for (Role& r : roles) {
        if (!has_normals && (r == Role::nx || r == Role::ny || r == Role::nz)) r = Role::skip;
        if (!has_colors && (r == Role::red || r == Role::green || r == Role::blue)) r = Role::skip;
      }
      out.cloud.positions.setZero(e.count, 3);
      if (has_normals) out.cloud.normals.setZero(e.count, 3);
      if (has_colors) out.cloud.colors.setZero(e.count, 3);
    }
    std::vector<double> polygon;
    for (int64_t i = 0; i < e.count; ++i) {
      src.begin_instance(e, i);
      for (size_t k = 0; k < e.props.size(); ++k) {
        const PlyProperty& p = e.props[k];
        if (p.is_list) {
          const double cnt = src.value(p.count_type, "a list count");
          if (cnt < 0) src.fail(str_cat("negative list count ", cnt, " in '", e.name, "' ", i));
          const int64_t n = static_cast<int64_t>(cnt);
          const bool is_polygon =
              is_face && (p.name == "vertex_indices" || p.name == "vertex_index");
          polygon.clear();
          for (int64_t j = 0; j < n; ++j) {
            const double v = src.value(p.type, "a list item");
            if (is_polygon) polygon.push_back(v);
          }
          if (is_polygon) {
            if (n < 3) src.fail(str_cat("face ", i, " has ", n, " vertices (at least 3 needed)"));
            for (double v : polygon) {
              if (v != std::floor(v) || v < 0 || (num_vertices >= 0 && v >= num_vertices)) {
                src.fail(str_cat("face ", i, " refers to vertex ", v, " but the file has ",
                                 num_vertices, " vertices"));
              }
            }
            for (int64_t j = 1; j + 1 < n; ++j) {  // fan triangulation
              out.triangles.push_back(static_cast<int32_t>(polygon[0]));
              out.triangles.push_back(static_cast<int32_t>(polygon[j]));
              out.triangles.push_back(static_cast<int32_t>(polygon[j + 1]));
            }
          }
          continue;
        }
        const double v = src.value(p.type, p.name.c_str());
        if (!is_vertex) continue;
        switch (roles[k]) {
          case Role::skip: break;
          case Role::x: case Role::y: case Role::z: {
            if (!std::isfinite(v)) {
              src.fail(str_cat("vertex ", i, " has a non-finite ", p.name, " coordinate (", v,
                               ")"));
            }
            out.cloud.positions(i, static_cast<int>(roles[k]) - static_cast<int>(Role::x)) =
                static_cast<float>(v);
            break;
          }
          case Role::nx: case Role::ny: case Role::nz: {
            if (!std::isfinite(v)) {
              src.fail(str_cat("vertex ", i, " has a non-finite normal ", p.name, " (", v, ")"));
            }
            out.cloud.normals(i, static_cast<int>(roles[k]) - static_cast<int>(Role::nx)) =
                static_cast<float>(v);
            break;
          }
          case Role::red: case Role::green: case Role::blue: {
            double c = is_integer_type(p.type) ? v : v * 255.0;  // float colors are in [0, 1]
            if (!(c >= 0 && c <= 255.5)) {
              src.fail(str_cat("vertex ", i, " has color ", p.name, " = ", v, " out of range"));
            }
            out.cloud.colors(i, static_cast<int>(roles[k]) - static_cast<int>(Role::red)) =
                static_cast<uint8_t>(std::lround(std::min(c, 255.0)));
            break;
          }
        }
      }
      src.end_instance(e);
    }
  }
  src.finish();
}

PlyData read_ply(const std::string& path, const std::string& op) {
  detail::TextFile file(path, op);
  if (!file.next_line() || file.line() != "ply") {
    file.fail("not a PLY file (the first line must be 'ply')");
  }
  std::vector<PlyElement> elements;
  bool have_format = false, binary = false, ended = false;
  while (file.next_line()) {
    if (file.at_line_end()) continue;
    const std::string key = file.next_token();
    if (key == "comment" || key == "obj_info") continue;
    if (key == "end_header") { ended = true; break; }
    if (key == "format") {
      const std::string f = file.next_token();
      if (f == "ascii") binary = false;
      else if (f == "binary_little_endian") binary = true;
      else if (f == "binary_big_endian") {
        file.fail("binary_big_endian PLY is not supported (convert it to binary_little_endian "
                  "or ascii)");
      } else {
        file.fail(str_cat("unknown PLY format '", f, "'"));
      }
      have_format = true;
    } else if (key == "element") {
      PlyElement e;
      e.name = file.next_token();
      const int64_t count = file.next_int("the element count");
      if (count < 0) file.fail(str_cat("negative element count ", count));
      e.count = count;
      for (const PlyElement& other : elements) {
        if (other.name == e.name) file.fail(str_cat("element '", e.name, "' declared twice"));
      }
      elements.push_back(e);
    } else if (key == "property") {
      if (elements.empty()) file.fail("a property is declared before any element");
      PlyProperty p;
      std::string a = file.next_token();
      if (a == "list") {
        const std::string ct = file.next_token();
        const std::string it = file.next_token();
        if (!parse_type(ct, p.count_type) || !parse_type(it, p.type)) {
          file.fail(str_cat("unknown list types '", ct, " ", it, "'"));
        }
        if (!is_integer_type(p.count_type)) file.fail("a list count type must be an integer");
        p.is_list = true;
        p.name = file.next_token();
      } else {
        const std::string b = file.next_token();
        if (parse_type(a, p.type)) {
          p.name = b;
        } else if (parse_type(b, p.type)) {  // old style: property <name> <type>
          p.name = a;
        } else {
          file.fail(str_cat("unknown property type in 'property ", a, " ", b, "'"));
        }
      }
      // Anything after the name (e.g. "{ diffuse color }") is a comment.
      elements.back().props.push_back(p);
    } else {
      file.fail(str_cat("unknown header keyword '", key, "'"));
    }
  }
  if (!ended) file.fail("the header has no 'end_header' line (truncated?)");
  if (!have_format) file.fail("the header has no 'format' line");
  bool has_vertex = false;
  for (const PlyElement& e : elements) has_vertex = has_vertex || e.name == "vertex";
  if (!has_vertex) file.fail("the file has no 'vertex' element");

  PlyData out;
  if (binary) {
    BinarySource src(file.bytes(), file.offset_after_line(), path, op);
    read_body(src, elements, out);
  } else {
    AsciiSource src(file);
    read_body(src, elements, out);
  }
  return out;
}

void append_raw(std::string& out, const void* p, size_t n) {
  out.append(static_cast<const char*>(p), n);
}

std::string header(PlyFormat format, int64_t nv, bool normals, bool colors, int64_t nf,
                   bool faces) {
  std::string h = "ply\nformat ";
  h += format == PlyFormat::ascii ? "ascii 1.0\n" : "binary_little_endian 1.0\n";
  h += "comment written by Lapis\n";
  h += "element vertex " + std::to_string(nv) + "\n";
  h += "property float x\nproperty float y\nproperty float z\n";
  if (normals) h += "property float nx\nproperty float ny\nproperty float nz\n";
  if (colors) h += "property uchar red\nproperty uchar green\nproperty uchar blue\n";
  if (faces) {
    h += "element face " + std::to_string(nf) + "\n";
    h += "property list uchar int vertex_indices\n";
  }
  h += "end_header\n";
  return h;
}

void append_vertices(std::string& out, PlyFormat format, const Points& p, const Points* n,
                     const Colors* c) {
  for (Eigen::Index i = 0; i < p.rows(); ++i) {
    if (format == PlyFormat::ascii) {
      for (int k = 0; k < 3; ++k) {
        if (k) out += ' ';
        detail::append_float(out, p(i, k));
      }
      if (n) {
        for (int k = 0; k < 3; ++k) { out += ' '; detail::append_float(out, (*n)(i, k)); }
      }
      if (c) {
        for (int k = 0; k < 3; ++k) { out += ' '; detail::append_int(out, (*c)(i, k)); }
      }
      out += '\n';
    } else {
      append_raw(out, p.row(i).data(), 3 * sizeof(float));
      if (n) append_raw(out, n->row(i).data(), 3 * sizeof(float));
      if (c) append_raw(out, c->row(i).data(), 3);
    }
  }
}

}  // namespace

PointCloud read_ply_point_cloud(const std::string& path) {
  return read_ply(path, "read_ply_point_cloud").cloud;
}

TriangleMesh read_ply_mesh(const std::string& path) {
  PlyData d = read_ply(path, "read_ply_mesh");
  TriangleMesh mesh;
  mesh.vertices = std::move(d.cloud.positions);
  const Eigen::Index nt = static_cast<Eigen::Index>(d.triangles.size() / 3);
  mesh.faces = Eigen::Map<const Faces>(d.triangles.data(), nt, 3);
  return mesh;
}

void write_ply(const std::string& path, const PointCloud& input, PlyFormat format) {
  const PointCloud cloud = input.compacted();
  cloud.validate(str_cat("write_ply: ", path));
  std::string out = header(format, cloud.size(), cloud.has_normals(), cloud.has_colors(), 0,
                           false);
  out.reserve(out.size() + static_cast<size_t>(cloud.size()) * 27);
  append_vertices(out, format, cloud.positions, cloud.has_normals() ? &cloud.normals : nullptr,
                  cloud.has_colors() ? &cloud.colors : nullptr);
  detail::write_file_atomic(path, out, "write_ply");
}

void write_ply(const std::string& path, const TriangleMesh& mesh, PlyFormat format) {
  mesh.validate(str_cat("write_ply: ", path));
  std::string out = header(format, mesh.num_vertices(), false, false, mesh.num_faces(), true);
  append_vertices(out, format, mesh.vertices, nullptr, nullptr);
  for (Eigen::Index f = 0; f < mesh.faces.rows(); ++f) {
    if (format == PlyFormat::ascii) {
      out += '3';
      for (int k = 0; k < 3; ++k) { out += ' '; detail::append_int(out, mesh.faces(f, k)); }
      out += '\n';
    } else {
      const uint8_t three = 3;
      append_raw(out, &three, 1);
      append_raw(out, mesh.faces.row(f).data(), 3 * sizeof(int32_t));
    }
  }
  detail::write_file_atomic(path, out, "write_ply");
}

}  // namespace geometry
}  // namespace lapis
