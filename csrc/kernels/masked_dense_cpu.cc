#include "masked_dense_cpu.h"

#include <algorithm>
#include <type_traits>
#include <vector>

namespace safeops {
namespace {

template <class T, Missing M>
int64 count_missing(const T* row, int64 K) {
  int64 n = 0;
  for (int64 k = 0; k < K; ++k) n += is_missing<M>(row[k]) ? 1 : 0;
  return n;
}

// s = renormalize ? (n_obs > 0 ? K / n_obs : 0) : 1 (partial-convolution scaling).
template <class A, class T, Missing M>
A row_scale(bool renormalize, const T* row, int64 K) {
  if (!renormalize) return A(1);
  const int64 n_obs = K - count_missing<T, M>(row, K);
  return n_obs > 0 ? A(K) / A(n_obs) : A(0);
}

// One row of the prologue. Values are computed unconditionally and then selected, so the
// loops have no control flow and vectorise (they take scalars by value for the same reason).
template <class T, class Out, Missing M>
void input_forward_row(bool renormalize, int64 K, const T* xr, Out* out) {
  using A = typename Traits<T>::Acc;
  if constexpr (std::is_same_v<Out, T>) {
    if (!renormalize) {  // a select of bits: exact
      using B = Bits<T>;
      for (int64 k = 0; k < K; ++k) {
        const B v = bit_cast<B>(xr[k]);
        out[k] = bit_cast<T>(is_missing<M>(xr[k]) ? B(0) : v);
      }
      return;
    }
  }
  const A s = row_scale<A, T, M>(renormalize, xr, K);
  for (int64 k = 0; k < K; ++k) {
    const A v = s * Traits<T>::to_acc(xr[k]);
    const A sel = is_missing<M>(xr[k]) ? A(0) : v;
    if constexpr (std::is_same_v<Out, T>) {
      out[k] = Traits<T>::from_acc(sel);
    } else {
      out[k] = sel;
    }
  }
}

template <class T, class In, Missing M>
void input_backward_row(bool renormalize, int64 K, const T* xr, const In* gr, T* out) {
  using A = typename Traits<T>::Acc;
  const A s = row_scale<A, T, M>(renormalize, xr, K);
  for (int64 k = 0; k < K; ++k) {
    A g;
    if constexpr (std::is_same_v<In, T>) {
      g = Traits<T>::to_acc(gr[k]);
    } else {
      g = gr[k];
    }
    // Select, never multiply: dxs may be NaN/Inf at a missing entry.
    const A v = s * g;
    out[k] = Traits<T>::from_acc(is_missing<M>(xr[k]) ? A(0) : v);
  }
}

// The indicator half of a row: out = m ? 1 : 0, a select of two constants' bits (exact, and
// the loop vectorises like the prologue's).
template <class T, class Out, Missing M>
void indicator_row(int64 K, const T* xr, Out* out) {
  using B = Bits<Out>;
  Out one_value;
  if constexpr (std::is_same_v<Out, T>) {
    one_value = Traits<T>::from_acc(typename Traits<T>::Acc(1));
  } else {
    one_value = Out(1);
  }
  const B one = bit_cast<B>(one_value);
  for (int64 k = 0; k < K; ++k) out[k] = bit_cast<Out>(is_missing<M>(xr[k]) ? one : B(0));
}

template <class T, class Out, Missing M>
void input_forward(bool renormalize, bool indicator, int64 rows, int64 K, const T* x, Out* xs,
                   const CpuRunner& runner) {
  const int64 stride = indicator ? 2 * K : K;
  runner.parallel_for(rows, stride * 4, [=](int64 r0, int64 r1) {
    for (int64 r = r0; r < r1; ++r) {
      input_forward_row<T, Out, M>(renormalize, K, x + r * K, xs + r * stride);
      if (indicator) indicator_row<T, Out, M>(K, x + r * K, xs + r * stride + K);
    }
  });
}

template <class T, class In, Missing M>
void input_backward(bool renormalize, bool indicator, int64 rows, int64 K, const T* x,
                    const In* dxs, T* dx, const CpuRunner& runner) {
  const int64 stride = indicator ? 2 * K : K;
  runner.parallel_for(rows, K * 4, [=](int64 r0, int64 r1) {
    for (int64 r = r0; r < r1; ++r) {
      input_backward_row<T, In, M>(renormalize, K, x + r * K, dxs + r * stride, dx + r * K);
    }
  });
}

// Fixed row chunk of the bias-gradient sums: partials per chunk, combined in chunk order.
constexpr int64 kRowChunk = 256;

template <class T, class V>
typename Traits<T>::Acc load_acc(const V* p, int64 i) {
  if constexpr (std::is_same_v<V, T>) {
    return Traits<T>::to_acc(p[i]);
  } else {
    return p[i];
  }
}

template <class T, class V>
void store_acc(V* p, int64 i, typename Traits<T>::Acc v) {
  if constexpr (std::is_same_v<V, T>) {
    p[i] = Traits<T>::from_acc(v);
  } else {
    p[i] = v;
  }
}

// One row of the epilogue; `in` holds T or Acc. Every operand is read unconditionally and the
// z store is a template choice, so the loop has no control flow and vectorises.
template <Activation kAct, bool kZ, class T, class In>
void bias_activation_row(int64 N, const In* in, const T* b, T* y, T* z, int64 r) {
  using A = typename Traits<T>::Acc;
  for (int64 n = 0; n < N; ++n) {
    const int64 i = r * N + n;
    const A zv = load_acc<T>(in, i) + Traits<T>::to_acc(b[n]);
    if constexpr (kZ) z[i] = Traits<T>::from_acc(zv);
    y[i] = Traits<T>::from_acc(activate<kAct>(zv));
  }
}

// One row of the epilogue's backward; dz holds T or Acc, db_row (Acc) gets the row's dz added
// when kDb.
template <Activation kAct, bool kDb, class T, class Out>
void activation_backward_row(int64 N, const T* saved, const T* g, Out* dz,
                             typename Traits<T>::Acc* db_row, int64 r) {
  using A = typename Traits<T>::Acc;
  constexpr bool kSaved = saved_for(kAct) != Saved::kNone;
  for (int64 n = 0; n < N; ++n) {
    const int64 i = r * N + n;
    A sv = A(0);
    if constexpr (kSaved) sv = Traits<T>::to_acc(saved[i]);
    const A d = activation_grad<kAct>(sv, Traits<T>::to_acc(g[i]));
    store_acc<T>(dz, i, d);
    if constexpr (kDb) db_row[n] += d;
  }
}

// ---- the whole layer ---------------------------------------------------------------------

// Carves buffers of the accumulation type out of the workspace, each 64-byte aligned; with a
// null base it only counts the bytes (the workspace functions and the layer share the layout).
class Carver {
 public:
  explicit Carver(void* base) : base_(static_cast<char*>(base)) {}
  template <class A>
  A* take(int64 n) {
    char* p = base_ ? base_ + used_ : nullptr;
    used_ += (static_cast<std::size_t>(n) * sizeof(A) + kAlign - 1) / kAlign * kAlign;
    return reinterpret_cast<A*>(p);
  }
  std::size_t used() const { return used_; }

