// Fused activations of masked_dense (docs/design.md, masked_dense: linear, relu, gelu (exact,
// erf), sigmoid, tanh, silu), their derivatives, and what the backward needs saved from the
// forward. Host and device.
#pragma once

#include <cmath>
#include <string>
#include <type_traits>

#include "dtypes.h"

namespace safeops {

// What the backward reads to get act'(z): nothing (linear), the output y (relu: y > 0 iff
// z > 0; sigmoid: y (1 - y); tanh: 1 - y^2), or the pre-activation z (gelu, silu, whose
// derivatives are not functions of y). Saving y costs nothing extra: it is the op's output.
enum class Saved : int { kNone = 0, kOutput = 1, kPreActivation = 2 };

// The activations, one row each: enumerator, attribute name, what the backward reads (Saved),
// derivative bound (below). Everything else is generated from this table: the enum,
// parse_activation, saved_for, derivative_bound, dispatch_activation, the ops' "activation"
// attribute (csrc/tf/ops/masked_dense_ops.cc) and safeops._native.activation_table(), which
// the Python package reads (src/safeops/_activations.py). Rows are in the enum's order.
#define SAFEOPS_ACTIVATIONS(X)        \
  X(kLinear, "linear", kNone, 1)      \
  X(kRelu, "relu", kOutput, 1)        \
  X(kGelu, "gelu", kPreActivation, 2) \
  X(kSigmoid, "sigmoid", kOutput, 1)  \
  X(kTanh, "tanh", kOutput, 1)        \
  X(kSilu, "silu", kPreActivation, 2)

enum class Activation : int {
#define SAFEOPS_ACTIVATION_ENUM(e, name, saved, bound) e,
  SAFEOPS_ACTIVATIONS(SAFEOPS_ACTIVATION_ENUM)
#undef SAFEOPS_ACTIVATION_ENUM
};

constexpr const char* kActivationNames[] = {
#define SAFEOPS_ACTIVATION_NAME(e, name, saved, bound) name,
    SAFEOPS_ACTIVATIONS(SAFEOPS_ACTIVATION_NAME)
#undef SAFEOPS_ACTIVATION_NAME
};
constexpr int kActivationCount = sizeof(kActivationNames) / sizeof(kActivationNames[0]);

inline bool parse_activation(const std::string& s, Activation* out) {
  for (int i = 0; i < kActivationCount; ++i) {
    if (s == kActivationNames[i]) {
      *out = static_cast<Activation>(i);
      return true;
    }
  }
  return false;
}

// The names, each between `quote`s, joined by `sep` but for the last pair, joined by `last`:
// ("'", ", ", ", ") gives an op attribute's list, ("", ", ", " or ") a message's.
inline std::string activation_names(const char* quote, const char* sep, const char* last) {
  std::string out;
  for (int i = 0; i < kActivationCount; ++i) {
    if (i > 0) out += i + 1 == kActivationCount ? last : sep;
    out += std::string(quote) + kActivationNames[i] + quote;
  }
  return out;
}

SAFEOPS_HD constexpr Saved saved_for(Activation a) {
  switch (a) {
#define SAFEOPS_ACTIVATION_SAVED(e, name, saved, bound) \
  case Activation::e:                                   \
    return Saved::saved;
    SAFEOPS_ACTIVATIONS(SAFEOPS_ACTIVATION_SAVED)
#undef SAFEOPS_ACTIVATION_SAVED
  }
  return Saved::kNone;
}

// A power of two at least max |act'(z)| (linear, relu, tanh: 1; sigmoid: 1/4; gelu: 1.13;
// silu: 1.10): |g * act'| <= derivative_bound(a) * |g|. The CUDA backward stores
// dz / derivative_bound in the dtype, so that no upstream gradient the dtype can hold overflows it.
SAFEOPS_HD constexpr int derivative_bound(Activation a) {
  switch (a) {
#define SAFEOPS_ACTIVATION_BOUND(e, name, saved, bound) \
  case Activation::e:                                   \
    return bound;
    SAFEOPS_ACTIVATIONS(SAFEOPS_ACTIVATION_BOUND)
#undef SAFEOPS_ACTIVATION_BOUND
  }
  return 1;
}

namespace act_math {
SAFEOPS_HD float erf_(float v) { return erff(v); }
SAFEOPS_HD double erf_(double v) { return erf(v); }
SAFEOPS_HD float exp_(float v) { return expf(v); }
SAFEOPS_HD double exp_(double v) { return exp(v); }
SAFEOPS_HD float tanh_(float v) { return tanhf(v); }
SAFEOPS_HD double tanh_(double v) { return tanh(v); }
template <class A>
SAFEOPS_HD A sigmoid(A z) {
  return A(1) / (A(1) + exp_(-z));
}
}  // namespace act_math

// y = act(z).
template <Activation kAct, class A>
SAFEOPS_HD A activate(A z) {
  using namespace act_math;
  if constexpr (kAct == Activation::kRelu) {
    // `z <= 0` is false for NaN, so a NaN pre-activation (a NaN weight or bias, or one made by
    // the arithmetic) stays NaN: only missing inputs are masked (docs/design.md, NaN policy).
    // `z > 0 ? z : 0` and fmax(z, 0) would return 0 for it. -0 gives +0.
    return z <= A(0) ? A(0) : z;
  } else if constexpr (kAct == Activation::kGelu) {
    return A(0.5) * z * (A(1) + erf_(z * A(0.70710678118654752440)));
  } else if constexpr (kAct == Activation::kSigmoid) {
    return sigmoid(z);
  } else if constexpr (kAct == Activation::kTanh) {
    return tanh_(z);
  } else if constexpr (kAct == Activation::kSilu) {
    return z * sigmoid(z);
  } else {
    return z;
  }
}

// dz = g * act'(z), from what saved_for(kAct) says the forward kept (y or z; ignored for
// linear). relu selects instead of multiplying: y > 0 passes g, y <= 0 gives an exact 0 even
// where g is NaN or Inf (a unit that is off passes nothing, as in safe_where; TensorFlow's
// ReluGrad multiplies by the 0/1 derivative and gives NaN there), and a NaN y gives that NaN:
// a unit whose value is NaN has a NaN gradient, like every other activation's.
template <Activation kAct, class A>
SAFEOPS_HD A activation_grad(A saved, A g) {
  using namespace act_math;
  if constexpr (kAct == Activation::kRelu) {
    return saved > A(0) ? g : saved <= A(0) ? A(0) : saved;
  } else if constexpr (kAct == Activation::kGelu) {
    // d/dz [z Phi(z)] = Phi(z) + z phi(z), phi(z) = exp(-z^2 / 2) / sqrt(2 pi)
    const A cdf = A(0.5) * (A(1) + erf_(saved * A(0.70710678118654752440)));
    const A pdf = exp_(A(-0.5) * saved * saved) * A(0.39894228040143267794);
    return g * (cdf + saved * pdf);
  } else if constexpr (kAct == Activation::kSigmoid) {
    return g * saved * (A(1) - saved);
  } else if constexpr (kAct == Activation::kTanh) {
    return g * (A(1) - saved * saved);
  } else if constexpr (kAct == Activation::kSilu) {
    // d/dz [z s(z)] = s(z) (1 + z (1 - s(z)))
    const A s = sigmoid(saved);
    return g * s * (A(1) + saved * (A(1) - s));
  } else {
    return g;
  }
}

// Calls fn(std::integral_constant<Activation, a>) for the runtime activation (host or device:
// the fused CUDA forward kernel switches over its epilogues with it).
template <class Fn>
SAFEOPS_HD auto dispatch_activation(Activation a, Fn&& fn) {
  using std::integral_constant;
  switch (a) {
#define SAFEOPS_ACTIVATION_CASE(e, name, saved, bound) \
  case Activation::e:                                  \
    return fn(integral_constant<Activation, Activation::e>{});
    SAFEOPS_ACTIVATIONS(SAFEOPS_ACTIVATION_CASE)
#undef SAFEOPS_ACTIVATION_CASE
  }
  return fn(integral_constant<Activation, Activation::kLinear>{});
}

}  // namespace safeops
