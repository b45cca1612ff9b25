#include "indicator_cpu.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace safeops {

// ---- vector levels -------------------------------------------------------------------------

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define SAFEOPS_X86_DISPATCH 1
#else
#define SAFEOPS_X86_DISPATCH 0
#endif

namespace {
constexpr const char* kIsaNames[] = {"baseline", "avx2", "avx512"};
}  // namespace

CpuIsa best_cpu_isa() {
#if SAFEOPS_X86_DISPATCH
  // libgcc's and compiler-rt's checks include the operating system's support of the vector
  // state (XGETBV), not only the CPUID bits.
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return CpuIsa::kAvx512;
  if (__builtin_cpu_supports("avx2")) return CpuIsa::kAvx2;
#endif
  return CpuIsa::kBaseline;
}

bool parse_cpu_isa(const char* name, CpuIsa* isa) {
  for (int i = 0; i < 3; ++i) {
    if (std::strcmp(name, kIsaNames[i]) == 0) {
      *isa = static_cast<CpuIsa>(i);
      return true;
    }
  }
  return false;
}

const char* cpu_isa_name(CpuIsa isa) { return kIsaNames[static_cast<int>(isa)]; }

bool cpu_isa_from_env(CpuIsa* isa) {
  const CpuIsa best = best_cpu_isa();
  const char* name = std::getenv("SAFEOPS_CPU_ISA");
  CpuIsa want = best;
  if (name != nullptr && *name != '\0' && !parse_cpu_isa(name, &want)) return false;
  *isa = std::min(want, best);
  return true;
}

