// Element types shared by the CPU kernels, the CUDA kernels and both adapters.
//
// The 16-bit types are plain storage structs with the same bit layout as Eigen::half /
// Eigen::bfloat16 (TensorFlow), numpy float16 / ml_dtypes bfloat16, and CUDA's __half /
// __nv_bfloat16, so every adapter can pass its buffers through a reinterpret_cast.
// Arithmetic happens in Traits<T>::Acc (float for the half types).
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#define SAFEOPS_HD __host__ __device__ __forceinline__
#else
#define SAFEOPS_HD inline
#endif

namespace safeops {

using int64 = std::int64_t;

enum class DType : int { kFloat16 = 0, kBFloat16 = 1, kFloat32 = 2, kFloat64 = 3 };

inline const char* dtype_name(DType d) {
  switch (d) {
    case DType::kFloat16:
      return "float16";
    case DType::kBFloat16:
      return "bfloat16";
    case DType::kFloat32:
      return "float32";
    case DType::kFloat64:
      return "float64";
  }
  return "unknown";
}

struct half_t {
  std::uint16_t bits;
};
struct bfloat16_t {
  std::uint16_t bits;
};

template <class To, class From>
SAFEOPS_HD To bit_cast(From v) {
  static_assert(sizeof(To) == sizeof(From), "bit_cast size mismatch");
  To out;
  std::memcpy(&out, &v, sizeof(To));
  return out;
}

// IEEE binary16 <-> binary32, round to nearest even (host path; device uses the intrinsics).
SAFEOPS_HD float half_bits_to_float(std::uint16_t h) {
  std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  std::uint32_t exp = (h >> 10) & 0x1fu;
  std::uint32_t man = h & 0x3ffu;
  std::uint32_t f;
  if (exp == 0x1fu) {
    f = sign | 0x7f800000u | (man << 13);
  } else if (exp != 0) {
    f = sign | ((exp + 112u) << 23) | (man << 13);
  } else if (man == 0) {
    f = sign;
  } else {
    // Subnormal half: value = man * 2^-24, exact in float.
    float v = static_cast<float>(man) * 5.9604644775390625e-8f;
    f = sign | bit_cast<std::uint32_t>(v);
  }
  return bit_cast<float>(f);
}

SAFEOPS_HD std::uint16_t float_to_half_bits(float value) {
  std::uint32_t f = bit_cast<std::uint32_t>(value);
  const std::uint32_t sign = f & 0x80000000u;
  f ^= sign;
  std::uint32_t out;
  if (f >= 0x47800000u) {  // >= 65536 (rounds to inf), inf or nan
    out = f > 0x7f800000u ? 0x7e00u : 0x7c00u;
  } else if (f < 0x38800000u) {  // below the smallest normal half (2^-14): subnormal or zero
    // Adding 0.5 aligns the half's subnormal ulp (2^-24) with the float's last mantissa bit,
    // so the float adder performs the round-to-nearest-even for us.
    const float magic = 0.5f;
    out = bit_cast<std::uint32_t>(bit_cast<float>(f) + magic) - bit_cast<std::uint32_t>(magic);
  } else {
    const std::uint32_t mant_odd = (f >> 13) & 1u;
    f += 0xc8000fffu;  // rebias exponent (15 - 127) << 23, plus the rounding bias 0xfff
    f += mant_odd;
    out = f >> 13;
  }
  return static_cast<std::uint16_t>(out | (sign >> 16));
}

SAFEOPS_HD float bf16_bits_to_float(std::uint16_t b) {
  return bit_cast<float>(static_cast<std::uint32_t>(b) << 16);
}

// Round to nearest even; a NaN keeps its sign and top payload bits and is made quiet. Both
// results are computed and one selected, so that loops over this vectorise.
SAFEOPS_HD std::uint16_t float_to_bf16_bits(float value) {
  const std::uint32_t f = bit_cast<std::uint32_t>(value);
  const std::uint32_t nan = (f >> 16) | 0x40u;
  const std::uint32_t rounded = (f + 0x7fffu + ((f >> 16) & 1u)) >> 16;
  return static_cast<std::uint16_t>((f & 0x7fffffffu) > 0x7f800000u ? nan : rounded);
}

// Traits<T>: accumulation type, conversions, missing-value tests and range. The tests for the
// 16-bit types work on the bits (no conversion): NaN is exponent all-ones with a non-zero
// mantissa, non-finite is exponent all-ones. kMaxExp: the largest finite value lies in
// [2^kMaxExp, 2^(kMaxExp + 1)).
template <class T>
struct Traits;

template <>
struct Traits<float> {
  using Acc = float;
  static constexpr int kMaxExp = 127;
  SAFEOPS_HD static float to_acc(float v) { return v; }
  SAFEOPS_HD static float from_acc(float v) { return v; }
  SAFEOPS_HD static bool is_nan(float v) { return v != v; }
  SAFEOPS_HD static bool is_nonfinite(float v) {
    return (bit_cast<std::uint32_t>(v) & 0x7f800000u) == 0x7f800000u;
  }
};

template <>
struct Traits<double> {
  using Acc = double;
  static constexpr int kMaxExp = 1023;
  SAFEOPS_HD static double to_acc(double v) { return v; }
  SAFEOPS_HD static double from_acc(double v) { return v; }
  SAFEOPS_HD static bool is_nan(double v) { return v != v; }
  SAFEOPS_HD static bool is_nonfinite(double v) {
    return (bit_cast<std::uint64_t>(v) & 0x7ff0000000000000ull) == 0x7ff0000000000000ull;
  }
};

template <>
struct Traits<half_t> {
  using Acc = float;
  static constexpr int kMaxExp = 15;
  SAFEOPS_HD static float to_acc(half_t v) {
#if defined(__CUDA_ARCH__)
    return __half2float(bit_cast<__half>(v));
#else
    return half_bits_to_float(v.bits);
#endif
  }
  SAFEOPS_HD static half_t from_acc(float v) {
#if defined(__CUDA_ARCH__)
    return bit_cast<half_t>(__float2half_rn(v));
#else
    return half_t{float_to_half_bits(v)};
#endif
  }
  SAFEOPS_HD static bool is_nan(half_t v) { return (v.bits & 0x7fffu) > 0x7c00u; }
  SAFEOPS_HD static bool is_nonfinite(half_t v) { return (v.bits & 0x7c00u) == 0x7c00u; }
};

template <>
struct Traits<bfloat16_t> {
  using Acc = float;
  static constexpr int kMaxExp = 127;
  SAFEOPS_HD static float to_acc(bfloat16_t v) { return bf16_bits_to_float(v.bits); }
  SAFEOPS_HD static bfloat16_t from_acc(float v) {
#if defined(__CUDA_ARCH__)
    return bit_cast<bfloat16_t>(__float2bfloat16_rn(v));
#else
    return bfloat16_t{float_to_bf16_bits(v)};
#endif
  }
  SAFEOPS_HD static bool is_nan(bfloat16_t v) { return (v.bits & 0x7fffu) > 0x7f80u; }
  SAFEOPS_HD static bool is_nonfinite(bfloat16_t v) { return (v.bits & 0x7f80u) == 0x7f80u; }
};

// Where sums start: -0 is the additive identity of IEEE arithmetic (x + -0 == x for every x,
// -0 included), +0 is not (-0 + +0 == +0). Started from +0, a sum of -0 terms would be +0.
template <class A>
SAFEOPS_HD constexpr A sum_identity() {
  return -A(0);
}

// Calls fn(T{}) with the storage type that matches `dtype`; one switch for every dispatch site.
template <class Fn>
auto dispatch_float(DType dtype, Fn&& fn) {
  switch (dtype) {
    case DType::kFloat16:
      return fn(half_t{});
    case DType::kBFloat16:
      return fn(bfloat16_t{});
    case DType::kFloat32:
      return fn(float{});
    case DType::kFloat64:
      break;
  }
  return fn(double{});
}

// Unsigned integer of the same width as T: selects move these bits, never values, so the
// results are bit copies of one operand or an exact +0 (NaN payloads included).
template <int N>
struct BitsOf;
template <>
struct BitsOf<2> {
  using type = std::uint16_t;
};
template <>
struct BitsOf<4> {
  using type = std::uint32_t;
};
template <>
struct BitsOf<8> {
  using type = std::uint64_t;
};
template <class T>
using Bits = typename BitsOf<sizeof(T)>::type;

inline int dtype_size(DType d) { return d == DType::kFloat64 ? 8 : d == DType::kFloat32 ? 4 : 2; }

}  // namespace safeops
