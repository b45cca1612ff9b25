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

}  // namespace safeops
