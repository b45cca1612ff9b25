// CUDA kernels of masked_dense's row prologue and its gradient (cuda/masked_input.h), the same
// values as csrc/kernels/masked_dense_cpu.cc's.
//
// Layout of the work: one warp per row (grid-stride over rows), the row read as groups of
// N = 16 / sizeof(T) elements, one group per lane and iteration, with 16-byte loads and stores
// when every row of every operand starts 16-byte aligned. With renormalize the warp first
// counts the row's missing entries (an integer sum: exact in any order), then reads the row
// again (from L1/L2) to write it. A row is read once or twice and written once: the pass is
// memory bound, which is why it is not fused with anything the GEMM after it could not take.
#include <cuda_runtime.h>

#include "cuda_common.cuh"
#include "masked_input.h"
#include "static_switch.h"

namespace safeops {
namespace cuda {
namespace {

constexpr int kWarp = 32;

template <class T>
using AccOf = typename Traits<T>::Acc;

// s = renormalize ? (n_obs > 0 ? K / n_obs : 0) : 1 for the row of this warp (every lane gets
// it). All lanes of the warp call it.
template <class T, Missing M>
__device__ AccOf<T> row_scale(const T* xr, int64 K, bool vec) {
  using V = Vec<T>;
  constexpr int N = V::N;
  const int lane = threadIdx.x % kWarp;
  long long missing = 0;
  for (int64 i = static_cast<int64>(lane) * N; i < K; i += kWarp * N) {
    const int cnt = static_cast<int>(min(static_cast<int64>(N), K - i));
    typename V::B b[N];
    V::load_bits(xr + i, cnt, vec && cnt == N, b);
#pragma unroll
    for (int k = 0; k < N; ++k) missing += k < cnt && is_missing<M>(bit_cast<T>(b[k])) ? 1 : 0;
  }
  for (int off = kWarp / 2; off > 0; off >>= 1)
    missing += __shfl_xor_sync(0xffffffffu, missing, off);
  const int64 n_obs = K - static_cast<int64>(missing);
  using A = AccOf<T>;
  return n_obs > 0 ? A(K) / A(n_obs) : A(0);
}

template <class T, Missing M, bool kRenorm, bool kIndicator>
__global__ void input_forward_kernel(int64 rows, int64 K, const T* x, T* xs, bool vec) {
  using V = Vec<T>;
  using B = typename V::B;
  using A = AccOf<T>;
  constexpr int N = V::N;
  const B one = bit_cast<B>(Traits<T>::from_acc(A(1)));
  const int lane = threadIdx.x % kWarp;
  const int64 stride = kIndicator ? 2 * K : K;
  const int64 warps = grid_threads() / kWarp;
  for (int64 r = global_thread() / kWarp; r < rows; r += warps) {
    const T* xr = x + r * K;
    T* out = xs + r * stride;
    A s = A(1);
    if constexpr (kRenorm) s = row_scale<T, M>(xr, K, vec);
    for (int64 i = static_cast<int64>(lane) * N; i < K; i += kWarp * N) {
      const int cnt = static_cast<int>(min(static_cast<int64>(N), K - i));
      const bool full = vec && cnt == N;
      B b[N], o[N], ind[N];
      V::load_bits(xr + i, cnt, full, b);
#pragma unroll
      for (int k = 0; k < N; ++k) {
        const T v = bit_cast<T>(b[k]);
        const bool m = is_missing<M>(v);
        B kept = b[k];
        if constexpr (kRenorm) kept = bit_cast<B>(Traits<T>::from_acc(s * Traits<T>::to_acc(v)));
        o[k] = m ? B(0) : kept;  // a select: never 0 * NaN
        ind[k] = m ? one : B(0);
      }
      V::store_bits(out + i, cnt, full, o);
      if constexpr (kIndicator) V::store_bits(out + K + i, cnt, full, ind);
    }
  }
}

template <class T, Missing M, bool kRenorm, bool kIndicator>
__global__ void input_backward_kernel(int64 rows, int64 K, const T* x, const T* dxs, T* dx,
                                      bool vec) {
  using V = Vec<T>;
  using B = typename V::B;
  using A = AccOf<T>;
  constexpr int N = V::N;
  const int lane = threadIdx.x % kWarp;
  const int64 stride = kIndicator ? 2 * K : K;
  const int64 warps = grid_threads() / kWarp;
  for (int64 r = global_thread() / kWarp; r < rows; r += warps) {
    const T* xr = x + r * K;
    const T* gr = dxs + r * stride;
    A s = A(1);
    if constexpr (kRenorm) s = row_scale<T, M>(xr, K, vec);
    for (int64 i = static_cast<int64>(lane) * N; i < K; i += kWarp * N) {
      const int cnt = static_cast<int>(min(static_cast<int64>(N), K - i));
      const bool full = vec && cnt == N;
      B b[N], g[N], o[N];
      V::load_bits(xr + i, cnt, full, b);
      V::load_bits(gr + i, cnt, full, g);
#pragma unroll
      for (int k = 0; k < N; ++k) {
        B kept = g[k];
        if constexpr (kRenorm) {
          kept = bit_cast<B>(Traits<T>::from_acc(s * Traits<T>::to_acc(bit_cast<T>(g[k]))));
        }
        o[k] = is_missing<M>(bit_cast<T>(b[k])) ? B(0) : kept;
      }
      V::store_bits(dx + r * K + i, cnt, full, o);
    }
  }
}

// 16-byte vectors when every row of every buffer starts aligned: the bases and the row length
// in bytes (the indicator half starts K elements in, the gradient's rows are K or 2K long).
template <class T>
bool rows_aligned(int64 K, const void* a, const void* b, const void* c) {
  return K * static_cast<int64>(sizeof(T)) % 16 == 0 && aligned(a, 16) && aligned(b, 16) &&
         (c == nullptr || aligned(c, 16));
}

// Enough warps for every row (8 rows per 256-thread block), capped like every grid.
inline int row_grid(int64 rows) { return grid_for(rows * kWarp); }

// Calls launch(T{}, missing, renormalize, indicator) with each flag a compile-time constant;
// returns the launch's status.
template <class Launch>
int with_flags(DType dtype, Missing missing, bool renormalize, bool indicator, Launch&& launch) {
  return dispatch_float(dtype, [&](auto tag) {
    return dispatch_missing(missing, [&](auto m) {
      bool_switch([&](auto r, auto i) { launch(tag, m, r, i); }, renormalize, indicator);
      return launch_status();
    });
  });
}

}  // namespace

int masked_input_forward(DType dtype, Missing missing, bool renormalize, bool indicator, int64 rows,
                         int64 K, const void* x, void* xs, void* stream) {
  if (rows == 0 || K == 0) return 0;
  return with_flags(dtype, missing, renormalize, indicator, [&](auto tag, auto m, auto r, auto i) {
    using T = decltype(tag);
    input_forward_kernel<T, decltype(m)::value, decltype(r)::value, decltype(i)::value>
        <<<row_grid(rows), kThreads, 0, as_stream(stream)>>>(rows, K, static_cast<const T*>(x),
                                                             static_cast<T*>(xs),
                                                             rows_aligned<T>(K, x, xs, nullptr));
  });
}

int masked_input_backward(DType dtype, Missing missing, bool renormalize, bool indicator,
                          int64 rows, int64 K, const void* x, const void* dxs, void* dx,
                          void* stream) {
  if (rows == 0 || K == 0) return 0;
  return with_flags(dtype, missing, renormalize, indicator, [&](auto tag, auto m, auto r, auto i) {
    using T = decltype(tag);
    input_backward_kernel<T, decltype(m)::value, decltype(r)::value, decltype(i)::value>
        <<<row_grid(rows), kThreads, 0, as_stream(stream)>>>(
            rows, K, static_cast<const T*>(x), static_cast<const T*>(dxs), static_cast<T*>(dx),
            rows_aligned<T>(K, x, dxs, dx));
  });
}

}  // namespace cuda
}  // namespace safeops
