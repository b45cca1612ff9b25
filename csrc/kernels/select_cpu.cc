#include "select_cpu.h"

#include <algorithm>
#include <vector>

#include "static_switch.h"

namespace safeops {
namespace {

// Fixed reduction chunk (elements). Chunk partial sums are combined in chunk order, so
// results do not depend on the number of threads.
constexpr int64 kChunk = 1 << 15;
// Lanes of the in-chunk scalar sums: independent accumulators the compiler can vectorise.
constexpr int kLanes = 8;
// Width of the kept-index tile of the general reduction (one L1-resident strip).
constexpr int64 kTile = 64;
// Rows of a tile the general reduction sums before adding them into the tile's totals: each
// addition chain is then at most kBlock + R / kBlock long instead of R.
constexpr int64 kBlock = 16;

// sum(term(q) for q in [0, n)) in kLanes interleaved accumulators, restarted every kChunk
// terms: short addition chains (accuracy) that are independent (instruction-level
// parallelism); the order depends on n alone.
template <class Acc, class Term>
Acc lane_sum(int64 n, Term&& term) {
  Acc total = sum_identity<Acc>();
  for (int64 q0 = 0; q0 < n; q0 += kChunk) {
    const int64 q1 = std::min(n, q0 + kChunk);
    Acc lanes[kLanes];
    std::fill_n(lanes, kLanes, sum_identity<Acc>());
    int64 q = q0;
    for (; q + kLanes <= q1; q += kLanes) {
      for (int l = 0; l < kLanes; ++l) lanes[l] += term(q + l);
    }
    for (int l = 0; q < q1; ++q, ++l) lanes[l] += term(q);
    Acc s = sum_identity<Acc>();
    for (int l = 0; l < kLanes; ++l) s += lanes[l];
    total += s;
  }
  return total;
}

// v where `keep`, +0 elsewhere: an AND with a mask of the bits, so that the compiler emits
// no branch (a branch on a random condition costs a misprediction per element) and the zero
// is exact even where v is NaN or Inf.
template <class V>
inline V keep_if(bool keep, V v) {
  using U = Bits<V>;
  return bit_cast<V>(static_cast<U>(bit_cast<U>(v) & (U(0) - static_cast<U>(keep))));
}

// Visits output elements [begin, end) as runs along the innermost merged dimension:
// fn(i, len, off) with off[k] the offset of element i in operand k (cond, a, b).
template <class Fn>
void for_each_run(const SelectPlan& p, int64 begin, int64 end, Fn&& fn) {
  const int r = p.rank;
  const int64* st[3] = {p.cond.stride, p.a.stride, p.b.stride};
  int64 idx[kMaxDims];
  int64 rem = begin;
  for (int d = r - 1; d >= 0; --d) {
    idx[d] = rem % p.dims[d];
    rem /= p.dims[d];
  }
  int64 off[3] = {0, 0, 0};
  for (int d = 0; d < r; ++d) {
    for (int k = 0; k < 3; ++k) off[k] += idx[d] * st[k][d];
  }
  int64 i = begin;
  while (i < end) {
    const int64 len = std::min(end - i, p.dims[r - 1] - idx[r - 1]);
    fn(i, len, off);
    i += len;
    if (i >= end) break;
    // Back to the start of the row, then carry into the outer dimensions.
    for (int k = 0; k < 3; ++k) off[k] -= idx[r - 1] * st[k][r - 1];
    idx[r - 1] = 0;
    for (int d = r - 2; d >= 0; --d) {
      ++idx[d];
      for (int k = 0; k < 3; ++k) off[k] += st[k][d];
      if (idx[d] < p.dims[d]) break;
      for (int k = 0; k < 3; ++k) off[k] -= p.dims[d] * st[k][d];
      idx[d] = 0;
    }
  }
}

// ---------------------------------------------------------------------------------------
// Forward

template <bool CondFull, bool AFull, bool BFull, class B, class Cond>
void flat_select(Cond cond, const B* a, const B* b, B* out, int64 begin, int64 end) {
  const B a0 = a[0];
  const B b0 = b[0];
  for (int64 i = begin; i < end; ++i) {
    const bool m = cond(CondFull ? i : 0);
    const B av = AFull ? a[i] : a0;
    const B bv = BFull ? b[i] : b0;
    out[i] = m ? av : bv;
  }
}

template <class B, class Cond>
void flat_select_dispatch(const SelectPlan& p, Cond cond, const B* a, const B* b, B* out,
                          int64 begin, int64 end) {
  bool_switch(
      [&](auto cf, auto af, auto bf) {
        flat_select<decltype(cf)::value, decltype(af)::value, decltype(bf)::value>(cond, a, b, out,
                                                                                   begin, end);
      },
      p.cond.access == Access::kFull, p.a.access == Access::kFull, p.b.access == Access::kFull);
}

template <class T, class Cond>
void forward_impl(const SelectPlan& p, Cond cond, const T* a_in, const T* b_in, T* out_in,
                  const CpuRunner& runner) {
  if (p.total == 0) return;
  using B = Bits<T>;
  const B* a = reinterpret_cast<const B*>(a_in);
  const B* b = reinterpret_cast<const B*>(b_in);
  B* out = reinterpret_cast<B*>(out_in);
  const bool flat = flat_forward(p);
  runner.parallel_for(p.total, 3, [&](int64 begin, int64 end) {
    if (flat) return flat_select_dispatch(p, cond, a, b, out, begin, end);
    for_each_run(p, begin, end, [&](int64 i, int64 len, const int64* off) {
      const int64 sc = p.cond.stride[p.rank - 1];
      const int64 sa = p.a.stride[p.rank - 1];
      const int64 sb = p.b.stride[p.rank - 1];
      for (int64 q = 0; q < len; ++q) {
        const B av = a[off[1] + q * sa];
        const B bv = b[off[2] + q * sb];
        out[i + q] = cond(off[0] + q * sc) ? av : bv;
      }
    });
  });
}

// ---------------------------------------------------------------------------------------
// Backward, fast path: cond full or scalar, each target full, scalar or not wanted. One pass
// over cond and g; scalar targets sum per fixed chunk, then over chunks in order.

template <Target KA, Target KB, bool CondFull, class T, class Cond>
void flat_backward_chunk(Cond cond, const T* g, T* ga, T* gb, int64 begin, int64 end,
                         typename Traits<T>::Acc* sum_a, typename Traits<T>::Acc* sum_b) {
  using Acc = typename Traits<T>::Acc;
  using B = Bits<T>;
  const B* gbits = reinterpret_cast<const B*>(g);
  B* ga_bits = reinterpret_cast<B*>(ga);
  B* gb_bits = reinterpret_cast<B*>(gb);
  Acc lanes_a[kLanes], lanes_b[kLanes];
  std::fill_n(lanes_a, kLanes, sum_identity<Acc>());
  std::fill_n(lanes_b, kLanes, sum_identity<Acc>());
  auto step = [&](int64 i, int lane) {
    const bool m = cond(CondFull ? i : 0);
    const B gv = gbits[i];
    if (KA == Target::kFull) ga_bits[i] = keep_if(m, gv);
    if (KB == Target::kFull) gb_bits[i] = keep_if(!m, gv);
    if (KA == Target::kScalar || KB == Target::kScalar) {
      // From the loaded bits, not from g again: g[i] may have just been overwritten by ga[i]
      // or gb[i] (select_cpu.h).
      const Acc v = Traits<T>::to_acc(bit_cast<T>(gv));
      if (KA == Target::kScalar) lanes_a[lane] += keep_if(m, v);
      if (KB == Target::kScalar) lanes_b[lane] += keep_if(!m, v);
    }
  };
  int64 i = begin;
  for (; i + kLanes <= end; i += kLanes) {
    for (int l = 0; l < kLanes; ++l) step(i + l, l);
  }
  for (int l = 0; i < end; ++i, ++l) step(i, l);
  Acc sa = sum_identity<Acc>(), sb = sum_identity<Acc>();
  for (int l = 0; l < kLanes; ++l) {
    sa += lanes_a[l];
    sb += lanes_b[l];
  }
  *sum_a = sa;
  *sum_b = sb;
}

template <Target KA, Target KB, class T, class Cond>
void flat_backward(const SelectPlan& p, Cond cond, const T* g, T* ga, T* gb,
                   const CpuRunner& runner) {
  using Acc = typename Traits<T>::Acc;
  const int64 chunks = (p.total + kChunk - 1) / kChunk;
  std::vector<Acc> sums((KA == Target::kScalar || KB == Target::kScalar) ? 2 * chunks : 0);
  const bool cond_full = p.cond.access == Access::kFull;
  runner.parallel_for(chunks, kChunk * 4, [&](int64 c0, int64 c1) {
    Acc dummy[2];
    for (int64 c = c0; c < c1; ++c) {
      const int64 begin = c * kChunk;
      const int64 end = std::min(p.total, begin + kChunk);
      Acc* s = sums.empty() ? dummy : &sums[2 * c];
      if (cond_full) {
        flat_backward_chunk<KA, KB, true>(cond, g, ga, gb, begin, end, s, s + 1);
      } else {
        flat_backward_chunk<KA, KB, false>(cond, g, ga, gb, begin, end, s, s + 1);
      }
    }
  });
  if (sums.empty()) return;
  Acc sa = sum_identity<Acc>(), sb = sum_identity<Acc>();
  for (int64 c = 0; c < chunks; ++c) {
    sa += sums[2 * c];
    sb += sums[2 * c + 1];
  }
  if (KA == Target::kScalar) ga[0] = Traits<T>::from_acc(sa);
  if (KB == Target::kScalar) gb[0] = Traits<T>::from_acc(sb);
}

// ---------------------------------------------------------------------------------------
// Backward, general path for one target t (a if !Neg, b if Neg):
//   out[p] = sum over the reduced index r of sel(cond(p, r), g(p, r)).
// Work items are (kept row, tile of kTile along the innermost kept dim, group of r). Groups
// split r only when there are too few items to keep the threads busy; their partial sums are
// combined in group order.

template <bool Neg, class T, class Cond>
void reduce_general(const SelectPlan& p, const Operand& t, Cond cond, const T* g, T* out,
                    const CpuRunner& runner) {
  using Acc = typename Traits<T>::Acc;
  const ReduceLayout l = make_reduce_layout(p, t);
  const int nk = l.nk, nr = l.nr;
  // Innermost kept dimension (tiled) and innermost reduced dimension (walked in runs).
  const int64 L = nk ? l.kdim[nk - 1] : 1;
  const int64 gsk = nk ? l.kg[nk - 1] : 0, csk = nk ? l.kc[nk - 1] : 0;
  const int64 Lr = nr ? l.rdim[nr - 1] : 1;
  const int64 gsr = nr ? l.rg[nr - 1] : 0, csr = nr ? l.rc[nr - 1] : 0;
  const int64 R = l.R, P = l.P;
  const int64 tiles = (L + kTile - 1) / kTile;
  const int64 items = (P / L) * tiles;
  int64 groups = items >= 16 ? 1 : std::clamp<int64>(R / 8192, 1, 64);
  const int64 per_group = (R + groups - 1) / groups;
  groups = (R + per_group - 1) / per_group;
  const bool j_inner = gsk == 1;  // the tile runs along the contiguous dimension
  std::vector<Acc> partial(groups > 1 ? groups * P : 0);

  auto sel = [&](int64 co, int64 go) -> Acc {
    const bool m = cond(co);
    const Acc v = Traits<T>::to_acc(g[go]);
    return keep_if(m != Neg, v);
  };

  const int64 cost = std::max<int64>(1, per_group * std::min(L, kTile) * 4);
  runner.parallel_for(items * groups, cost, [&](int64 w0, int64 w1) {
    for (int64 w = w0; w < w1; ++w) {
      const int64 grp = w % groups, item = w / groups;
      const int64 po = item / tiles, j0 = (item % tiles) * kTile;
      const int64 jn = std::min(kTile, L - j0);
      int64 gbase = j0 * gsk, cbase = j0 * csk;
      for (int64 k = nk - 2, rem = po; k >= 0; --k) {
        const int64 ix = rem % l.kdim[k];
        rem /= l.kdim[k];
        gbase += ix * l.kg[k];
        cbase += ix * l.kc[k];
      }
      const int64 tbase = po * L + j0;
      if (R == 1) {  // one term: a select of the bits, as in the flat path (-0, NaN payloads)
        using B = Bits<T>;
        const B* gbits = reinterpret_cast<const B*>(g);
        B* obits = reinterpret_cast<B*>(out);
        for (int64 j = 0; j < jn; ++j) {
          obits[tbase + j] = keep_if(cond(cbase + j * csk) != Neg, gbits[gbase + j * gsk]);
        }
        continue;
      }
      Acc acc[kTile];
      std::fill_n(acc, kTile, sum_identity<Acc>());
      const int64 r0 = grp * per_group, r1 = std::min(R, r0 + per_group);
      int64 ridx[kMaxDims] = {};
      int64 go = 0, co = 0;
      for (int64 k = nr - 1, rem = r0; k >= 0; --k) {
        ridx[k] = rem % l.rdim[k];
        rem /= l.rdim[k];
        go += ridx[k] * l.rg[k];
        co += ridx[k] * l.rc[k];
      }
      for (int64 rr = r0; rr < r1;) {
        const int64 len = std::min(r1 - rr, Lr - (nr ? ridx[nr - 1] : 0));
        if (j_inner) {  // the tile is contiguous: sum rows of it, kBlock rows at a time
          for (int64 q0 = 0; q0 < len; q0 += kBlock) {
            Acc blk[kTile];
            std::fill_n(blk, kTile, sum_identity<Acc>());
            for (int64 q = q0; q < std::min(len, q0 + kBlock); ++q) {
              const int64 gq = gbase + go + q * gsr, cq = cbase + co + q * csr;
              for (int64 j = 0; j < jn; ++j) blk[j] += sel(cq + j * csk, gq + j * gsk);
            }
            for (int64 j = 0; j < jn; ++j) acc[j] += blk[j];
          }
        } else {  // each target element sums a run along the reduced dimension
          for (int64 j = 0; j < jn; ++j) {
            const int64 gj = gbase + go + j * gsk, cj = cbase + co + j * csk;
            acc[j] += lane_sum<Acc>(len, [&](int64 q) { return sel(cj + q * csr, gj + q * gsr); });
          }
        }
        rr += len;
        if (nr == 0 || rr >= r1) break;
        // Next run: back to the start of the innermost reduced dimension, carry outwards.
        go -= ridx[nr - 1] * gsr;
        co -= ridx[nr - 1] * csr;
        ridx[nr - 1] = 0;
        for (int k = nr - 2; k >= 0; --k) {
          ++ridx[k];
          go += l.rg[k];
          co += l.rc[k];
          if (ridx[k] < l.rdim[k]) break;
          go -= l.rdim[k] * l.rg[k];
          co -= l.rdim[k] * l.rc[k];
          ridx[k] = 0;
        }
      }
      for (int64 j = 0; j < jn; ++j) {
        if (groups > 1) {
          partial[grp * P + tbase + j] = acc[j];
        } else {
          out[tbase + j] = Traits<T>::from_acc(acc[j]);
        }
      }
    }
  });
  if (groups == 1) return;
  runner.parallel_for(P, groups * 2, [&](int64 b, int64 e) {
    for (int64 i = b; i < e; ++i) {
      Acc s = sum_identity<Acc>();
      for (int64 k = 0; k < groups; ++k) s += partial[k * P + i];
      out[i] = Traits<T>::from_acc(s);
    }
  });
}

template <class T>
void zero_fill(T* out, int64 n) {
  std::fill_n(reinterpret_cast<Bits<T>*>(out), n, Bits<T>(0));
}

template <class T, class Cond>
void backward_impl(const SelectPlan& p, Cond cond, const T* g, T* ga, T* gb,
                   const CpuRunner& runner) {
  if (p.total == 0) {  // broadcast to an empty output: the gradients are all zeros
    if (ga) zero_fill(ga, p.a.size);
    if (gb) zero_fill(gb, p.b.size);
    return;
  }
  const BackwardTargets t = backward_targets(p, ga != nullptr, gb != nullptr);
  // General targets first, one pass each: the flat pass may write a full-shape target over g
  // (select_cpu.h), so every other read of g comes before it.
  if (t.a == Target::kGeneral) reduce_general<false>(p, p.a, cond, g, ga, runner);
  if (t.b == Target::kGeneral) reduce_general<true>(p, p.b, cond, g, gb, runner);
  with_flat_targets(t, [&](auto ka, auto kb) {
    flat_backward<decltype(ka)::value, decltype(kb)::value>(p, cond, g, ga, gb, runner);
  });
}

}  // namespace

void select_forward_cpu(DType dtype, const SelectPlan& plan, const std::uint8_t* cond,
                        const void* a, const void* b, void* out, const CpuRunner& runner) {
  dispatch_float(dtype, [&](auto tag) {
    using T = decltype(tag);
    forward_impl(plan, BoolCond{cond}, static_cast<const T*>(a), static_cast<const T*>(b),
                 static_cast<T*>(out), runner);
  });
}

void select_backward_cpu(DType dtype, const SelectPlan& plan, const std::uint8_t* cond,
                         const void* g, void* ga, void* gb, const CpuRunner& runner) {
  dispatch_float(dtype, [&](auto tag) {
    using T = decltype(tag);
    backward_impl(plan, BoolCond{cond}, static_cast<const T*>(g), static_cast<T*>(ga),
                  static_cast<T*>(gb), runner);
  });
}

void fill_missing_forward_cpu(DType dtype, Missing missing, const SelectPlan& plan, const void* x,
                              const void* value, void* out, const CpuRunner& runner) {
  dispatch_float(dtype, [&](auto tag) {
    using T = decltype(tag);
    dispatch_missing(missing, [&](auto m) {
      const T* xt = static_cast<const T*>(x);
      forward_impl(plan, MissingCond<T, decltype(m)::value>{xt}, static_cast<const T*>(value), xt,
                   static_cast<T*>(out), runner);
    });
  });
}

void fill_missing_backward_cpu(DType dtype, Missing missing, const SelectPlan& plan, const void* x,
                               const void* g, void* gvalue, void* gx, const CpuRunner& runner) {
  dispatch_float(dtype, [&](auto tag) {
    using T = decltype(tag);
    dispatch_missing(missing, [&](auto m) {
      backward_impl(plan, MissingCond<T, decltype(m)::value>{static_cast<const T*>(x)},
                    static_cast<const T*>(g), static_cast<T*>(gvalue), static_cast<T*>(gx), runner);
    });
  });
}

}  // namespace safeops
