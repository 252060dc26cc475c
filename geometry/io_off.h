// OFF reading and writing (Object File Format: "OFF", then "#V #F #E", vertex lines, face
// lines "n i0 i1 ... [color]"). Variants: NOFF (vertex normals after x y z), COFF (vertex colors,
// read and ignored beyond x y z). Blank lines and '#' comments are skipped; the counts may follow
// "OFF" on the same line. Polygons are triangulated as fans. Errors name the file and line.
#pragma once

#include <string>

#include "geometry/point_cloud.h"

namespace lapis {
namespace geometry {

TriangleMesh read_off_mesh(const std::string& path);
// The vertices as a cloud (normals from NOFF files), faces ignored.
PointCloud read_off_point_cloud(const std::string& path);

// Atomic writes. A cloud is written as vertices with 0 faces (NOFF when it has normals; only
// valid points).
void write_off(const std::string& path, const TriangleMesh& mesh);
void write_off(const std::string& path, const PointCloud& cloud);

}  // namespace geometry
}  // namespace lapis
