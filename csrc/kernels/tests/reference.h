// What the kernel tests compare against, written independently of the kernels: numpy's
// broadcasting by multi-index (no dimension merging, no strides), runners that split the work in
// other ways than a thread pool would, and seeded test data.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <random>
#include <thread>
#include <vector>

#include "cpu_runner.h"
#include "dtypes.h"

namespace safeops_test {

using safeops::int64;
using Shape = std::vector<int64>;

inline int64 numel(const Shape& s) {
  int64 n = 1;
  for (int64 d : s) n *= d;
  return n;
}

// numpy's broadcast of right-aligned shapes (the shapes are assumed compatible).
inline Shape broadcast(const std::vector<Shape>& shapes) {
  size_t rank = 0;
  for (const Shape& s : shapes) rank = std::max(rank, s.size());
  Shape out(rank, 1);
  for (const Shape& s : shapes) {
    for (size_t k = 0; k < s.size(); ++k) {
      const size_t d = rank - s.size() + k;
      if (s[k] != 1) out[d] = s[k];
    }
  }
  return out;
}

// Row-major offset, in an operand of shape s, of the element that output element i (of shape
// out) reads: the output's multi-index, right-aligned, with 0 where s has size 1.
inline int64 offset_in(const Shape& out, const Shape& s, int64 i) {
  std::vector<int64> idx(out.size());
  for (size_t d = out.size(); d-- > 0;) {
    idx[d] = i % out[d];
    i /= out[d];
  }
  int64 off = 0;
  const size_t lead = out.size() - s.size();
  for (size_t k = 0; k < s.size(); ++k) off = off * s[k] + (s[k] == 1 ? 0 : idx[lead + k]);
  return off;
}

// Everything on the calling thread, in one call.
class SerialRunner : public safeops::CpuRunner {
 public:
  void parallel_for(int64 n, int64, const std::function<void(int64, int64)>& fn) const override {
    if (n > 0) fn(0, n);
  }
};

// Uneven ranges on `threads` threads at once: results must not depend on the split.
class ThreadsRunner : public safeops::CpuRunner {
 public:
  explicit ThreadsRunner(int threads) : threads_(threads) {}
  void parallel_for(int64 n, int64, const std::function<void(int64, int64)>& fn) const override {
    std::vector<std::thread> pool;
    int64 begin = 0;
    for (int t = 0; t < threads_ && begin < n; ++t) {
      // Piece t takes about 2^-(t+1) of what is left; the last one takes the rest.
      const int64 end = t + 1 == threads_ ? n : begin + std::max<int64>(1, (n - begin) / 2);
      pool.emplace_back(fn, begin, end);
      begin = end;
    }
    for (auto& th : pool) th.join();
  }

 private:
  int threads_;
};

// Seeded normal values; every `special`-th one replaced by NaN, +Inf, -Inf or -0 in turn.
template <class T>
std::vector<T> test_values(int64 n, unsigned seed, int special = 0) {
  std::mt19937 gen(seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  const double specials[] = {NAN, INFINITY, -INFINITY, -0.0};
  std::vector<T> v(static_cast<size_t>(n));
  for (int64 i = 0; i < n; ++i) {
    double x = normal(gen);
    if (special > 0 && i % special == special - 1) x = specials[(i / special) % 4];
    v[static_cast<size_t>(i)] = static_cast<T>(x);
  }
  return v;
}

inline std::vector<std::uint8_t> test_conditions(int64 n, unsigned seed) {
  std::mt19937 gen(seed);
  std::vector<std::uint8_t> c(static_cast<size_t>(n));
  // Any non-zero byte is true.
  for (auto& b : c) b = gen() % 3 == 0 ? 0 : static_cast<std::uint8_t>(1 + gen() % 255);
  return c;
}

// |got - want| within rtol of the magnitude `scale` (the sum of the absolute terms); NaN and
// Inf must match exactly.
inline bool close(double got, double want, double scale, double rtol) {
  if (std::isnan(want) || std::isinf(want)) return std::isnan(want) ? std::isnan(got) : got == want;
  return std::abs(got - want) <= rtol * scale + 1e-300;
}

}  // namespace safeops_test
