// Block-tile GEMM of the masked_dense kernels: C[M, N] = A[M, K] @ B[K, N] for one BM x BN
// tile of C per block of 256 threads, K walked in steps of BK = 64 bytes of elements.
//
// Data path of one step: global -> registers (16-byte loads, or element loads when a row is not
// 16-byte aligned, with zeros outside the matrix) -> optional missing-value select (and count)
// on the registers -> shared memory (two stages: the loads of step s + 1 are in flight while
// step s multiplies) -> tensor cores (nvcuda::wmma, float accumulators) or a SIMT fallback.
// The accumulators leave through shared memory, 64 rows at a time, to an epilogue functor that
// sees 16 bytes' worth of consecutive output columns per call, so that the output stores are
// 16-byte vectors.
//
// Indicator weights (masked_dense's U): the A tile can also be turned into the missing-value
// indicator m ? 1 : 0 on its way to shared memory (MaskA::kIndicator), so that m @ U and
// m^T @ dz are GEMMs over x itself, with no [rows, K] mask written anywhere. A second main loop
// can accumulate onto the first (kAccumulate), and scale_rows multiplies the accumulators of
// each row of C by a factor between the two (through shared memory, the way the epilogue reads
// them: the wmma accumulator layout is unspecified).
//
// Per-row factors (the renormalisation s = K / n_obs, the backward's c 2^a) live in shared
// memory, one Acc per tile row, computed or loaded once per row before the epilogue
// (publish_row_scale, load_rows); the epilogue multiplies the accumulators by them, so its
// per-element work is one multiply, with no division and no global load.
//
// Each operand tile is copied to shared memory as it lies in global memory: "k-contiguous"
// (A as [M][K] rows, wmma row_major; B as W^T = [N][K] rows, wmma col_major) or
// "outer-contiguous" (A as x^T: [K][M]; B as [K][N]). The same loader serves every case.
//
// Tensor cores: float16 everywhere (sm_70+), bfloat16 and TF32 (float32 inputs rounded to
// tf32) from sm_80; the same kernel compiled for an older architecture, float64, and float32
// without TF32 use the SIMT path (a 16 x 16 grid of threads, each owning a (BM/16) x (BN/16)
// set of outputs).
#pragma once

#include <cuda_runtime.h>
#include <mma.h>

#include <type_traits>

#include "cuda_common.cuh"
#include "dtypes.h"
#include "missing.h"

namespace safeops {
namespace cuda {
namespace md {

constexpr int kGemmThreads = 256;
// Rows of C staged through shared memory per epilogue pass.
constexpr int kEpiRows = 64;

// Stores v[0, min(cnt, kN)) at p: 16-byte vectors when `vec` (p 16-byte aligned) and cnt >= kN.
template <class E, int kN>
__device__ void store_elems(E* p, const E (&v)[kN], int cnt, bool vec) {
  using V = Vec<E>;
  static_assert(kN % V::N == 0, "whole vectors only");
  if (vec && cnt >= kN) {
#pragma unroll
    for (int q = 0; q < kN / V::N; ++q) {
      Bits<E> b[V::N];
#pragma unroll
      for (int i = 0; i < V::N; ++i) b[i] = bit_cast<Bits<E>>(v[q * V::N + i]);
      __stwb(reinterpret_cast<uint4*>(p + q * V::N), V::pack(b));  // one 16-byte store
    }
  } else {
#pragma unroll
    for (int i = 0; i < kN; ++i) {
      if (i < cnt) p[i] = v[i];
    }
  }
}

// Missing-value test on the bits of one element (runtime policy; both tests are a few integer
// or compare instructions).
template <class T>
__device__ bool missing_bits(Bits<T> b, bool nonfinite) {
  const T v = bit_cast<T>(b);
  return nonfinite ? Traits<T>::is_nonfinite(v) : Traits<T>::is_nan(v);
}

// Renormalisation factor of a row with n_obs observed features out of K (docs/design.md); the
// forward epilogue and the backward's row pass use this one expression.
template <class Acc>
__device__ Acc renorm_scale(int64 K, int64 n_obs) {
  return n_obs > 0 ? static_cast<Acc>(K) / static_cast<Acc>(n_obs) : Acc(0);
}

// ---------------------------------------------------------------------------------------
// Global -> registers -> shared memory copy of an R x C tile (C contiguous), 16 bytes per
// thread and vector, kPer vectors per thread. A thread's vectors sit at the same tile rows and
// columns in every step, which is what lets it count missing values per row across steps.

template <class T, int R, int C>
struct TileLoader {
  using V = Vec<T>;
  static constexpr int kVpr = C / V::N;  // vectors per tile row
  static constexpr int kPer = R * kVpr / kGemmThreads;
  static_assert(C % V::N == 0 && (R * kVpr) % kGemmThreads == 0, "tile / thread mismatch");
  static_assert(kPer >= 1, "at least one vector per thread");

