// Toolkit facts and error reporting shared by every launcher (cuda/toolkit.h).
#include "toolkit.h"

#include <cuda_runtime.h>

#define SAFEOPS_STR2(x) #x
#define SAFEOPS_STR(x) SAFEOPS_STR2(x)

namespace safeops {
namespace cuda {

const char* toolkit_version() {
  return SAFEOPS_STR(__CUDACC_VER_MAJOR__) "." SAFEOPS_STR(__CUDACC_VER_MINOR__);
}

// CUDA 13.x binaries need an R580 or newer driver (CUDA 12.x: R525 with minor-version
// compatibility).
const char* required_driver() { return __CUDACC_VER_MAJOR__ >= 13 ? "580" : "525"; }

std::string error_string(int code) {
  const auto err = static_cast<cudaError_t>(code);
  std::string msg = std::string(cudaGetErrorName(err)) + ": " + cudaGetErrorString(err);
  if (err == cudaErrorInsufficientDriver || err == cudaErrorNoDevice ||
      err == cudaErrorUnsupportedPtxVersion || err == cudaErrorNoKernelImageForDevice) {
    int driver = 0;
    cudaDriverGetVersion(&driver);
    msg += ". safeops' GPU kernels are built with CUDA " + std::string(toolkit_version()) +
           " for the architectures " SAFEOPS_CUDA_ARCHS
           " (CMake notation) and need an NVIDIA "
           "driver R" +
           std::string(required_driver()) + " or newer";
    if (driver > 0) {
      msg += "; this driver supports CUDA " + std::to_string(driver / 1000) + "." +
             std::to_string((driver % 1000) / 10);
    }
  }
  return msg;
}

}  // namespace cuda
}  // namespace safeops
