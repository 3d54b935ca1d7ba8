#pragma once
// Label map slices <-> planar polygons in index space, shared by the RTSTRUCT writer and reader
// (and any other polygon output).
//
// Contours follow the voxel edges: every vertex is a voxel corner (i +- 0.5, j +- 0.5), so a
// polygon set filled by the even-odd rule at voxel centres gives back exactly the voxels it came
// from. Outer boundaries and hole boundaries are separate closed loops; islands are separate
// loops too. Collinear vertices are dropped (only corners are kept).
#include <cstdint>
#include <map>
#include <vector>

namespace sagitta::dicom::detail {

struct Vertex2 {
  double x, y;  // continuous index (column, row)
};
using Polygon = std::vector<Vertex2>;  // closed implicitly (last vertex joins the first)

// Traces every label of one slice (`values`: columns*rows, row-major). Returns the loops of each
// non-zero label value found. Loops around an object and around its holes run in opposite senses.
std::map<std::uint16_t, std::vector<Polygon>> trace_slice(const std::uint16_t* values, int columns, int rows);

// Even-odd fill of `polygons` (together) at voxel centres (i, j), sets mask[j*columns+i] ^= 1 for
// every voxel inside an odd number of them. Edges on a centre are resolved by the half-open rule.
void fill_even_odd(const std::vector<Polygon>& polygons, int columns, int rows, std::vector<std::uint8_t>& mask);

// Area (index units, >= 0) of a polygon by the shoelace formula.
double polygon_area(const Polygon& p);

}  // namespace sagitta::dicom::detail