  uint4 v[kPer];

  __device__ static int row_of(int j) { return (threadIdx.x + j * kGemmThreads) / kVpr; }
  __device__ static int col_of(int j) { return (threadIdx.x + j * kGemmThreads) % kVpr * V::N; }

  // Tile with origin (r0, c0) of the row-major matrix p (leading dimension ld) whose valid
  // part is rows < r_end, columns < c_end; zeros elsewhere. `vec`: p is 16-byte aligned and
  // ld is a multiple of V::N (then a vector lies entirely inside or outside the columns).
  __device__ void load(const T* p, int64 ld, int64 r0, int64 r_end, int64 c0, int64 c_end,
                       bool vec) {
#pragma unroll
    for (int j = 0; j < kPer; ++j) {
      const int64 r = r0 + row_of(j), c = c0 + col_of(j);
      const int cnt = r < r_end ? static_cast<int>(min(static_cast<int64>(V::N), c_end - c)) : 0;
      v[j] = cnt > 0 ? V::load(p + r * ld + c, cnt, vec) : make_uint4(0u, 0u, 0u, 0u);
    }
  }

  // Replaces the missing entries of vector j by +0 (a select on the bits, never a multiply)
  // and returns how many there were. Zeros outside the matrix are not missing.
  __device__ int mask(int j, bool nonfinite) {
    Bits<T> b[V::N];
    int n = 0;
#pragma unroll
    for (int i = 0; i < V::N; ++i) {
      b[i] = V::get(v[j], i);
      const bool m = missing_bits<T>(b[i], nonfinite);
      n += m ? 1 : 0;
      b[i] = m ? Bits<T>(0) : b[i];
    }
    v[j] = V::pack(b);
    return n;
  }

  // Replaces vector j by the indicator of its missing entries: 1 where missing, +0 elsewhere
  // (zeros outside the matrix are not missing).
  __device__ void indicator(int j, bool nonfinite) {
    const Bits<T> one = bit_cast<Bits<T>>(Traits<T>::from_acc(typename Traits<T>::Acc(1)));
    Bits<T> b[V::N];
#pragma unroll
    for (int i = 0; i < V::N; ++i) {
      b[i] = missing_bits<T>(V::get(v[j], i), nonfinite) ? one : Bits<T>(0);
    }
    v[j] = V::pack(b);
  }

  // Multiplies the elements of vector j by f, a power of two that keeps them finite (the
  // caller's choice): exact.
  template <class Acc>
  __device__ void scale(int j, Acc f) {
    Bits<T> b[V::N];
#pragma unroll
    for (int i = 0; i < V::N; ++i) {
      const Acc e = Traits<T>::to_acc(bit_cast<T>(V::get(v[j], i)));
      b[i] = bit_cast<Bits<T>>(Traits<T>::from_acc(e * f));
    }
    v[j] = V::pack(b);
  }

  __device__ void store(T* s, int lds) const {
#pragma unroll
    for (int j = 0; j < kPer; ++j) {
      *reinterpret_cast<uint4*>(s + row_of(j) * lds + col_of(j)) = v[j];
    }
  }
};

// One operand tile: kOuter (BM for A, BN for B) x BK, stored k-contiguous ([kOuter][BK]) or
// outer-contiguous ([BK][kOuter]) as in global memory. Rows are padded by 16 bytes: 16-byte
// aligned rows for the vector stores and wmma loads, and no bank conflicts on ldmatrix.
template <class T, int kOuter, int kBK, bool kKContig>
struct OperandTile {
  static constexpr int R = kKContig ? kOuter : kBK;
  static constexpr int C = kKContig ? kBK : kOuter;
  static constexpr int kLd = C + 16 / static_cast<int>(sizeof(T));
  static constexpr int kBytes = R * kLd * static_cast<int>(sizeof(T));
  using Loader = TileLoader<T, R, C>;

