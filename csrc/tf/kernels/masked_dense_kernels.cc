// OpKernels of masked_dense.
//
// Safeops>MaskedDense / MaskedDenseGrad: the fused op, with or without indicator weights (its
// `indicators` attribute). On GPU it is one call of the CUDA launchers (cuda/masked_dense.h).
// Its CPU kernel exists so that a graph traced for a GPU also runs on a CPU (a SavedModel
// served elsewhere): csrc/kernels/masked_dense_cpu.h's layer, with Eigen's contraction as its
// GEMM; it takes indicator weights too.
// The Python wrapper does not use it on CPU: there it composes Safeops>MaskedDenseInput with
// TensorFlow's own MatMul/BiasAdd/activation, which oneDNN runs faster than Eigen.
// EIGEN_USE_THREADS (the contraction on TF's thread pool) is defined for the whole op library
// (csrc/tf/CMakeLists.txt): its files are compiled as one translation unit.

#include <cstdlib>
#include <string>

#include "activations.h"
#include "eigen_gemm.h"
#include "indicator_cpu.h"
#include "masked_dense_attrs.h"
#include "masked_dense_cpu.h"
#include "missing.h"
#include "tensorflow/core/framework/register_types.h"
#include "tensorflow/core/framework/types.h"
#include "tf_adapter.h"
#if SAFEOPS_WITH_CUDA
#include "masked_dense.h"
#include "masked_input.h"
#include "tsl/platform/tensor_float_32_utils.h"
#endif

namespace safeops {
namespace tf {
namespace {

using tfw::OpKernel;
using tfw::OpKernelConstruction;
using tfw::OpKernelContext;
using tfw::Tensor;
using tfw::TensorShape;

// Shapes of x [..., K] and kernel [K, N] (masked_dense_attrs.h); false (status set) when they
// disagree.
bool dense_dims(OpKernelContext* ctx, const Tensor& x, const Tensor& kernel, DenseDims* d) {
  const Status st = dense_dims(x.shape(), kernel.shape(), d);
  if (!st.ok()) ctx->CtxFailure(st);
  return st.ok();
}

// ---- device calls ------------------------------------------------------------------------

template <class Device>
struct Dense;

MaskedDenseCpuArgs cpu_args(const DenseAttrs& at, const DenseDims& d, DType dt) {
  MaskedDenseCpuArgs a;
  a.dtype = dt;
  a.missing = at.missing;
  a.activation = at.activation;
  a.renormalize = at.renormalize;
  a.rows = d.rows;
  a.K = d.K;
  a.N = d.N;
  a.indicator = at.indicator;
  return a;
}

// Host scratch of `bytes` owned by the op for this call.
Status cpu_scratch(OpKernelContext* ctx, std::size_t bytes, Tensor* holder, void** ptr) {
  TF_RETURN_IF_ERROR(ctx->allocate_temp(tfw::DT_INT8, TensorShape({int64(bytes)}), holder));
  *ptr = data(holder);
  return ok_status();
}

template <>
struct Dense<Cpu> {
  static void forward(OpKernelContext* ctx, const DenseAttrs& at, const DenseDims& d,
                      const Tensor& x, const Tensor& kernel, const Tensor* u, const Tensor& bias,
                      Tensor* y, Tensor* z) {
    const MaskedDenseCpuArgs args = cpu_args(at, d, to_dtype(x.dtype()));
    Tensor scratch;
    void* ws = nullptr;
    OP_REQUIRES_OK(ctx, cpu_scratch(ctx, masked_dense_forward_workspace_cpu(args), &scratch, &ws));
    masked_dense_forward_cpu(args, data(x), data(kernel), u ? data(*u) : nullptr, data(bias),
                             data(y), z->NumElements() ? data(z) : nullptr, ws, TfCpuRunner(ctx),
                             EigenGemm(ctx->eigen_device<Eigen::ThreadPoolDevice>()));
  }

