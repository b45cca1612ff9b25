// What counts as "missing" (docs/design.md: "nan", or "nonfinite" = NaN and +-Inf), and the
// condition sources of the select kernels. Masking is always a select, never a multiply by a
// 0/1 mask, because NaN * 0 = NaN.
#pragma once

#include <cstdint>
#include <string>
#include <type_traits>

#include "dtypes.h"

namespace safeops {

enum class Missing : int { kNaN = 0, kNonFinite = 1 };

// Parses "nan" / "nonfinite"; returns false for anything else.
inline bool parse_missing(const std::string& s, Missing* out) {
  if (s == "nan") {
    *out = Missing::kNaN;
    return true;
  }
  if (s == "nonfinite") {
    *out = Missing::kNonFinite;
    return true;
  }
  return false;
}

template <Missing M, class T>
SAFEOPS_HD bool is_missing(T v) {
  return M == Missing::kNaN ? Traits<T>::is_nan(v) : Traits<T>::is_nonfinite(v);
}

// Condition read from a bool tensor (1 byte per element, any non-zero byte is true).
struct BoolCond {
  const std::uint8_t* c;
  SAFEOPS_HD bool operator()(int64 off) const { return c[off] != 0; }
};

// Condition computed inline from the data: true where x is missing (no bool tensor).
template <class T, Missing M>
struct MissingCond {
  const T* x;
  SAFEOPS_HD bool operator()(int64 off) const { return is_missing<M>(x[off]); }
};

// Calls fn(std::integral_constant<Missing, m>) for the runtime policy.
template <class Fn>
auto dispatch_missing(Missing m, Fn&& fn) {
  if (m == Missing::kNonFinite) {
    return fn(std::integral_constant<Missing, Missing::kNonFinite>{});
  }
  return fn(std::integral_constant<Missing, Missing::kNaN>{});
}

}  // namespace safeops
