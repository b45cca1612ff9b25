// Bindings of masked_dense: the activation table (every build), and the CUDA kernels on raw
// device pointers (from torch or CuPy, see safeops/native.py), shapes and names. The CPU
// masked_dense runs through the TensorFlow op.
#include <string>

#include "activations.h"
#include "native_common.h"
#if SAFEOPS_WITH_CUDA
#include "masked_dense.h"
#endif

namespace safeops {
namespace native {
namespace {

#if SAFEOPS_WITH_CUDA

Activation parse_activation_or_throw(const std::string& s) {
  Activation a;
  if (!parse_activation(s, &a)) {
    throw py::value_error("safeops: unknown activation '" + s + "'; expected " +
                          activation_names("", ", ", " or "));
  }
  return a;
}

cuda::MaskedDenseArgs make_args(int64 rows, int64 K, int64 N, const std::string& dtype,
                                const std::string& activation, bool renormalize,
                                const std::string& missing, bool allow_tf32, bool indicator) {
  if (rows < 0 || K < 0 || N < 0) {
    throw py::value_error("safeops: masked_dense needs rows, K, N >= 0, got " +
                          std::to_string(rows) + ", " + std::to_string(K) + ", " +
                          std::to_string(N));
  }
  cuda::MaskedDenseArgs a;
  a.dtype = parse_dtype(dtype);
  a.missing = parse_missing_or_throw(missing);
  a.activation = parse_activation_or_throw(activation);
  a.renormalize = renormalize;
  a.rows = rows;
  a.K = K;
  a.N = N;
  a.allow_tf32 = allow_tf32;
  a.indicator = indicator;
  return a;
}

// Workspace bytes of the forward or the backward launcher.
template <std::size_t (*kSize)(const cuda::MaskedDenseArgs&)>
std::size_t workspace_of(int64 rows, int64 K, int64 N, const std::string& dtype,
                         const std::string& activation, bool renormalize,
                         const std::string& missing, bool allow_tf32, bool indicator) {
  return kSize(
      make_args(rows, K, N, dtype, activation, renormalize, missing, allow_tf32, indicator));
}

// u (indicator weights U [K, N]) and du (its gradient): 0 for none. They come last, with
// defaults in the bindings, so that callers without indicator weights need not name them.
void cuda_masked_dense(std::uintptr_t x, std::uintptr_t kernel, std::uintptr_t bias,
                       std::uintptr_t y, std::uintptr_t z, std::uintptr_t workspace, int64 rows,
                       int64 K, int64 N, const std::string& dtype, const std::string& activation,
                       bool renormalize, const std::string& missing, bool allow_tf32,
                       std::uintptr_t stream, std::uintptr_t u) {
  const cuda::MaskedDenseArgs a =
      make_args(rows, K, N, dtype, activation, renormalize, missing, allow_tf32, u != 0);
  if (saved_for(a.activation) == Saved::kPreActivation && z == 0 && rows * N > 0) {
    throw py::value_error("safeops: activation '" + activation +
                          "' writes the pre-activation z; pass a z buffer");
  }
  check_cuda(cuda::masked_dense_forward(a, ptr<const void>(x), ptr<const void>(kernel),
                                        ptr<const void>(u), ptr<const void>(bias), ptr<void>(y),
                                        ptr<void>(z), ptr<void>(workspace), stream_of(stream)),
             "safeops.masked_dense");
}

void cuda_masked_dense_grad(std::uintptr_t x, std::uintptr_t kernel, std::uintptr_t saved,
                            std::uintptr_t grad, std::uintptr_t dx, std::uintptr_t dkernel,
                            std::uintptr_t dbias, std::uintptr_t workspace, int64 rows, int64 K,
                            int64 N, const std::string& dtype, const std::string& activation,
                            bool renormalize, const std::string& missing, bool allow_tf32,
                            std::uintptr_t stream, std::uintptr_t du) {
  const cuda::MaskedDenseArgs a =
      make_args(rows, K, N, dtype, activation, renormalize, missing, allow_tf32, du != 0);
  if (saved_for(a.activation) != Saved::kNone && saved == 0 && rows * N > 0) {
    throw py::value_error("safeops: activation '" + activation +
                          "' needs the saved forward tensor (" +
                          (saved_for(a.activation) == Saved::kOutput ? "y" : "z") + ")");
  }
  check_cuda(cuda::masked_dense_backward(a, ptr<const void>(x), ptr<const void>(kernel),
                                         ptr<const void>(saved), ptr<const void>(grad),
                                         ptr<void>(dx), ptr<void>(dkernel), ptr<void>(du),
                                         ptr<void>(dbias), ptr<void>(workspace), stream_of(stream)),
             "safeops.masked_dense_grad");
}

#endif

// activations.h's table as [(name, saved)], saved one of "none", "output", "pre_activation"
// (what the backward reads): the one source of these facts for the Python package.
py::list activation_table() {
  static const char* const kSaved[] = {"none", "output", "pre_activation"};
  py::list rows;
  for (int i = 0; i < kActivationCount; ++i) {
    const Saved saved = saved_for(static_cast<Activation>(i));
    rows.append(py::make_tuple(kActivationNames[i], kSaved[static_cast<int>(saved)]));
  }
  return rows;
}

}  // namespace

void bind_masked_dense(py::module_& m) {
  m.def("activation_table", &activation_table,
        "The fused activations of masked_dense: [(name, saved)], saved being what the backward "
        "reads (\"none\", \"output\" or \"pre_activation\"), in the C++ enum's order");
#if SAFEOPS_WITH_CUDA
  m.def("cuda_masked_dense_workspace", &workspace_of<cuda::masked_dense_forward_workspace>,
        py::arg("rows"), py::arg("K"), py::arg("N"), py::arg("dtype"), py::arg("activation"),
        py::arg("renormalize"), py::arg("missing"), py::arg("allow_tf32"),
        py::arg("indicator") = false);
  m.def("cuda_masked_dense", &cuda_masked_dense, py::arg("x"), py::arg("kernel"), py::arg("bias"),
        py::arg("y"), py::arg("z"), py::arg("workspace"), py::arg("rows"), py::arg("K"),
        py::arg("N"), py::arg("dtype"), py::arg("activation"), py::arg("renormalize"),
        py::arg("missing"), py::arg("allow_tf32"), py::arg("stream"), py::arg("u") = 0);
  m.def("cuda_masked_dense_grad_workspace", &workspace_of<cuda::masked_dense_backward_workspace>,
        py::arg("rows"), py::arg("K"), py::arg("N"), py::arg("dtype"), py::arg("activation"),
        py::arg("renormalize"), py::arg("missing"), py::arg("allow_tf32"),
        py::arg("indicator") = false);
  m.def("cuda_masked_dense_grad", &cuda_masked_dense_grad, py::arg("x"), py::arg("kernel"),
        py::arg("saved"), py::arg("grad"), py::arg("dx"), py::arg("dkernel"), py::arg("dbias"),
        py::arg("workspace"), py::arg("rows"), py::arg("K"), py::arg("N"), py::arg("dtype"),
        py::arg("activation"), py::arg("renormalize"), py::arg("missing"), py::arg("allow_tf32"),
        py::arg("stream"), py::arg("du") = 0);
#endif
}

}  // namespace native
}  // namespace safeops