namespace {

template <class T>
using Acc = typename Traits<T>::Acc;

// ---- the row additions, one copy per vector level ------------------------------------------
//
// `rows` holds rows of `stride` elements, 64-byte aligned, stride * sizeof(A) a multiple of 64;
// `acc` / `src` are one such row. Four vectors per step: the output block stays in registers
// across the added rows (each a full-width aligned load).

#define SAFEOPS_ALWAYS_INLINE __attribute__((always_inline)) inline

// The vector at p (aligned to the vector's size). Pointers, not vector values, cross the
// helper's boundary, so no vector type is passed at the baseline level's ABI.
template <class V, class A>
SAFEOPS_ALWAYS_INLINE V* vec(A* p) {
  return reinterpret_cast<V*>(p);
}

// acc[0, width) += rows[idx[0]] + rows[idx[1]] + ... (in that order); width * sizeof(A) is a
// multiple of 64.
template <class A, int kBytes>
SAFEOPS_ALWAYS_INLINE void gather_add(A* acc, const A* rows, int64 stride, const int64* idx,
                                      int64 count, int64 width) {
  typedef A V __attribute__((vector_size(kBytes)));
  constexpr int64 L = kBytes / sizeof(A);
  int64 n = 0;
  // Eight vectors a step: eight independent chains of adds (the order of each element's terms
  // is fixed, so the chains cannot be split along the rows), enough to keep two loads a cycle
  // going past the adds' latency; four measured 1.3-1.6x slower at K = 1024.
  for (; n + 8 * L <= width; n += 8 * L) {
    A* o = acc + n;
    V v0 = *vec<const V>(o), v1 = *vec<const V>(o + L), v2 = *vec<const V>(o + 2 * L),
      v3 = *vec<const V>(o + 3 * L), v4 = *vec<const V>(o + 4 * L), v5 = *vec<const V>(o + 5 * L),
      v6 = *vec<const V>(o + 6 * L), v7 = *vec<const V>(o + 7 * L);
    for (int64 j = 0; j < count; ++j) {
      const A* r = rows + idx[j] * stride + n;
      v0 += *vec<const V>(r);
      v1 += *vec<const V>(r + L);
      v2 += *vec<const V>(r + 2 * L);
      v3 += *vec<const V>(r + 3 * L);
      v4 += *vec<const V>(r + 4 * L);
      v5 += *vec<const V>(r + 5 * L);
      v6 += *vec<const V>(r + 6 * L);
      v7 += *vec<const V>(r + 7 * L);
    }
    *vec<V>(o) = v0;
    *vec<V>(o + L) = v1;
    *vec<V>(o + 2 * L) = v2;
    *vec<V>(o + 3 * L) = v3;
    *vec<V>(o + 4 * L) = v4;
    *vec<V>(o + 5 * L) = v5;
    *vec<V>(o + 6 * L) = v6;
    *vec<V>(o + 7 * L) = v7;
  }
  for (; n < width; n += L) {
    V v = *vec<const V>(acc + n);
    for (int64 j = 0; j < count; ++j) v += *vec<const V>(rows + idx[j] * stride + n);
    *vec<V>(acc + n) = v;
  }
}

// rows[idx[j]][0, width) += src for every j.
template <class A, int kBytes>
SAFEOPS_ALWAYS_INLINE void scatter_add(A* rows, int64 stride, const int64* idx, int64 count,
                                       const A* src, int64 width) {
  typedef A V __attribute__((vector_size(kBytes)));
  constexpr int64 L = kBytes / sizeof(A);
  int64 n = 0;
  for (; n + 4 * L <= width; n += 4 * L) {
    const V v0 = *vec<const V>(src + n), v1 = *vec<const V>(src + n + L),
            v2 = *vec<const V>(src + n + 2 * L), v3 = *vec<const V>(src + n + 3 * L);
    for (int64 j = 0; j < count; ++j) {
      A* r = rows + idx[j] * stride + n;
      *vec<V>(r) += v0;
      *vec<V>(r + L) += v1;
      *vec<V>(r + 2 * L) += v2;
      *vec<V>(r + 3 * L) += v3;
    }
  }
  for (; n < width; n += L) {
    const V v = *vec<const V>(src + n);
    for (int64 j = 0; j < count; ++j) {
      A* r = rows + idx[j] * stride + n;
      *vec<V>(r) += v;
    }
  }
}

// A block of rows per call (a call per row and tile cost more than the additions at N = 64):
// row r of the block adds its list idx + r * lists, counts[r] long.
template <class A>
struct RowAdds {
  void (*gather)(int64 rows, A* acc, int64 acc_stride, const A* u, int64 stride, const int64* idx,
                 int64 lists, const int64* counts, int64 width);
  void (*scatter)(int64 rows, A* sums, int64 stride, const int64* idx, int64 lists,
                  const int64* counts, const A* src, int64 src_stride, int64 width);
};

// One instantiation per level; the generic bodies are inlined into each, so they are compiled
// for that level (GCC and Clang let a function with more target features inline one without).
#define SAFEOPS_ROW_ADDS(level, target, bytes)                                                    \
  template <class A>                                                                              \
  target void gather_##level(int64 rows, A* acc, int64 acc_stride, const A* u, int64 stride,      \
                             const int64* idx, int64 lists, const int64* counts, int64 width) {   \
    for (int64 r = 0; r < rows; ++r) {                                                            \
      gather_add<A, bytes>(acc + r * acc_stride, u, stride, idx + r * lists, counts[r], width);   \
    }                                                                                             \
  }                                                                                               \
  template <class A>                                                                              \
  target void scatter_##level(int64 rows, A* sums, int64 stride, const int64* idx, int64 lists,   \
                              const int64* counts, const A* src, int64 src_stride, int64 width) { \
    for (int64 r = 0; r < rows; ++r) {                                                            \
      scatter_add<A, bytes>(sums, stride, idx + r * lists, counts[r], src + r * src_stride,       \
                            width);                                                               \
    }                                                                                             \
  }
SAFEOPS_ROW_ADDS(baseline, , 16)
#if SAFEOPS_X86_DISPATCH
SAFEOPS_ROW_ADDS(avx2, __attribute__((target("avx2"))), 32)
SAFEOPS_ROW_ADDS(avx512, __attribute__((target("avx512f"))), 64)
#endif
#undef SAFEOPS_ROW_ADDS

template <class A>
RowAdds<A> row_adds(CpuIsa isa) {
#if SAFEOPS_X86_DISPATCH
  // The caller's level is at most best_cpu_isa(); a level above it is lowered, never run.
  isa = std::min(isa, best_cpu_isa());
  if (isa == CpuIsa::kAvx512) return {&gather_avx512<A>, &scatter_avx512<A>};
  if (isa == CpuIsa::kAvx2) return {&gather_avx2<A>, &scatter_avx2<A>};
#endif
  (void)isa;
  return {&gather_baseline<A>, &scatter_baseline<A>};
}

