// The device functions the kernels call: block and warp synchronisation, warp shuffles and
// votes (warp collectives: every lane in the mask must arrive, see runtime.h), load/store
// hints, and CUDA's integer min/max overloads. Each synchronising function records its call
// site through defaulted arguments, invisible to the CUDA code that calls it.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "emu/builtins.h"
#include "emu/runtime.h"

namespace safeops {
namespace emu {

enum class Shfl : int { kIdx, kUp, kDown, kXor };

// One lane's shuffle: its value, the source lane / delta / lane mask, the segment width.
struct ShflLane {
  std::uint64_t value;
  int param;
  int width;
  Shfl kind;
  std::uint64_t result;
};
void complete_shfl(void* const* lanes, unsigned mask);

template <class T>
T shfl(unsigned mask, T v, int param, int width, Shfl kind, const char* op, Site site) {
  static_assert(std::is_trivially_copyable<T>::value && sizeof(T) <= 8, "shuffles move <= 8 bytes");
  ShflLane lane{0, param, width, kind, 0};
  std::memcpy(&lane.value, &v, sizeof(T));
  warp_collective(op, mask, &lane, &complete_shfl, site);
  T out;
  std::memcpy(&out, &lane.result, sizeof(T));
  return out;
}

// One lane's vote; the result is the ballot of the lanes in the mask.
struct VoteLane {
  bool pred;
  unsigned ballot;
};
void complete_vote(void* const* lanes, unsigned mask);

inline unsigned vote(unsigned mask, int pred, const char* op, Site site) {
  VoteLane lane{pred != 0, 0};
  warp_collective(op, mask, &lane, &complete_vote, site);
  return lane.ballot;
}

}  // namespace emu
}  // namespace safeops

inline void __syncthreads(const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  safeops::emu::sync_threads({file, line});
}

inline void __syncwarp(unsigned mask = 0xffffffffu, const char* file = __builtin_FILE(),
                       int line = __builtin_LINE()) {
  safeops::emu::warp_collective("__syncwarp", mask, nullptr, nullptr, {file, line});
}

template <class T>
T __shfl_sync(unsigned mask, T var, int src_lane, int width = warpSize,
              const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  using safeops::emu::Shfl;
  return safeops::emu::shfl(mask, var, src_lane, width, Shfl::kIdx, "__shfl_sync", {file, line});
}

template <class T>
T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = warpSize,
                 const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  using safeops::emu::Shfl;
  return safeops::emu::shfl(mask, var, static_cast<int>(delta), width, Shfl::kUp, "__shfl_up_sync",
                            {file, line});
}

template <class T>
T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = warpSize,
                   const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  using safeops::emu::Shfl;
  return safeops::emu::shfl(mask, var, static_cast<int>(delta), width, Shfl::kDown,
                            "__shfl_down_sync", {file, line});
}

template <class T>
T __shfl_xor_sync(unsigned mask, T var, int lane_mask, int width = warpSize,
                  const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  using safeops::emu::Shfl;
  return safeops::emu::shfl(mask, var, lane_mask, width, Shfl::kXor, "__shfl_xor_sync",
                            {file, line});
}

inline unsigned __ballot_sync(unsigned mask, int pred, const char* file = __builtin_FILE(),
                              int line = __builtin_LINE()) {
  return safeops::emu::vote(mask, pred, "__ballot_sync", {file, line});
}

inline int __any_sync(unsigned mask, int pred, const char* file = __builtin_FILE(),
                      int line = __builtin_LINE()) {
  return safeops::emu::vote(mask, pred, "__any_sync", {file, line}) != 0;
}

inline int __all_sync(unsigned mask, int pred, const char* file = __builtin_FILE(),
                      int line = __builtin_LINE()) {
  return safeops::emu::vote(mask, pred, "__all_sync", {file, line}) == mask;
}

// Cache hints: plain loads and stores on the host.
template <class T>
T __ldg(const T* p) {
  return *p;
}
template <class T>
void __stwb(T* p, T v) {
  *p = v;
}

// CUDA's min/max overloads (same-type operands; mixed signedness, which CUDA resolves to the
// unsigned overload, is a compile error here).
#define SAFEOPS_EMU_MINMAX(T)                      \
  inline T min(T a, T b) { return b < a ? b : a; } \
  inline T max(T a, T b) { return a < b ? b : a; }
SAFEOPS_EMU_MINMAX(int)
SAFEOPS_EMU_MINMAX(unsigned)
SAFEOPS_EMU_MINMAX(long)
SAFEOPS_EMU_MINMAX(unsigned long)
SAFEOPS_EMU_MINMAX(long long)
SAFEOPS_EMU_MINMAX(unsigned long long)
#undef SAFEOPS_EMU_MINMAX
inline float min(float a, float b) { return fminf(a, b); }
inline float max(float a, float b) { return fmaxf(a, b); }
inline double min(double a, double b) { return fmin(a, b); }
inline double max(double a, double b) { return fmax(a, b); }
