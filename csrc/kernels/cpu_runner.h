// How the CPU kernels run in parallel without knowing who owns the threads: TensorFlow's
// adapter passes its intra-op thread pool, the native module a plain std::thread runner.
// Kernels must not depend on how a range is split: every reduction is chunked by a rule on
// the shape alone, so results are bit-identical whatever the thread count.
#pragma once

#include <functional>

#include "dtypes.h"

namespace safeops {

// Work (n * cost_per_unit, in rough cycles) below which a runner calls fn(0, n) on the calling
// thread: waking another thread costs tens of microseconds, more on a loaded machine, which
// is more than a memory-bound kernel saves on a few hundred kilobytes (measured on a 2-core
// VM: a 1e5-element select took 35 us inline, 90-110 us split over two threads).
constexpr int64 kMinParallelWork = int64{1} << 20;

class CpuRunner {
 public:
  virtual ~CpuRunner() = default;
  // Calls fn(begin, end) over disjoint ranges covering [0, n), possibly concurrently.
  // cost_per_unit is a rough cycle count per unit that lets the runner choose a grain.
  virtual void parallel_for(int64 n, int64 cost_per_unit,
                            const std::function<void(int64, int64)>& fn) const = 0;
};

}  // namespace safeops
