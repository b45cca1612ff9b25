// Run-time choices turned into compile-time constants. A kernel that is a template over a few
// flags (is each operand full-shape?) or over a small enum (which gradient does the flat pass
// write?) is instantiated once per combination, and the dispatch picks the one matching the
// run-time values; these helpers write that dispatch once instead of a case per combination.
//
//   bool_switch(fn, x, y, z)          calls fn(std::bool_constant<x>{}, std::bool_constant<y>{},
//                                     std::bool_constant<z>{}): 2^3 instantiations of fn
//   value_switch<V0, V1, V2>(v, fn)   calls fn(std::integral_constant<decltype(V0), v>{}) for v
//                                     one of V0, V1, V2; the last one is the fallback, taken
//                                     for any value not listed before it
//
// Inside fn, `decltype(c)::value` is the constant (usable as a template argument). Every
// instantiation of fn must return the same type. Host code only (launches included).
#pragma once

#include <type_traits>
#include <utility>

namespace safeops {

template <class Fn>
auto bool_switch(Fn&& fn) {
  return fn();
}

template <class Fn, class... Rest>
auto bool_switch(Fn&& fn, bool first, Rest... rest) {
  // fn with its first argument fixed; the remaining flags are switched by the recursion.
  auto with = [&fn](auto head) { return [&fn, head](auto... tail) { return fn(head, tail...); }; };
  if (first) return bool_switch(with(std::true_type{}), rest...);
  return bool_switch(with(std::false_type{}), rest...);
}

template <auto V, auto... Rest, class Fn>
auto value_switch(decltype(V) v, Fn&& fn) {
  if constexpr (sizeof...(Rest) == 0) {
    (void)v;
    return fn(std::integral_constant<decltype(V), V>{});
  } else {
    if (v == V) return fn(std::integral_constant<decltype(V), V>{});
    return value_switch<Rest...>(v, std::forward<Fn>(fn));
  }
}

}  // namespace safeops
