// The runtime's per-host-thread error state (cudaGetLastError) and the diagnostic of the last
// failure, which cudaGetErrorString appends to CUDA's text for its code.
#pragma once

#include <driver_types.h>

#include <string>

namespace safeops {
namespace emu {

void set_last_error(cudaError_t code, const std::string& diagnostic);

}  // namespace emu
}  // namespace safeops
