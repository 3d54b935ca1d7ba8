#pragma once
// Label image slices <-> polygons in pixel index space, for every polygon output (RTSTRUCT
// contours, QuPath GeoJSON annotations) and the RTSTRUCT reader.
//
// Contours follow the pixel edges: every vertex is a pixel corner (i +- 0.5, j +- 0.5), so the
// polygons filled by the even-odd rule at pixel centres give back exactly the pixels they came
// from. Outer boundaries and hole boundaries are separate closed loops (islands too); outer loops
// have a positive signed area (clockwise on screen, rows growing downwards), holes a negative one.
// Every loop is a simple ring (no corner visited twice; rings may touch at a corner). Collinear
// vertices are dropped (only corners are kept).
#include <cstdint>
#include <map>
#include <vector>

namespace sagitta::contours {

struct Vertex {
  double x, y;  // continuous index (column, row); pixel centres at integers
};
using Polygon = std::vector<Vertex>;  // closed implicitly (the last vertex joins the first)

// Every non-zero value's boundary loops in one slice (`values`: columns*rows, row-major).
std::map<std::uint16_t, std::vector<Polygon>> trace(const std::uint16_t* values, int columns, int rows);
std::map<std::uint16_t, std::vector<Polygon>> trace(const std::uint8_t* values, int columns, int rows);

// Even-odd fill of `polygons` (together) at pixel centres (i, j): mask[j*columns+i] ^= 1 for every
// pixel inside an odd number of them (`mask` is sized columns*rows if it is not). Edges through a
// centre are resolved by the half-open rule.
void fill_even_odd(const std::vector<Polygon>& polygons, int columns, int rows, std::vector<std::uint8_t>& mask);

// Signed area (shoelace, index units): positive for outer loops from trace(), negative for holes.
double signed_area(const Polygon& p);

// The loops of one value grouped as polygons with holes (GeoJSON / simple-features order): each
// entry is an outer loop followed by the holes directly inside it.
std::vector<std::vector<Polygon>> polygons_with_holes(const std::vector<Polygon>& loops);

}  // namespace sagitta::contours
