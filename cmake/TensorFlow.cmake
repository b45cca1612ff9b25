# Finds the pip TensorFlow that the op library is built against: headers, framework library,
# compile definitions and version, straight from tf.sysconfig of the build's Python.
execute_process(
  COMMAND ${CMAKE_COMMAND} -E env TF_CPP_MIN_LOG_LEVEL=3
          ${Python_EXECUTABLE} -c
          "import tensorflow as tf; s = tf.sysconfig; print(s.get_include()); print(s.get_lib()); print(tf.__version__); print('|'.join(s.get_compile_flags()))"
  OUTPUT_VARIABLE _tf_out
  RESULT_VARIABLE _tf_rc
  ERROR_VARIABLE _tf_err
  OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT _tf_rc EQUAL 0)
  message(FATAL_ERROR "safeops: TensorFlow is needed to build the op library (or pass "
                      "-DSAFEOPS_TF=OFF): ${_tf_err}")
endif()
string(REPLACE "\n" ";" _tf_lines "${_tf_out}")
list(GET _tf_lines -4 TF_INCLUDE_DIR)
list(GET _tf_lines -3 TF_LIB_DIR)
list(GET _tf_lines -2 SAFEOPS_TF_VERSION)
list(GET _tf_lines -1 _tf_flags)
string(REPLACE "|" ";" _tf_flags "${_tf_flags}")

set(TF_DEFINITIONS "")
foreach(flag IN LISTS _tf_flags)
  if(flag MATCHES "^-D(.*)")
    list(APPEND TF_DEFINITIONS ${CMAKE_MATCH_1})
  endif()
endforeach()
if(NOT "_GLIBCXX_USE_CXX11_ABI=1" IN_LIST TF_DEFINITIONS)
  message(FATAL_ERROR "safeops: this TensorFlow (${SAFEOPS_TF_VERSION}) is not built with the "
                      "C++11 ABI; flags: ${_tf_flags}")
endif()

# The headers through a link in the build directory: the same command lines (and compiler cache
# keys) in every environment; the version in the definitions makes another TensorFlow rebuild.
safeops_stable_path(_tf_include tensorflow-include "${TF_INCLUDE_DIR}")
list(APPEND TF_DEFINITIONS "SAFEOPS_TF_VERSION_STRING=\"${SAFEOPS_TF_VERSION}\"")

# Not cached: every configure finds the library of the TensorFlow it runs with.
find_library(TF_FRAMEWORK_LIBRARY NAMES libtensorflow_framework.so.2 tensorflow_framework
             PATHS ${TF_LIB_DIR} NO_DEFAULT_PATH NO_CACHE REQUIRED)
add_library(tensorflow::framework SHARED IMPORTED)
set_target_properties(tensorflow::framework PROPERTIES
  IMPORTED_LOCATION ${TF_FRAMEWORK_LIBRARY}
  IMPORTED_NO_SONAME FALSE
  INTERFACE_INCLUDE_DIRECTORIES ${_tf_include}
  INTERFACE_COMPILE_DEFINITIONS "${TF_DEFINITIONS}")
message(STATUS "safeops: TensorFlow ${SAFEOPS_TF_VERSION} at ${TF_LIB_DIR}")

# XLA kernels of the fused op (csrc/tf/xla): they need TensorFlow's tf2xla and XLA builder
# headers and libtensorflow_cc.so.2, which exports XlaOpRegistrar and XLA's custom-call target
# registry. The headers moved between minors (2.21: xla/hlo/builder/, 2.16: xla/client/); where
# they are not where csrc/tf/xla expects them the op library is built without XLA kernels and
# masked_dense keeps its composite under XLA (XLA in _build_info.py says which).
find_library(TF_CC_LIBRARY NAMES libtensorflow_cc.so.2 PATHS ${TF_LIB_DIR} NO_DEFAULT_PATH
             NO_CACHE)
if(TF_CC_LIBRARY AND EXISTS "${TF_INCLUDE_DIR}/xla/hlo/builder/xla_builder.h"
   AND EXISTS "${TF_INCLUDE_DIR}/tensorflow/compiler/tf2xla/xla_op_kernel.h")
  set(SAFEOPS_XLA ON)
  add_library(tensorflow::cc SHARED IMPORTED)
  # XLA's headers include highwayhash's and farmhash's by their own paths; the wheel has them
  # under external/.
  set_target_properties(tensorflow::cc PROPERTIES
    IMPORTED_LOCATION ${TF_CC_LIBRARY}
    IMPORTED_NO_SONAME FALSE
    INTERFACE_INCLUDE_DIRECTORIES
    "${_tf_include}/external/highwayhash;${_tf_include}/external/farmhash_archive/src")
else()
  set(SAFEOPS_XLA OFF)
endif()
message(STATUS "safeops: XLA kernels ${SAFEOPS_XLA}")
