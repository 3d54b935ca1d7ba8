#pragma once
// Pixel buffers for large images. The first touch of fresh anonymous memory is slow on the
// build machines (~10 us per 4 KiB page); asking the kernel for transparent huge pages on big
// buffers cuts that cost by more than an order of magnitude. Images allocated here behave like
// any ITK image; only the container that owns the memory differs.
#include <itkImportImageContainer.h>

#include <cstdlib>
#include <new>
#include <sys/mman.h>

namespace sagitta::dicom {

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

}  // namespace sagitta::dicom
