#include "native_common.h"

#include <algorithm>
#include <stdexcept>
#include <thread>

#if SAFEOPS_WITH_CUDA
#include "toolkit.h"
#endif

namespace safeops {
namespace native {

void ThreadRunner::parallel_for(int64 n, int64 cost_per_unit,
                                const std::function<void(int64, int64)>& fn) const {
  const int64 hw = std::max(1u, std::thread::hardware_concurrency());
  const int64 work = n * std::max<int64>(cost_per_unit, 1);
  const int64 parts = std::min<int64>({hw, n, std::max<int64>(1, work / kMinParallelWork)});
  if (parts <= 1) {
    if (n > 0) fn(0, n);
    return;
  }
  std::vector<std::thread> threads;
  for (int64 k = 1; k < parts; ++k) threads.emplace_back(fn, n * k / parts, n * (k + 1) / parts);
  fn(0, n / parts);
  for (auto& t : threads) t.join();
}

DType parse_dtype(const std::string& name) {
  if (name == "float16") return DType::kFloat16;
  if (name == "bfloat16") return DType::kBFloat16;
  if (name == "float32") return DType::kFloat32;
  if (name == "float64") return DType::kFloat64;
  throw py::type_error("safeops: unsupported dtype " + name +
                       "; expected float16, bfloat16, float32 or float64");
}

Missing parse_missing_or_throw(const std::string& s) {
  Missing m;
  if (!parse_missing(s, &m)) {
    throw py::value_error("safeops: unknown missing policy '" + s +
                          "'; expected 'nan' or 'nonfinite'");
  }
  return m;
}

std::string dtype_of(const py::array& a) { return py::str(a.dtype()).cast<std::string>(); }

Shape shape_of(const py::array& a) { return Shape(a.shape(), a.shape() + a.ndim()); }

namespace {
py::array contiguous(const py::object& o) { return py::array::ensure(o, py::array::c_style); }
}  // namespace

py::array float_array(const py::object& o, const char* what) {
  py::array a = contiguous(o);
  if (!a) throw py::type_error(std::string("safeops: ") + what + " must be an array");
  parse_dtype(dtype_of(a));
  return a;
}

py::array bool_array(const py::object& o, const char* what) {
  py::array a = contiguous(o);
  if (!a || dtype_of(a) != "bool") {
    throw py::type_error(std::string("safeops: ") + what + " must be a bool array, got " +
                         (a ? dtype_of(a) : std::string("a non-array")));
  }
  return a;
}

void same_dtype(const py::array& a, const py::array& b, const char* an, const char* bn) {
  if (dtype_of(a) != dtype_of(b)) {
    throw py::type_error(std::string("safeops: ") + an + " (" + dtype_of(a) + ") and " + bn + " (" +
                         dtype_of(b) + ") must have the same dtype");
  }
}

py::array empty_like_dtype(const py::array& like, const Shape& shape) {
  return py::array(like.dtype(), std::vector<py::ssize_t>(shape.begin(), shape.end()));
}

#if SAFEOPS_WITH_CUDA
void check_cuda(int code, const char* what) {
  if (code != 0) throw std::runtime_error(std::string(what) + ": " + cuda::error_string(code));
}
#endif

}  // namespace native
}  // namespace safeops
