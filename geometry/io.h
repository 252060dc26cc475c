// Reading and writing point clouds and meshes by file extension (case-insensitive):
//   .ply  PLY, ASCII or binary little-endian (geometry/io_ply.h)
//   .off  OFF (geometry/io_off.h)
//   .xyz  plain XYZ / PCPNet; a sibling <stem>.normals is read, and written when the cloud has
//         normals (geometry/io_xyz.h)
//   .pcd  needs the optional lapis::pcl target (geometry/pcl/pcl_interop.h: lapis::geometry::read_pcd/write_pcd);
//         here it throws an error that says so.
#pragma once

#include <string>

#include "geometry/io_off.h"
#include "geometry/io_ply.h"
#include "geometry/io_xyz.h"
#include "geometry/point_cloud.h"

namespace lapis {
namespace geometry {

struct WriteOptions {
  PlyFormat ply_format = PlyFormat::binary_little_endian;
};

PointCloud read_point_cloud(const std::string& path);
void write_point_cloud(const std::string& path, const PointCloud& cloud,
                       const WriteOptions& options = {});

// .ply or .off with faces.
TriangleMesh read_triangle_mesh(const std::string& path);
void write_triangle_mesh(const std::string& path, const TriangleMesh& mesh,
                         const WriteOptions& options = {});

}  // namespace geometry
}  // namespace lapis