  // Offset of element (outer index o, reduction index k) in the tile.
  __device__ static int at(int o, int k) { return kKContig ? o * kLd + k : k * kLd + o; }

  // Loads the tile whose outer range starts at o0 (valid below o_end) and whose reduction
  // range starts at k0 (valid below k_end) from the row-major matrix p.
  __device__ static void load(Loader& l, const T* p, int64 ld, int64 o0, int64 o_end, int64 k0,
                              int64 k_end, bool vec) {
    if constexpr (kKContig) {
      l.load(p, ld, o0, o_end, k0, k_end, vec);
    } else {
      l.load(p, ld, k0, k_end, o0, o_end, vec);
    }
  }
};

// ---------------------------------------------------------------------------------------
// Multiply-accumulate policies. Both expose zero(), step(As, Bs) over one BK slice of the
// shared tiles, stage(st, ldst, pass): write the accumulators of epilogue pass `pass`
// (kEpiRows rows of C) to st, row after row, and tile_row(pass, r): the row of C that staged
// row r holds. Every pass takes an equal share of each thread's accumulators, so that after
// pass p only the later passes' accumulators stay live in registers.

// Which element types have wmma tensor-core fragments on the architecture being compiled.
template <class T>
__host__ __device__ constexpr bool wmma_available() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 700
  return false;
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
  return std::is_same<T, half_t>::value;
#else
  return std::is_same<T, half_t>::value || std::is_same<T, bfloat16_t>::value ||
         std::is_same<T, float>::value;
#endif
}

template <class T>
struct WmmaTypes;
template <>
struct WmmaTypes<half_t> {
  using In = __half;   // fragment element type
  using Ptr = __half;  // what load_matrix_sync reads
  static constexpr int kK = 16;
  template <class Frag>
  __device__ static void convert(Frag&) {}
};
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800
template <>
struct WmmaTypes<bfloat16_t> {
  using In = __nv_bfloat16;
  using Ptr = __nv_bfloat16;
  static constexpr int kK = 16;
  template <class Frag>
  __device__ static void convert(Frag&) {}
};
template <>
struct WmmaTypes<float> {
  using In = nvcuda::wmma::precision::tf32;
  using Ptr = float;
  static constexpr int kK = 8;
  // float32 operands are rounded to TF32 in the fragments.
  template <class Frag>
  __device__ static void convert(Frag& f) {
#pragma unroll
    for (int e = 0; e < f.num_elements; ++e) f.x[e] = nvcuda::wmma::__float_to_tf32(f.x[e]);
  }
};
#endif

// 8 warps in a kWarpsM x kWarpsN grid, each owning a WM x WN block of 16 x 16 fragments.
template <int BM, int BN>
struct WarpGrid {
  static constexpr int kWarpsN = BN >= 128 ? 4 : 2;
  static constexpr int kWarpsM = 8 / kWarpsN;
  static constexpr int WM = BM / kWarpsM, WN = BN / kWarpsN;
  static constexpr int FM = WM / 16, FN = WN / 16;
  static_assert(FM >= 1 && FN >= 1 && WM % 16 == 0 && WN % 16 == 0, "warp tile");
};

template <class T, int BM, int BN, int BK, class TA, class TB>
struct WmmaMma {
  using W = WmmaTypes<T>;
  using G = WarpGrid<BM, BN>;
  static constexpr int kK = W::kK;
  using RowA = std::conditional_t<TA::kKContigA, nvcuda::wmma::row_major, nvcuda::wmma::col_major>;
  using RowB = std::conditional_t<TB::kKContigB, nvcuda::wmma::col_major, nvcuda::wmma::row_major>;
  using FragA = nvcuda::wmma::fragment<nvcuda::wmma::matrix_a, 16, 16, kK, typename W::In, RowA>;
  using FragB = nvcuda::wmma::fragment<nvcuda::wmma::matrix_b, 16, 16, kK, typename W::In, RowB>;
  using FragC = nvcuda::wmma::fragment<nvcuda::wmma::accumulator, 16, 16, kK, float>;

  FragC acc[G::FM][G::FN];

  __device__ static int warp_m() { return (threadIdx.x / 32) / G::kWarpsN * G::WM; }
  __device__ static int warp_n() { return (threadIdx.x / 32) % G::kWarpsN * G::WN; }

  __device__ void zero() {
#pragma unroll
    for (int i = 0; i < G::FM; ++i) {
#pragma unroll
      for (int j = 0; j < G::FN; ++j) nvcuda::wmma::fill_fragment(acc[i][j], 0.0f);
    }
  }

