// The CUDA toolkit the kernels were built with, and the explanation of a launcher's error code.
//
// Every launcher (cuda/select.h, cuda/masked_dense.h) follows one convention, so that the
// adapters include no CUDA header: `stream` is a cudaStream_t passed as void*, device buffers
// are raw pointers, and the launcher returns 0 or a CUDA error code that error_string()
// explains. Launchers never synchronise; they enqueue on `stream` and check the launch.
#pragma once

#include <string>

namespace safeops {
namespace cuda {

// The CUDA toolkit the kernels were compiled with, e.g. "13.0", and the driver floor it needs.
const char* toolkit_version();
const char* required_driver();

// A readable explanation of a launcher's error code (a too-old driver names what is needed).
std::string error_string(int code);

}  // namespace cuda
}  // namespace safeops
