// `lapis normals-eval` and `lapis make-normal-benchmark` end to end: files are generated here
// (a small mesh, PCPNet triples, a PLY prediction), the built program is run, and its printed
// metrics are compared with hand-computed values; bad input gives one error line, exit code 1.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <string>

#include "geometry/io.h"
#include "geometry/sampling.h"
#include "tests/apps/cli_runner.h"

namespace lapis {
namespace geometry {
namespace {

using ::lapis::testing::cli::read_file;
using ::lapis::testing::cli::run_lapis;
using ::lapis::testing::cli::RunOptions;
using ::lapis::testing::cli::RunResult;
using ::lapis::testing::cli::TempDir;

// The number printed after `label` at the start of a line (e.g. "unoriented RMSE:").
double value_after(const std::string& text, const std::string& label) {
  const size_t p = ("\n" + text).find("\n" + label);
  if (p == std::string::npos) return NAN;
  return std::strtod(text.c_str() + p + label.size(), nullptr);
}

TEST(NormalsEvalCli, PcpnetGroundTruthWithPidx) {
  TempDir dir;
  const RunOptions in_dir = RunOptions().capture_in(dir.path());  // stdout/stderr files
  // 4 points, GT +z. Predictions: exact, 90 deg, flipped, 60 deg. pidx = {0, 1, 3}.
  PointCloud gt;
  gt.positions.resize(4, 3);
  gt.positions << 0, 0, 0, 1, 0, 0, 0, 1, 0, 1, 1, 0;
  gt.normals.resize(4, 3);
  gt.normals.rowwise() = Eigen::RowVector3f(0, 0, 1);
  write_pcpnet(dir.file("shape.xyz"), gt, {0, 1, 3});
  PointCloud pred = gt;
  const float s3 = std::sqrt(3.0f) / 2;
  pred.normals << 0, 0, 1, 1, 0, 0, 0, 0, -1, s3, 0, 0.5f;
  write_ply(dir.file("pred.ply"), pred, PlyFormat::ascii);

  RunResult r =
      run_lapis("normals-eval " + dir.file("pred.ply") + " " + dir.file("shape.xyz"), in_dir);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("evaluated points:  3"), std::string::npos) << r.out;
  // Subset errors 0, 90, 60 (un- and oriented alike): RMSE sqrt((8100 + 3600) / 3).
  const double expect = std::sqrt((8100.0 + 3600.0) / 3.0);
  EXPECT_NEAR(value_after(r.out, "unoriented RMSE:"), expect, 1e-3) << r.out;
  EXPECT_NEAR(value_after(r.out, "oriented RMSE:"), expect, 1e-3) << r.out;
  EXPECT_NEAR(value_after(r.out, "PGP5:"), 100.0 / 3, 0.01) << r.out;

  // --all: 4 points; oriented adds the 180 deg one.
  r = run_lapis("normals-eval " + dir.file("pred.ply") + " " + dir.file("shape.normals") + " --all",
                in_dir);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NEAR(value_after(r.out, "unoriented RMSE:"), std::sqrt((8100.0 + 3600.0) / 4), 1e-3);
  EXPECT_NEAR(value_after(r.out, "oriented RMSE:"),
              std::sqrt((8100.0 + 32400.0 + 3600.0) / 4), 1e-3);
  EXPECT_NEAR(value_after(r.out, "PGP10:"), 50.0, 0.01);
}

TEST(NormalsEvalCli, MeshGroundTruthAndBenchmarkBuilder) {
  TempDir dir;
  const RunOptions in_dir = RunOptions().capture_in(dir.path());  // stdout/stderr files
  // Closed octahedron mesh (outward faces), saved as OFF.
  TriangleMesh m;
  m.vertices.resize(6, 3);
  m.vertices << 1, 0, 0, -1, 0, 0, 0, 1, 0, 0, -1, 0, 0, 0, 1, 0, 0, -1;
  m.faces.resize(8, 3);
  m.faces << 0, 2, 4, 2, 1, 4, 1, 3, 4, 3, 0, 4, 2, 0, 5, 1, 2, 5, 3, 1, 5, 0, 3, 5;
  ASSERT_EQ(std::system(("mkdir -p '" + dir.file("meshes") + "'").c_str()), 0);
  write_triangle_mesh(dir.file("meshes/octa.off"), m);

  RunResult r = run_lapis("make-normal-benchmark " + dir.file("meshes") + " " + dir.file("bench") +
                              " --points 2000 --eval-points 100",
                          in_dir);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* f : {"octa2k.xyz", "octa2k.normals", "octa2k.pidx",
                        "octa2k_noise_white_1.00e-01.xyz", "octa2k_ddist_minmax_layers.pidx",
                        "testset_all.txt", "testset_vardensity_gradient.txt"}) {
    EXPECT_TRUE(std::ifstream(dir.file("bench/") + f).good()) << f;
  }
  const PcpnetShape clean = read_pcpnet(dir.file("bench/octa2k.xyz"));
  EXPECT_EQ(clean.cloud.size(), 2000);
  EXPECT_EQ(clean.eval_indices.size(), 100u);
  const PcpnetShape noisy = read_pcpnet(dir.file("bench/octa2k_noise_white_1.00e-01.xyz"));
  EXPECT_EQ(noisy.eval_indices, clean.eval_indices);
  EXPECT_TRUE(noisy.cloud.normals == clean.cloud.normals);
  EXPECT_EQ(read_file(dir.file("bench/testset_all.txt")).find("octa2k\n"), 0u);