// ---- layout ----------------------------------------------------------------------------------

constexpr std::size_t kAlign = 64;

// Row stride of the packed buffers: N rounded up to 64 bytes.
template <class A>
int64 padded(int64 N) {
  constexpr int64 per = kAlign / sizeof(A);
  return (N + per - 1) / per * per;
}

template <class A>
A* aligned(void* p) {
  const auto v = reinterpret_cast<std::uintptr_t>(p);
  return reinterpret_cast<A*>((v + kAlign - 1) / kAlign * kAlign);
}

// Column tiles of 256 bytes (one step of four AVX-512 vectors): a tile of U (or of dU's sums),
// K x 256 bytes, stays in L1 or L2 while a block of rows goes over it. A tile row per row
// visit, rather than whole rows, is what keeps U out of L3 at K = N = 1024: whole rows read
// (1 + missing count) x 4 KB from L3 per row and ran at 22 ms per forward there, against
// about 4 ms at 4096 x 64 x 256 where U (64 KB) fits L2.
template <class A>
constexpr int64 kTile = 512 / sizeof(A);

// Rows per forward block (a tile of U is read from L2 or L3 once per block): their missing
// lists, [rows, K + 1] indices, take at most 32 KB (16 to 64 rows). The per-call buffers stay
// under malloc's mmap threshold (128 KB), so that each call does not fault in fresh pages: a
// 2 MB list buffer (4032 rows at K = 64) cost more than the row additions.
int64 block_rows(int64 K) { return std::clamp<int64>((int64{1} << 12) / (K + 1), 16, 64); }

// The packed U and the backward's sums are tile-major: tile t of an [R, N] buffer holds its R
// rows of kTile elements contiguously, so that a tile is one contiguous block. Rows N apart
// (4 KB at N = 1024) fall into a few cache sets and evicted each other: the tile of U did not
// stay in L1/L2 and K = N = 1024 ran at 22 ms per forward, single-threaded.
template <class A>
int64 tiled_size(int64 R, int64 N) {
  return (N + kTile<A> - 1) / kTile<A> * R * kTile<A>;
}

template <class A>
int64 tiled_at(int64 R, int64 k, int64 n) {
  return n / kTile<A> * R * kTile<A> + k * kTile<A> + n % kTile<A>;
}

// A zeroed buffer of `n` elements, 64-byte aligned (its padding stays 0).
template <class A>
class Aligned {
 public:
  explicit Aligned(int64 n) : storage_(n + kAlign / sizeof(A), A(0)) {}
  A* get() { return aligned<A>(storage_.data()); }

 private:
  std::vector<A> storage_;
};

// The rows to add for row xr: the bias row K, then the missing k (idx gets [K, k...]); returns
// the count. Branch-free: the index is written, the count advanced by the test. With
// `every_k` (a U with a NaN or an Inf, see pack) all K follow the bias, k where x is missing
// and K + 1 + k (the row 0 * U[k]) where it is observed.
template <class T, Missing M>
int64 missing_list(const T* xr, int64 K, bool every_k, int64* idx) {
  idx[0] = K;
  if (every_k) {
    for (int64 k = 0; k < K; ++k) idx[1 + k] = is_missing<M>(xr[k]) ? k : K + 1 + k;
    return K + 1;
  }
  int64 count = 1;
  for (int64 k = 0; k < K; ++k) {
    idx[count] = k;
    count += is_missing<M>(xr[k]) ? 1 : 0;
  }
  return count;
}

// The missing lists of rows [r0, r1): row r's at idx + (r - r0) * (K + 1), its count in
// counts[r - r0].
template <class T, Missing M>
void missing_lists(const T* x, int64 K, bool every_k, int64 r0, int64 r1, int64* idx,
                   int64* counts) {
  for (int64 r = r0; r < r1; ++r) {
    counts[r - r0] = missing_list<T, M>(x + r * K, K, every_k, idx + (r - r0) * (K + 1));
  }
}

// The forward's packed weights in the accumulation type, tile-major with R = 2K + 1 rows: U's K
// rows, the bias, then (used only when U holds a NaN or an Inf) the K rows 0 * U.
template <class T>
std::size_t packed_bytes(const IndicatorCpuArgs& a) {
  return static_cast<std::size_t>(tiled_size<Acc<T>>(2 * a.K + 1, a.N)) * sizeof(Acc<T>) + kAlign;
}

