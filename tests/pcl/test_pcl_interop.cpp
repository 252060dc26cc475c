// lapis::pcl: conversions to/from pcl::PointCloud<PointXYZ> / <PointNormal> (NaN points <->
// valid = 0 and is_dense), and PCD IO through pcl::io (round trips, a hand-written ASCII PCD,
// errors naming the file).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "core/check.h"
#include "geometry/pcl/pcl_interop.h"
#include "tests/common/temp_dir.h"

namespace lapis {
namespace geometry {
namespace {

using lapis::testing::TempDir;


PointCloud make_cloud(int n, bool normals) {
  PointCloud c;
  c.positions.resize(n, 3);
  if (normals) c.normals.resize(n, 3);
  for (int i = 0; i < n; ++i) {
    c.positions.row(i) << 0.25f * i, -1.0f / (i + 1), 3.0f + i;
    if (normals) c.normals.row(i) = Eigen::RowVector3f(std::sin(i), std::cos(i), 1).normalized();
  }
  return c;
}

TEST(PclInterop, XyzRoundTrip) {
  const PointCloud c = make_cloud(17, false);
  const ::pcl::PointCloud<::pcl::PointXYZ> p = to_pcl_xyz(c);
  ASSERT_EQ(p.size(), 17u);
  EXPECT_EQ(p.width, 17u);
  EXPECT_EQ(p.height, 1u);
  EXPECT_TRUE(p.is_dense);
  EXPECT_EQ(p[5].y, c.positions(5, 1));
  const PointCloud back = from_pcl(p);
  EXPECT_TRUE(back.positions == c.positions);
  EXPECT_TRUE(back.valid.empty());
  EXPECT_FALSE(back.has_normals());
}

TEST(PclInterop, PointNormalRoundTrip) {
  const PointCloud c = make_cloud(9, true);
  const ::pcl::PointCloud<::pcl::PointNormal> p = to_pcl_point_normal(c);
  EXPECT_EQ(p[3].normal_z, c.normals(3, 2));
  const PointCloud back = from_pcl(p);
  EXPECT_TRUE(back.positions == c.positions);
  EXPECT_TRUE(back.normals == c.normals);
  EXPECT_THROW(to_pcl_point_normal(make_cloud(3, false)), Error);
}

TEST(PclInterop, NanPointsBecomeInvalidAndBack) {
  ::pcl::PointCloud<::pcl::PointNormal> p;
  p.resize(4);
  for (int i = 0; i < 4; ++i) {
    p[i].x = i; p[i].y = 0; p[i].z = 1;
    p[i].normal_x = 0; p[i].normal_y = 0; p[i].normal_z = 1;
  }
  const float nan = std::numeric_limits<float>::quiet_NaN();
  p[1].y = nan;          // missing point
  p[3].normal_x = nan;   // point without a normal
  p.is_dense = false;
  const PointCloud c = from_pcl(p);
  ASSERT_EQ(c.size(), 4);  // organized indices survive
  ASSERT_EQ(c.valid.size(), 4u);
  EXPECT_EQ(c.valid[0], 1);
  EXPECT_EQ(c.valid[1], 0);
  EXPECT_EQ(c.valid[2], 1);
  EXPECT_EQ(c.valid[3], 0);
  EXPECT_TRUE(c.positions.allFinite());
  EXPECT_NO_THROW(c.validate("test"));

  const ::pcl::PointCloud<::pcl::PointXYZ> q = to_pcl_xyz(c);
  EXPECT_FALSE(q.is_dense);
  EXPECT_TRUE(std::isnan(q[1].x));
  EXPECT_EQ(q[2].x, 2.0f);

  // An XYZ cloud with NaN: from_pcl marks it invalid; a dense cloud has no validity flags.
  ::pcl::PointCloud<::pcl::PointXYZ> r;
  r.push_back(::pcl::PointXYZ(1, 2, 3));
  r.push_back(::pcl::PointXYZ(nan, nan, nan));
  const PointCloud rc = from_pcl(r);
  EXPECT_EQ(rc.count_valid(), 1);
}

TEST(PclInterop, NonFiniteLapisPointIsAnError) {
  PointCloud c = make_cloud(3, false);
  c.positions(2, 0) = std::numeric_limits<float>::infinity();
  try {
    to_pcl_xyz(c);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("point 2"), std::string::npos) << e.what();
  }
}

TEST(PclInterop, PcdRoundTripBinaryAndAscii) {
  TempDir dir;
  for (bool binary : {true, false}) {
    for (bool normals : {false, true}) {
      const PointCloud c = make_cloud(23, normals);
      const std::string path = dir.file("c.pcd");
      write_pcd(path, c, binary);
      const PointCloud back = read_pcd(path);
      ASSERT_EQ(back.size(), c.size());
      // Binary is exact; PCL's ASCII writer prints 8 significant digits.
      EXPECT_TRUE(back.positions.isApprox(c.positions, 1e-6f));
      ASSERT_EQ(back.has_normals(), normals);
      if (normals) EXPECT_TRUE(back.normals.isApprox(c.normals, 1e-6f));
    }
  }
}

TEST(PclInterop, HandWrittenAsciiPcdWithNanAndColor) {
  TempDir dir;
  const std::string path = dir.file("h.pcd");
  std::ofstream(path) << "# .PCD v0.7\nVERSION 0.7\nFIELDS x y z rgb\nSIZE 4 4 4 4\n"
                         "TYPE F F F U\nCOUNT 1 1 1 1\nWIDTH 3\nHEIGHT 1\n"
                         "VIEWPOINT 0 0 0 1 0 0 0\nPOINTS 3\nDATA ascii\n"
                         "1 2 3 16711680\nnan nan nan 0\n4 5 6 255\n";
  const PointCloud c = read_pcd(path);
  ASSERT_EQ(c.size(), 3);
  EXPECT_EQ(c.count_valid(), 2);
  EXPECT_EQ(c.positions(2, 1), 5.0f);
  ASSERT_TRUE(c.has_colors());
  EXPECT_EQ(c.colors(0, 0), 255);
  EXPECT_EQ(c.colors(2, 2), 255);
}

TEST(PclInterop, PcdErrorsNameTheFile) {
  TempDir dir;
  const std::string missing = dir.file("missing.pcd");
  try {
    read_pcd(missing);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(missing), std::string::npos) << e.what();
  }
  // PCL itself crashes on some of these; read_pcd checks the header and data size first.
  const std::string head = "VERSION 0.7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\n"
                           "WIDTH 2\nHEIGHT 1\nPOINTS 2\n";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"this is not a pcd file\n", "unknown header keyword"},
      {head, "no DATA line"},
      {head + "DATA ascii\n1 2 3\n", "file ends after 1 of 2"},
      {head + "DATA ascii\n1 2 3\n4 5\n", ":11:"},
      {head + "DATA ascii\n1 2 3\n4 x 6\n", "'x'"},
      {head + "DATA binary\n" + std::string(20, '\0'), "truncated binary"},
      {"FIELDS x y z\nSIZE 4 4\nTYPE F F F\nWIDTH 1\nDATA ascii\n1 2 3\n", "SIZE has 2"},
      {head + "DATA lzma\n", "unknown storage"},
  };
  for (size_t k = 0; k < cases.size(); ++k) {
    const std::string bad = dir.file("bad" + std::to_string(k) + ".pcd");
    std::ofstream(bad, std::ios::binary) << cases[k].first;
    try {
      read_pcd(bad);
      ADD_FAILURE() << "no error for case " << k;
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(bad), std::string::npos) << msg;
      EXPECT_NE(msg.find(cases[k].second), std::string::npos) << msg;
    }
  }
}

}  // namespace
}  // namespace geometry
}  // namespace lapis
