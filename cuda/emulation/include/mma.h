// nvcuda::wmma of the CUDA emulation: warp-wide matrix fragments on the host.
//
// A fragment is a per-lane object, as on a GPU; lane l holds elements
// [l * num_elements, (l + 1) * num_elements) of its tile in row-major order (the mapping is
// unspecified in CUDA, so kernels cannot depend on it). load_matrix_sync, store_matrix_sync and
// mma_sync are warp collectives: all 32 lanes must arrive, and the last one does the warp's
// work once: loads must name the same pointer, leading dimension and layout in every lane, the
// pointer 32-byte aligned and the leading dimension a multiple of 16 bytes, as CUDA requires.
// mma_sync computes D = A B + C in double from the inputs as the tensor cores read them
// (TF32: the top 19 bits of each float) and rounds each element of D once to float.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "emu/runtime.h"

namespace nvcuda {
namespace wmma {

struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };
namespace precision {
struct tf32 {};
}  // namespace precision

// cvt.rna.tf32.f32: round to the nearest TF32 value (10 mantissa bits), ties away from zero.
inline float __float_to_tf32(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) {
    u = 0x7fffffffu;  // canonical NaN
  } else {
    u = (u + 0x1000u) & 0xffffe000u;
  }
  std::memcpy(&f, &u, 4);
  return f;
}

namespace detail {

template <class T>
struct Storage {
  using type = T;
};
template <>
struct Storage<precision::tf32> {
  using type = float;
};

// Rows and columns of the tile a fragment holds: A is M x K, B is K x N, C and D are M x N.
template <class Use, int M, int N, int K>
struct Tile;
template <int M, int N, int K>
struct Tile<matrix_a, M, N, K> {
  static constexpr int rows = M, cols = K;
};
template <int M, int N, int K>
struct Tile<matrix_b, M, N, K> {
  static constexpr int rows = K, cols = N;
};
template <int M, int N, int K>
struct Tile<accumulator, M, N, K> {
  static constexpr int rows = M, cols = N;
};

// An element as the tensor cores read it; TF32 inputs keep their top 19 bits (the hardware
// ignores the 13 low mantissa bits; __float_to_tf32 is what rounds).
template <bool kTf32, class E>
double input(E v) {
  if constexpr (kTf32) {
    std::uint32_t u;
    std::memcpy(&u, &v, 4);
    if ((u & 0x7fffffffu) <= 0x7f800000u) u &= 0xffffe000u;  // NaN stays NaN
    float t;
    std::memcpy(&t, &u, 4);
    return t;
  } else if constexpr (std::is_same<E, __half>::value) {
    return __half2float(v);
  } else {
    return __bfloat162float(v);
  }
}

// One lane's load or store: its fragment, and the matrix it names.
struct MemLane {
  void* frag;
  const void* ptr;
  unsigned ldm;
  bool col_major;
};
// Fails the launch unless every lane names the same matrix, aligned as CUDA requires.
void check_mem_lanes(void* const* lanes, const char* op, std::size_t elem_bytes);

template <class E, int R, int C, bool kLoad>
void complete_mem(void* const* lanes, unsigned) {
  check_mem_lanes(lanes, kLoad ? "wmma::load_matrix_sync" : "wmma::store_matrix_sync", sizeof(E));
  constexpr int kPer = R * C / 32;
  const auto* first = static_cast<const MemLane*>(lanes[0]);
  const std::size_t ldm = first->ldm;
  for (int l = 0; l < 32; ++l) {
    E* frag = static_cast<E*>(static_cast<const MemLane*>(lanes[l])->frag);
    for (int e = 0; e < kPer; ++e) {
      const int r = (l * kPer + e) / C, c = (l * kPer + e) % C;
      const std::size_t off = first->col_major ? c * ldm + r : r * ldm + c;
      if (kLoad) {
        frag[e] = static_cast<const E*>(first->ptr)[off];
      } else {
        static_cast<E*>(const_cast<void*>(first->ptr))[off] = frag[e];
      }
    }
  }
}

struct MmaLane {
  float* d;
  const void* a;
  const void* b;
  const float* c;
};

template <class EA, bool kTf32, int M, int N, int K>
void complete_mma(void* const* lanes, unsigned) {
  double a[M][K], b[K][N];
  float d[M][N];
  for (int l = 0; l < 32; ++l) {
    const auto* lane = static_cast<const MmaLane*>(lanes[l]);
    for (int e = 0; e < M * K / 32; ++e) {
      const EA v = static_cast<const EA*>(lane->a)[e];
      (&a[0][0])[l * (M * K / 32) + e] = input<kTf32>(v);
    }
    for (int e = 0; e < K * N / 32; ++e) {
      const EA v = static_cast<const EA*>(lane->b)[e];
      (&b[0][0])[l * (K * N / 32) + e] = input<kTf32>(v);
    }
    std::memcpy(&d[0][0] + l * (M * N / 32), lane->c, sizeof(float) * (M * N / 32));
  }
  for (int i = 0; i < M; ++i) {
    double s[N];
    for (int j = 0; j < N; ++j) s[j] = d[i][j];
    for (int k = 0; k < K; ++k) {
      for (int j = 0; j < N; ++j) s[j] += a[i][k] * b[k][j];  // vectorises over j
    }
    for (int j = 0; j < N; ++j) d[i][j] = static_cast<float>(s[j]);
  }
  for (int l = 0; l < 32; ++l) {
    std::memcpy(static_cast<const MmaLane*>(lanes[l])->d, &d[0][0] + l * (M * N / 32),
                sizeof(float) * (M * N / 32));
  }
}

}  // namespace detail