  __device__ void step(const T* As, const T* Bs) {
    const auto* a = reinterpret_cast<const typename W::Ptr*>(As);
    const auto* b = reinterpret_cast<const typename W::Ptr*>(Bs);
    const int m0 = warp_m(), n0 = warp_n();
    // Not unrolled: the TF32 variants would exceed 128 registers; each trip issues FM x FN
    // independent mma_sync, plenty to keep the tensor cores fed.
#pragma unroll 1
    for (int k = 0; k < BK; k += kK) {
      FragB fb[G::FN];
#pragma unroll
      for (int j = 0; j < G::FN; ++j) {
        nvcuda::wmma::load_matrix_sync(fb[j], b + TB::at(n0 + 16 * j, k), TB::kLd);
        W::convert(fb[j]);
      }
#pragma unroll
      for (int i = 0; i < G::FM; ++i) {
        FragA fa;
        nvcuda::wmma::load_matrix_sync(fa, a + TA::at(m0 + 16 * i, k), TA::kLd);
        W::convert(fa);
#pragma unroll
        for (int j = 0; j < G::FN; ++j) nvcuda::wmma::mma_sync(acc[i][j], fa, fb[j], acc[i][j]);
      }
    }
  }

  // Pass p stages fragment rows [p * kFP, (p + 1) * kFP) of every warp; warp row wm's share
  // lands at staged rows [wm * 16 * kFP, (wm + 1) * 16 * kFP).
  static constexpr int kPasses = BM / kEpiRows;
  static constexpr int kFP = G::FM / kPasses;
  static_assert(G::FM % kPasses == 0, "fragment rows split evenly over the passes");

  __device__ static int tile_row(int pass, int r) {
    return r / (16 * kFP) * G::WM + (pass * kFP) * 16 + r % (16 * kFP);
  }

  // Calls f(fragment, its offset in the staging buffer) for the fragments of pass `pass`.
  template <class Frags, class F>
  __device__ static void each_in_pass(Frags& acc, int ldst, int pass, F&& f) {
    const int wm = (threadIdx.x / 32) / G::kWarpsN, n0 = warp_n();
#pragma unroll
    for (int i = 0; i < G::FM; ++i) {
      if (i / kFP != pass) continue;
      const int r = (wm * kFP + i % kFP) * 16;
#pragma unroll
      for (int j = 0; j < G::FN; ++j) f(acc[i][j], r * ldst + n0 + 16 * j);
    }
  }

  __device__ void stage(float* st, int ldst, int pass) const {
    each_in_pass(acc, ldst, pass, [&](const FragC& f, int off) {
      nvcuda::wmma::store_matrix_sync(st + off, f, ldst, nvcuda::wmma::mem_row_major);
    });
  }

  // The inverse of stage: the accumulators of pass `pass` from st.
  __device__ void reload(const float* st, int ldst, int pass) {
    each_in_pass(acc, ldst, pass, [&](FragC& f, int off) {
      nvcuda::wmma::load_matrix_sync(f, st + off, ldst, nvcuda::wmma::mem_row_major);
    });
  }
};

template <class T, int BM, int BN, int BK, class TA, class TB>
struct SimtMma {
  using Acc = typename Traits<T>::Acc;
  static constexpr int TM = BM / 16, TN = BN / 16;
  // Thread (ty, tx) owns rows ty + 16 i and columns tx + 16 j: the B reads of a half warp are
  // consecutive, the A reads are broadcasts.
  Acc acc[TM][TN];

  __device__ void zero() {
#pragma unroll
    for (int i = 0; i < TM; ++i) {
#pragma unroll
      for (int j = 0; j < TN; ++j) acc[i][j] = Acc(0);
    }
  }

  __device__ void step(const T* As, const T* Bs) {
    const int ty = threadIdx.x / 16, tx = threadIdx.x % 16;
#pragma unroll 4
    for (int k = 0; k < BK; ++k) {
      Acc a[TM], b[TN];
#pragma unroll
      for (int i = 0; i < TM; ++i) a[i] = Traits<T>::to_acc(As[TA::at(ty + 16 * i, k)]);
#pragma unroll
      for (int j = 0; j < TN; ++j) b[j] = Traits<T>::to_acc(Bs[TB::at(tx + 16 * j, k)]);
#pragma unroll
      for (int i = 0; i < TM; ++i) {
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] = fma(a[i], b[j], acc[i][j]);
      }
    }
  }