// Packs [U; bias]; returns whether U holds a NaN or an Inf, and then also packs 0 * U (0, or
// NaN where U is not finite). The NaN policy (docs/design.md, masked_dense) wants a NaN in U to
// reach every row, as the GEMM's 0 * NaN does, so such a U adds 0 * U[k] for the observed k
// (the NaN's way into every row) where a finite one adds nothing.
template <class T>
bool pack(const IndicatorCpuArgs& a, const T* u, const T* bias, Acc<T>* packed,
          const CpuRunner& runner) {
  using A = Acc<T>;
  const int64 K = a.K, N = a.N, R = 2 * K + 1, width = tiled_size<A>(1, N);
  std::vector<char> nonfinite(K, 0);
  char* flags = nonfinite.data();
  runner.parallel_for(K + 1, width * 2, [=](int64 k0, int64 k1) {
    for (int64 k = k0; k < k1; ++k) {
      const T* src = k < K ? u + k * N : bias;
      bool finite = true;
      for (int64 n = 0; n < width; ++n) {
        packed[tiled_at<A>(R, k, n)] = n < N ? Traits<T>::to_acc(src[n]) : A(0);
        finite &= n >= N || !is_missing<Missing::kNonFinite>(src[n]);
      }
      if (k < K) flags[k] = finite ? 0 : 1;
    }
  });
  if (std::find(nonfinite.begin(), nonfinite.end(), 1) == nonfinite.end()) return false;
  for (int64 k = 0; k < K; ++k) {
    for (int64 n = 0; n < width; ++n) {
      packed[tiled_at<A>(R, K + 1 + k, n)] = A(0) * packed[tiled_at<A>(R, k, n)];
    }
  }
  return true;
}

// The backward's sums: fixed row chunks (a rule on the shape alone), one partial [dU; db] per
// chunk, [K + 1, stride] in the accumulation type, combined in chunk order: bit-identical
// whatever the thread count. 256 rows a chunk, but at most kMaxChunks partials and at most about
// kMaxPartialBytes of them (at K = N = 1024 a partial is 4 MB: two chunks).
constexpr int64 kRowChunk = 256, kMaxChunks = 32;
constexpr std::size_t kMaxPartialBytes = std::size_t{8} << 20;

template <class T>
int64 chunk_count(const IndicatorCpuArgs& a) {
  if (a.rows == 0) return 0;
  const std::size_t partial =
      static_cast<std::size_t>(tiled_size<Acc<T>>(a.K + 1, a.N)) * sizeof(Acc<T>);
  const int64 by_memory = std::max<int64>(1, static_cast<int64>(kMaxPartialBytes / partial));
  return std::min({(a.rows + kRowChunk - 1) / kRowChunk, kMaxChunks, by_memory});
}

// Rows of dz a chunk keeps at once in the accumulation type (about 32 KB, 8 to 64 rows, under
// malloc's mmap threshold as block_rows), which it then adds into its partial tile by tile.
template <class A>
int64 dz_block_rows(int64 stride) {
  return std::clamp<int64>((int64{32} << 10) / (stride * int64{sizeof(A)}), 8, 64);
}

template <class T>
std::size_t sums_bytes(const IndicatorCpuArgs& a) {
  return static_cast<std::size_t>(chunk_count<T>(a) * tiled_size<Acc<T>>(a.K + 1, a.N)) *
             sizeof(Acc<T>) +
         kAlign;
}

// The element loops around the row additions. Separate functions with their operands as
// parameters: inside the kernels' lambdas, the stores (with -fno-strict-aliasing) could alias
// the captured pointers, which kept the loops scalar and reloading them (4 ms of a 6 ms
// backward at 4096 x 64 x 256).
// n columns of `rows` rows, N apart in mm / y / z, kTile apart in acc.
template <class T>
void load_tiles(int64 rows, int64 n, int64 N, const T* in, Acc<T>* acc) {
  for (int64 r = 0; r < rows; ++r) {
    for (int64 i = 0; i < n; ++i) acc[r * kTile<Acc<T>> + i] = Traits<T>::to_acc(in[r * N + i]);
  }
}