template <class Use, int M, int N, int K, class T, class Layout = void>
class fragment {
 public:
  using element_type = typename detail::Storage<T>::type;
  static constexpr int num_elements =
      detail::Tile<Use, M, N, K>::rows * detail::Tile<Use, M, N, K>::cols / 32;
  element_type x[num_elements];
};

template <class Use, int M, int N, int K, class T, class L>
void fill_fragment(fragment<Use, M, N, K, T, L>& f,
                   const typename fragment<Use, M, N, K, T, L>::element_type& v) {
  for (auto& e : f.x) e = v;
}

template <class Use, int M, int N, int K, class T, class L>
void load_matrix_sync(fragment<Use, M, N, K, T, L>& f,
                      const typename fragment<Use, M, N, K, T, L>::element_type* p, unsigned ldm,
                      const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  static_assert(!std::is_void<L>::value, "matrix_a/matrix_b fragments carry their layout");
  using E = typename fragment<Use, M, N, K, T, L>::element_type;
  using Tile = detail::Tile<Use, M, N, K>;
  detail::MemLane lane{f.x, p, ldm, std::is_same<L, col_major>::value};
  safeops::emu::warp_collective("wmma::load_matrix_sync", 0xffffffffu, &lane,
                                &detail::complete_mem<E, Tile::rows, Tile::cols, true>,
                                {file, line});
}

// The accumulator's load names its memory layout, as its store does.
template <int M, int N, int K, class T>
void load_matrix_sync(fragment<accumulator, M, N, K, T>& f,
                      const typename fragment<accumulator, M, N, K, T>::element_type* p,
                      unsigned ldm, layout_t layout, const char* file = __builtin_FILE(),
                      int line = __builtin_LINE()) {
  using E = typename fragment<accumulator, M, N, K, T>::element_type;
  detail::MemLane lane{f.x, p, ldm, layout == mem_col_major};
  safeops::emu::warp_collective("wmma::load_matrix_sync", 0xffffffffu, &lane,
                                &detail::complete_mem<E, M, N, true>, {file, line});
}

template <int M, int N, int K, class T>
void store_matrix_sync(typename fragment<accumulator, M, N, K, T>::element_type* p,
                       const fragment<accumulator, M, N, K, T>& f, unsigned ldm, layout_t layout,
                       const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  using E = typename fragment<accumulator, M, N, K, T>::element_type;
  detail::MemLane lane{const_cast<E*>(f.x), p, ldm, layout == mem_col_major};
  safeops::emu::warp_collective("wmma::store_matrix_sync", 0xffffffffu, &lane,
                                &detail::complete_mem<E, M, N, false>, {file, line});
}

template <int M, int N, int K, class T, class LA, class LB>
void mma_sync(fragment<accumulator, M, N, K, float>& d, const fragment<matrix_a, M, N, K, T, LA>& a,
              const fragment<matrix_b, M, N, K, T, LB>& b,
              const fragment<accumulator, M, N, K, float>& c, bool satf = false,
              const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  if (satf) safeops::emu::fail("wmma::mma_sync: satf is not emulated");
  using EA = typename fragment<matrix_a, M, N, K, T, LA>::element_type;
  detail::MmaLane lane{d.x, a.x, b.x, c.x};
  safeops::emu::warp_collective(
      "wmma::mma_sync", 0xffffffffu, &lane,
      &detail::complete_mma<EA, std::is_same<T, precision::tf32>::value, M, N, K>, {file, line});
}

}  // namespace wmma
}  // namespace nvcuda
