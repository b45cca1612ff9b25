#include "indicator_cpu.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#if defined(__SSE2__)
#include <immintrin.h>
#endif

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

// ---- the row sums, one copy per vector level -----------------------------------------------

#define SAFEOPS_ALWAYS_INLINE __attribute__((always_inline)) inline

// out[0, n) = act(in[0, n) + rows[idx[0]] + rows[idx[1]] + ...), the terms in that order, act
// relu (z <= 0 ? 0 : z, as activations.h) or the identity; out may be in. No multiply, so no
// FMA contraction: every level gives the same bits. Any alignment: the loads and stores are
// unaligned ones (no slower than aligned ones on aligned data from AVX on), so in / out can be
// rows of TensorFlow's tensors and the rows those of dz.
template <class A, int kBytes, bool kRelu>
SAFEOPS_ALWAYS_INLINE void row_sum(const A* in, A* out, const A* rows, int64 stride,
                                   const int64* idx, int64 count, int64 n) {
  typedef A V __attribute__((vector_size(kBytes), aligned(alignof(A))));
  constexpr int64 L = kBytes / sizeof(A);
  const V zero = V{} * A(0);
  int64 i = 0;
  // Eight vectors a step: eight independent chains of adds (the order of each element's terms
  // is fixed, so the chains cannot be split along the rows), enough to keep two loads a cycle
  // going past the adds' latency; four measured 1.3-1.6x slower at K = 1024.
  for (; i + 8 * L <= n; i += 8 * L) {
    V v[8];
    for (int u = 0; u < 8; ++u) v[u] = *reinterpret_cast<const V*>(in + i + u * L);
    for (int64 j = 0; j < count; ++j) {
      const A* r = rows + idx[j] * stride + i;
      for (int u = 0; u < 8; ++u) v[u] += *reinterpret_cast<const V*>(r + u * L);
    }
    for (int u = 0; u < 8; ++u) {
      if constexpr (kRelu) v[u] = v[u] <= zero ? zero : v[u];
      *reinterpret_cast<V*>(out + i + u * L) = v[u];
    }
  }
  for (; i + L <= n; i += L) {
    V v = *reinterpret_cast<const V*>(in + i);
    for (int64 j = 0; j < count; ++j) v += *reinterpret_cast<const V*>(rows + idx[j] * stride + i);
    if constexpr (kRelu) v = v <= zero ? zero : v;
    *reinterpret_cast<V*>(out + i) = v;
  }
  for (; i < n; ++i) {
    A v = in[i];
    for (int64 j = 0; j < count; ++j) v += rows[idx[j] * stride + i];
    out[i] = kRelu && v <= A(0) ? A(0) : v;
  }
}

// row_sum for `count` rows at once (a call per row cost more than the additions at N = 64):
// row r reads in + r * io_stride, writes out + r * io_stride and adds its list idx + r * lists,
// counts[r] long.
template <class A>
using RowSums = void (*)(int64 count, const A* in, A* out, int64 io_stride, const A* rows,
                         int64 stride, const int64* idx, int64 lists, const int64* counts, int64 n,
                         bool relu);

// One instantiation per level; the generic body is inlined into each, so it is compiled for
// that level (GCC and Clang let a function with more target features inline one without).
#define SAFEOPS_ROW_SUMS(level, target, bytes)                                                   \
  template <class A>                                                                             \
  target void row_sums_##level(int64 count, const A* in, A* out, int64 io_stride, const A* rows, \
                               int64 stride, const int64* idx, int64 lists, const int64* counts, \
                               int64 n, bool relu) {                                             \
    for (int64 r = 0; r < count; ++r) {                                                          \
      const int64 o = r * io_stride;                                                             \
      if (relu) {                                                                                \
        row_sum<A, bytes, true>(in + o, out + o, rows, stride, idx + r * lists, counts[r], n);   \
      } else {                                                                                   \
        row_sum<A, bytes, false>(in + o, out + o, rows, stride, idx + r * lists, counts[r], n);  \
      }                                                                                          \
    }                                                                                            \
  }
