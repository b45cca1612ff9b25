// What rewrite_launches.py turns a launch into:
//   kernel<<<grid, block, shared, stream>>>(args);
//   ::safeops::emu::Launch("kernel", __FILE__, __LINE__, grid, block, shared, stream)
//       .run([&] { kernel(args); });
// Every CUDA thread calls the lambda, so each evaluates the arguments and gets its own copy of
// the kernel's parameters, as on a GPU (arguments with side effects would run once per thread;
// the kernels have none). The launch is synchronous, so the references stay valid; streams are
// ignored (work on one stream runs in order either way).
#pragma once

#include <driver_types.h>
#include <vector_types.h>

#include <cstddef>

#include "emu/runtime.h"

namespace safeops {
namespace emu {

class Launch {
 public:
  Launch(const char* name, const char* file, int line, dim3 grid, dim3 block,
         std::size_t shared_bytes = 0, cudaStream_t = nullptr)
      : kernel_{name, file, line}, grid_(grid), block_(block), shared_bytes_(shared_bytes) {}

  template <class F>
  void run(const F& body) const {
    launch(
        kernel_, grid_, block_, shared_bytes_, [](const void* f) { (*static_cast<const F*>(f))(); },
        &body);
  }

 private:
  Kernel kernel_;
  dim3 grid_, block_;
  std::size_t shared_bytes_;
};

}  // namespace emu
}  // namespace safeops
