// Peer for bench/dicom_load.sh: ITK's own DICOM path (GDCM) reading a series folder with
// GDCMSeriesFileNames + ImageSeriesReader and writing it with ITK, the way an ITK user would.
//   itk_gdcm_convert <dicom folder> <out.nii|out.nrrd>
#include <itkGDCMImageIO.h>
#include <itkGDCMSeriesFileNames.h>
#include <itkImage.h>
#include <itkImageFileWriter.h>
#include <itkImageSeriesReader.h>

#include <iostream>

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: itk_gdcm_convert <dicom folder> <output volume>\n";
    return 2;
  }
  using Image = itk::Image<short, 3>;
  try {
    auto names = itk::GDCMSeriesFileNames::New();
    names->SetUseSeriesDetails(true);
    names->SetDirectory(argv[1]);
    const auto uids = names->GetSeriesUIDs();
    if (uids.empty()) throw std::runtime_error("no DICOM series");
    auto reader = itk::ImageSeriesReader<Image>::New();
    reader->SetImageIO(itk::GDCMImageIO::New());
    reader->SetFileNames(names->GetFileNames(uids.front()));
    auto writer = itk::ImageFileWriter<Image>::New();
    writer->SetInput(reader->GetOutput());
    writer->SetFileName(argv[2]);
    writer->Update();
  } catch (const std::exception& e) {
    std::cerr << "itk_gdcm_convert: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