SAFEOPS_ROW_SUMS(baseline, , 16)
#if SAFEOPS_X86_DISPATCH
SAFEOPS_ROW_SUMS(avx2, __attribute__((target("avx2"))), 32)
SAFEOPS_ROW_SUMS(avx512, __attribute__((target("avx512f"))), 64)
#endif
#undef SAFEOPS_ROW_SUMS

template <class A>
RowSums<A> row_sums(CpuIsa isa) {
#if SAFEOPS_X86_DISPATCH
  // The caller's level is at most best_cpu_isa(); a level above it is lowered, never run.
  isa = std::min(isa, best_cpu_isa());
  if (isa == CpuIsa::kAvx512) return &row_sums_avx512<A>;
  if (isa == CpuIsa::kAvx2) return &row_sums_avx2<A>;
#endif
  (void)isa;
  return &row_sums_baseline<A>;
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

// Column tiles of 512 bytes (one step of eight AVX-512 vectors): a tile of U (or of dU's sums),
// K x 512 bytes, stays in L1 or L2 while a block of rows goes over it. A tile row per row
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

// Bit j set where x[j] is missing, j < n <= 64. float four at a time with SSE (part of every
// x86-64), the other types one at a time.
template <Missing M, class T>
std::uint64_t missing_word(const T* x, int64 n) {
  std::uint64_t w = 0;
  int64 j = 0;
#if defined(__SSE2__)
  if constexpr (std::is_same_v<T, float>) {
    const __m128 abs_mask = _mm_castsi128_ps(_mm_set1_epi32(0x7fffffff));
    const __m128 max = _mm_set1_ps(std::numeric_limits<float>::max());
    for (; j + 4 <= n; j += 4) {
      const __m128 v = _mm_loadu_ps(x + j);
      // NaN: unordered with itself; non-finite: not |v| <= max (true for NaN too).
      const __m128 t =
          M == Missing::kNaN ? _mm_cmpunord_ps(v, v) : _mm_cmpnle_ps(_mm_and_ps(v, abs_mask), max);
      w |= static_cast<std::uint64_t>(_mm_movemask_ps(t)) << j;
    }
  }
#endif
  for (; j < n; ++j) w |= std::uint64_t{is_missing<M>(x[j])} << j;
  return w;
}

// Calls fn(k) for each missing feature k of the row xr, in increasing order: 64 features a word,
// then one step per missing feature (a store and a count per feature, branch-free, took 0.2 ms
// per call at 4096 x 64, 16 % missing, as long as the additions).
template <Missing M, class T, class Fn>
void for_each_missing(const T* xr, int64 K, Fn&& fn) {
  for (int64 k0 = 0; k0 < K; k0 += 64) {
    for (std::uint64_t w = missing_word<M>(xr + k0, std::min<int64>(64, K - k0)); w != 0;
         w &= w - 1) {
      fn(k0 + __builtin_ctzll(w));
    }
  }
}

// The rows to add for row xr: the bias row K, then the missing k (idx gets [K, k...]); returns
// the count. With `every_k` (a U with a NaN or an Inf, see pack) all K follow the bias, k where
// x is missing and K + 1 + k (the row 0 * U[k]) where it is observed.
template <class T, Missing M>
int64 missing_list(const T* xr, int64 K, bool every_k, int64* idx) {
  idx[0] = K;
  if (every_k) {
    for (int64 k = 0; k < K; ++k) idx[1 + k] = is_missing<M>(xr[k]) ? k : K + 1 + k;
    return K + 1;
  }
  int64 count = 1;
  for_each_missing<M>(xr, K, [&](int64 k) { idx[count++] = k; });
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

// The backward's lists by feature for rows [r0, r0 + rows): feature k's rows (relative to r0,
// increasing) at idx + k * cap, their count in counts[k]; list K (the bias) holds every row.
template <class T, Missing M>
void column_lists(const T* x, int64 K, int64 r0, int64 rows, int64 cap, int64* idx, int64* counts) {
  std::fill(counts, counts + K, 0);
  for (int64 r = 0; r < rows; ++r) {
    for_each_missing<M>(x + (r0 + r) * K, K, [&](int64 k) { idx[k * cap + counts[k]++] = r; });
    idx[K * cap + r] = r;
  }
  counts[K] = rows;
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

// Rows of dz per backward block (about 64 KB of them, L2-resident while each feature's rows are
// summed; 32 KB measured no faster), 8 to 64 rows, with their lists by feature, [K + 1, rows]
// indices, at most 96 KB: the per-call buffers stay under malloc's mmap threshold (block_rows).
template <class A>
int64 dz_block_rows(int64 stride, int64 K) {
  const int64 by_dz = (int64{64} << 10) / (stride * int64{sizeof(A)});
  const int64 by_lists = (int64{96} << 10) / ((K + 1) * int64{sizeof(int64)});
  return std::clamp<int64>(std::min(by_dz, by_lists), 8, 64);
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

// dz = g * act'(saved) (T; may be g's buffer), `rows` rows of N, with kCopy also into d (Acc,
// rows `stride` apart).
template <class T, Activation kAct, bool kCopy>
void grad_rows(int64 rows, int64 N, int64 stride, const T* saved, const T* g, T* dz, Acc<T>* d) {
  using A = Acc<T>;
  for (int64 r = 0; r < rows; ++r) {
    for (int64 n = 0; n < N; ++n) {
      const int64 i = r * N + n;
      A sv = A(0);
      if constexpr (saved_for(kAct) != Saved::kNone) sv = Traits<T>::to_acc(saved[i]);
      const A v = activation_grad<kAct>(sv, Traits<T>::to_acc(g[i]));
      if constexpr (kCopy) d[r * stride + n] = v;
      dz[i] = Traits<T>::from_acc(v);
    }
  }
}

// out[0, N) = row k of the sum over `chunks` tile-major [R, N] partials (`partial` elements
// apart), in chunk order: a tile row at a time, the chunks outer and the columns inner (the
// columns contiguous and vectorized; the chunks inner, 66 KB apart, ran scalar: 0.15 ms at
// 4096 x 64 x 256).
template <class T, class A>
void sum_partials(int64 N, int64 R, int64 k, int64 chunks, int64 partial, const A* parts, T* out) {
  A s[kTile<A>];
  for (int64 t = 0; t < N; t += kTile<A>) {
    const int64 n = std::min(kTile<A>, N - t);
    const A* p = parts + tiled_at<A>(R, k, t);
    for (int64 i = 0; i < n; ++i) s[i] = chunks ? p[i] : A(0);
    for (int64 c = 1; c < chunks; ++c) {
      for (int64 i = 0; i < n; ++i) s[i] += p[c * partial + i];
    }
    for (int64 i = 0; i < n; ++i) out[t + i] = Traits<T>::from_acc(s[i]);
  }
}

// Forward: rows in blocks (missing lists once per row), each block tile by tile. Where the
// values need no conversion and the activation is relu or linear, the sums go from mm's rows
// straight into y's (0.75 -> 0.49 ms single-threaded at 4096 x 64 x 256); otherwise through a
// tile in the accumulation type.
template <class T, Missing M, Activation kAct, bool kZ>
void forward(const IndicatorCpuArgs& a, const T* mm, const T* x, const Acc<T>* packed, bool every_k,
             T* y, T* z, const CpuRunner& runner) {
  using A = Acc<T>;
  constexpr bool kDirect =
      std::is_same_v<T, A> && !kZ && (kAct == Activation::kLinear || kAct == Activation::kRelu);
  const int64 K = a.K, N = a.N, stride = padded<A>(N), block = block_rows(K);
  const RowSums<A> sums = row_sums<A>(a.isa);
  runner.parallel_for(a.rows, N * 8 + K, [=](int64 r0, int64 r1) {
    const int64 most = std::min(block, r1 - r0);
    Aligned<A> tiles(kDirect ? 0 : most * kTile<A>);
    std::vector<int64> idx(most * (K + 1)), counts(most);
    for (int64 b0 = r0; b0 < r1; b0 += block) {
      const int64 rows = std::min(r1, b0 + block) - b0;
      missing_lists<T, M>(x, K, every_k, b0, b0 + rows, idx.data(), counts.data());
      for (int64 c = 0; c < stride; c += kTile<A>) {
        const int64 width = std::min(kTile<A>, stride - c), n = std::min(width, N - c);
        const int64 at = b0 * N + c;
        const A* u = packed + c * (2 * K + 1);  // + bias + U[k] for the missing k
        if constexpr (kDirect) {
          sums(rows, mm + at, y + at, N, u, kTile<A>, idx.data(), K + 1, counts.data(), n,
               kAct == Activation::kRelu);
        } else {
          load_tiles<T>(rows, n, N, mm + at, tiles.get());
          sums(rows, tiles.get(), tiles.get(), kTile<A>, u, kTile<A>, idx.data(), K + 1,
               counts.data(), width, false);
          store_tiles<T, kAct, kZ>(rows, n, N, tiles.get(), y + at, kZ ? z + at : nullptr);
        }
      }
    }
  });
}

// Backward: per chunk, blocks of rows: dz row by row (contiguous reads of saved and g), then each
// feature's rows of the block (its list; the bias row K lists them all) summed into the chunk's
// partial, tile by tile. Sums by feature load the rows of dz and store a partial row once per
// block, where adding each row of dz into the rows of its missing features stored once per
// term (0.4 ms against 0.35 ms single-threaded at 4096 x 64 x 256). dz itself is the source
// where T is the accumulation type, else a copy of the block in that type.
template <class T, Missing M, Activation kAct>
void backward(const IndicatorCpuArgs& a, const T* x, const T* saved, const T* g, T* dz, T* db,
              T* du, void* workspace, const CpuRunner& runner) {
  using A = Acc<T>;
  constexpr bool kDirect = std::is_same_v<T, A>;
  const int64 K = a.K, N = a.N, stride = padded<A>(N);
  const int64 chunks = chunk_count<T>(a);
  const int64 chunk_rows = chunks ? (a.rows + chunks - 1) / chunks : 0;
  const int64 partial = tiled_size<A>(K + 1, N), block = dz_block_rows<A>(stride, K);
  // The block's columns summed: N of dz, or the copy's padded rows (full vectors).
  const int64 src_stride = kDirect ? N : stride;
  A* parts = aligned<A>(workspace);
  const RowSums<A> sums = row_sums<A>(a.isa);
  runner.parallel_for(chunks, chunk_rows * N * 8, [=](int64 c0, int64 c1) {
    Aligned<A> d(kDirect ? 0 : block * stride);
    std::vector<int64> idx(block * (K + 1)), counts(K + 1);
    for (int64 c = c0; c < c1; ++c) {
      A* part = parts + c * partial;  // rows 0..K-1: dU's partial sums, row K: db's
      std::fill(part, part + partial, A(0));
      const int64 end = std::min(a.rows, (c + 1) * chunk_rows);
      for (int64 b0 = c * chunk_rows; b0 < end; b0 += block) {
        const int64 rows = std::min(end, b0 + block) - b0;
        column_lists<T, M>(x, K, b0, rows, block, idx.data(), counts.data());
        grad_rows<T, kAct, !kDirect>(rows, N, stride, saved ? saved + b0 * N : nullptr, g + b0 * N,
                                     dz + b0 * N, d.get());
        const A* src = d.get();
        if constexpr (kDirect) src = dz + b0 * N;
        for (int64 t = 0; t < src_stride; t += kTile<A>) {
          A* acc = part + t * (K + 1);
          sums(K + 1, acc, acc, kTile<A>, src + t, src_stride, idx.data(), block, counts.data(),
               std::min(kTile<A>, src_stride - t), false);
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