  // Pass p holds C rows [p * kEpiRows, (p + 1) * kEpiRows): rows ty + 16 i of every thread
  // for i in [p * kEpiRows / 16, (p + 1) * kEpiRows / 16).
  __device__ static int tile_row(int pass, int r) { return pass * kEpiRows + r; }

  __device__ void stage(Acc* st, int ldst, int pass) const {
    const int ty = threadIdx.x / 16, tx = threadIdx.x % 16;
#pragma unroll
    for (int i = 0; i < TM; ++i) {
      const int r = ty + 16 * i - pass * kEpiRows;
      if (r < 0 || r >= kEpiRows) continue;
#pragma unroll
      for (int j = 0; j < TN; ++j) st[r * ldst + tx + 16 * j] = acc[i][j];
    }
  }

  // The inverse of stage.
  __device__ void reload(const Acc* st, int ldst, int pass) {
    const int ty = threadIdx.x / 16, tx = threadIdx.x % 16;
#pragma unroll
    for (int i = 0; i < TM; ++i) {
      const int r = ty + 16 * i - pass * kEpiRows;
      if (r < 0 || r >= kEpiRows) continue;
#pragma unroll
      for (int j = 0; j < TN; ++j) acc[i][j] = st[r * ldst + tx + 16 * j];
    }
  }
};

// ---------------------------------------------------------------------------------------
// The block GEMM: tile geometry, shared memory budget, main loop and epilogue.

// How the A tile is treated on its way to shared memory.
enum class MaskA : int {
  kNone = 0,       // plain copy
  kSelect = 1,     // missing entries -> 0
  kCount = 2,      // missing entries -> 0, and per-row counts of them (A must be k-contiguous)
  kIndicator = 3,  // every entry -> (missing ? 1 : 0)
};

// kTC: use tensor cores where the architecture has them for T (float16 from sm_70, bfloat16
// and TF32 from sm_80); the SIMT path otherwise.
template <class T, int BM_, int BN_, bool kKContigA_, bool kKContigB_, bool kTC>
struct BlockGemm {
  using Acc = typename Traits<T>::Acc;
  static constexpr int BM = BM_, BN = BN_;
  static constexpr int BK = 64 / static_cast<int>(sizeof(T));
  struct TA : OperandTile<T, BM, BK, kKContigA_> {
    static constexpr bool kKContigA = kKContigA_;
  };
  struct TB : OperandTile<T, BN, BK, kKContigB_> {
    static constexpr bool kKContigB = kKContigB_;
  };
  using LoaderA = typename TA::Loader;
  using LoaderB = typename TB::Loader;
  static constexpr bool kUseTC = kTC && wmma_available<T>();
  // __launch_bounds__ minimum blocks per SM: two (at most 128 registers a thread) for the
  // tensor-core kernels, which fit that without spills; the SIMT variants need more.
  static constexpr int kMinBlocks = kUseTC ? 2 : 1;
  using Mma =
      std::conditional_t<kUseTC, WmmaMma<T, BM, BN, BK, TA, TB>, SimtMma<T, BM, BN, BK, TA, TB>>;

  static constexpr int kStageBytes = TA::kBytes + TB::kBytes;
  // Epilogue staging: kEpiRows rows of BN accumulators, padded by 16 bytes.
  static constexpr int kLdE = BN + 16 / static_cast<int>(sizeof(Acc));
  static constexpr int kEpiBytes = kEpiRows * kLdE * static_cast<int>(sizeof(Acc));
  static constexpr int kSmemBytes = 2 * kStageBytes > kEpiBytes ? 2 * kStageBytes : kEpiBytes;
  static_assert(kSmemBytes <= 48 * 1024, "static shared memory");
  static_assert(TA::kBytes % 32 == 0 && TB::kBytes % 32 == 0, "32-byte aligned tiles (wmma)");
  static_assert(BM % kEpiRows == 0, "whole epilogue passes");

  __device__ static T* stage_a(unsigned char* smem, int s) {
    return reinterpret_cast<T*>(smem + s * kStageBytes);
  }
  __device__ static T* stage_b(unsigned char* smem, int s) {
    return reinterpret_cast<T*>(smem + s * kStageBytes + TA::kBytes);
  }

