// The part of the CUDA runtime API the kernels and launchers call, declared by the toolkit's
// cuda_runtime_api.h and defined here for the host. Launches run synchronously, so stream
// operations complete before they return.
#include <cuda_runtime_api.h>

#include <cstring>
#include <string>

#include "last_error.h"

namespace safeops {
namespace emu {
namespace {

thread_local cudaError_t g_last = cudaSuccess;
thread_local cudaError_t g_failed = cudaSuccess;  // the code g_diagnostic belongs to
thread_local std::string g_diagnostic;
thread_local std::string g_message;

struct Known {
  cudaError_t code;
  const char* name;
  const char* text;  // CUDA's cudaGetErrorString text
};
// The codes the emulation produces and the launchers return themselves.
constexpr Known kKnown[] = {
    {cudaSuccess, "cudaSuccess", "no error"},
    {cudaErrorInvalidValue, "cudaErrorInvalidValue", "invalid argument"},
    {cudaErrorInvalidConfiguration, "cudaErrorInvalidConfiguration",
     "invalid configuration argument"},
    {cudaErrorLaunchFailure, "cudaErrorLaunchFailure", "unspecified launch failure"},
    {cudaErrorNotSupported, "cudaErrorNotSupported", "operation not supported"},
};

const Known* known(cudaError_t code) {
  for (const Known& k : kKnown) {
    if (k.code == code) return &k;
  }
  return nullptr;
}

}  // namespace

void set_last_error(cudaError_t code, const std::string& diagnostic) {
  g_last = code;
  g_failed = code;
  g_diagnostic = diagnostic;
}

}  // namespace emu
}  // namespace safeops

using safeops::emu::g_diagnostic;
using safeops::emu::g_failed;
using safeops::emu::g_last;

cudaError_t cudaGetLastError() {
  const cudaError_t e = g_last;
  g_last = cudaSuccess;
  return e;
}

const char* cudaGetErrorName(cudaError_t error) {
  const auto* k = safeops::emu::known(error);
  return k ? k->name : "cudaErrorUnknown";
}

const char* cudaGetErrorString(cudaError_t error) {
  const auto* k = safeops::emu::known(error);
  std::string& msg = safeops::emu::g_message;
  msg = k ? k->text : "unknown error";
  if (error == g_failed && !g_diagnostic.empty()) msg += " in the CUDA emulation: " + g_diagnostic;
  return msg.c_str();
}

// There is no driver: error_string() in cuda/toolkit.cu then names none.
cudaError_t cudaDriverGetVersion(int* version) {
  *version = 0;
  return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void* p, int value, size_t bytes, cudaStream_t) {
  std::memset(p, value, bytes);
  return cudaSuccess;
}
