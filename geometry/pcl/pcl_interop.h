// Conversions between lapis::geometry::PointCloud and PCL clouds, and PCD file IO through PCL.
// Part of the optional target lapis::pcl (built only when PCL is found), so that nothing else
// pulls in PCL, VTK or Qt.
//
// NaN handling: PCL marks missing points (organized clouds, sensor dropouts) with NaN
// coordinates and is_dense = false. from_pcl keeps every point (so organized indices survive)
// and sets valid[i] = 0 for points with a non-finite coordinate (their position is stored as 0);
// `valid` stays empty when every point is finite. to_pcl writes invalid points as NaN and sets
// is_dense = false; a cloud without invalid points gives is_dense = true. Width/height: an
// unorganized cloud (width = #P, height = 1).
#pragma once

#include <string>

#include <pcl/point_cloud.h>
#include <pcl/point_types.h>

#include "geometry/point_cloud.h"

namespace lapis {
namespace geometry {

PointCloud from_pcl(const ::pcl::PointCloud<::pcl::PointXYZ>& cloud);
// Normals too; a point with a non-finite normal (PCL's "no normal") is also marked invalid.
PointCloud from_pcl(const ::pcl::PointCloud<::pcl::PointNormal>& cloud);

::pcl::PointCloud<::pcl::PointXYZ> to_pcl_xyz(const PointCloud& cloud);
// Requires normals (throws otherwise); curvature is set to 0.
::pcl::PointCloud<::pcl::PointNormal> to_pcl_point_normal(const PointCloud& cloud);

// PCD files (ASCII, binary or binary_compressed) through pcl::io. Reads x y z, and normal_x/y/z
// when the file has them, and rgb/rgba when present. Errors (lapis::Error) name the file.
PointCloud read_pcd(const std::string& path);
// Writes binary PCD (x y z [normal_x normal_y normal_z curvature]); atomic (temp + rename).
void write_pcd(const std::string& path, const PointCloud& cloud, bool binary = true);

}  // namespace geometry
}  // namespace lapis