 private:
  static constexpr std::size_t kAlign = 64;
  char* base_;
  std::size_t used_ = 0;
};

// W in the accumulation type: W itself for float and double, a converted copy (`acc_w`, from
// the workspace) for the half types.
template <class T>
using Acc = typename Traits<T>::Acc;
template <class T>
constexpr bool kTIsAcc = std::is_same_v<T, Acc<T>>;

template <class T>
const Acc<T>* weights_as_acc(const MaskedDenseCpuArgs& a, const void* w, Acc<T>* acc_w) {
  if constexpr (kTIsAcc<T>) {
    return static_cast<const T*>(w);
  } else {
    const T* src = static_cast<const T*>(w);
    for (int64 i = 0; i < a.K * a.N; ++i) acc_w[i] = Traits<T>::to_acc(src[i]);
    return acc_w;
  }
}

// The GEMMs' inner length: K, or 2K with indicator weights (xs = [m ? 0 : s x, m ? 1 : 0]
// against [W; U], one GEMM; its transpose gives [dW; dU] in one GEMM too).
int64 inner(const MaskedDenseCpuArgs& a) { return a.indicator ? 2 * a.K : a.K; }

// [W; U] in the accumulation type: W itself for float and double without U, else a converted
// or stacked copy (`stacked`, from the workspace).
template <class T>
const Acc<T>* stacked_weights(const MaskedDenseCpuArgs& a, const void* w, const void* u,
                              Acc<T>* stacked) {
  if (!a.indicator) return weights_as_acc<T>(a, w, stacked);
  const int64 kn = a.K * a.N;
  const T* wt = static_cast<const T*>(w);
  const T* ut = static_cast<const T*>(u);
  for (int64 i = 0; i < kn; ++i) stacked[i] = Traits<T>::to_acc(wt[i]);
  for (int64 i = 0; i < kn; ++i) stacked[kn + i] = Traits<T>::to_acc(ut[i]);
  return stacked;
}

template <class T>
struct ForwardScratch {
  Acc<T>* xs;     // [rows, inner] the prologue's output
  Acc<T>* mm;     // [rows, N] xs @ [W; U]
  Acc<T>* acc_w;  // [inner, N] [W; U] converted (half types, or with U)
  ForwardScratch(const MaskedDenseCpuArgs& a, Carver& c)
      : xs(c.take<Acc<T>>(a.rows * inner(a))),
        mm(c.take<Acc<T>>(a.rows * a.N)),
        acc_w(kTIsAcc<T> && !a.indicator ? nullptr : c.take<Acc<T>>(inner(a) * a.N)) {}
};

template <class T>
struct BackwardScratch {
  Acc<T>* xs;      // [rows, inner] the prologue's output
  Acc<T>* dz;      // [rows, N]
  Acc<T>* dxs;     // [rows, K] dz @ W^T
  Acc<T>* acc_dw;  // [inner, N] xs^T @ dz = [dW; dU] before rounding (half types, or with U)
  Acc<T>* acc_w;   // [K, N] W converted (half types only)
  BackwardScratch(const MaskedDenseCpuArgs& a, Carver& c)
      : xs(c.take<Acc<T>>(a.rows * inner(a))),
        dz(c.take<Acc<T>>(a.rows * a.N)),
        dxs(c.take<Acc<T>>(a.rows * a.K)),
        acc_dw(kTIsAcc<T> && !a.indicator ? nullptr : c.take<Acc<T>>(inner(a) * a.N)),
        acc_w(kTIsAcc<T> ? nullptr : c.take<Acc<T>>(a.K * a.N)) {}
};

// c [M, N] = op(a) @ op(b), or zeros for an empty inner dimension (the GEMM is called only
// with every dimension > 0).
template <class A>
void gemm_or_zero(const CpuGemm& gemm, bool trans_a, bool trans_b, int64 M, int64 N, int64 K,
                  const A* a, const A* b, A* c) {
  if (M == 0 || N == 0) return;
  if (K == 0) {
    std::fill(c, c + M * N, A(0));
  } else {
    gemm(trans_a, trans_b, M, N, K, a, b, c);
  }
}

}  // namespace

void masked_input_forward_cpu(DType dtype, Missing missing, bool renormalize, int64 rows, int64 K,
                              const void* x, void* xs, bool xs_is_acc, const CpuRunner& runner,
                              bool indicator) {
  dispatch_float(dtype, [&](auto tag) {
    using T = decltype(tag);
    using A = typename Traits<T>::Acc;
    dispatch_missing(missing, [&](auto m) {
      constexpr Missing M = decltype(m)::value;
      const T* xt = static_cast<const T*>(x);
      if (xs_is_acc) {
        input_forward<T, A, M>(renormalize, indicator, rows, K, xt, static_cast<A*>(xs), runner);
      } else {
        input_forward<T, T, M>(renormalize, indicator, rows, K, xt, static_cast<T*>(xs), runner);
      }
    });
  });
}

void masked_input_backward_cpu(DType dtype, Missing missing, bool renormalize, int64 rows, int64 K,
                               const void* x, const void* dxs, bool dxs_is_acc, void* dx,
                               const CpuRunner& runner, bool indicator) {
  dispatch_float(dtype, [&](auto tag) {
    using T = decltype(tag);
    using A = typename Traits<T>::Acc;
    dispatch_missing(missing, [&](auto m) {
      constexpr Missing M = decltype(m)::value;
      const T* xt = static_cast<const T*>(x);
      T* out = static_cast<T*>(dx);
      if (dxs_is_acc) {
        input_backward<T, A, M>(renormalize, indicator, rows, K, xt, static_cast<const A*>(dxs),
                                out, runner);
      } else {
        input_backward<T, T, M>(renormalize, indicator, rows, K, xt, static_cast<const T*>(dxs),
                                out, runner);
      }
    });
  });
}

void bias_activation_cpu(DType dtype, Activation act, int64 rows, int64 N, const void* mm,
                         bool mm_is_acc, const void* bias, void* y, void* z,
                         const CpuRunner& runner) {
  dispatch_float(dtype, [&](auto tag) {
    using T = decltype(tag);
    using A = typename Traits<T>::Acc;
    dispatch_activation(act, [&](auto a) {
      constexpr Activation kAct = decltype(a)::value;
      auto run = [&](const auto* in) {
        const T* b = static_cast<const T*>(bias);
        T* yt = static_cast<T*>(y);
        T* zt = static_cast<T*>(z);
        runner.parallel_for(rows, N * 8, [=](int64 r0, int64 r1) {
          if (zt) {
            for (int64 r = r0; r < r1; ++r) bias_activation_row<kAct, true>(N, in, b, yt, zt, r);
          } else {
            for (int64 r = r0; r < r1; ++r) bias_activation_row<kAct, false>(N, in, b, yt, zt, r);
          }
        });
      };
      if (mm_is_acc) {
        run(static_cast<const A*>(mm));
      } else {
        run(static_cast<const T*>(mm));
      }
    });
  });
}

void activation_backward_cpu(DType dtype, Activation act, int64 rows, int64 N, const void* saved,
                             const void* g, void* dz, bool dz_is_acc, void* db,
                             const CpuRunner& runner) {
  dispatch_float(dtype, [&](auto tag) {
    using T = decltype(tag);
    using A = typename Traits<T>::Acc;
    dispatch_activation(act, [&](auto a) {
      constexpr Activation kAct = decltype(a)::value;
      const T* st = static_cast<const T*>(saved);
      const T* gt = static_cast<const T*>(g);
      const int64 chunks = (rows + kRowChunk - 1) / kRowChunk;
      std::vector<A> partial(db ? chunks * N : 0, A(0));
      A* part = partial.data();
      auto run = [&](auto* out) {
        runner.parallel_for(chunks, kRowChunk * N * 8, [=](int64 c0, int64 c1) {
          for (int64 c = c0; c < c1; ++c) {
            const int64 end = std::min(rows, (c + 1) * kRowChunk);
            for (int64 r = c * kRowChunk; r < end; ++r) {
              if (part) {
                activation_backward_row<kAct, true>(N, st, gt, out, part + c * N, r);
              } else {
                activation_backward_row<kAct, false>(N, st, gt, out, part, r);
              }
            }
          }
        });
      };
      if (dz_is_acc) {
        run(static_cast<A*>(dz));
      } else {
        run(static_cast<T*>(dz));
      }
      if (!db) return;
      T* dbt = static_cast<T*>(db);
      for (int64 n = 0; n < N; ++n) {
        A s = 0;
        for (int64 c = 0; c < chunks; ++c) s += partial[c * N + n];
        dbt[n] = Traits<T>::from_acc(s);
      }
    });
  });
}

std::size_t masked_dense_forward_workspace_cpu(const MaskedDenseCpuArgs& args) {
  return dispatch_float(args.dtype, [&](auto tag) {
    Carver c(nullptr);
    ForwardScratch<decltype(tag)>(args, c);
    return c.used();
  });
}

std::size_t masked_dense_backward_workspace_cpu(const MaskedDenseCpuArgs& args) {
  return dispatch_float(args.dtype, [&](auto tag) {
    Carver c(nullptr);
    BackwardScratch<decltype(tag)>(args, c);
    return c.used();
  });
}

void masked_dense_forward_cpu(const MaskedDenseCpuArgs& a, const void* x, const void* w,
                              const void* u, const void* bias, void* y, void* z, void* workspace,
                              const CpuRunner& runner, const CpuGemm& gemm) {
  if (a.rows == 0 || a.N == 0) return;
  dispatch_float(a.dtype, [&](auto tag) {
    using T = decltype(tag);
    Carver c(workspace);
    const ForwardScratch<T> s(a, c);
    masked_input_forward_cpu(a.dtype, a.missing, a.renormalize, a.rows, a.K, x, s.xs, true, runner,
                             a.indicator);
    gemm_or_zero(gemm, false, false, a.rows, a.N, inner(a), s.xs,
                 stacked_weights<T>(a, w, u, s.acc_w), s.mm);
    bias_activation_cpu(a.dtype, a.activation, a.rows, a.N, s.mm, true, bias, y, z, runner);
  });
}

void masked_dense_backward_cpu(const MaskedDenseCpuArgs& a, const void* x, const void* w,
                               const void* saved, const void* g, void* dx, void* dw, void* du,
                               void* db, void* workspace, const CpuRunner& runner,
                               const CpuGemm& gemm) {
  dispatch_float(a.dtype, [&](auto tag) {
    using T = decltype(tag);
    using A = Acc<T>;
    Carver c(workspace);
    const BackwardScratch<T> s(a, c);
    activation_backward_cpu(a.dtype, a.activation, a.rows, a.N, saved, g, s.dz, true, db, runner);
    masked_input_forward_cpu(a.dtype, a.missing, a.renormalize, a.rows, a.K, x, s.xs, true, runner,
                             a.indicator);
    // [dW; dU] = xs^T @ dz = [xf^T @ (s * dz); m^T @ dz];  dxs = dz @ W^T, then
    // dx = m ? 0 : s * dxs.
    A* dw_acc = kTIsAcc<T> && !a.indicator ? static_cast<A*>(dw) : s.acc_dw;
    gemm_or_zero(gemm, true, false, inner(a), a.N, a.rows, s.xs, s.dz, dw_acc);
    gemm_or_zero(gemm, false, true, a.rows, a.K, a.N, s.dz, weights_as_acc<T>(a, w, s.acc_w),
                 s.dxs);
    masked_input_backward_cpu(a.dtype, a.missing, a.renormalize, a.rows, a.K, x, s.dxs, true, dx,
                              runner);
    if (dw_acc != dw) {
      T* dwt = static_cast<T*>(dw);
      for (int64 i = 0; i < a.K * a.N; ++i) dwt[i] = Traits<T>::from_acc(dw_acc[i]);
    }
    if (a.indicator) {
      T* dut = static_cast<T*>(du);
      const A* du_acc = dw_acc + a.K * a.N;
      for (int64 i = 0; i < a.K * a.N; ++i) dut[i] = Traits<T>::from_acc(du_acc[i]);
    }
  });
}

}  // namespace safeops
