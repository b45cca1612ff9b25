// Helpers shared by the .cu files: launch checks, grid sizing and indexing, workspace sizes,
// deterministic block sums, and 16-byte vectors of elements.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstddef>

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

// The launchers' void* stream (their headers include no CUDA header).
inline cudaStream_t as_stream(void* s) { return static_cast<cudaStream_t>(s); }

inline int64 ceil_div(int64 a, int64 b) { return (a + b - 1) / b; }

// The size of one part of a workspace, rounded up so that the next part starts 256-byte
// aligned (every part can then be loaded as 16-byte vectors).
inline std::size_t round_up(std::size_t n) { return (n + 255) / 256 * 256; }

// Grid-stride loops: the first index of this thread, and the stride.
__device__ inline int64 global_thread() {
  return static_cast<int64>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ inline int64 grid_threads() { return static_cast<int64>(gridDim.x) * blockDim.x; }

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

// 16 bytes of consecutive elements of T, N = 16 / sizeof(T) of them, as one uint4 (four 32-bit
// words). Lanes are split and joined with shifts, so that the elements stay in registers.
template <class T>
struct Vec {
  static constexpr int N = 16 / static_cast<int>(sizeof(T));
  using B = Bits<T>;

  // The bits of lane i.
  __device__ static B get(const uint4& v, int i) {
    const unsigned w[4] = {v.x, v.y, v.z, v.w};
    if constexpr (sizeof(B) == 2) {
      return static_cast<B>(w[i / 2] >> (16 * (i % 2)));
    } else if constexpr (sizeof(B) == 4) {
      return w[i];
    } else {
      return static_cast<B>(w[2 * i]) | (static_cast<B>(w[2 * i + 1]) << 32);
    }
  }
  // A vector from N element bits (b[i] for lane i).
  __device__ static uint4 pack(const B (&b)[N]) {
    unsigned w[4];
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      if constexpr (sizeof(B) == 2) {
        w[k] = static_cast<unsigned>(b[2 * k]) | (static_cast<unsigned>(b[2 * k + 1]) << 16);
      } else if constexpr (sizeof(B) == 4) {
        w[k] = b[k];
      } else {
        w[k] = static_cast<unsigned>(b[k / 2] >> (32 * (k % 2)));
      }
    }
    return make_uint4(w[0], w[1], w[2], w[3]);
  }
  // Elements [0, cnt) of p (zeros after cnt): one 16-byte load when `vec` and cnt == N. Through
  // the read-only data cache (__ldg): only for buffers that no thread of the kernel writes.
  __device__ static uint4 load(const T* p, int cnt, bool vec) {
    if (vec && cnt >= N) return __ldg(reinterpret_cast<const uint4*>(p));
    B b[N];
#pragma unroll
    for (int i = 0; i < N; ++i) b[i] = i < cnt ? bit_cast<B>(p[i]) : B(0);
    return pack(b);
  }
  // Elements [0, cnt) of p as bits, zeros after cnt, with ordinary loads (the kernel may write
  // the buffer: select's g can be its gradient's buffer). `vec`: one 16-byte load, the caller
  // having checked that cnt == N and p is 16-byte aligned.
  __device__ static void load_bits(const T* p, int cnt, bool vec, B (&out)[N]) {
    if (vec) {
      const uint4 v = *reinterpret_cast<const uint4*>(p);
#pragma unroll
      for (int k = 0; k < N; ++k) out[k] = get(v, k);
    } else {
#pragma unroll
      for (int k = 0; k < N; ++k) out[k] = k < cnt ? bit_cast<B>(p[k]) : B(0);
    }
  }
  // Stores in[0, cnt) at p; `vec` as for load_bits.
  __device__ static void store_bits(T* p, int cnt, bool vec, const B (&in)[N]) {
    if (vec) {
      *reinterpret_cast<uint4*>(p) = pack(in);
    } else {
#pragma unroll
      for (int k = 0; k < N; ++k) {
        if (k < cnt) p[k] = bit_cast<T>(in[k]);
      }
    }
  }
};

}  // namespace cuda
}  // namespace safeops
