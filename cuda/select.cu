// CUDA kernels of the select family (safe_where and fill_missing): forward select and fused
// backward, the same semantics as csrc/kernels/select_cpu.cc.
//
// Layout of the work: the flat kernels treat the output as groups of N = 16 / sizeof(T)
// elements, one group per thread and iteration of a grid-stride loop, with 16-byte loads and
// stores when every full-shape operand is aligned (the grouping, and hence every sum, is the
// same whether a group is loaded as a vector or element by element). Broadcast reductions that
// are not to a scalar use reduce_general_kernel, one thread per (target element, group of the
// reduced range), partial sums combined in group order.
#include <cuda_runtime.h>

#include <cstring>

#include "cuda_common.cuh"
#include "select.h"

namespace safeops {
namespace cuda {
namespace {

// Accuracy of the general reduction: each thread adds its terms kBlock at a time into its
// total, and the per-group partials are combined in kLanes interleaved chains, so no float
// addition chain is longer than a few hundred terms (same order on every run).
constexpr int kBlock = 16;
constexpr int kLanes = 8;

// Condition of elements [i, i + cnt): a vector load of the N condition bytes, or of the N data
// elements whose missingness is the condition.
template <int N>
struct CondBytes;
template <>
struct CondBytes<2> {
  using type = unsigned short;
};
template <>
struct CondBytes<4> {
  using type = unsigned int;
};
template <>
struct CondBytes<8> {
  using type = uint2;
};

template <int N>
__device__ void load_cond(BoolCond c, int64 i, int cnt, bool vec, bool (&m)[N]) {
  if (vec) {
    const auto v = *reinterpret_cast<const typename CondBytes<N>::type*>(c.c + i);
    unsigned long long bytes = 0;
    if constexpr (N == 8) {
      bytes = v.x | (static_cast<unsigned long long>(v.y) << 32);
    } else {
      bytes = v;
    }
#pragma unroll
    for (int k = 0; k < N; ++k) m[k] = ((bytes >> (8 * k)) & 0xffu) != 0;
  } else {
#pragma unroll
    for (int k = 0; k < N; ++k) m[k] = k < cnt && c(i + k);
  }
}

template <int N, class T, Missing M>
__device__ void load_cond(MissingCond<T, M> c, int64 i, int cnt, bool vec, bool (&m)[N]) {
  Bits<T> v[N];
  Vec<T>::load_bits(c.x + i, cnt, vec, v);
  for (int k = 0; k < N; ++k) m[k] = k < cnt && is_missing<M>(bit_cast<T>(v[k]));
}

// Group v of a flat pass (the forward's and the flat backward's: N consecutive elements, one
// 16-byte vector of T, per thread and step): its first element i, its valid elements cnt (N
// but in the last group), whether it takes the 16-byte path (`vec` and a whole group), and its
// condition m, read when the condition is full, else the scalar condition m0 in every lane.
template <int N>
struct FlatGroup {
  int64 i;
  int cnt;
  bool full;
  bool m[N];