  // The clean GT normals scored against the mesh: 0 error.
  write_ply(dir.file("pred.ply"), clean.cloud);
  r = run_lapis("normals-eval " + dir.file("pred.ply") + " " + dir.file("meshes/octa.off"), in_dir);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NEAR(value_after(r.out, "unoriented RMSE:"), 0.0, 1e-3) << r.out;
  EXPECT_NEAR(value_after(r.out, "PGP5:"), 100.0, 1e-9) << r.out;
  // All flipped: the whole-shape flip makes the oriented error 0 too, and says so.
  PointCloud inward = clean.cloud;
  inward.normals *= -1;
  write_ply(dir.file("inward.ply"), inward);
  r = run_lapis("normals-eval " + dir.file("inward.ply") + " " + dir.file("meshes/octa.off"),
                in_dir);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NEAR(value_after(r.out, "oriented RMSE:"), 0.0, 1e-3) << r.out;
  EXPECT_NE(r.out.find("flipped"), std::string::npos) << r.out;
}

TEST(NormalsEvalCli, ErrorsAreOneLine) {
  TempDir dir;
  const RunOptions in_dir = RunOptions().capture_in(dir.path());  // stdout/stderr files
  PointCloud c;
  c.positions.resize(3, 3);
  c.positions.setZero();
  write_ply(dir.file("nonormals.ply"), c);
  c.normals.resize(3, 3);
  c.normals.rowwise() = Eigen::RowVector3f(0, 0, 1);
  write_ply(dir.file("three.ply"), c);
  PointCloud two;
  two.positions = c.positions.topRows(2);
  two.normals = c.normals.topRows(2);
  write_pcpnet(dir.file("two.xyz"), two);
  struct Case {
    std::string args, mentions;
  };
  const Case cases[] = {
      {"normals-eval " + dir.file("nonormals.ply") + " " + dir.file("two.xyz"), "no normals"},
      {"normals-eval " + dir.file("three.ply") + " " + dir.file("two.xyz"), "3 points"},
      {"normals-eval " + dir.file("three.ply") + " " + dir.file("missing.xyz"), "missing.xyz"},
      {"make-normal-benchmark " + dir.file("nodir") + " " + dir.file("out"), "not a directory"},
  };
  for (const Case& k : cases) {
    const RunResult r = run_lapis(k.args, in_dir);
    EXPECT_EQ(r.exit_code, 1) << k.args << "\n" << r.err;
    EXPECT_EQ(r.err.rfind("lapis: error: ", 0), 0u) << r.err;
    EXPECT_NE(r.err.find(k.mentions), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
  const RunResult usage = run_lapis("normals-eval onlyone.ply", in_dir);
  EXPECT_EQ(usage.exit_code, 2);
}

}  // namespace
}  // namespace geometry
}  // namespace lapis
