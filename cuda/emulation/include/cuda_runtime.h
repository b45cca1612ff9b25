// cuda_runtime.h of the CUDA emulation (SAFEOPS_CUDA_EMULATE): what `#include <cuda_runtime.h>`
// finds when cuda/*.cu are compiled by the host C++ compiler. It comes before the toolkit on
// the include path and pulls in the toolkit's host-compatible headers as they are.
//
// Model: a launch runs every block of the grid, blocks spread over a pool of OS threads, one
// block at a time per OS thread; the threads of a block are fibers on that OS thread, switched
// only where CUDA threads synchronise (__syncthreads, warp collectives, wmma). See
// cuda/emulation/src/block.h.
#pragma once

// One block at a time per OS thread: per-thread storage is per-block storage. The toolkit's
// host_defines.h keeps a definition made before it.
#define __shared__ static __thread
#define __launch_bounds__(...)

#include <cuda_runtime_api.h>  // error codes, cudaStream_t, the runtime API's declarations
#include <math.h>              // float overloads (fma, ...) in the global namespace, as on a GPU
#include <vector_functions.h>  // uint4, dim3, make_uint4, ...

#include "emu/builtins.h"
#include "emu/device_functions.h"
#include "emu/launch.h"
