#include "geometry/pcl/pcl_interop.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>
#include <vector>


#include <pcl/PCLPointCloud2.h>
#include <pcl/conversions.h>
#include <pcl/io/pcd_io.h>

#include "core/atomic_file.h"
#include "core/check.h"

namespace lapis {
namespace geometry {
namespace {

bool finite3(float a, float b, float c) {
  return std::isfinite(a) && std::isfinite(b) && std::isfinite(c);
}

// Positions and validity from any PCL point type with x y z.
template <typename PointT>
void copy_positions(const ::pcl::PointCloud<PointT>& in, PointCloud& out) {
  const Eigen::Index n = static_cast<Eigen::Index>(in.size());
  out.positions.resize(n, 3);
  std::vector<uint8_t> valid(static_cast<size_t>(n), 1);
  bool any_invalid = false;
  for (Eigen::Index i = 0; i < n; ++i) {
    const PointT& p = in[static_cast<size_t>(i)];
    if (finite3(p.x, p.y, p.z)) {
      out.positions.row(i) << p.x, p.y, p.z;
    } else {
      out.positions.row(i).setZero();
      valid[static_cast<size_t>(i)] = 0;
      any_invalid = true;
    }
  }
  if (any_invalid) out.valid = std::move(valid);
}

template <typename PointT>
void set_layout(const PointCloud& cloud, ::pcl::PointCloud<PointT>& out) {
  out.width = static_cast<std::uint32_t>(cloud.size());
  out.height = 1;
  out.is_dense = cloud.count_valid() == cloud.size();
}

// PCL's PCD reader crashes on some malformed files (e.g. text without a header), so the header
// and the data size are checked here first; errors name the file and the line.
void check_pcd(const std::string& path) {
  const char* op = "read_pcd";
  std::ifstream in(path, std::ios::binary);
  LAPIS_CHECK(in.good(), op, "cannot open '", path, "' for reading");
  std::ostringstream ss;
  ss << in.rdbuf();
  const std::string bytes = ss.str();
  size_t pos = 0;
  int line_no = 0;
  std::vector<int64_t> sizes, counts;
  std::vector<std::string> types;
  size_t num_fields = 0;
  int64_t width = -1, height = 1, points = -1;
  std::string data;
  auto fail = [&](const std::string& msg) { LAPIS_FAIL(op, path, ":", line_no, ": ", msg); };
  auto numbers = [&](std::istringstream& ls, const std::string& key) {
    std::vector<int64_t> v;
    std::string tok;
    while (ls >> tok) {
      char* end = nullptr;
      const long long x = std::strtoll(tok.c_str(), &end, 10);
      if (*end != '\0' || x < 0) fail(str_cat(key, ": expected a non-negative integer, found '",
                                                tok, "'"));
      v.push_back(x);
    }
    return v;
  };
  while (data.empty()) {
    if (pos >= bytes.size()) fail("the header has no DATA line (not a PCD file, or truncated)");
    size_t nl = bytes.find('\n', pos);
    if (nl == std::string::npos) nl = bytes.size();
    std::string line = bytes.substr(pos, nl - pos);
    pos = nl + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    std::istringstream ls(line);
    std::string key;
    if (!(ls >> key) || key[0] == '#') continue;
    if (key == "VERSION" || key == "VIEWPOINT") continue;
    if (key == "FIELDS" || key == "COLUMNS") {
      std::string f;
      num_fields = 0;
      while (ls >> f) ++num_fields;
    } else if (key == "SIZE") {
      sizes = numbers(ls, key);
    } else if (key == "TYPE") {
      std::string t;
      while (ls >> t) {
        if (t != "F" && t != "U" && t != "I") fail(str_cat("TYPE: unknown type '", t, "'"));
        types.push_back(t);
      }
    } else if (key == "COUNT") {
      counts = numbers(ls, key);
    } else if (key == "WIDTH" || key == "HEIGHT" || key == "POINTS") {
      const std::vector<int64_t> v = numbers(ls, key);
      if (v.size() != 1) fail(str_cat(key, ": expected one integer"));
      (key == "WIDTH" ? width : key == "HEIGHT" ? height : points) = v[0];
    } else if (key == "DATA") {
      ls >> data;
      if (data != "ascii" && data != "binary" && data != "binary_compressed") {
        fail(str_cat("DATA: unknown storage '", data, "'"));
      }
    } else {
      fail(str_cat("unknown header keyword '", key, "' (not a PCD file?)"));
    }
  }
  if (num_fields == 0) fail("the header has no FIELDS");
  if (counts.empty()) counts.assign(num_fields, 1);
  if (sizes.size() != num_fields || types.size() != num_fields || counts.size() != num_fields) {
    fail(str_cat("FIELDS has ", num_fields, " entries but SIZE has ", sizes.size(), ", TYPE ",
                 types.size(), ", COUNT ", counts.size()));
  }
  if (width < 0) fail("the header has no WIDTH");
  if (points < 0) points = width * height;
  if (points != width * height) {
    fail(str_cat("POINTS ", points, " != WIDTH ", width, " x HEIGHT ", height));
  }
  int64_t point_bytes = 0, values = 0;
  for (size_t k = 0; k < num_fields; ++k) {
    if (sizes[k] != 1 && sizes[k] != 2 && sizes[k] != 4 && sizes[k] != 8) {
      fail(str_cat("SIZE ", sizes[k], " is not 1, 2, 4 or 8"));
    }
    point_bytes += sizes[k] * counts[k];
    values += counts[k];
  }
  const int64_t left = static_cast<int64_t>(bytes.size()) - static_cast<int64_t>(pos);
  if (data == "binary") {
    if (left < points * point_bytes) {
      LAPIS_FAIL(op, path, ": byte offset ", pos, ": truncated binary data: ", points,
                 " points need ", points * point_bytes, " bytes, the file has ", left);
    }
  } else if (data == "binary_compressed") {
    if (points > 0 && left < 8) {
      LAPIS_FAIL(op, path, ": byte offset ", pos, ": truncated compressed data");
    }
    uint32_t compressed = 0;
    if (left >= 8) std::memcpy(&compressed, bytes.data() + pos, 4);
    if (left >= 8 && static_cast<int64_t>(compressed) > left - 8) {
      LAPIS_FAIL(op, path, ": byte offset ", pos, ": truncated compressed data (", compressed,
                 " bytes declared, ", left - 8, " present)");
    }
  } else {
    int64_t seen = 0;
    while (pos < bytes.size() && seen < points) {
      size_t nl = bytes.find('\n', pos);
      if (nl == std::string::npos) nl = bytes.size();
      std::istringstream ls(bytes.substr(pos, nl - pos));
      pos = nl + 1;
      ++line_no;
      int64_t n = 0;
      std::string tok;
      while (ls >> tok) {
        char* end = nullptr;
        std::strtod(tok.c_str(), &end);
        if (*end != '\0') fail(str_cat("expected a number, found '", tok, "'"));
        ++n;
      }
      if (n == 0) continue;
      if (n != values) fail(str_cat("expected ", values, " values per point, found ", n));
      ++seen;
    }
    if (seen < points) {
      fail(str_cat("file ends after ", seen, " of ", points, " points (truncated?)"));
    }
  }
}

}  // namespace

PointCloud from_pcl(const ::pcl::PointCloud<::pcl::PointXYZ>& cloud) {
  PointCloud out;
  copy_positions(cloud, out);
  return out;
}

PointCloud from_pcl(const ::pcl::PointCloud<::pcl::PointNormal>& cloud) {
  PointCloud out;
  copy_positions(cloud, out);
  const Eigen::Index n = out.positions.rows();
  out.normals.resize(n, 3);
  for (Eigen::Index i = 0; i < n; ++i) {
    const ::pcl::PointNormal& p = cloud[static_cast<size_t>(i)];
    if (finite3(p.normal_x, p.normal_y, p.normal_z)) {
      out.normals.row(i) << p.normal_x, p.normal_y, p.normal_z;
    } else {
      out.normals.row(i).setZero();
      if (out.valid.empty()) out.valid.assign(static_cast<size_t>(n), 1);
      out.valid[static_cast<size_t>(i)] = 0;
    }
  }
  return out;
}

::pcl::PointCloud<::pcl::PointXYZ> to_pcl_xyz(const PointCloud& cloud) {
  cloud.validate("to_pcl_xyz");
  ::pcl::PointCloud<::pcl::PointXYZ> out;
  out.resize(static_cast<size_t>(cloud.size()));
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (int64_t i = 0; i < cloud.size(); ++i) {
    ::pcl::PointXYZ& p = out[static_cast<size_t>(i)];
    if (cloud.is_valid(i)) {
      p.x = cloud.positions(i, 0); p.y = cloud.positions(i, 1); p.z = cloud.positions(i, 2);
    } else {
      p.x = p.y = p.z = nan;
    }
  }
  set_layout(cloud, out);
  return out;
}

::pcl::PointCloud<::pcl::PointNormal> to_pcl_point_normal(const PointCloud& cloud) {
  cloud.validate("to_pcl_point_normal");
  LAPIS_CHECK(cloud.has_normals(), "to_pcl_point_normal", "the cloud (", cloud.size(),
              " points) has no normals");
  ::pcl::PointCloud<::pcl::PointNormal> out;
  out.resize(static_cast<size_t>(cloud.size()));
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (int64_t i = 0; i < cloud.size(); ++i) {
    ::pcl::PointNormal& p = out[static_cast<size_t>(i)];
    if (cloud.is_valid(i)) {
      p.x = cloud.positions(i, 0); p.y = cloud.positions(i, 1); p.z = cloud.positions(i, 2);
      p.normal_x = cloud.normals(i, 0);
      p.normal_y = cloud.normals(i, 1);
      p.normal_z = cloud.normals(i, 2);
    } else {
      p.x = p.y = p.z = p.normal_x = p.normal_y = p.normal_z = nan;
    }
    p.curvature = 0;
  }
  set_layout(cloud, out);
  return out;
}

PointCloud read_pcd(const std::string& path) {
  check_pcd(path);
  ::pcl::PCLPointCloud2 blob;
  ::pcl::PCDReader reader;
  int rc = -1;
  try {
    rc = reader.read(path, blob);
  } catch (const std::exception& e) {
    LAPIS_FAIL("read_pcd", "'", path, "': ", e.what());
  }
  LAPIS_CHECK(rc >= 0, "read_pcd", "'", path, "': PCL could not read it (missing, not a PCD file, "
              "or malformed; PCL's reason is on stderr), code ", rc);
  bool has_x = false, has_normals = false, has_rgb = false;
  for (const ::pcl::PCLPointField& f : blob.fields) {
    has_x = has_x || f.name == "x";
    has_normals = has_normals || f.name == "normal_x";
    has_rgb = has_rgb || f.name == "rgb" || f.name == "rgba";
  }
  LAPIS_CHECK(has_x, "read_pcd", "'", path, "' has no x/y/z fields");
  PointCloud out;
  if (has_normals) {
    ::pcl::PointCloud<::pcl::PointNormal> c;
    ::pcl::fromPCLPointCloud2(blob, c);
    out = from_pcl(c);
  } else {
    ::pcl::PointCloud<::pcl::PointXYZ> c;
    ::pcl::fromPCLPointCloud2(blob, c);
    out = from_pcl(c);
  }
  if (has_rgb) {
    ::pcl::PointCloud<::pcl::PointXYZRGB> c;
    ::pcl::fromPCLPointCloud2(blob, c);
    out.colors.resize(out.size(), 3);
    for (int64_t i = 0; i < out.size(); ++i) {
      const ::pcl::PointXYZRGB& p = c[static_cast<size_t>(i)];
      out.colors.row(i) << p.r, p.g, p.b;
    }
  }
  return out;
}

void write_pcd(const std::string& path, const PointCloud& cloud, bool binary) {
  replace_file_atomic(
      path,
      [&](const std::string& tmp) {
        int rc = 0;
        ::pcl::PCDWriter writer;
        try {
          rc = cloud.has_normals() ? writer.write(tmp, to_pcl_point_normal(cloud), binary)
                                   : writer.write(tmp, to_pcl_xyz(cloud), binary);
        } catch (const lapis::Error&) {
          throw;
        } catch (const std::exception& e) {
          LAPIS_FAIL("write_pcd", "'", path, "': ", e.what());
        }
        LAPIS_CHECK(rc == 0, "write_pcd", "'", path, "': PCL could not write '", tmp,
                    "' (code ", rc, ")");
      },
      "write_pcd");
}

}  // namespace geometry
}  // namespace lapis
