// safeops._native: the safeops kernels without TensorFlow.
//
//  * CPU entry points take NumPy arrays (float16, ml_dtypes.bfloat16, float32, float64; bool
//    conditions) and return new arrays.
//  * CUDA entry points (when built with CUDA) take raw device pointers, shapes and a dtype name,
//    write into caller-allocated outputs and enqueue on the given stream; the Python wrapper
//    safeops/native.py turns torch or CuPy arrays into these arguments.
// Both call exactly the kernels the TensorFlow op library calls.
#include "native_common.h"
#if SAFEOPS_WITH_CUDA
#include "toolkit.h"
#endif

PYBIND11_MODULE(_native, m) {
  using namespace safeops::native;
  m.doc() = "safeops kernels without TensorFlow (NumPy on CPU, device pointers on CUDA)";
#if SAFEOPS_WITH_CUDA
  m.attr("cuda") = true;
  m.attr("cuda_toolkit") = safeops::cuda::toolkit_version();
  m.attr("cuda_required_driver") = safeops::cuda::required_driver();
  m.def("cuda_error_string", &safeops::cuda::error_string,
        "The message a launcher's error code becomes (what TF ops and safeops.native raise)");
#else
  m.attr("cuda") = false;
  m.attr("cuda_toolkit") = "";
  m.attr("cuda_required_driver") = "";
#endif
  // Built with -DSAFEOPS_CUDA_EMULATE=ON: the CUDA entry points run the kernels on the host,
  // on memory of the emulated device (safeops.native.EmulatedDeviceArray).
#if SAFEOPS_CUDA_EMULATED
  m.attr("cuda_emulated") = true;
#else
  m.attr("cuda_emulated") = false;
#endif
  bind_select(m);
  bind_masked_dense(m);
  bind_masked_input(m);
}
