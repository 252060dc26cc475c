// `lapis normals-eval PRED GT [--pidx FILE] [--all]`
//
// Scores predicted normals against ground truth and prints the metrics of
// geometry/normal_metrics.h (unoriented and oriented RMSE in degrees, PGP5, PGP10).
//   PRED  a cloud with normals: .ply with nx ny nz, .xyz with 6 columns or a .normals sibling,
//         .off (NOFF).
//   GT    PCPNet files: <stem>.xyz (or <stem>.normals) with <stem>.normals next to it; the
//         evaluation subset is <stem>.pidx when it exists (or --pidx; --all ignores it). Points
//         are matched by row, so PRED must have the same point count and order.
//         Or a mesh (.ply/.off with faces): each predicted point gets the normal of its nearest
//         face (exact point-triangle distance).
//         Or a .ply without faces but with normals: matched by row like PCPNet.
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>

#include "apps/lapis/commands.h"
#include "core/check.h"
#include "geometry/io.h"
#include "geometry/io_util.h"
#include "geometry/normal_metrics.h"

namespace lapis {
namespace apps {
namespace {

struct EvalArgs {
  std::string pred;
  std::string gt;
  std::string pidx;
  bool all = false;
};

int run_normals_eval(const EvalArgs& args) {
  using namespace lapis::geometry;
  const char* op = "normals-eval";
  const auto t0 = std::chrono::steady_clock::now();
  const PointCloud pred = read_point_cloud(args.pred);
  LAPIS_CHECK(pred.has_normals(), op, "'", args.pred, "' has no normals (", pred.size(),
              " points)");
  LAPIS_CHECK(pred.count_valid() == pred.size(), op, "'", args.pred, "' has invalid points");

  Points gt;
  Indices subset;
  std::string gt_kind;
  const std::string ext = geometry::detail::lower_extension(args.gt);
  bool mesh_gt = false;
  TriangleMesh mesh;
  if (ext == ".xyz" || ext == ".normals") {
    const std::string xyz = geometry::detail::replace_extension(args.gt, ".xyz");
    const PcpnetShape shape = read_pcpnet(xyz);
    gt = shape.cloud.normals;
    subset = shape.eval_indices;
    gt_kind = "PCPNet normals";
  } else {
    mesh = read_triangle_mesh(args.gt);
    if (mesh.num_faces() > 0) {
      mesh_gt = true;
      gt_kind = "nearest mesh face";
    } else {
      const PointCloud g = read_point_cloud(args.gt);
      LAPIS_CHECK(g.has_normals(), op, "'", args.gt, "' has neither faces nor normals");
      gt = g.normals;
      gt_kind = "per-point normals";
    }
  }
  if (!args.pidx.empty()) subset = read_pidx(args.pidx, pred.size());
  if (args.all) subset.clear();
  if (mesh_gt) {
    gt = nearest_face_normals(mesh, pred.positions);
  } else {
    LAPIS_CHECK(gt.rows() == pred.size(), op, "'", args.pred, "' has ", pred.size(),
                " points but the ground truth '", args.gt, "' has ", gt.rows(),
                " (points are matched by row)");
  }
  const NormalMetrics m = normal_metrics(pred.normals, gt, subset);
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("prediction:        %s (%lld points)\n", args.pred.c_str(),
              static_cast<long long>(pred.size()));
  std::printf("ground truth:      %s (%s)\n", args.gt.c_str(), gt_kind.c_str());
  std::printf("evaluated points:  %lld%s\n", static_cast<long long>(m.count),
              subset.empty() ? " (all)" : " (subset)");
  std::printf("unoriented RMSE:   %.4f deg\n", m.unoriented_rmse_deg);
  std::printf("oriented RMSE:     %.4f deg%s\n", m.oriented_rmse_deg,
              m.flipped ? " (whole shape flipped: more than half pointed inward)" : "");
  std::printf("PGP5:              %.2f %%\n", m.pgp5);
  std::printf("PGP10:             %.2f %%\n", m.pgp10);
  std::printf("time:              %.3f s\n", secs);
  return 0;
}

}  // namespace

Subcommand add_normals_eval_command(CLI::App& parent) {
  auto args = std::make_shared<EvalArgs>();
  CLI::App* app = parent.add_subcommand(
      "normals-eval",
      "Score predicted normals against ground truth (PCPNet .xyz/.normals/.pidx or a mesh): "
      "unoriented/oriented RMSE (degrees), PGP5, PGP10");
  app->add_option("PRED", args->pred, "Predicted cloud with normals (.ply, .xyz, .off)")
      ->required();
  app->add_option("GT", args->gt,
                  "Ground truth: PCPNet <stem>.xyz/.normals (+ .pidx), a mesh (.ply/.off with "
                  "faces), or a .ply with normals")
      ->required();
  app->add_option("--pidx", args->pidx, "Evaluation subset (one point index per line)");
  app->add_flag("--all", args->all, "Evaluate every point (ignore any .pidx)");
  return {app, [args] { return run_normals_eval(*args); }};
}

}  // namespace apps
}  // namespace lapis