  template <class Cond>
  __device__ FlatGroup(int64 v, int64 total, bool vec, Cond cond, bool cond_full, bool m0)
      : i(v * N),
        cnt(static_cast<int>(min(static_cast<int64>(N), total - i))),  // i is set first
        full(vec && cnt == N) {
    if (cond_full) {
      load_cond<N>(cond, i, cnt, full, m);
    } else {
      for (int k = 0; k < N; ++k) m[k] = m0;
    }
  }
};

inline bool cond_vec_ok(BoolCond c, int n) { return aligned(c.c, n); }
template <class T, Missing M>
bool cond_vec_ok(MissingCond<T, M> c, int) {
  return aligned(c.x, 16);
}

// ---------------------------------------------------------------------------------------
// Forward

template <bool CondFull, bool AFull, bool BFull, class T, class Cond>
__global__ void select_flat_kernel(Cond cond, const T* a, const T* b, T* out, int64 total,
                                   bool vec) {
  using V = Vec<T>;
  constexpr int N = V::N;
  using B = typename V::B;
  const B a0 = AFull ? B(0) : bit_cast<B>(a[0]);
  const B b0 = BFull ? B(0) : bit_cast<B>(b[0]);
  const bool m0 = CondFull ? false : cond(0);
  const int64 groups = (total + N - 1) / N;
  for (int64 v = global_thread(); v < groups; v += grid_threads()) {
    const auto [i, cnt, full, m] = FlatGroup<N>(v, total, vec, cond, CondFull, m0);
    B av[N], bv[N], o[N];
    if (AFull) V::load_bits(a + i, cnt, full, av);
    if (BFull) V::load_bits(b + i, cnt, full, bv);
    for (int k = 0; k < N; ++k) o[k] = m[k] ? (AFull ? av[k] : a0) : (BFull ? bv[k] : b0);
    V::store_bits(out + i, cnt, full, o);
  }
}

template <class T, class Cond>
__global__ void select_strided_kernel(SelectPlan p, Cond cond, const T* a, const T* b, T* out) {
  using B = Bits<T>;
  for (int64 i = global_thread(); i < p.total; i += grid_threads()) {
    const B av = bit_cast<B>(a[operand_offset(p, p.a, i)]);
    const B bv = bit_cast<B>(b[operand_offset(p, p.b, i)]);
    out[i] = bit_cast<T>(cond(operand_offset(p, p.cond, i)) ? av : bv);
  }
}

template <class T, class Cond>
int forward_impl(const SelectPlan& p, Cond cond, const T* a, const T* b, T* out,
                 cudaStream_t stream) {
  if (p.total == 0) return 0;
  constexpr int N = Vec<T>::N;
  if (!flat_forward(p)) {
    select_strided_kernel<<<grid_for(p.total), kThreads, 0, stream>>>(p, cond, a, b, out);
    return launch_status();
  }
  const bool cf = p.cond.access == Access::kFull, af = p.a.access == Access::kFull,
             bf = p.b.access == Access::kFull;
  const bool vec = aligned(out, 16) && (!cf || cond_vec_ok(cond, N)) && (!af || aligned(a, 16)) &&
                   (!bf || aligned(b, 16));
  const int grid = grid_for(ceil_div(p.total, N));
  bool_switch(
      [&](auto c_full, auto a_full, auto b_full) {
        constexpr bool CF = decltype(c_full)::value, AF = decltype(a_full)::value,
                       BF = decltype(b_full)::value;
        select_flat_kernel<CF, AF, BF>
            <<<grid, kThreads, 0, stream>>>(cond, a, b, out, p.total, vec);
      },
      cf, af, bf);
  return launch_status();
}

// ---------------------------------------------------------------------------------------
// Backward

// One pass over cond and g: full targets written, scalar targets summed per block into
// partial[2 * block + {0, 1}].
template <Target KA, Target KB, class T, class Cond>
__global__ void flat_backward_kernel(Cond cond, bool cond_full, const T* g, T* ga, T* gb,
                                     int64 total, bool vec, typename Traits<T>::Acc* partial) {
  using V = Vec<T>;
  constexpr int N = V::N;
  using B = typename V::B;
  using Acc = typename Traits<T>::Acc;
  constexpr bool kSums = KA == Target::kScalar || KB == Target::kScalar;
  const bool m0 = cond_full ? false : cond(0);
  Acc sa = sum_identity<Acc>(), sb = sum_identity<Acc>();
  const int64 groups = (total + N - 1) / N;
  for (int64 v = global_thread(); v < groups; v += grid_threads()) {
    const auto [i, cnt, full, m] = FlatGroup<N>(v, total, vec, cond, cond_full, m0);
    B gv[N];
    V::load_bits(g + i, cnt, full, gv);
    if (KA == Target::kFull) {
      B o[N];
      for (int k = 0; k < N; ++k) o[k] = m[k] ? gv[k] : B(0);
      V::store_bits(ga + i, cnt, full, o);
    }
    if (KB == Target::kFull) {
      B o[N];
      for (int k = 0; k < N; ++k) o[k] = m[k] ? B(0) : gv[k];
      V::store_bits(gb + i, cnt, full, o);
    }
    if (kSums) {
#pragma unroll
      for (int k = 0; k < N; ++k) {
        if (k >= cnt) break;
        const Acc x = Traits<T>::to_acc(bit_cast<T>(gv[k]));
        if (KA == Target::kScalar) sa += m[k] ? x : Acc(0);
        if (KB == Target::kScalar) sb += m[k] ? Acc(0) : x;
      }
    }
  }
  if (kSums) {
    sa = block_sum(sa);
    sb = block_sum(sb);
    if (threadIdx.x == 0) {
      partial[2 * blockIdx.x] = sa;
      partial[2 * blockIdx.x + 1] = sb;
    }
  }
}

// One block: sums the per-block partials of flat_backward_kernel in a fixed order.
template <class T>
__global__ void finalize_scalars_kernel(const typename Traits<T>::Acc* partial, int blocks, T* ga,
                                        T* gb) {
  using Acc = typename Traits<T>::Acc;
  Acc sa = sum_identity<Acc>(), sb = sum_identity<Acc>();
  for (int k = threadIdx.x; k < blocks; k += blockDim.x) {
    sa += partial[2 * k];
    sb += partial[2 * k + 1];
  }
  sa = block_sum(sa);
  sb = block_sum(sb);
  if (threadIdx.x == 0) {
    if (ga) ga[0] = Traits<T>::from_acc(sa);
    if (gb) gb[0] = Traits<T>::from_acc(sb);
  }
}

// How reduce_general_kernel splits the reduced range: enough threads to fill the GPU when the
// target is small, never fewer than 16 elements a thread.
struct GeneralSplit {
  int64 groups, per_group;
};

GeneralSplit general_split(const ReduceLayout& l) {
  int64 groups = 1;
  if (l.P < 65536) {
    groups = std::min<int64>(std::min<int64>(4096, 65536 / l.P), (l.R + 15) / 16);
    groups = std::max<int64>(groups, 1);
  }
  const int64 per_group = (l.R + groups - 1) / groups;
  return {(l.R + per_group - 1) / per_group, per_group};
}

template <bool Neg, class T, class Cond>
__global__ void reduce_general_kernel(ReduceLayout l, GeneralSplit s, Cond cond, const T* g, T* out,
                                      typename Traits<T>::Acc* partial) {
  using Acc = typename Traits<T>::Acc;
  const int nk = l.nk, nr = l.nr;
  for (int64 t = global_thread(); t < l.P * s.groups; t += grid_threads()) {
    const int64 p = t % l.P, grp = t / l.P;
    int64 go = 0, co = 0;
    int64 rem = p;
    for (int k = nk - 1; k >= 0; --k) {
      const int64 ix = rem % l.kdim[k];
      rem /= l.kdim[k];
      go += ix * l.kg[k];
      co += ix * l.kc[k];
    }
    if (l.R == 1) {  // one term: a select of the bits, as in the flat kernels (-0, NaN payloads)
      using B = Bits<T>;
      out[p] = bit_cast<T>(cond(co) != Neg ? bit_cast<B>(g[go]) : B(0));
      continue;
    }
    const int64 r0 = grp * s.per_group, r1 = min(l.R, r0 + s.per_group);
    int64 ridx[kMaxDims];
    rem = r0;
    for (int k = nr - 1; k >= 0; --k) {
      ridx[k] = rem % l.rdim[k];
      rem /= l.rdim[k];
      go += ridx[k] * l.rg[k];
      co += ridx[k] * l.rc[k];
    }
    // Blocks of kBlock terms keep the addition chains short.
    Acc acc = sum_identity<Acc>(), blk = sum_identity<Acc>();
    int in_blk = 0;
    for (int64 r = r0; r < r1; ++r) {
      const Acc v = Traits<T>::to_acc(g[go]);
      blk += (cond(co) != Neg) ? v : Acc(0);
      if (++in_blk == kBlock) {
        acc += blk;
        blk = sum_identity<Acc>();
        in_blk = 0;
      }
      if (nr == 0) break;
      int k = nr - 1;
      ++ridx[k];
      go += l.rg[k];
      co += l.rc[k];
      while (k > 0 && ridx[k] == l.rdim[k]) {
        go -= l.rdim[k] * l.rg[k];
        co -= l.rdim[k] * l.rc[k];
        ridx[k] = 0;
        --k;
        ++ridx[k];
        go += l.rg[k];
        co += l.rc[k];
      }
    }
    acc += blk;
    if (s.groups == 1) {
      out[p] = Traits<T>::from_acc(acc);
    } else {
      partial[grp * l.P + p] = acc;
    }
  }
}

template <class T>
__global__ void finalize_general_kernel(const typename Traits<T>::Acc* partial, int64 P,
                                        int64 groups, T* out) {
  using Acc = typename Traits<T>::Acc;
  for (int64 p = global_thread(); p < P; p += grid_threads()) {
    Acc lanes[kLanes];  // up to 4096 partials: interleaved chains, then their sum
    for (int l = 0; l < kLanes; ++l) lanes[l] = sum_identity<Acc>();
    for (int64 k = 0; k < groups; ++k) lanes[k % kLanes] += partial[k * P + p];
    Acc s = sum_identity<Acc>();
    for (int l = 0; l < kLanes; ++l) s += lanes[l];
    out[p] = Traits<T>::from_acc(s);
  }
}

// Scratch layout of one backward call; the same function sizes it and carves it.
struct Scratch {
  std::size_t flat, general_a, general_b, total;
};

Scratch scratch_layout(const SelectPlan& p, bool want_a, bool want_b, std::size_t acc) {
  Scratch s{0, 0, 0, 0};
  if (p.total == 0) return s;
  const BackwardTargets k = backward_targets(p, want_a, want_b);
  if (k.a == Target::kScalar || k.b == Target::kScalar) s.flat = round_up(2 * kMaxBlocks * acc);
  auto general = [&](Target target, const Operand& t) -> std::size_t {
    if (target != Target::kGeneral) return 0;
    const ReduceLayout l = make_reduce_layout(p, t);
    const GeneralSplit sp = general_split(l);
    return sp.groups > 1 ? round_up(sp.groups * l.P * acc) : 0;
  };
  s.general_a = general(k.a, p.a);
  s.general_b = general(k.b, p.b);
  s.total = s.flat + s.general_a + s.general_b;
  return s;
}

template <bool Neg, class T, class Cond>
int launch_general(const SelectPlan& p, const Operand& t, Cond cond, const T* g, T* out,
                   void* scratch, cudaStream_t stream) {
  using Acc = typename Traits<T>::Acc;
  const ReduceLayout l = make_reduce_layout(p, t);
  const GeneralSplit sp = general_split(l);
  Acc* partial = static_cast<Acc*>(scratch);
  reduce_general_kernel<Neg>
      <<<grid_for(l.P * sp.groups), kThreads, 0, stream>>>(l, sp, cond, g, out, partial);
  if (sp.groups > 1) {
    finalize_general_kernel<<<grid_for(l.P), kThreads, 0, stream>>>(partial, l.P, sp.groups, out);
  }
  return launch_status();
}

template <class T, class Cond>
int backward_impl(const SelectPlan& p, Cond cond, const T* g, T* ga, T* gb, void* workspace,
                  cudaStream_t stream) {
  using Acc = typename Traits<T>::Acc;
  if (p.total == 0) {  // broadcast to an empty output: the gradients are all zeros
    if (ga) cudaMemsetAsync(ga, 0, p.a.size * sizeof(T), stream);
    if (gb) cudaMemsetAsync(gb, 0, p.b.size * sizeof(T), stream);
    return launch_status();
  }
  const BackwardTargets k = backward_targets(p, ga != nullptr, gb != nullptr);
  const Scratch s = scratch_layout(p, ga != nullptr, gb != nullptr, sizeof(Acc));
  char* ws = static_cast<char*>(workspace);
  // General reductions first: the flat kernel may write a full-shape target over g
  // (cuda/select.h), so every other read of g is enqueued before it.
  if (k.a == Target::kGeneral) {
    if (int e = launch_general<false>(p, p.a, cond, g, ga, ws + s.flat, stream)) return e;
  }
  if (k.b == Target::kGeneral) {
    if (int e = launch_general<true>(p, p.b, cond, g, gb, ws + s.flat + s.general_a, stream)) {
      return e;
    }
  }
  const Target fa = flat_part(k.a), fb = flat_part(k.b);
  if (fa == Target::kNone && fb == Target::kNone) return 0;

  constexpr int N = Vec<T>::N;
  const bool cond_full = p.cond.access == Access::kFull;
  const bool vec = aligned(g, 16) && (!cond_full || cond_vec_ok(cond, N)) &&
                   (fa != Target::kFull || aligned(ga, 16)) &&
                   (fb != Target::kFull || aligned(gb, 16));
  const int grid = grid_for(ceil_div(p.total, N));
  Acc* partial = reinterpret_cast<Acc*>(ws);
  with_flat_targets(k, [&](auto ka, auto kb) {
    constexpr Target KA = decltype(ka)::value, KB = decltype(kb)::value;
    flat_backward_kernel<KA, KB>
        <<<grid, kThreads, 0, stream>>>(cond, cond_full, g, ga, gb, p.total, vec, partial);
  });
  if (fa == Target::kScalar || fb == Target::kScalar) {
    finalize_scalars_kernel<<<1, 1024, 0, stream>>>(
        partial, grid, fa == Target::kScalar ? ga : nullptr, fb == Target::kScalar ? gb : nullptr);
  }
  return launch_status();
}

}  // namespace

int select_forward(DType dtype, const SelectPlan& plan, const std::uint8_t* cond, const void* a,
                   const void* b, void* out, void* stream) {
  return dispatch_float(dtype, [&](auto tag) {
    using T = decltype(tag);
    return forward_impl(plan, BoolCond{cond}, static_cast<const T*>(a), static_cast<const T*>(b),
                        static_cast<T*>(out), as_stream(stream));
  });
}

std::size_t select_backward_workspace(DType dtype, const SelectPlan& plan, bool want_a,
                                      bool want_b) {
  const std::size_t acc = dtype == DType::kFloat64 ? sizeof(double) : sizeof(float);
  return scratch_layout(plan, want_a, want_b, acc).total;
}

int select_backward(DType dtype, const SelectPlan& plan, const std::uint8_t* cond, const void* g,
                    void* ga, void* gb, void* workspace, void* stream) {
  return dispatch_float(dtype, [&](auto tag) {
    using T = decltype(tag);
    return backward_impl(plan, BoolCond{cond}, static_cast<const T*>(g), static_cast<T*>(ga),
                         static_cast<T*>(gb), workspace, as_stream(stream));
  });
}

int fill_missing_forward(DType dtype, Missing missing, const SelectPlan& plan, const void* x,
                         const void* value, void* out, void* stream) {
  return dispatch_float(dtype, [&](auto tag) {
    using T = decltype(tag);
    return dispatch_missing(missing, [&](auto m) {
      const T* xt = static_cast<const T*>(x);
      return forward_impl(plan, MissingCond<T, decltype(m)::value>{xt},
                          static_cast<const T*>(value), xt, static_cast<T*>(out),
                          as_stream(stream));
    });
  });
}

int fill_missing_backward(DType dtype, Missing missing, const SelectPlan& plan, const void* x,
                          const void* g, void* gvalue, void* gx, void* workspace, void* stream) {
  return dispatch_float(dtype, [&](auto tag) {
    using T = decltype(tag);
    return dispatch_missing(missing, [&](auto m) {
      return backward_impl(plan, MissingCond<T, decltype(m)::value>{static_cast<const T*>(x)},
                           static_cast<const T*>(g), static_cast<T*>(gvalue), static_cast<T*>(gx),
                           workspace, as_stream(stream));
    });
  });
}

}  // namespace cuda
}  // namespace safeops
