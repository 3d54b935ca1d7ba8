#pragma once
// The image types every library shares and their allocation. Every image carries its geometry
// (origin, spacing, direction; LPS as in ITK and DICOM).
//
// Pixel buffers for large images. The first touch of fresh anonymous memory is slow on the
// build machines (~10 us per 4 KiB page); asking the kernel for transparent huge pages on big
// buffers cuts that cost by more than an order of magnitude. Images allocated here behave like
// any ITK image; only the container that owns the memory differs.
#include <itkImage.h>
#include <itkImportImageContainer.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdint>

#include <cstdlib>
#include <new>
#include <sys/mman.h>

namespace sagitta {

using Image = itk::Image<float, 3>;               // intensities, logits, probabilities, heatmaps
using LabelImage = itk::Image<std::uint16_t, 3>;  // label values as in the model card


template <typename TElementIdentifier, typename TElement>
class HugePageImageContainer : public itk::ImportImageContainer<TElementIdentifier, TElement> {
public:
  using Self = HugePageImageContainer;
  using Superclass = itk::ImportImageContainer<TElementIdentifier, TElement>;
  using Pointer = itk::SmartPointer<Self>;
  itkNewMacro(Self)
  itkTypeMacro(HugePageImageContainer, ImportImageContainer)

protected:
  HugePageImageContainer() = default;
  // The base destructor would free with delete[]; release our memory first.
  ~HugePageImageContainer() override { Release(); }

  TElement* AllocateElements(TElementIdentifier size, bool use_default_constructor) const override {
    constexpr std::size_t kHugePage = std::size_t(2) << 20;
    const std::size_t bytes = std::max<std::size_t>(1, size * sizeof(TElement));
    const std::size_t rounded = (bytes + kHugePage - 1) / kHugePage * kHugePage;
    void* p = std::aligned_alloc(kHugePage, rounded);
    if (!p) throw std::bad_alloc();
#ifdef MADV_HUGEPAGE
    if (rounded >= 4 * kHugePage) ::madvise(p, rounded, MADV_HUGEPAGE);
#endif
    auto* elements = static_cast<TElement*>(p);
    if (use_default_constructor)
      for (TElementIdentifier i = 0; i < size; ++i) new (elements + i) TElement();
    return elements;
  }

  void DeallocateManagedMemory() override { Release(); }

private:
  void Release() {
    if (this->GetImportPointer() && this->GetContainerManageMemory()) std::free(this->GetImportPointer());
    this->SetImportPointer(nullptr);
    this->SetCapacity(0);
    this->SetSize(0);
  }
};

// Gives `image` (whose regions are set) a huge-page buffer; the pixels are not initialised.
template <typename TImage>
void allocate_huge(TImage* image) {
  using Container = HugePageImageContainer<itk::SizeValueType, typename TImage::PixelType>;
  auto container = Container::New();
  container->Reserve(image->GetBufferedRegion().GetNumberOfPixels(), false);
  image->SetPixelContainer(container);
}

// An image's grid for reports: size, spacing, origin, direction (rows), "LPS".
nlohmann::json geometry_json(const itk::ImageBase<3>& image);

// A new image of `size` voxels with the origin, spacing and direction of `geometry`, every voxel
// `value`, in a huge-page buffer.
template <typename TImage = Image>
typename TImage::Pointer new_image(const itk::ImageBase<3>& geometry, const typename TImage::SizeType& size,
                                   typename TImage::PixelType value) {
  auto image = TImage::New();
  typename TImage::RegionType region;
  region.SetSize(size);
  image->SetRegions(region);
  image->SetOrigin(geometry.GetOrigin());
  image->SetSpacing(geometry.GetSpacing());
  image->SetDirection(geometry.GetDirection());
  allocate_huge(image.GetPointer());
  std::fill_n(image->GetBufferPointer(), region.GetNumberOfPixels(), value);
  return image;
}

// A new image on the grid of `grid` (same region and geometry), every voxel `value`.
template <typename TImage>
typename TImage::Pointer new_like(const itk::ImageBase<3>& grid, typename TImage::PixelType value) {
  auto image = TImage::New();
  image->SetRegions(grid.GetLargestPossibleRegion());
  image->CopyInformation(&grid);
  allocate_huge(image.GetPointer());
  std::fill_n(image->GetBufferPointer(), image->GetBufferedRegion().GetNumberOfPixels(), value);
  return image;
}

}  // namespace sagitta