  // One global operand: the row-major matrix p with leading dimension ld; the tile's outer
  // range starts at o0 and is valid below o_end. k_scale (A only, outer-contiguous only): a
  // power of two per reduction index that A's elements are multiplied by on their way to shared
  // memory (null: none).
  struct Operand {
    const T* p;
    int64 ld;
    int64 o0, o_end;
    bool vec;
    const Acc* k_scale = nullptr;
  };

  // acc = A[o-range of a, k0:k_end] @ B[k0:k_end, o-range of b], or acc += that with
  // kAccumulate (after a barrier that frees shared memory). With MaskA::kCount, missing[j] gets
  // the number of missing entries met by the thread's A vector j (same row every step).
  template <MaskA kMask, bool kAccumulate = false>
  __device__ static void mainloop(Mma& mma, unsigned char* smem, const Operand& a, const Operand& b,
                                  int64 k0, int64 k_end, bool nonfinite,
                                  int (&missing)[LoaderA::kPer]) {
    LoaderA la;
    LoaderB lb;
    if constexpr (!kAccumulate) mma.zero();
#pragma unroll
    for (int j = 0; j < LoaderA::kPer; ++j) missing[j] = 0;
    const int64 steps = k_end > k0 ? (k_end - k0 + BK - 1) / BK : 0;
    int64 k_fetched = k0;  // reduction offset of the step in the loaders
    auto fetch = [&](int64 s) {
      const int64 k = k0 + s * BK;
      k_fetched = k;
      TA::load(la, a.p, a.ld, a.o0, a.o_end, k, k_end, a.vec);
      TB::load(lb, b.p, b.ld, b.o0, b.o_end, k, k_end, b.vec);
    };
    auto put = [&](int stage) {
      if constexpr (kMask == MaskA::kIndicator) {
#pragma unroll
        for (int j = 0; j < LoaderA::kPer; ++j) la.indicator(j, nonfinite);
      } else if constexpr (kMask != MaskA::kNone) {
#pragma unroll
        for (int j = 0; j < LoaderA::kPer; ++j) missing[j] += la.mask(j, nonfinite);
      }
      if constexpr (!TA::kKContigA) {  // tile rows are reduction indices
        if (a.k_scale != nullptr) {
#pragma unroll
          for (int j = 0; j < LoaderA::kPer; ++j) {
            const int64 k = k_fetched + LoaderA::row_of(j);
            la.scale(j, k < k_end ? a.k_scale[k] : Acc(1));
          }
        }
      }
      la.store(stage_a(smem, stage), TA::kLd);
      lb.store(stage_b(smem, stage), TB::kLd);
    };
    if (steps > 0) {
      fetch(0);
      put(0);
    }
    __syncthreads();
    for (int64 s = 0; s < steps; ++s) {
      const int cur = static_cast<int>(s & 1);
      const bool next = s + 1 < steps;
      if (next) fetch(s + 1);  // in flight during the multiply below
      mma.step(stage_a(smem, cur), stage_b(smem, cur));
      if (next) put(cur ^ 1);  // the other stage was last read before the previous barrier
      __syncthreads();
    }
  }

  // Sums the missing counts of the kVpr threads that share each A row (adjacent lanes) and
  // writes the row's renormalisation factor renorm_scale(K, K - count) to row_scale[BM] in
  // shared memory. After the butterfly every lane of a row holds its count, so lane q of the
  // kVpr computes the factor of the thread's q-th row: one division per thread at most (the
  // code holds one, not kPer). Needs a barrier before the factors are read.
  __device__ static void publish_row_scale(const int (&missing)[LoaderA::kPer], int64 K,
                                           Acc* row_scale) {
    static_assert(TA::kKContigA, "per-row counts need k-contiguous A tiles");
    constexpr int kVpr = LoaderA::kVpr;
    static_assert(kVpr <= 32 && (kVpr & (kVpr - 1)) == 0, "row lanes within a warp");
    static_assert(LoaderA::kPer <= kVpr && kGemmThreads % kVpr == 0, "a lane per row");
    const int q = static_cast<int>(threadIdx.x) % kVpr;
    int mine = 0;
#pragma unroll
    for (int j = 0; j < LoaderA::kPer; ++j) {
      int c = missing[j];
#pragma unroll
      for (int off = 1; off < kVpr; off <<= 1) c += __shfl_xor_sync(0xffffffffu, c, off);
      mine = j == q ? c : mine;
    }
    if (q < LoaderA::kPer) row_scale[LoaderA::row_of(q)] = renorm_scale<Acc>(K, K - mine);
  }

