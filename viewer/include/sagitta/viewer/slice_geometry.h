#pragma once
// Where a slice view's pixels are in the patient. Views are patient-aligned planes (like 3D
// Slicer's and ITK-SNAP's): axial, coronal and sagittal in the radiological convention, whatever
// the acquisition's orientation, so oblique volumes appear rotated in the plane, never distorted.
#include <array>
#include <string>

#include "sagitta/viewer/overlays.h"

namespace sagitta::viewer {

enum class Orientation { Axial, Coronal, Sagittal };
std::string to_string(Orientation o);

// Screen axes in patient (LPS) directions:
//   axial:    right = patient left (+L), up = anterior (-P), slices go to superior (+S)
//   coronal:  right = patient left (+L), up = superior (+S), slices go to posterior (+P)
//   sagittal: right = posterior (+P),    up = superior (+S), slices go to patient left (+L)
struct PlaneAxes {
  Vec3 right, up, normal;
  // Orientation letters at the left, right, top and bottom edges of the view.
  std::array<char, 4> letters;  // left, right, top, bottom
};
PlaneAxes plane_axes(Orientation o);

// The pixel grid of one orientation over a volume: it covers the volume's physical extent
// (voxel centres) projected on the plane's axes; spacing along each axis is the spacing of the
// voxel axis most aligned with it. For a volume aligned with the patient axes the grid's pixels
// and slices are exactly the voxels (slice N is voxel index N counted from the lowest coordinate
// along the normal).
struct SliceGrid {
  Orientation orientation = Orientation::Axial;
  PlaneAxes axes;
  // Coordinates along right/up/normal (mm) of pixel (0,0) of slice 0; pixel (i,j) of slice k is at
  // right*(origin[0]+i*spacing[0]) + up*(origin[1]+j*spacing[1]) + normal*(origin[2]+k*spacing[2]).
  Vec3 origin{};
  Vec3 spacing{1, 1, 1};
  std::array<int, 3> size{1, 1, 1};  // width, height, slices

  static SliceGrid of(const itk::ImageBase<3>* volume, Orientation o);

  Vec3 plane_coordinates(const Vec3& lps) const;  // (right, up, normal) coordinates of a point
  Vec3 patient_point(double i, double j, double k) const;  // continuous pixel/slice -> LPS
  int slice_of(const Vec3& lps) const;                     // nearest slice, clamped
  double slice_position(int k) const { return origin[2] + k * spacing[2]; }
};

}  // namespace sagitta::viewer