  static void backward(OpKernelContext* ctx, const DenseAttrs& at, const DenseDims& d,
                       const Tensor& x, const Tensor& kernel, const Tensor& saved, const Tensor& g,
                       Tensor* dx, Tensor* dw, Tensor* du, Tensor* db) {
    const MaskedDenseCpuArgs args = cpu_args(at, d, to_dtype(x.dtype()));
    Tensor scratch;
    void* ws = nullptr;
    OP_REQUIRES_OK(ctx, cpu_scratch(ctx, masked_dense_backward_workspace_cpu(args), &scratch, &ws));
    masked_dense_backward_cpu(args, data(x), data(kernel),
                              saved.NumElements() ? data(saved) : nullptr, data(g), data(dx),
                              data(dw), du ? data(du) : nullptr, data(db), ws, TfCpuRunner(ctx),
                              EigenGemm(ctx->eigen_device<Eigen::ThreadPoolDevice>()));
  }
};

#if SAFEOPS_WITH_CUDA
cuda::MaskedDenseArgs launch_args(const DenseAttrs& at, const DenseDims& d, DType dt) {
  return {dt,          at.missing, at.activation, at.renormalize,
          d.rows,      d.K,        d.N,           tsl::tensor_float_32_execution_enabled(),
          at.indicator};
}

template <>
struct Dense<Gpu> {
  static void forward(OpKernelContext* ctx, const DenseAttrs& at, const DenseDims& d,
                      const Tensor& x, const Tensor& kernel, const Tensor* u, const Tensor& bias,
                      Tensor* y, Tensor* z) {
    const cuda::MaskedDenseArgs args = launch_args(at, d, to_dtype(x.dtype()));
    Tensor scratch;
    void* ws = nullptr;
    OP_REQUIRES_OK(ctx,
                   gpu_scratch(ctx, cuda::masked_dense_forward_workspace(args), &scratch, &ws));
    const int e = cuda::masked_dense_forward(
        args, data(x), data(kernel), u && u->NumElements() ? data(*u) : nullptr, data(bias),
        data(y), z->NumElements() ? data(z) : nullptr, ws, gpu_stream(ctx));
    OP_REQUIRES_OK(ctx, gpu_status(e, "MaskedDense"));
  }

  static void backward(OpKernelContext* ctx, const DenseAttrs& at, const DenseDims& d,
                       const Tensor& x, const Tensor& kernel, const Tensor& saved, const Tensor& g,
                       Tensor* dx, Tensor* dw, Tensor* du, Tensor* db) {
    const cuda::MaskedDenseArgs args = launch_args(at, d, to_dtype(x.dtype()));
    Tensor scratch;
    void* ws = nullptr;
    OP_REQUIRES_OK(ctx,
                   gpu_scratch(ctx, cuda::masked_dense_backward_workspace(args), &scratch, &ws));
    const int e = cuda::masked_dense_backward(
        args, data(x), data(kernel), saved.NumElements() ? data(saved) : nullptr, data(g), data(dx),
        data(dw), du && du->NumElements() ? data(du) : nullptr, data(db), ws, gpu_stream(ctx));
    OP_REQUIRES_OK(ctx, gpu_status(e, "MaskedDenseGrad"));
  }
};
#endif

// ---- kernels ------------------------------------------------------------------------------

template <class Device>
class MaskedDenseOp : public OpKernel {
 public:
  explicit MaskedDenseOp(OpKernelConstruction* ctx)
      : OpKernel(ctx), at_(read_attrs(ctx, kMasking | kActivation | kIndicators)) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor &x = ctx->input(0), &kernel = ctx->input(1), &bias = ctx->input(2);
    const Tensor* u = at_.indicator ? &ctx->input(3) : nullptr;
    DenseDims d;
    if (!dense_dims(ctx, x, kernel, &d)) return;
    OP_REQUIRES_OK(ctx, bias_shape(bias.shape(), kernel.shape()));
    if (u != nullptr) OP_REQUIRES_OK(ctx, indicator_shape(u->shape(), kernel.shape()));
    Tensor *y = nullptr, *z = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, d.out, &y));
    const bool save_z = saved_for(at_.activation) == Saved::kPreActivation;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, save_z ? d.out : TensorShape({0}), &z));
    if (d.out.num_elements() == 0) return;
    Dense<Device>::forward(ctx, at_, d, x, kernel, u, bias, y, z);
  }

 private:
  DenseAttrs at_;
};

