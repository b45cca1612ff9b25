// Bindings of masked_dense's CUDA row prologue and its gradient (cuda/masked_input.h) on raw
// device pointers (from torch or CuPy, see safeops/native.py). The CPU prologue runs through
// the TensorFlow op.
#include <string>

#include "native_common.h"
#if SAFEOPS_WITH_CUDA
#include "masked_input.h"
#endif

namespace safeops {
namespace native {
namespace {

#if SAFEOPS_WITH_CUDA

void check_dims(int64 rows, int64 K) {
  if (rows < 0 || K < 0) {
    throw py::value_error("safeops: masked_input needs rows, K >= 0, got " + std::to_string(rows) +
                          ", " + std::to_string(K));
  }
}

void cuda_masked_input(std::uintptr_t x, std::uintptr_t xs, int64 rows, int64 K,
                       const std::string& dtype, bool renormalize, const std::string& missing,
                       bool indicator, std::uintptr_t stream) {
  check_dims(rows, K);
  check_cuda(cuda::masked_input_forward(parse_dtype(dtype), parse_missing_or_throw(missing),
                                        renormalize, indicator, rows, K, ptr<const void>(x),
                                        ptr<void>(xs), stream_of(stream)),
             "safeops.masked_input");
}

void cuda_masked_input_grad(std::uintptr_t x, std::uintptr_t grad, std::uintptr_t dx, int64 rows,
                            int64 K, const std::string& dtype, bool renormalize,
                            const std::string& missing, bool indicator, std::uintptr_t stream) {
  check_dims(rows, K);
  check_cuda(cuda::masked_input_backward(parse_dtype(dtype), parse_missing_or_throw(missing),
                                         renormalize, indicator, rows, K, ptr<const void>(x),
                                         ptr<const void>(grad), ptr<void>(dx), stream_of(stream)),
             "safeops.masked_input_grad");
}

#endif

}  // namespace

void bind_masked_input(py::module_& m) {
#if SAFEOPS_WITH_CUDA
  m.def("cuda_masked_input", &cuda_masked_input, py::arg("x"), py::arg("xs"), py::arg("rows"),
        py::arg("K"), py::arg("dtype"), py::arg("renormalize"), py::arg("missing"),
        py::arg("indicator"), py::arg("stream"));
  m.def("cuda_masked_input_grad", &cuda_masked_input_grad, py::arg("x"), py::arg("grad"),
        py::arg("dx"), py::arg("rows"), py::arg("K"), py::arg("dtype"), py::arg("renormalize"),
        py::arg("missing"), py::arg("indicator"), py::arg("stream"));
#else
  (void)m;
#endif
}

}  // namespace native
}  // namespace safeops
