// The emulation's runtime, as the inline device functions and launches see it (implemented in
// cuda/emulation/src). Everything here is called from kernel code running on a fiber, except
// launch(), which the rewritten `<<<...>>>` calls on the host.
#pragma once

#include <vector_types.h>

#include <cstddef>
#include <string>

namespace safeops {
namespace emu {

// Where a device function was called from (for diagnostics and to match barriers).
struct Site {
  const char* file;
  int line;
};

// __syncthreads: waits until every thread of the block reaches the same barrier.
void sync_threads(Site site);

// A warp-wide operation. The calling lane leaves `lane` (its arguments, and room for its
// result) and waits until every lane in `mask` has arrived at the same operation; the last one
// to arrive calls complete(lanes, mask) once for the warp, with lanes[l] the record of lane l
// (null for lanes outside the mask). complete may be null (a plain warp barrier).
using Completion = void (*)(void* const* lanes, unsigned mask);
void warp_collective(const char* op, unsigned mask, void* lane, Completion complete, Site site);

// Fails the launch from kernel code (a completion that finds the lanes' arguments wrong).
[[noreturn]] void fail(std::string what);

// Called after each `__shared__` declaration (inserted by rewrite_launches.py): the first
// thread of a block to pass it fills the variable with 0xFF bytes, NaN in every float type, so
// that reading shared memory no thread of the block has written shows.
void shared_declared(void* p, std::size_t bytes);

// The launch `kernel<<<grid, block, shared_bytes, stream>>>(args)` becomes
// launch({"kernel", __FILE__, __LINE__}, grid, block, shared_bytes, body, ctx), body(ctx)
// calling the kernel with its arguments; it runs every block before it returns and reports
// through cudaGetLastError.
struct Kernel {
  const char* name;
  const char* file;
  int line;
};
using Body = void (*)(const void* ctx);
void launch(const Kernel& kernel, dim3 grid, dim3 block, std::size_t shared_bytes, Body body,
            const void* ctx);

}  // namespace emu
}  // namespace safeops
