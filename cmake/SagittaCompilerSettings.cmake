# Warnings and sanitizers for Sagitta's own targets (not for third-party headers,
# which are included as SYSTEM through their imported targets).
add_library(sagitta_warnings INTERFACE)
add_library(sagitta::warnings ALIAS sagitta_warnings)
target_compile_options(sagitta_warnings INTERFACE
  $<$<CXX_COMPILER_ID:GNU,Clang>:-Wall -Wextra -Wpedantic>
  $<$<CXX_COMPILER_ID:GNU>:-Wshadow=local>  # GCC's spelling; the order keeps GCC's command line (ccache)
  $<$<CXX_COMPILER_ID:GNU,Clang>:-Wnon-virtual-dtor -Wcast-align -Woverloaded-virtual -Wimplicit-fallthrough>)

if(SAGITTA_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  add_link_options(-fsanitize=address,undefined)
endif()

# libFuzzer: coverage instrumentation everywhere; the harnesses link -fsanitize=fuzzer (tests/fuzz).
if(SAGITTA_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "SAGITTA_FUZZ needs Clang (CXX=clang++-14, Debian packages clang-14 libclang-rt-14-dev)")
  endif()
  add_compile_options(-fsanitize=fuzzer-no-link)
endif()

find_program(SAGITTA_CCACHE ccache)
if(SAGITTA_CCACHE AND NOT CMAKE_CXX_COMPILER_LAUNCHER)
  set(CMAKE_CXX_COMPILER_LAUNCHER "${SAGITTA_CCACHE}")
  set(CMAKE_C_COMPILER_LAUNCHER "${SAGITTA_CCACHE}")
endif()

# sagitta_library(<target> <name> <sources...>): a library of the project, sagitta::<name>, with its
# public headers in include/ beside its CMakeLists.txt and its private ones in src/, built with
# the project's warnings. Link its dependencies with target_link_libraries afterwards.
function(sagitta_library target name)
  add_library(${target} ${ARGN})
  add_library(sagitta::${name} ALIAS ${target})
  target_include_directories(${target} PUBLIC $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/include>
                             PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/src)
  target_link_libraries(${target} PRIVATE sagitta::warnings)
endfunction()
