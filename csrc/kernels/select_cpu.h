// CPU kernels of the select family (safe_where and fill_missing), forward and fused backward.
// Pointers are raw buffers of the dtype given at run time; `cond` is one byte per element.
#pragma once

#include <cstdint>

#include "cpu_runner.h"
#include "missing.h"
#include "select_plan.h"

namespace safeops {

// out = cond ? a : b over the broadcast plan (plan.cond/a/b describe cond, a, b).
void select_forward_cpu(DType dtype, const SelectPlan& plan, const std::uint8_t* cond,
                        const void* a, const void* b, void* out, const CpuRunner& runner);

// ga = reduce_to_a(cond ? g : 0) and gb = reduce_to_b(cond ? 0 : g) in one pass over cond and
// g where the layout allows; g has the plan's output shape. ga or gb may be null (not wanted).
// The zeros are selected, so they are exact even where g is NaN or Inf.
//
// g may be overwritten: a gradient whose target is Target::kFull (backward_targets in
// select_plan.h) may be g's own buffer. The flat pass, which writes the full targets, reads each
// element of g before it writes that element of ga and gb, and every other read of g (the
// general reductions) is done before the flat pass starts.
void select_backward_cpu(DType dtype, const SelectPlan& plan, const std::uint8_t* cond,
                         const void* g, void* ga, void* gb, const CpuRunner& runner);

// fill_missing: the plan is built for (cond = x, a = value, b = x); out = missing(x) ? value : x.
void fill_missing_forward_cpu(DType dtype, Missing missing, const SelectPlan& plan, const void* x,
                              const void* value, void* out, const CpuRunner& runner);

// gvalue = reduce_to_value(missing(x) ? g : 0), gx = missing(x) ? 0 : g. gx (always a full
// target) may be g's buffer, as in select_backward_cpu.
void fill_missing_backward_cpu(DType dtype, Missing missing, const SelectPlan& plan, const void* x,
                               const void* g, void* gvalue, void* gx, const CpuRunner& runner);

}  // namespace safeops
