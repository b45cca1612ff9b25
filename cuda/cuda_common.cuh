// Device helpers shared by the .cu files: launch checks, grid sizing, deterministic block sums.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>

#include "dtypes.h"

namespace safeops {
namespace cuda {

constexpr int kThreads = 256;
// Upper bound of grid-stride grids. Grids are sized from the problem alone (never from the
// device), so every reduction has the same order on every GPU.
constexpr int64 kMaxBlocks = 4096;

inline int grid_for(int64 work_items, int threads = kThreads) {
  const int64 blocks = (work_items + threads - 1) / threads;
  return static_cast<int>(std::max<int64>(1, std::min(blocks, kMaxBlocks)));
}

// The launcher's return value: the error of the last launch on this thread (0 = none).
inline int launch_status() { return static_cast<int>(cudaGetLastError()); }

// Sum over the block in a fixed order (shuffle tree, then the warp sums by warp 0). The result
// is valid in thread 0. blockDim.x must be a multiple of 32, at most 1024. Threads without terms
// pass sum_identity() (-0), so that a sum of -0 terms stays -0.
template <class Acc>
__device__ Acc block_sum(Acc v) {
  __shared__ Acc warp_sums[32];
  for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) warp_sums[warp] = v;
  __syncthreads();
  if (warp == 0) {
    const int nwarps = blockDim.x >> 5;
    v = lane < nwarps ? warp_sums[lane] : sum_identity<Acc>();
    for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
  }
  __syncthreads();  // warp_sums may be reused by a following call
  return v;
}

inline bool aligned(const void* p, int bytes) {
  return reinterpret_cast<std::uintptr_t>(p) % static_cast<std::uintptr_t>(bytes) == 0;
}

}  // namespace cuda
}  // namespace safeops
