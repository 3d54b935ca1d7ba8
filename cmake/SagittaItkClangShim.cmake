# Debian's ITK 5.2 was configured with GCC, and its itk_compiler_detection.h stops any other
# compiler ("#error Unsupported compiler"). The sanitizer/fuzzing build uses clang-14 (libFuzzer
# exists only there), so it sees ITK's headers through a shadow folder: symbolic links to every
# header, and a copy of itk_compiler_detection.h that gives Clang the feature table of the GCC
# 12 that built ITK. Headers include each other with quotes, which search the including file's
# own folder first, so every ITK header then finds the copy.
set(_itk_include "")
foreach(_dir ${ITK_INCLUDE_DIRS})
  if(EXISTS "${_dir}/itk_compiler_detection.h")
    set(_itk_include "${_dir}")
  endif()
endforeach()
if(NOT _itk_include)
  message(FATAL_ERROR "itk_compiler_detection.h not found in ITK_INCLUDE_DIRS (${ITK_INCLUDE_DIRS})")
endif()
set(_shim "${CMAKE_BINARY_DIR}/itk-clang-shim")
file(MAKE_DIRECTORY "${_shim}")
file(GLOB _entries RELATIVE "${_itk_include}" "${_itk_include}/*")
foreach(_entry ${_entries})
  if(NOT _entry STREQUAL "itk_compiler_detection.h" AND NOT EXISTS "${_shim}/${_entry}")
    file(CREATE_LINK "${_itk_include}/${_entry}" "${_shim}/${_entry}" SYMBOLIC)
  endif()
endforeach()
file(READ "${_itk_include}/itk_compiler_detection.h" _detection)
string(REPLACE [[#  if ITK_COMPILER_IS_GNU

#    include "compilers/ITK_COMPILER_INFO_GNU_CXX.h"
]] [[#  if ITK_COMPILER_IS_GNU

#    include "compilers/ITK_COMPILER_INFO_GNU_CXX.h"

#  elif ITK_COMPILER_IS_Clang  /* Sagitta's clang shim: the GCC 12 feature table */
#    pragma push_macro("__GNUC__")
#    pragma push_macro("__GNUC_MINOR__")
#    pragma push_macro("__GNUC_PATCHLEVEL__")
#    undef __GNUC__
#    undef __GNUC_MINOR__
#    undef __GNUC_PATCHLEVEL__
#    define __GNUC__ 12
#    define __GNUC_MINOR__ 2
#    define __GNUC_PATCHLEVEL__ 0
#    include "compilers/ITK_COMPILER_INFO_GNU_CXX.h"
#    pragma pop_macro("__GNUC_PATCHLEVEL__")
#    pragma pop_macro("__GNUC_MINOR__")
#    pragma pop_macro("__GNUC__")
]] _patched "${_detection}")
if(_patched STREQUAL _detection)
  message(FATAL_ERROR "cannot patch ${_itk_include}/itk_compiler_detection.h for Clang")
endif()
file(WRITE "${_shim}/itk_compiler_detection.h" "${_patched}")
include_directories(BEFORE SYSTEM "${_shim}")
