// Zero-copy ITK -> VTK: the VTK array points into the ITK pixel container and holds a reference
// to the ITK image, released when the array is deleted.
#include "sagitta/viewer/itk_to_vtk.h"

#include <vtkAOSDataArrayTemplate.h>
#include <vtkCallbackCommand.h>
#include <vtkImageData.h>
#include <vtkPointData.h>

#include "sagitta/viewer/error.h"

namespace sagitta::viewer {
namespace {

template <typename TPixel>
void release_image(vtkObject*, unsigned long, void* client_data, void*) {
  delete static_cast<typename itk::Image<TPixel, 3>::ConstPointer*>(client_data);
}

template <typename TPixel>
vtkSmartPointer<vtkImageData> wrap(const itk::Image<TPixel, 3>* image) {
  if (!image) throw ViewerError("no image to show");
  const auto region = image->GetBufferedRegion();
  if (region != image->GetLargestPossibleRegion())
    throw ViewerError("only whole images can be shown (buffered region differs from the image)");
  const auto size = region.GetSize();
  const vtkIdType count = static_cast<vtkIdType>(region.GetNumberOfPixels());

  auto array = vtkSmartPointer<vtkAOSDataArrayTemplate<TPixel>>::New();
  array->SetNumberOfComponents(1);
  array->SetName("scalars");
  // save=1: VTK never frees the ITK buffer; the ITK image is kept alive by the observer below.
  array->SetArray(const_cast<TPixel*>(image->GetBufferPointer()), count, 1);
  vtkNew<vtkCallbackCommand> keep_alive;
  keep_alive->SetClientData(new typename itk::Image<TPixel, 3>::ConstPointer(image));
  keep_alive->SetCallback(&release_image<TPixel>);
  array->AddObserver(vtkCommand::DeleteEvent, keep_alive);

  auto vtk = vtkSmartPointer<vtkImageData>::New();
  vtk->SetExtent(0, static_cast<int>(size[0]) - 1, 0, static_cast<int>(size[1]) - 1, 0,
                 static_cast<int>(size[2]) - 1);
  vtk->GetPointData()->SetScalars(array);
  return vtk;
}

}  // namespace

template <typename TPixel>
vtkSmartPointer<vtkImageData> to_vtk(const itk::Image<TPixel, 3>* image) {
  auto vtk = wrap(image);
  vtk->SetOrigin(image->GetOrigin().GetDataPointer());
  vtk->SetSpacing(image->GetSpacing().GetDataPointer());
  const auto& d = image->GetDirection();
  vtk->SetDirectionMatrix(d(0, 0), d(0, 1), d(0, 2), d(1, 0), d(1, 1), d(1, 2), d(2, 0), d(2, 1), d(2, 2));
  return vtk;
}

template <typename TPixel>
vtkSmartPointer<vtkImageData> to_vtk_index_space(const itk::Image<TPixel, 3>* image) {
  return wrap(image);  // origin 0, spacing 1, identity direction
}

template <typename TPixel>
vtkSmartPointer<vtkMatrix4x4> index_to_patient(const itk::Image<TPixel, 3>* image) {
  auto m = vtkSmartPointer<vtkMatrix4x4>::New();
  const auto& d = image->GetDirection();
  const auto& s = image->GetSpacing();
  const auto& o = image->GetOrigin();
  for (int r = 0; r < 3; ++r) {
    for (int c = 0; c < 3; ++c) m->SetElement(r, c, d(r, c) * s[c]);
    m->SetElement(r, 3, o[r]);
  }
  return m;
}

#define SAGITTA_INSTANTIATE(T)                                                               \
  template vtkSmartPointer<vtkImageData> to_vtk<T>(const itk::Image<T, 3>*);                 \
  template vtkSmartPointer<vtkImageData> to_vtk_index_space<T>(const itk::Image<T, 3>*);     \
  template vtkSmartPointer<vtkMatrix4x4> index_to_patient<T>(const itk::Image<T, 3>*);
SAGITTA_INSTANTIATE(float)
SAGITTA_INSTANTIATE(std::uint8_t)
SAGITTA_INSTANTIATE(std::uint16_t)
#undef SAGITTA_INSTANTIATE

}  // namespace sagitta::viewer
