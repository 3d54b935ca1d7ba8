#pragma once
// ITK -> VTK without losing geometry. The VTK image shares the ITK buffer (zero copy); the array
// keeps the ITK image alive, so the VTK image may outlive every other reference to it.
#include <itkImage.h>
#include <vtkMatrix4x4.h>
#include <vtkSmartPointer.h>

#include <cstdint>

class vtkImageData;

namespace sagitta::viewer {

// A VTK image in patient space: origin, spacing and direction (VTK 9.1's direction matrix) as in
// the ITK image (LPS, mm). Instantiated for float, std::uint8_t and std::uint16_t pixels.
template <typename TPixel>
vtkSmartPointer<vtkImageData> to_vtk(const itk::Image<TPixel, 3>* image);

// The same buffer seen in index space (origin 0, spacing 1, identity direction). Filters that
// ignore VTK's direction matrix (reslice, flying edges) run on this and the geometry is applied
// through index_to_patient(), so oblique volumes stay exact whatever each filter supports.
template <typename TPixel>
vtkSmartPointer<vtkImageData> to_vtk_index_space(const itk::Image<TPixel, 3>* image);

// Homogeneous matrix taking continuous voxel indices to patient (LPS, mm) coordinates:
// p = origin + direction * diag(spacing) * index.
template <typename TPixel>
vtkSmartPointer<vtkMatrix4x4> index_to_patient(const itk::Image<TPixel, 3>* image);

}  // namespace sagitta::viewer
