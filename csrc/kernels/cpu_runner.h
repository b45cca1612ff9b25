// How the CPU kernels run in parallel without knowing who owns the threads: TensorFlow's
// adapter passes its intra-op thread pool, the native module a plain std::thread runner.
// Kernels must not depend on how a range is split: every reduction is chunked by a rule on
// the shape alone, so results are bit-identical whatever the thread count.
#pragma once

#include <functional>

#include "dtypes.h"

namespace safeops {

class CpuRunner {
 public:
  virtual ~CpuRunner() = default;
  // Calls fn(begin, end) over disjoint ranges covering [0, n), possibly concurrently.
  // cost_per_unit is a rough cycle count per unit that lets the runner choose a grain.
  virtual void parallel_for(int64 n, int64 cost_per_unit,
                            const std::function<void(int64, int64)>& fn) const = 0;
};

}  // namespace safeops
