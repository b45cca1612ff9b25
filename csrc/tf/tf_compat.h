// What differs between the TensorFlow minors safeops builds against (2.16 to 2.21), in one place.
// Everything in csrc/tf reaches TensorFlow's status and error API through this header.
//
// - Status and errors: TensorFlow 2.21 deprecates tensorflow::Status, OkStatus() and the
//   errors::InvalidArgument(...) family in favour of absl's (ABSL_DEPRECATE_AND_INLINE, so
//   they are on their way out); 2.16 has no deprecation but the same absl::Status underneath.
//   The helpers below use absl's API, which every supported minor has.
// - Thread pool: ThreadPool::SchedulingParams::Adaptive() exists from 2.20 on, which deprecates
//   both ParallelFor(total, cost_per_unit, fn) and the SchedulingParams constructor that 2.16
//   to 2.19 offer instead.
// - The C++ ABI differs between minors even where the source does not: e.g. 2.16's
//   stream_executor::Stream is a concrete class whose platform_specific_handle() is a function
//   exported by libtensorflow_framework, 2.21's is an interface with a pure virtual one. The
//   same call (csrc/tf/kernels/gpu_support.cc) compiles against both, but an op library only
//   loads under the minor it was compiled against; the package requires exactly that minor
//   (tools/tf_requirement.py) and checks it at import (src/safeops/_loader.py).
#pragma once

#include <cstdint>
#include <functional>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/types/optional.h"
#include "tensorflow/core/platform/threadpool.h"
#include "tensorflow/core/public/version.h"

namespace safeops {
namespace tf {

using Status = ::absl::Status;

inline Status ok_status() { return ::absl::OkStatus(); }

// Errors whose message is the concatenation of `parts` (strings and numbers).
template <class... Parts>
Status invalid_argument(const Parts&... parts) {
  return ::absl::InvalidArgumentError(::absl::StrCat(parts...));
}

template <class... Parts>
Status internal_error(const Parts&... parts) {
  return ::absl::InternalError(::absl::StrCat(parts...));
}

template <class... Parts>
Status resource_exhausted(const Parts&... parts) {
  return ::absl::ResourceExhaustedError(::absl::StrCat(parts...));
}

// pool->ParallelFor with TensorFlow's adaptive sharding: shards of about `cost_per_unit`
// cycles of work each.
inline void thread_pool_parallel_for(::tensorflow::thread::ThreadPool* pool, std::int64_t total,
                                     std::int64_t cost_per_unit,
                                     const std::function<void(std::int64_t, std::int64_t)>& fn) {
  using Pool = ::tensorflow::thread::ThreadPool;
#if TF_MAJOR_VERSION == 2 && TF_MINOR_VERSION < 20
  const Pool::SchedulingParams params(Pool::SchedulingStrategy::kAdaptive, cost_per_unit,
                                      ::absl::nullopt);
#else
  const Pool::SchedulingParams params = Pool::SchedulingParams::Adaptive(cost_per_unit);
#endif
  pool->ParallelFor(total, params, fn);
}

}  // namespace tf
}  // namespace safeops