template <class Device>
class MaskedDenseGradOp : public OpKernel {
 public:
  explicit MaskedDenseGradOp(OpKernelConstruction* ctx)
      : OpKernel(ctx), at_(read_attrs(ctx, kMasking | kActivation | kIndicators)) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor &x = ctx->input(0), &kernel = ctx->input(1), &saved = ctx->input(2),
                 &g = ctx->input(3);
    DenseDims d;
    if (!dense_dims(ctx, x, kernel, &d)) return;
    OP_REQUIRES_OK(ctx, grad_shapes(at_, d, saved.shape(), g.shape()));
    Tensor *dx = nullptr, *dw = nullptr, *du = nullptr, *db = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, x.shape(), &dx));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, kernel.shape(), &dw));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, TensorShape({d.N}), &db));
    if (at_.indicator) OP_REQUIRES_OK(ctx, ctx->allocate_output(3, kernel.shape(), &du));
    Dense<Device>::backward(ctx, at_, d, x, kernel, saved, g, dx, dw, du, db);
  }

 private:
  DenseAttrs at_;
};

// The row prologue's device calls: the CPU kernels (csrc/kernels/masked_dense_cpu.h) and the
// CUDA launchers (cuda/masked_input.h), same values. On a GPU the prologue runs where the wrapper
// routes a compute-bound shape to TensorFlow's MatMul (safeops/routing.py).
template <class Device>
struct Input;

template <>
struct Input<Cpu> {
  static void forward(OpKernelContext* ctx, const DenseAttrs& at, bool indicator, int64 rows,
                      int64 K, const Tensor& x, Tensor* xs) {
    masked_input_forward_cpu(to_dtype(x.dtype()), at.missing, at.renormalize, rows, K, data(x),
                             data(xs), false, TfCpuRunner(ctx), indicator);
  }
  static void backward(OpKernelContext* ctx, const DenseAttrs& at, bool indicator, int64 rows,
                       int64 K, const Tensor& x, const Tensor& g, Tensor* dx) {
    masked_input_backward_cpu(to_dtype(x.dtype()), at.missing, at.renormalize, rows, K, data(x),
                              data(g), false, data(dx), TfCpuRunner(ctx), indicator);
  }
};

#if SAFEOPS_WITH_CUDA
template <>
struct Input<Gpu> {
  static void forward(OpKernelContext* ctx, const DenseAttrs& at, bool indicator, int64 rows,
                      int64 K, const Tensor& x, Tensor* xs) {
    const int e =
        cuda::masked_input_forward(to_dtype(x.dtype()), at.missing, at.renormalize, indicator, rows,
                                   K, data(x), data(xs), gpu_stream(ctx));
    OP_REQUIRES_OK(ctx, gpu_status(e, "MaskedDenseInput"));
  }
  static void backward(OpKernelContext* ctx, const DenseAttrs& at, bool indicator, int64 rows,
                       int64 K, const Tensor& x, const Tensor& g, Tensor* dx) {
    const int e =
        cuda::masked_input_backward(to_dtype(x.dtype()), at.missing, at.renormalize, indicator,
                                    rows, K, data(x), data(g), data(dx), gpu_stream(ctx));
    OP_REQUIRES_OK(ctx, gpu_status(e, "MaskedDenseInputGrad"));
  }
};
#endif

// The row prologue and its gradient: the CPU path's, and on a GPU the compute-bound shapes'.
// With the indicator attribute the prologue's rows are [m ? 0 : s * x, m ? 1 : 0], 2K wide.
template <class Device>
class MaskedDenseInputOp : public OpKernel {
 public:
  explicit MaskedDenseInputOp(OpKernelConstruction* ctx)
      : OpKernel(ctx), at_(read_attrs(ctx, kMasking)) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("indicator", &indicator_));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& x = ctx->input(0);
    OP_REQUIRES(
        ctx, x.dims() >= 1,
        invalid_argument("masked_dense: x must have rank >= 1, got ", x.shape().DebugString()));
    const int64 K = x.dim_size(x.dims() - 1);
    TensorShape out_shape = x.shape();
    if (indicator_) out_shape.set_dim(x.dims() - 1, 2 * K);
    Tensor* out = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, out_shape, &out));
    if (x.NumElements() == 0) return;
    Input<Device>::forward(ctx, at_, indicator_, x.NumElements() / K, K, x, out);
  }

 private:
  DenseAttrs at_;
  bool indicator_ = false;
};