  // out[r] = f(r) for the tile rows r in [0, BM) (out: Acc[BM] in shared memory). Needs a
  // barrier before out is read (mainloop's first, when called before it).
  template <class F>
  __device__ static void load_rows(Acc* out, F&& f) {
    static_assert(BM <= kGemmThreads, "a thread per row");
    const int r = static_cast<int>(threadIdx.x);
    if (r < BM) out[r] = f(r);
  }

  // Multiplies row r of the accumulators by row_scale[r] (shared memory), through shared memory
  // one epilogue pass at a time (in the accumulation type: one rounding, as the epilogue's
  // product would be). Must follow mainloop; ends with a barrier, so that another mainloop or
  // the epilogue can reuse the shared memory.
  __device__ static void scale_rows(Mma& mma, unsigned char* smem, const Acc* row_scale) {
    Acc* st = reinterpret_cast<Acc*>(smem);
#pragma unroll
    for (int pass = 0; pass < BM / kEpiRows; ++pass) {
      mma.stage(st, kLdE, pass);
      __syncthreads();
      for (int e = threadIdx.x; e < kEpiRows * BN; e += kGemmThreads) {
        const int r = e / BN, c = e % BN;
        st[r * kLdE + c] *= row_scale[Mma::tile_row(pass, r)];
      }
      __syncthreads();
      mma.reload(st, kLdE, pass);
      __syncthreads();
    }
  }

  // The tile column of every 16-byte output group this thread's epilogue sees: one column per
  // thread (kGemmThreads is a multiple of the groups per row), so that a per-column operand
  // such as the bias is read once per thread, before the epilogue.
  static constexpr int kGroupsPerRow = BN / Vec<T>::N;
  static_assert(kGemmThreads % kGroupsPerRow == 0, "one epilogue column per thread");
  __device__ static int epilogue_col() {
    return static_cast<int>(threadIdx.x) % kGroupsPerRow * Vec<T>::N;
  }

  // Calls op(tile_row, tile_col, v) for every 16-byte group of output columns of the tile, v
  // holding the Vec<T>::N accumulators of columns tile_col.. (read from shared memory as
  // 16-byte vectors: scalar reads at this stride would be 8-way bank conflicts), times
  // row_scale[tile_row] (shared memory, one rounding in Acc) unless row_scale is null. tile_col
  // is epilogue_col(). The caller bounds-checks. Must follow mainloop (whose last barrier frees
  // the operand stages).
  template <class Op>
  __device__ static void epilogue(const Mma& mma, unsigned char* smem, const Acc* row_scale,
                                  Op&& op) {
    constexpr int kOV = Vec<T>::N;
    constexpr int kGroups = kEpiRows * kGroupsPerRow;
    constexpr int kPer16 = Vec<Acc>::N;  // accumulators per 16 bytes
    static_assert(kOV % kPer16 == 0, "whole 16-byte reads");
    Acc* st = reinterpret_cast<Acc*>(smem);
    const int c = epilogue_col();
#pragma unroll
    for (int pass = 0; pass < BM / kEpiRows; ++pass) {
      mma.stage(st, kLdE, pass);
      __syncthreads();
      // Not unrolled: a trip is a few dozen instructions, and the copies would only grow the
      // code (the loop runs kGroups / kGemmThreads = 2 to 8 times a pass).
#pragma unroll 1
      for (int g = threadIdx.x; g < kGroups; g += kGemmThreads) {
        const int r = g / kGroupsPerRow, tr = Mma::tile_row(pass, r);
        const uint4* src = reinterpret_cast<const uint4*>(st + r * kLdE + c);
        Acc v[kOV];
#pragma unroll
        for (int q = 0; q < kOV / kPer16; ++q) {
          const uint4 w = src[q];
#pragma unroll
          for (int i = 0; i < kPer16; ++i) v[q * kPer16 + i] = bit_cast<Acc>(Vec<Acc>::get(w, i));
        }
        if (row_scale != nullptr) {
          const Acc f = row_scale[tr];
#pragma unroll
          for (int i = 0; i < kOV; ++i) v[i] = f * v[i];
        }
        op(tr, c, v);
      }
      __syncthreads();
    }
  }
};

}  // namespace md
}  // namespace cuda
}  // namespace safeops
