# All dependencies come from Debian 12 packages (see scripts/setup.sh).
find_package(ITK 5.2 REQUIRED COMPONENTS ITKCommon ITKIOImageBase ITKIONRRD ITKNrrdIO ITKIONIFTI ITKIOGDCM
             ITKImageGrid ITKImageFunction)
# Registers ITK's image IO factories (NRRD, NIfTI) for readers and writers.
include(${ITK_USE_FILE})
if(CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
  include(${CMAKE_CURRENT_LIST_DIR}/SagittaItkClangShim.cmake)  # Debian's ITK accepts only GCC
endif()
find_package(DCMTK REQUIRED CONFIG)
find_package(PkgConfig REQUIRED)
pkg_check_modules(OPENJPEG REQUIRED IMPORTED_TARGET libopenjp2)
find_package(CLI11 REQUIRED CONFIG)
find_package(nlohmann_json 3.10 REQUIRED CONFIG)
find_package(fmt REQUIRED CONFIG)
find_package(Threads REQUIRED)
find_package(ZLIB REQUIRED)  # deflated DICOM streams, walked before DCMTK parses them
find_package(CURL REQUIRED)  # DICOMweb (libcurl4-openssl-dev)
find_package(yaml-cpp REQUIRED CONFIG)  # MONAI bundles' YAML configs (libyaml-cpp-dev)
# LibTorch: found here, at the top, because imported targets are visible only in the directory
# that finds them and below. Only segmentation's and explain's sources include torch; every target
# links it PRIVATE.
if(NOT SAGITTA_DICOM_ONLY)
  find_package(Torch REQUIRED)
endif()