template <class Device>
class MaskedDenseInputGradOp : public OpKernel {
 public:
  explicit MaskedDenseInputGradOp(OpKernelConstruction* ctx)
      : OpKernel(ctx), at_(read_attrs(ctx, kMasking)) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("indicator", &indicator_));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor &x = ctx->input(0), &g = ctx->input(1);
    TensorShape expected = x.shape();
    if (indicator_ && x.dims() >= 1) expected.set_dim(x.dims() - 1, 2 * x.dim_size(x.dims() - 1));
    OP_REQUIRES(ctx, x.dims() >= 1 && g.shape() == expected,
                invalid_argument(
                    "masked_dense gradient: grad has shape ", g.shape().DebugString(),
                    ", x has shape ", x.shape().DebugString(),
                    indicator_ ? " (with indicators grad's last dimension is twice x's)" : ""));
    Tensor* dx = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, x.shape(), &dx));
    const int64 K = x.dim_size(x.dims() - 1);
    if (x.NumElements() == 0) return;
    Input<Device>::backward(ctx, at_, indicator_, x.NumElements() / K, K, x, g, dx);
  }

 private:
  DenseAttrs at_;
  bool indicator_ = false;
};

// The outputs of the epilogue ops: y and z (empty unless save_z), the one that is kept (y, or z
// when it is saved) taking over the matmul's buffer (input 0) when TensorFlow can forward it.
Status epilogue_outputs(OpKernelContext* ctx, bool save_z, const TensorShape& shape, Tensor** y,
                        Tensor** z) {
  if (save_z) {
    TF_RETURN_IF_ERROR(ctx->forward_input_or_allocate_output({0}, 1, shape, z));
    return ctx->allocate_output(0, shape, y);
  }
  TF_RETURN_IF_ERROR(ctx->forward_input_or_allocate_output({0}, 0, shape, y));
  return ctx->allocate_output(1, TensorShape({0}), z);
}

// The CPU path's epilogue and its gradient, after TensorFlow's MatMul.
class MaskedDenseOutputOp : public OpKernel {
 public:
  explicit MaskedDenseOutputOp(OpKernelConstruction* ctx)
      : OpKernel(ctx), at_(read_attrs(ctx, kActivation)) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor &mm = ctx->input(0), &bias = ctx->input(1);
    OP_REQUIRES(
        ctx, mm.dims() >= 1 && bias.dims() == 1 && bias.dim_size(0) == mm.dim_size(mm.dims() - 1),
        invalid_argument("masked_dense: bias of shape ", bias.shape().DebugString(),
                         " does not match ", mm.shape().DebugString()));
    const bool save_z = saved_for(at_.activation) == Saved::kPreActivation;
    Tensor *y = nullptr, *z = nullptr;
    OP_REQUIRES_OK(ctx, epilogue_outputs(ctx, save_z, mm.shape(), &y, &z));
    if (mm.NumElements() == 0) return;
    const int64 N = bias.dim_size(0);
    bias_activation_cpu(to_dtype(mm.dtype()), at_.activation, mm.NumElements() / N, N, data(mm),
                        false, data(bias), data(y), save_z ? data(z) : nullptr, TfCpuRunner(ctx));
  }

 private:
  DenseAttrs at_;
};

class MaskedDenseOutputGradOp : public OpKernel {
 public:
  explicit MaskedDenseOutputGradOp(OpKernelConstruction* ctx)
      : OpKernel(ctx), at_(read_attrs(ctx, kActivation)) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor &saved = ctx->input(0), &g = ctx->input(1);
    const bool needs_saved = saved_for(at_.activation) != Saved::kNone;
    OP_REQUIRES(ctx, g.dims() >= 1 && (!needs_saved || saved.shape() == g.shape()),
                invalid_argument("masked_dense gradient: saved activation has shape ",
                                 saved.shape().DebugString(), ", grad has shape ",
                                 g.shape().DebugString()));
    const int64 N = g.dim_size(g.dims() - 1);
    Tensor *dz = nullptr, *db = nullptr;
    OP_REQUIRES_OK(ctx, ctx->forward_input_or_allocate_output({1}, 0, g.shape(), &dz));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({N}), &db));
    if (N == 0) return;
    // No rows: db is a sum of nothing (the kernel writes zeros).
    activation_backward_cpu(to_dtype(g.dtype()), at_.activation, g.NumElements() / N, N,
                            needs_saved ? data(saved) : nullptr, data(g), data(dz), false, data(db),
                            TfCpuRunner(ctx));
  }

 private:
  DenseAttrs at_;
};

