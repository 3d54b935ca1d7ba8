# Warnings and sanitizers for Sagitta's own targets (not for third-party headers,
# which are included as SYSTEM through their imported targets).
add_library(sagitta_warnings INTERFACE)
add_library(sagitta::warnings ALIAS sagitta_warnings)
target_compile_options(sagitta_warnings INTERFACE
  $<$<CXX_COMPILER_ID:GNU,Clang>:-Wall -Wextra -Wpedantic -Wshadow=local -Wnon-virtual-dtor
                                  -Wcast-align -Woverloaded-virtual -Wimplicit-fallthrough>)

if(SAGITTA_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  add_link_options(-fsanitize=address,undefined)
endif()

find_program(SAGITTA_CCACHE ccache)
if(SAGITTA_CCACHE AND NOT CMAKE_CXX_COMPILER_LAUNCHER)
  set(CMAKE_CXX_COMPILER_LAUNCHER "${SAGITTA_CCACHE}")
  set(CMAKE_C_COMPILER_LAUNCHER "${SAGITTA_CCACHE}")
endif()
