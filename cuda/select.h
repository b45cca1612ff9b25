// Launchers of the select family's CUDA kernels (safe_where and fill_missing; cuda/select.cu),
// called by the TensorFlow GPU adapter and by the native module. The same semantics as the CPU
// kernels (csrc/kernels/select_cpu.h); the launcher conventions (void* stream, error codes) are
// in cuda/toolkit.h.
#pragma once

#include <cstddef>
#include <cstdint>

#include "missing.h"
#include "select_plan.h"

namespace safeops {
namespace cuda {

// out = cond ? a : b over the broadcast plan.
int select_forward(DType dtype, const SelectPlan& plan, const std::uint8_t* cond, const void* a,
                   const void* b, void* out, void* stream);

// Bytes of device scratch select_backward / fill_missing_backward need (may be 0).
std::size_t select_backward_workspace(DType dtype, const SelectPlan& plan, bool want_a,
                                      bool want_b);

// ga = reduce_to_a(cond ? g : 0), gb = reduce_to_b(cond ? 0 : g); ga or gb may be null.
// g may be overwritten: a gradient whose target is Target::kFull (backward_targets in
// select_plan.h) may be g's own buffer. The flat kernel, which writes the full targets, loads
// each element of g before it stores that element of ga and gb, and every other kernel that
// reads g (the general reductions) is enqueued before it.
int select_backward(DType dtype, const SelectPlan& plan, const std::uint8_t* cond, const void* g,
                    void* ga, void* gb, void* workspace, void* stream);

// fill_missing over the plan (cond = x, a = value, b = x): out = missing(x) ? value : x.
int fill_missing_forward(DType dtype, Missing missing, const SelectPlan& plan, const void* x,
                         const void* value, void* out, void* stream);

// gvalue = reduce_to_value(missing(x) ? g : 0), gx = missing(x) ? 0 : g. gx (always a full
// target) may be g's buffer, as in select_backward.
int fill_missing_backward(DType dtype, Missing missing, const SelectPlan& plan, const void* x,
                          const void* g, void* gvalue, void* gx, void* workspace, void* stream);

}  // namespace cuda
}  // namespace safeops
