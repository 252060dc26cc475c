#include "geometry/io.h"

#include "core/check.h"
#include "geometry/io_util.h"

namespace lapis {
namespace geometry {
namespace {

[[noreturn]] void unsupported(const char* op, const std::string& path, const std::string& ext,
                              const char* supported) {
  if (ext == ".pcd") {
    LAPIS_FAIL(op, "'", path, "': PCD files need the lapis::pcl target (link lapis_pcl and use "
               "lapis::geometry::read_pcd / write_pcd from geometry/pcl/pcl_interop.h)");
  }
  LAPIS_FAIL(op, "'", path, "': unsupported extension '", ext, "' (supported: ", supported,
             ")");
}

}  // namespace

PointCloud read_point_cloud(const std::string& path) {
  const std::string ext = detail::lower_extension(path);
  if (ext == ".ply") return read_ply_point_cloud(path);
  if (ext == ".off") return read_off_point_cloud(path);
  if (ext == ".xyz") return read_xyz(path);
  unsupported("read_point_cloud", path, ext, ".ply, .off, .xyz");
}

void write_point_cloud(const std::string& path, const PointCloud& cloud,
                       const WriteOptions& options) {
  const std::string ext = detail::lower_extension(path);
  if (ext == ".ply") return write_ply(path, cloud, options.ply_format);
  if (ext == ".off") return write_off(path, cloud);
  if (ext == ".xyz") {
    write_xyz(path, cloud, false);
    if (cloud.has_normals()) {
      write_normals_file(detail::replace_extension(path, ".normals"), cloud.compacted().normals);
    }
    return;
  }
  unsupported("write_point_cloud", path, ext, ".ply, .off, .xyz");
}

TriangleMesh read_triangle_mesh(const std::string& path) {
  const std::string ext = detail::lower_extension(path);
  if (ext == ".ply") return read_ply_mesh(path);
  if (ext == ".off") return read_off_mesh(path);
  unsupported("read_triangle_mesh", path, ext, ".ply, .off");
}

void write_triangle_mesh(const std::string& path, const TriangleMesh& mesh,
                         const WriteOptions& options) {
  const std::string ext = detail::lower_extension(path);
  if (ext == ".ply") return write_ply(path, mesh, options.ply_format);
  if (ext == ".off") return write_off(path, mesh);
  unsupported("write_triangle_mesh", path, ext, ".ply, .off");
}

}  // namespace geometry
}  // namespace lapis
