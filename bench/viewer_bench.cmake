# Viewer benchmarks (see viewer_bench.cpp and README.md): xvfb-run -a build/bench/viewer_bench
add_executable(viewer_bench ${CMAKE_CURRENT_LIST_DIR}/viewer_bench.cpp)
target_link_libraries(viewer_bench PRIVATE sagitta::viewer sagitta::warnings)
