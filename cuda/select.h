// Launchers of the CUDA kernels, called by the TensorFlow GPU adapter and by the native module.
// This header needs no CUDA headers: `stream` is a cudaStream_t passed as void*, device buffers
// are raw pointers, and every launcher returns 0 or a CUDA error code that error_string()
// explains. Launchers never synchronise; they enqueue on `stream` and check the launch.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "missing.h"
#include "select_plan.h"

namespace safeops {
namespace cuda {

// The CUDA toolkit the kernels were compiled with, e.g. "13.0", and the driver floor it needs.
const char* toolkit_version();
const char* required_driver();

// A readable explanation of a launcher's error code (a too-old driver names what is needed).
std::string error_string(int code);

// out = cond ? a : b over the broadcast plan.
int select_forward(DType dtype, const SelectPlan& plan, const std::uint8_t* cond, const void* a,
                   const void* b, void* out, void* stream);

// Bytes of device scratch select_backward / fill_missing_backward need (may be 0).
std::size_t select_backward_workspace(DType dtype, const SelectPlan& plan, bool want_a,
                                      bool want_b);

// ga = reduce_to_a(cond ? g : 0), gb = reduce_to_b(cond ? 0 : g); ga or gb may be null.
int select_backward(DType dtype, const SelectPlan& plan, const std::uint8_t* cond, const void* g,
                    void* ga, void* gb, void* workspace, void* stream);

// fill_missing over the plan (cond = x, a = value, b = x): out = missing(x) ? value : x.
int fill_missing_forward(DType dtype, Missing missing, const SelectPlan& plan, const void* x,
                         const void* value, void* out, void* stream);

// gvalue = reduce_to_value(missing(x) ? g : 0), gx = missing(x) ? 0 : g.
int fill_missing_backward(DType dtype, Missing missing, const SelectPlan& plan, const void* x,
                          const void* g, void* gvalue, void* gx, void* workspace, void* stream);

}  // namespace cuda
}  // namespace safeops
