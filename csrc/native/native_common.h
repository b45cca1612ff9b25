// Shared pieces of the safeops._native bindings: argument conversion with clear Python errors,
// the std::thread CPU runner, and CUDA pointer/stream/status helpers.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <string>
#include <vector>

#include "cpu_runner.h"
#include "dtypes.h"
#include "missing.h"

namespace safeops {
namespace native {

namespace py = pybind11;
using Shape = std::vector<int64>;

// Splits [0, n) into one contiguous range per hardware thread (none for small work).
class ThreadRunner : public CpuRunner {
 public:
  void parallel_for(int64 n, int64 cost_per_unit,
                    const std::function<void(int64, int64)>& fn) const override;
};

DType parse_dtype(const std::string& name);
Missing parse_missing_or_throw(const std::string& s);

std::string dtype_of(const py::array& a);
Shape shape_of(const py::array& a);
// A C-contiguous float16/bfloat16/float32/float64 array (TypeError otherwise).
py::array float_array(const py::object& o, const char* what);
// A C-contiguous bool array (TypeError otherwise).
py::array bool_array(const py::object& o, const char* what);
void same_dtype(const py::array& a, const py::array& b, const char* an, const char* bn);
py::array empty_like_dtype(const py::array& like, const Shape& shape);

#if SAFEOPS_WITH_CUDA
template <class T>
T* ptr(std::uintptr_t p) {
  return reinterpret_cast<T*>(p);
}
inline void* stream_of(std::uintptr_t s) { return reinterpret_cast<void*>(s); }
// Raises RuntimeError with the launcher's explanation when code != 0.
void check_cuda(int code, const char* what);
#endif

// Each op family adds its functions to the module.
void bind_select(py::module_& m);
void bind_masked_dense(py::module_& m);
void bind_masked_input(py::module_& m);

}  // namespace native
}  // namespace safeops
