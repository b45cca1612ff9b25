// The argument checks of the wmma loads and stores (include/mma.h): every lane of the warp
// names the same matrix, aligned as CUDA requires (256-bit pointer, leading dimension a
// multiple of 16 bytes); anything else fails the launch.
#include <cstdint>
#include <cstdio>
#include <string>

#include "mma.h"

namespace nvcuda {
namespace wmma {
namespace detail {
namespace {

std::string ptr_str(const void* p) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%p", p);
  return buf;
}

}  // namespace

void check_mem_lanes(void* const* lanes, const char* op, std::size_t elem_bytes) {
  const auto* first = static_cast<const MemLane*>(lanes[0]);
  for (int l = 1; l < 32; ++l) {
    const auto* me = static_cast<const MemLane*>(lanes[l]);
    if (me->ptr != first->ptr || me->ldm != first->ldm || me->col_major != first->col_major) {
      safeops::emu::fail(std::string(op) + ": lane " + std::to_string(l) + " passes (" +
                         ptr_str(me->ptr) + ", ldm " + std::to_string(me->ldm) + ") but lane 0 (" +
                         ptr_str(first->ptr) + ", ldm " + std::to_string(first->ldm) +
                         "): every lane must pass the same matrix and layout");
    }
  }
  if (reinterpret_cast<std::uintptr_t>(first->ptr) % 32 != 0) {
    safeops::emu::fail(std::string(op) + ": pointer " + ptr_str(first->ptr) +
                       " is not 256-bit aligned");
  }
  if (first->ldm * elem_bytes % 16 != 0) {
    safeops::emu::fail(std::string(op) + ": leading dimension " + std::to_string(first->ldm) +
                       " is not a multiple of 16 bytes");
  }
}

}  // namespace detail
}  // namespace wmma
}  // namespace nvcuda