template <class T, Activation kAct, bool kZ>
void store_tiles(int64 rows, int64 n, int64 N, const Acc<T>* acc, T* y, T* z) {
  for (int64 r = 0; r < rows; ++r) {
    for (int64 i = 0; i < n; ++i) {
      const Acc<T> v = acc[r * kTile<Acc<T>> + i];
      if constexpr (kZ) z[r * N + i] = Traits<T>::from_acc(v);
      y[r * N + i] = Traits<T>::from_acc(activate<kAct>(v));
    }
  }
}

// d = g * act'(saved) into d (Acc, rows `stride` apart) and dz (T; may be g's buffer), `rows`
// rows of N.
template <class T, Activation kAct>
void grad_rows(int64 rows, int64 N, int64 stride, const T* saved, const T* g, T* dz, Acc<T>* d) {
  using A = Acc<T>;
  for (int64 r = 0; r < rows; ++r) {
    for (int64 n = 0; n < N; ++n) {
      const int64 i = r * N + n;
      A sv = A(0);
      if constexpr (saved_for(kAct) != Saved::kNone) sv = Traits<T>::to_acc(saved[i]);
      const A v = activation_grad<kAct>(sv, Traits<T>::to_acc(g[i]));
      d[r * stride + n] = v;
      dz[i] = Traits<T>::from_acc(v);
    }
  }
}

// out[0, N) = row k of the sum over `chunks` tile-major [R, N] partials (`partial` elements
// apart), in chunk order.
template <class T, class A>
void sum_partials(int64 N, int64 R, int64 k, int64 chunks, int64 partial, const A* parts, T* out) {
  for (int64 n = 0; n < N; ++n) {
    const A* p = parts + tiled_at<A>(R, k, n);
    A s = chunks ? p[0] : A(0);
    for (int64 c = 1; c < chunks; ++c) s += p[c * partial];
    out[n] = Traits<T>::from_acc(s);
  }
}

// Forward: rows in blocks (missing lists once per row), each block tile by tile.
template <class T, Missing M, Activation kAct, bool kZ>
void forward(const IndicatorCpuArgs& a, const T* mm, const T* x, const Acc<T>* packed, bool every_k,
             T* y, T* z, const CpuRunner& runner) {
  using A = Acc<T>;
  const int64 K = a.K, N = a.N, stride = padded<A>(N), block = block_rows(K);
  const RowAdds<A> adds = row_adds<A>(a.isa);
  runner.parallel_for(a.rows, N * 8 + K, [=](int64 r0, int64 r1) {
    const int64 most = std::min(block, r1 - r0);
    Aligned<A> tiles(most * kTile<A>);
    std::vector<int64> idx(most * (K + 1)), counts(most);
    for (int64 b0 = r0; b0 < r1; b0 += block) {
      const int64 rows = std::min(r1, b0 + block) - b0;
      missing_lists<T, M>(x, K, every_k, b0, b0 + rows, idx.data(), counts.data());
      for (int64 c = 0; c < stride; c += kTile<A>) {
        const int64 width = std::min(kTile<A>, stride - c), n = std::min(width, N - c);
        const int64 at = b0 * N + c;
        load_tiles<T>(rows, n, N, mm + at, tiles.get());
        // + bias + U[k] for the missing k
        adds.gather(rows, tiles.get(), kTile<A>, packed + c * (2 * K + 1), kTile<A>, idx.data(),
                    K + 1, counts.data(), width);
        store_tiles<T, kAct, kZ>(rows, n, N, tiles.get(), y + at, kZ ? z + at : nullptr);
      }
    }
  });
}