// The CPU path's epilogue with indicator weights (indicator_cpu.h), after TensorFlow's MatMul
// of xs @ kernel: z = matmul + m @ indicator_kernel + bias, y = act(z).

// The vector level of the row additions (SAFEOPS_CPU_ISA, indicator_cpu.h); false (status set)
// for an unknown name.
bool isa_of(OpKernelContext* ctx, CpuIsa* isa) {
  if (cpu_isa_from_env(isa)) return true;
  ctx->CtxFailure(invalid_argument(
      "masked_dense: SAFEOPS_CPU_ISA must be baseline, avx2, avx512 or empty, got '",
      std::getenv("SAFEOPS_CPU_ISA"), "'"));
  return false;
}

// x [..., K] beside a [..., N] tensor with the same leading dimensions; false (status set) when
// they disagree.
bool rows_match(OpKernelContext* ctx, const Tensor& x, const Tensor& t, const char* what) {
  bool same = x.dims() >= 1 && t.dims() == x.dims();
  for (int i = 0; same && i + 1 < x.dims(); ++i) same = x.dim_size(i) == t.dim_size(i);
  if (!same) {
    ctx->CtxFailure(invalid_argument("masked_dense: ", what, " of shape ", t.shape().DebugString(),
                                     " does not match x of shape ", x.shape().DebugString()));
  }
  return same;
}

IndicatorCpuArgs indicator_args(const DenseAttrs& at, CpuIsa isa, const Tensor& x,
                                const Tensor& out) {
  const int64 K = x.dim_size(x.dims() - 1), N = out.dim_size(out.dims() - 1);
  return {to_dtype(x.dtype()), at.missing, at.activation, isa, N ? out.NumElements() / N : 0, K, N};
}

class MaskedDenseIndicatorOutputOp : public OpKernel {
 public:
  explicit MaskedDenseIndicatorOutputOp(OpKernelConstruction* ctx)
      : OpKernel(ctx), at_(read_attrs(ctx, kActivation | kMissingOnly)) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor &mm = ctx->input(0), &x = ctx->input(1), &u = ctx->input(2), &bias = ctx->input(3);
    if (!rows_match(ctx, x, mm, "matmul")) return;
    const TensorShape u_shape({x.dim_size(x.dims() - 1), mm.dim_size(mm.dims() - 1)});
    OP_REQUIRES_OK(ctx, indicator_shape(u.shape(), u_shape));
    OP_REQUIRES_OK(ctx, bias_shape(bias.shape(), u_shape));
    CpuIsa isa;
    if (!isa_of(ctx, &isa)) return;
    const bool save_z = saved_for(at_.activation) == Saved::kPreActivation;
    Tensor *y = nullptr, *z = nullptr;
    OP_REQUIRES_OK(ctx, epilogue_outputs(ctx, save_z, mm.shape(), &y, &z));
    const IndicatorCpuArgs args = indicator_args(at_, isa, x, mm);
    if (args.rows == 0 || args.N == 0) return;
    Tensor scratch;
    void* ws = nullptr;
    OP_REQUIRES_OK(ctx, cpu_scratch(ctx, indicator_forward_workspace_cpu(args), &scratch, &ws));
    indicator_forward_cpu(args, data(mm), data(x), data(u), data(bias), data(y),
                          save_z ? data(z) : nullptr, ws, TfCpuRunner(ctx));
  }

 private:
  DenseAttrs at_;
};

