// PLY reading and writing (ASCII and binary little-endian).
//
// Reading accepts any element/property layout: the vertex element gives x y z (required),
// nx ny nz (normals, optional) and red green blue (colors, optional; uchar, or float in [0, 1]);
// every other property (any scalar type, or a list with any count type) and every other
// element is skipped correctly. The face element's `vertex_indices` (or `vertex_index`) list
// gives polygons, triangulated as fans (v0 v1 v2, v0 v2 v3, ...). `comment` and `obj_info`
// lines may appear anywhere in the header; old-style `property <name> <type> { ... }`
// declarations (Stanford's bun_zipper.ply) are accepted too.
//
// Errors (lapis::Error) name the file and the line (ASCII) or the byte offset (binary):
// truncated data, counts that do not match, non-numeric tokens, NaN or infinite coordinates,
// face indices out of range, and unsupported formats (binary_big_endian).
#pragma once

#include <string>

#include "geometry/point_cloud.h"

namespace lapis {
namespace geometry {

enum class PlyFormat { ascii, binary_little_endian };

// The vertices of any PLY file as a cloud (faces are read and ignored).
PointCloud read_ply_point_cloud(const std::string& path);
// A PLY file with a face element; polygons are triangulated as fans. A file without a face
// element gives a mesh with 0 faces.
TriangleMesh read_ply_mesh(const std::string& path);

// Writes x y z [nx ny nz] [red green blue] as float/uchar. Only valid points are written (a
// cloud with validity flags is compacted first). Atomic (temp file + rename).
void write_ply(const std::string& path, const PointCloud& cloud,
               PlyFormat format = PlyFormat::binary_little_endian);
// Writes vertices (float x y z) and faces (list uchar int vertex_indices). Atomic.
void write_ply(const std::string& path, const TriangleMesh& mesh,
               PlyFormat format = PlyFormat::binary_little_endian);

}  // namespace geometry
}  // namespace lapis