// Backward: per chunk, blocks of rows: dz row by row (contiguous reads of saved and g), then the
// block's dz added into the chunk's partial tile by tile (the bias row K first in each list).
template <class T, Missing M, Activation kAct>
void backward(const IndicatorCpuArgs& a, const T* x, const T* saved, const T* g, T* dz, T* db,
              T* du, void* workspace, const CpuRunner& runner) {
  using A = Acc<T>;
  const int64 K = a.K, N = a.N, stride = padded<A>(N);
  const int64 chunks = chunk_count<T>(a);
  const int64 chunk_rows = chunks ? (a.rows + chunks - 1) / chunks : 0;
  const int64 partial = tiled_size<A>(K + 1, N), block = dz_block_rows<A>(stride);
  A* parts = aligned<A>(workspace);
  const RowAdds<A> adds = row_adds<A>(a.isa);
  runner.parallel_for(chunks, chunk_rows * N * 8, [=](int64 c0, int64 c1) {
    Aligned<A> d(block * stride);
    std::vector<int64> idx(block * (K + 1)), counts(block);
    for (int64 c = c0; c < c1; ++c) {
      A* part = parts + c * partial;  // rows 0..K-1: dU's partial sums, row K: db's
      std::fill(part, part + partial, A(0));
      const int64 end = std::min(a.rows, (c + 1) * chunk_rows);
      for (int64 b0 = c * chunk_rows; b0 < end; b0 += block) {
        const int64 rows = std::min(end, b0 + block) - b0;
        missing_lists<T, M>(x, K, false, b0, b0 + rows, idx.data(), counts.data());
        grad_rows<T, kAct>(rows, N, stride, saved ? saved + b0 * N : nullptr, g + b0 * N,
                           dz + b0 * N, d.get());
        for (int64 t = 0; t < stride; t += kTile<A>) {
          adds.scatter(rows, part + t * (K + 1), kTile<A>, idx.data(), K + 1, counts.data(),
                       d.get() + t, stride, std::min(kTile<A>, stride - t));
        }
      }
    }
  });
  // The chunks' partial sums in chunk order.
  runner.parallel_for(K + 1, chunks * N + 1, [=](int64 k0, int64 k1) {
    for (int64 k = k0; k < k1; ++k) {
      sum_partials<T>(N, K + 1, k, chunks, partial, parts, k < K ? du + k * N : db);
    }
  });
}

}  // namespace

std::size_t indicator_forward_workspace_cpu(const IndicatorCpuArgs& args) {
  return dispatch_float(args.dtype, [&](auto tag) { return packed_bytes<decltype(tag)>(args); });
}

std::size_t indicator_backward_workspace_cpu(const IndicatorCpuArgs& args) {
  return dispatch_float(args.dtype, [&](auto tag) { return sums_bytes<decltype(tag)>(args); });
}

void indicator_forward_cpu(const IndicatorCpuArgs& a, const void* mm, const void* x, const void* u,
                           const void* bias, void* y, void* z, void* workspace,
                           const CpuRunner& runner) {
  if (a.rows == 0 || a.N == 0) return;
  dispatch_float(a.dtype, [&](auto tag) {
    using T = decltype(tag);
    Acc<T>* packed = aligned<Acc<T>>(workspace);
    const bool every_k =
        pack<T>(a, static_cast<const T*>(u), static_cast<const T*>(bias), packed, runner);
    dispatch_missing(a.missing, [&](auto m) {
      dispatch_activation(a.activation, [&](auto act) {
        constexpr Missing M = decltype(m)::value;
        constexpr Activation kAct = decltype(act)::value;
        const T* mt = static_cast<const T*>(mm);
        const T* xt = static_cast<const T*>(x);
        T* yt = static_cast<T*>(y);
        T* zt = static_cast<T*>(z);
        if (zt != nullptr) {
          forward<T, M, kAct, true>(a, mt, xt, packed, every_k, yt, zt, runner);
        } else {
          forward<T, M, kAct, false>(a, mt, xt, packed, every_k, yt, zt, runner);
        }
      });
    });
  });
}

void indicator_backward_cpu(const IndicatorCpuArgs& a, const void* x, const void* saved,
                            const void* g, void* dz, void* db, void* du, void* workspace,
                            const CpuRunner& runner) {
  if (a.N == 0) return;
  dispatch_float(a.dtype, [&](auto tag) {
    using T = decltype(tag);
    dispatch_missing(a.missing, [&](auto m) {
      dispatch_activation(a.activation, [&](auto act) {
        backward<T, decltype(m)::value, decltype(act)::value>(
            a, static_cast<const T*>(x), static_cast<const T*>(saved), static_cast<const T*>(g),
            static_cast<T*>(dz), static_cast<T*>(db), static_cast<T*>(du), workspace, runner);
      });
    });
  });
}

}  // namespace safeops