class MaskedDenseIndicatorOutputGradOp : public OpKernel {
 public:
  explicit MaskedDenseIndicatorOutputGradOp(OpKernelConstruction* ctx)
      : OpKernel(ctx), at_(read_attrs(ctx, kActivation | kMissingOnly)) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor &x = ctx->input(0), &saved = ctx->input(1), &g = ctx->input(2);
    if (!rows_match(ctx, x, g, "grad")) return;
    const bool needs_saved = saved_for(at_.activation) != Saved::kNone;
    OP_REQUIRES(ctx, !needs_saved || saved.shape() == g.shape(),
                invalid_argument("masked_dense gradient: saved activation has shape ",
                                 saved.shape().DebugString(), ", grad has shape ",
                                 g.shape().DebugString()));
    CpuIsa isa;
    if (!isa_of(ctx, &isa)) return;
    const int64 K = x.dim_size(x.dims() - 1), N = g.dim_size(g.dims() - 1);
    Tensor *dz = nullptr, *db = nullptr, *du = nullptr;
    OP_REQUIRES_OK(ctx, ctx->forward_input_or_allocate_output({2}, 0, g.shape(), &dz));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({N}), &db));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, TensorShape({K, N}), &du));
    // No rows: db and du are sums of nothing (the kernel writes zeros).
    const IndicatorCpuArgs args = indicator_args(at_, isa, x, g);
    Tensor scratch;
    void* ws = nullptr;
    OP_REQUIRES_OK(ctx, cpu_scratch(ctx, indicator_backward_workspace_cpu(args), &scratch, &ws));
    indicator_backward_cpu(args, data(x), needs_saved ? data(saved) : nullptr, data(g), data(dz),
                           data(db), data(du), ws, TfCpuRunner(ctx));
  }

 private:
  DenseAttrs at_;
};

#define SAFEOPS_REGISTER_DENSE(DEV_NAME, DEV, T)                                                   \
  REGISTER_KERNEL_BUILDER(Name("Safeops>MaskedDense").Device(DEV_NAME).TypeConstraint<T>("T"),     \
                          MaskedDenseOp<DEV>);                                                     \
  REGISTER_KERNEL_BUILDER(Name("Safeops>MaskedDenseGrad").Device(DEV_NAME).TypeConstraint<T>("T"), \
                          MaskedDenseGradOp<DEV>);                                                 \
  REGISTER_KERNEL_BUILDER(                                                                         \
      Name("Safeops>MaskedDenseInput").Device(DEV_NAME).TypeConstraint<T>("T"),                    \
      MaskedDenseInputOp<DEV>);                                                                    \
  REGISTER_KERNEL_BUILDER(                                                                         \
      Name("Safeops>MaskedDenseInputGrad").Device(DEV_NAME).TypeConstraint<T>("T"),                \
      MaskedDenseInputGradOp<DEV>);

#define SAFEOPS_REGISTER_CPU(T)                                                                  \
  SAFEOPS_REGISTER_DENSE(tfw::DEVICE_CPU, Cpu, T)                                                \
  REGISTER_KERNEL_BUILDER(                                                                       \
      Name("Safeops>MaskedDenseOutput").Device(tfw::DEVICE_CPU).TypeConstraint<T>("T"),          \
      MaskedDenseOutputOp);                                                                      \
  REGISTER_KERNEL_BUILDER(                                                                       \
      Name("Safeops>MaskedDenseOutputGrad").Device(tfw::DEVICE_CPU).TypeConstraint<T>("T"),      \
      MaskedDenseOutputGradOp);                                                                  \
  REGISTER_KERNEL_BUILDER(                                                                       \
      Name("Safeops>MaskedDenseIndicatorOutput").Device(tfw::DEVICE_CPU).TypeConstraint<T>("T"), \
      MaskedDenseIndicatorOutputOp);                                                             \
  REGISTER_KERNEL_BUILDER(Name("Safeops>MaskedDenseIndicatorOutputGrad")                         \
                              .Device(tfw::DEVICE_CPU)                                           \
                              .TypeConstraint<T>("T"),                                           \
                          MaskedDenseIndicatorOutputGradOp);
TF_CALL_half(SAFEOPS_REGISTER_CPU);
TF_CALL_bfloat16(SAFEOPS_REGISTER_CPU);
TF_CALL_float(SAFEOPS_REGISTER_CPU);
TF_CALL_double(SAFEOPS_REGISTER_CPU);
#undef SAFEOPS_REGISTER_CPU

#if SAFEOPS_WITH_CUDA
#define SAFEOPS_REGISTER_GPU(T) SAFEOPS_REGISTER_DENSE(tfw::DEVICE_GPU, Gpu, T)
TF_CALL_half(SAFEOPS_REGISTER_GPU);
TF_CALL_bfloat16(SAFEOPS_REGISTER_GPU);
TF_CALL_float(SAFEOPS_REGISTER_GPU);
TF_CALL_double(SAFEOPS_REGISTER_GPU);
#undef SAFEOPS_REGISTER_GPU
#endif
#undef SAFEOPS_REGISTER_DENSE

}  // namespace
}  // namespace tf
}  // namespace safeops
