// IO round trips (PLY ASCII/binary, OFF, XYZ, PCPNet), hand-written files with odd headers, and
// every malformed case: each must throw lapis::Error naming the file and the line (or byte
// offset for binary PLY), never crash.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "core/check.h"
#include "geometry/io.h"
#include "tests/common/temp_dir.h"

namespace lapis {
namespace geometry {
namespace {

using lapis::testing::TempDir;


void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Expects lapis::Error whose message contains every part.
template <typename F>
void expect_error(F f, const std::vector<std::string>& parts) {
  try {
    f();
    ADD_FAILURE() << "no error thrown; expected one mentioning '" << parts.front() << "'";
  } catch (const Error& e) {
    const std::string msg = e.what();
    for (const std::string& p : parts) {
      EXPECT_NE(msg.find(p), std::string::npos) << "message lacks '" << p << "': " << msg;
    }
  }
}

PointCloud make_cloud(int n, bool normals, bool colors) {
  PointCloud c;
  c.positions.resize(n, 3);
  if (normals) c.normals.resize(n, 3);
  if (colors) c.colors.resize(n, 3);
  for (int i = 0; i < n; ++i) {
    // Values that are not exactly representable in short decimals: exercises %.9g round trips.
    c.positions.row(i) << 0.1f * i + 1.0f / 3.0f, -2.5e-7f * i, 1e6f + static_cast<float>(i) / 7;
    if (normals) {
      Eigen::RowVector3f n3(std::sin(i * 0.3f), std::cos(i * 0.7f), 0.5f);
      c.normals.row(i) = n3.normalized();
    }
    if (colors) c.colors.row(i) << static_cast<uint8_t>(i), 255, static_cast<uint8_t>(3 * i);
  }
  return c;
}

TriangleMesh make_mesh() {
  // A unit tetrahedron with outward (counter-clockwise) faces.
  TriangleMesh m;
  m.vertices.resize(4, 3);
  m.vertices << 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1;
  m.faces.resize(4, 3);
  m.faces << 0, 2, 1, 0, 1, 3, 0, 3, 2, 1, 2, 3;
  return m;
}

void expect_same_cloud(const PointCloud& a, const PointCloud& b) {
  ASSERT_EQ(a.size(), b.size());
  EXPECT_TRUE(a.positions == b.positions);  // bitwise: %.9g and binary round-trip floats
  ASSERT_EQ(a.has_normals(), b.has_normals());
  if (a.has_normals()) EXPECT_TRUE(a.normals == b.normals);
  ASSERT_EQ(a.has_colors(), b.has_colors());
  if (a.has_colors()) EXPECT_TRUE(a.colors == b.colors);
}

TEST(GeometryIo, PlyRoundTripAsciiAndBinary) {
  TempDir dir;
  for (PlyFormat format : {PlyFormat::ascii, PlyFormat::binary_little_endian}) {
    for (int variant = 0; variant < 4; ++variant) {
      const PointCloud c = make_cloud(37, variant & 1, variant & 2);
      const std::string path = dir.file("c.ply");
      write_ply(path, c, format);
      expect_same_cloud(c, read_ply_point_cloud(path));
      expect_same_cloud(c, read_point_cloud(path));
    }
    const TriangleMesh m = make_mesh();
    const std::string path = dir.file("m.ply");
    write_ply(path, m, format);
    const TriangleMesh r = read_triangle_mesh(path);
    EXPECT_TRUE(r.vertices == m.vertices);
    EXPECT_TRUE(r.faces == m.faces);
  }
  // Empty cloud.
  write_ply(dir.file("e.ply"), PointCloud{});
  EXPECT_EQ(read_ply_point_cloud(dir.file("e.ply")).size(), 0);
}

TEST(GeometryIo, WritesOnlyValidPointsAndLeavesNoTempFile) {
  TempDir dir;
  PointCloud c = make_cloud(5, true, false);
  c.valid = {1, 0, 1, 1, 0};
  c.positions(1, 0) = std::numeric_limits<float>::quiet_NaN();
  write_point_cloud(dir.file("v.ply"), c);
  const PointCloud r = read_point_cloud(dir.file("v.ply"));
  ASSERT_EQ(r.size(), 3);
  EXPECT_TRUE(r.positions.row(1) == c.positions.row(2));
  EXPECT_EQ(std::system(("ls " + dir.file("*.tmp.*") + " >/dev/null 2>&1").c_str()) == 0, false);
}

TEST(GeometryIo, OffRoundTrip) {
  TempDir dir;
  const TriangleMesh m = make_mesh();
  write_triangle_mesh(dir.file("m.off"), m);
  const TriangleMesh r = read_triangle_mesh(dir.file("m.off"));
  EXPECT_TRUE(r.vertices == m.vertices);
  EXPECT_TRUE(r.faces == m.faces);
  for (bool normals : {false, true}) {
    const PointCloud c = make_cloud(11, normals, false);
    write_point_cloud(dir.file("c.off"), c);
    expect_same_cloud(c, read_point_cloud(dir.file("c.off")));
  }
}

TEST(GeometryIo, XyzAndPcpnetRoundTrip) {
  TempDir dir;
  const PointCloud plain = make_cloud(9, false, false);
  write_point_cloud(dir.file("p.xyz"), plain);
  expect_same_cloud(plain, read_point_cloud(dir.file("p.xyz")));

  // Six columns.
  const PointCloud six = make_cloud(9, true, false);
  write_xyz(dir.file("six.xyz"), six, true);
  expect_same_cloud(six, read_xyz(dir.file("six.xyz")));

  // PCPNet triple: .xyz + .normals + .pidx; read_xyz picks up the .normals too.
  const Indices pidx = {0, 3, 8};
  write_pcpnet(dir.file("shape.xyz"), six, pidx);
  const PcpnetShape s = read_pcpnet(dir.file("shape"));
  expect_same_cloud(six, s.cloud);
  EXPECT_EQ(s.eval_indices, pidx);
  expect_same_cloud(six, read_point_cloud(dir.file("shape.xyz")));
  EXPECT_EQ(read_pidx(dir.file("shape.pidx"), 9), pidx);
}

TEST(GeometryIo, PlyOddHeaderAndExtraProperties) {
  TempDir dir;
  // Comments anywhere, obj_info, extra properties of every scalar type before/between/after the
  // coordinates, an extra list property in the vertex element, old-style "property name type
  // { comment }" in a trailing element, normals under PCL's names, a quad face (fan-split),
  // CRLF line ends and blank lines.
  const std::string text =
      "ply\r\n"
      "comment first\n"
      "format ascii 1.0\n"
      "obj_info something\n"
      "element vertex 4\n"
      "comment between\n"
      "property char a\nproperty uchar b\nproperty float x\nproperty short c\n"
      "property float y\nproperty ushort d\nproperty double z\nproperty int e\n"
      "property uint f\nproperty list uchar float extra\n"
      "property float normal_x\nproperty float normal_y\nproperty float normal_z\n"
      "property uchar red\nproperty uchar green\nproperty uchar blue\n"
      "element face 1\n"
      "property list int int vertex_index\n"
      "property uchar flags\n"
      "element material 1\n"
      "property ambient_red uchar               { ambient color }\n"
      "property specular_power float            { Phong power }\n"
      "comment last\n"
      "end_header\n"
      "-1 200 0 -3 1 60000 2 -100000 4000000000 2 0.5 0.25 0 0 1 10 20 30\n"
      "\n"
      "-1 200 1 -3 1 60000 2 -100000 4000000000 0 0 0 1 10 20 30\r\n"
      "-1 200 1 -3 0 60000 2 -100000 4000000000 1 7 0 1 0 10 20 30\n"
      "-1 200 0 -3 0 60000 2 -100000 4000000000 0 1 0 0 10 20 255\n"
      "4 0 1 2 3 9\n"
      "0 25\n";
  write_text(dir.file("odd.ply"), text);
  const PointCloud c = read_ply_point_cloud(dir.file("odd.ply"));
  ASSERT_EQ(c.size(), 4);
  EXPECT_EQ(c.positions(1, 0), 1.0f);
  EXPECT_EQ(c.positions(1, 1), 1.0f);
  EXPECT_EQ(c.positions(1, 2), 2.0f);
  ASSERT_TRUE(c.has_normals());
  EXPECT_EQ(c.normals(0, 2), 1.0f);
  EXPECT_EQ(c.normals(2, 1), 1.0f);
  ASSERT_TRUE(c.has_colors());
  EXPECT_EQ(c.colors(3, 2), 255);
  const TriangleMesh m = read_ply_mesh(dir.file("odd.ply"));
  ASSERT_EQ(m.num_faces(), 2);
  EXPECT_EQ(m.faces.row(0), (Eigen::RowVector3i(0, 1, 2)));
  EXPECT_EQ(m.faces.row(1), (Eigen::RowVector3i(0, 2, 3)));
}

// The same odd layout written in binary: every scalar type, list counts of two types.
TEST(GeometryIo, PlyBinaryExtraPropertiesOfEveryType) {
  TempDir dir;
  std::string bin =
      "ply\nformat binary_little_endian 1.0\ncomment x\nelement vertex 2\n"
      "property char a\nproperty float x\nproperty ushort b\nproperty float y\n"
      "property double z\nproperty list ushort int idx\nproperty uint c\n"
      "element face 1\nproperty list uchar uint vertex_indices\nproperty short s\n"
      "end_header\n";
  auto put = [&bin](const auto& v) { bin.append(reinterpret_cast<const char*>(&v), sizeof(v)); };
  for (int i = 0; i < 2; ++i) {
    put(int8_t(-1)); put(float(i + 0.5f)); put(uint16_t(7)); put(float(-i)); put(double(3 * i));
    put(uint16_t(2)); put(int32_t(5)); put(int32_t(6)); put(uint32_t(9));
  }
  put(uint8_t(3)); put(uint32_t(0)); put(uint32_t(1)); put(uint32_t(1)); put(int16_t(4));
  write_text(dir.file("b.ply"), bin);
  const TriangleMesh m = read_ply_mesh(dir.file("b.ply"));
  ASSERT_EQ(m.num_vertices(), 2);
  EXPECT_EQ(m.vertices(1, 0), 1.5f);
  EXPECT_EQ(m.vertices(1, 1), -1.0f);
  EXPECT_EQ(m.vertices(1, 2), 3.0f);
  ASSERT_EQ(m.num_faces(), 1);
  EXPECT_EQ(m.faces(0, 2), 1);

  // Truncated by 3 bytes: error with a byte offset.
  write_text(dir.file("t.ply"), bin.substr(0, bin.size() - 3));
  expect_error([&] { read_ply_mesh(dir.file("t.ply")); },
               {dir.file("t.ply"), "byte offset", "truncated"});
  // Trailing garbage: the counts are too small.
  write_text(dir.file("g.ply"), bin + "xx");
  expect_error([&] { read_ply_mesh(dir.file("g.ply")); }, {"byte offset", "unexpected"});
}

TEST(GeometryIo, BinaryPlyNanCoordinateNamesByteOffset) {
  TempDir dir;
  PointCloud c = make_cloud(3, false, false);
  write_ply(dir.file("n.ply"), c, PlyFormat::binary_little_endian);
  std::string bytes = read_text(dir.file("n.ply"));
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::memcpy(&bytes[bytes.size() - 4], &nan, 4);  // z of the last point
  write_text(dir.file("n.ply"), bytes);
  expect_error([&] { read_ply_point_cloud(dir.file("n.ply")); },
               {dir.file("n.ply"), "byte offset", "vertex 2", "non-finite"});
}

struct BadCase {
  const char* name;
  const char* text;
  std::vector<std::string> mentions;  // besides the path
};

TEST(GeometryIo, MalformedPlyAscii) {
  TempDir dir;
  const std::string head = "ply\nformat ascii 1.0\nelement vertex 2\nproperty float x\n"
                           "property float y\nproperty float z\n";
  const std::vector<std::pair<std::string, std::vector<std::string>>> cases = {
      {"plx\n", {":1:", "not a PLY"}},
      {"ply\nformat binary_big_endian 1.0\nelement vertex 0\nend_header\n",
       {":2:", "binary_big_endian", "not supported"}},
      {"ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\n",
       {"end_header"}},
      {"ply\nformat ascii 1.0\nelement vertex 1\nproperty quad x\nproperty float y\n"
       "end_header\n", {":4:", "unknown property type"}},
      {"ply\nformat ascii 1.0\nproperty float x\nend_header\n", {":3:", "before any element"}},
      {"ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nproperty float y\n"
       "end_header\n1 2\n", {"lacks an x, y or z"}},
      {head + "end_header\n1 2 3\n", {":8:", "file ends after 1 of 2"}},
      {head + "end_header\n1 2 3\n4 5\n", {":9:", "missing"}},
      {head + "end_header\n1 2 3\n4 5 6 7\n", {":9:", "extra value '7'"}},
      {head + "end_header\n1 2 3\n4 abc 6\n", {":9:", "'abc'"}},
      {head + "end_header\n1 2 3\n4 nan 6\n", {":9:", "vertex 1", "non-finite"}},
      {head + "end_header\n1 2 3\n4 inf 6\n", {":9:", "non-finite"}},
      {head + "end_header\n1 2 3\n4 5 6\n7 8 9\n", {":10:", "after the last element"}},
      {head + "element face 1\nproperty list uchar int vertex_indices\nend_header\n"
              "0 0 0\n1 1 1\n3 0 1 2\n", {":12:", "refers to vertex 2"}},
      {head + "element face 1\nproperty list uchar int vertex_indices\nend_header\n"
              "0 0 0\n1 1 1\n2 0 1\n", {":12:", "has 2 vertices"}},
      {head + "element face 1\nproperty list uchar int vertex_indices\nend_header\n"
              "0 0 0\n1 1 1\n3 0 1.5 1\n", {":12:", "integer"}},
      {head + "element face 1\nproperty list uchar int vertex_indices\nend_header\n"
              "0 0 0\n1 1 1\n3 0 1\n", {":12:", "missing"}},
      {"ply\nformat ascii 1.0\nelement vertex -1\nend_header\n", {":3:", "negative"}},
  };
  for (size_t k = 0; k < cases.size(); ++k) {
    const std::string path = dir.file("bad" + std::to_string(k) + ".ply");
    write_text(path, cases[k].first);
    std::vector<std::string> mentions = cases[k].second;
    mentions.push_back(path);
    SCOPED_TRACE(cases[k].first);
    expect_error([&] { read_triangle_mesh(path); }, mentions);
  }
  expect_error([&] { read_point_cloud(dir.file("missing.ply")); },
               {"cannot open", dir.file("missing.ply")});
}

TEST(GeometryIo, MalformedOff) {
  TempDir dir;
  const std::vector<std::pair<std::string, std::vector<std::string>>> cases = {
      {"OFX\n1 0 0\n0 0 0\n", {":1:", "not an OFF"}},
      {"OFF\n", {"ends before"}},
      {"OFF\n2 0 0\n0 0 0\n", {"file ends after 1 of 2 vertices"}},
      {"OFF\n1 0 0\n0 zz 0\n", {":3:", "'zz'"}},
      {"OFF\n1 0 0\n0 nan 0\n", {":3:", "not finite"}},
      {"OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 3\n", {":6:", "refers to vertex 3"}},
      {"OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1\n", {":6:", "missing"}},
      {"OFF\n3 2 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n", {"file ends after 1 of 2 faces"}},
      {"OFF\n1 0 0\n0 0 0\n5 5 5\n", {":4:", "unexpected data"}},
  };
  for (size_t k = 0; k < cases.size(); ++k) {
    const std::string path = dir.file("bad" + std::to_string(k) + ".off");
    write_text(path, cases[k].first);
    std::vector<std::string> mentions = cases[k].second;
    mentions.push_back(path);
    SCOPED_TRACE(cases[k].first);
    expect_error([&] { read_triangle_mesh(path); }, mentions);
  }
  // Comments, blank lines, counts on the OFF line, a quad and a colored face are fine.
  write_text(dir.file("ok.off"),
             "# c\nOFF 4 1 0\n\n0 0 0\n1 0 0\n# mid\n1 1 0\n0 1 0\n4 0 1 2 3 255 0 0\n");
  const TriangleMesh m = read_triangle_mesh(dir.file("ok.off"));
  EXPECT_EQ(m.num_faces(), 2);
}

TEST(GeometryIo, MalformedXyzAndPcpnet) {
  TempDir dir;
  const std::vector<std::pair<std::string, std::vector<std::string>>> cases = {
      {"1 2 3\n4 5\n", {":2:", "expected 3 values"}},
      {"1 2\n", {":1:", "3 or 6"}},
      {"1 2 3\n4 x 6\n", {":2:", "'x'"}},
      {"1 2 3\n4 -inf 6\n", {":2:", "not finite"}},
  };
  for (size_t k = 0; k < cases.size(); ++k) {
    const std::string path = dir.file("bad" + std::to_string(k) + ".xyz");
    write_text(path, cases[k].first);
    std::vector<std::string> mentions = cases[k].second;
    mentions.push_back(path);
    expect_error([&] { read_point_cloud(path); }, mentions);
  }
  // .normals with a different count than .xyz.
  write_text(dir.file("s.xyz"), "0 0 0\n1 1 1\n");
  write_text(dir.file("s.normals"), "0 0 1\n");
  expect_error([&] { read_pcpnet(dir.file("s.xyz")); }, {"2 points", "1 normals"});
  expect_error([&] { read_point_cloud(dir.file("s.xyz")); }, {"2 points", "1 normals"});
  // .pidx out of range and non-integer.
  write_text(dir.file("s.normals"), "0 0 1\n0 0 1\n");
  write_text(dir.file("s.pidx"), "0\n2\n");
  expect_error([&] { read_pcpnet(dir.file("s.xyz")); }, {dir.file("s.pidx"), ":2:", "index 2"});
  write_text(dir.file("s.pidx"), "0.5\n");
  expect_error([&] { read_pcpnet(dir.file("s.xyz")); }, {":1:", "integer"});
  // Missing .normals for a PCPNet read.
  write_text(dir.file("lone.xyz"), "0 0 0\n");
  expect_error([&] { read_pcpnet(dir.file("lone.xyz")); }, {"lone.normals", "missing"});
}

TEST(GeometryIo, UnsupportedExtensions) {
  expect_error([] { read_point_cloud("/tmp/x.pcd"); }, {"lapis::pcl"});
  expect_error([] { read_point_cloud("/tmp/x.obj"); }, {"unsupported extension '.obj'"});
  expect_error([] { read_triangle_mesh("/tmp/x.xyz"); }, {"unsupported"});
  expect_error([] { write_point_cloud("/tmp/x.stl", PointCloud{}); }, {"unsupported"});
}

TEST(GeometryIo, ValidateNamesThePoint) {
  PointCloud c = make_cloud(4, false, false);
  c.positions(2, 1) = std::numeric_limits<float>::infinity();
  expect_error([&] { c.validate("check"); }, {"check", "point 2", "non-finite"});
  c.valid = {1, 1, 0, 1};
  EXPECT_NO_THROW(c.validate("check"));
  EXPECT_EQ(c.count_valid(), 3);
  EXPECT_EQ(c.compacted().size(), 3);
  c.normals.resize(2, 3);
  expect_error([&] { c.validate("check"); }, {"4 points but 2 normals"});
}

}  // namespace
}  // namespace geometry
}  // namespace lapis
