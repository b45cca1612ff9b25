// OpKernels of the select family: validate, allocate, call the one kernel per device
// (csrc/kernels/select_cpu.h on CPU, cuda/select.h on GPU).
#include <string>

#include "missing.h"
#include "select_cpu.h"
#include "select_plan.h"
#include "tensorflow/core/framework/register_types.h"
#include "tf_adapter.h"
#if SAFEOPS_WITH_CUDA
#include "select.h"
#endif

namespace safeops {
namespace tf {
namespace {

using tfw::OpKernel;
using tfw::OpKernelConstruction;
using tfw::OpKernelContext;
using tfw::Tensor;

const std::uint8_t* bools(const Tensor& t) {
  return reinterpret_cast<const std::uint8_t*>(data(t));
}

// ---- device calls ------------------------------------------------------------------------

template <class Device>
struct Select;

template <>
struct Select<Cpu> {
  static void forward(OpKernelContext* ctx, DType dt, const SelectPlan& p, const Tensor& c,
                      const Tensor& a, const Tensor& b, Tensor* out) {
    select_forward_cpu(dt, p, bools(c), data(a), data(b), data(out), TfCpuRunner(ctx));
  }
  static void backward(OpKernelContext* ctx, DType dt, const SelectPlan& p, const Tensor& c,
                       const Tensor& g, Tensor* ga, Tensor* gb) {
    select_backward_cpu(dt, p, bools(c), data(g), data(ga), data(gb), TfCpuRunner(ctx));
  }
  static void fill_forward(OpKernelContext* ctx, DType dt, Missing m, const SelectPlan& p,
                           const Tensor& x, const Tensor& v, Tensor* out) {
    fill_missing_forward_cpu(dt, m, p, data(x), data(v), data(out), TfCpuRunner(ctx));
  }
  static void fill_backward(OpKernelContext* ctx, DType dt, Missing m, const SelectPlan& p,
                            const Tensor& x, const Tensor& g, Tensor* gx, Tensor* gv) {
    fill_missing_backward_cpu(dt, m, p, data(x), data(g), data(gv), data(gx), TfCpuRunner(ctx));
  }
};

#if SAFEOPS_WITH_CUDA
template <>
struct Select<Gpu> {
  static void forward(OpKernelContext* ctx, DType dt, const SelectPlan& p, const Tensor& c,
                      const Tensor& a, const Tensor& b, Tensor* out) {
    const int e =
        cuda::select_forward(dt, p, bools(c), data(a), data(b), data(out), gpu_stream(ctx));
    OP_REQUIRES_OK(ctx, gpu_status(e, "SafeWhere"));
  }
  static void backward(OpKernelContext* ctx, DType dt, const SelectPlan& p, const Tensor& c,
                       const Tensor& g, Tensor* ga, Tensor* gb) {
    Tensor scratch;
    void* ws = nullptr;
    OP_REQUIRES_OK(
        ctx, gpu_scratch(ctx, cuda::select_backward_workspace(dt, p, true, true), &scratch, &ws));
    const int e =
        cuda::select_backward(dt, p, bools(c), data(g), data(ga), data(gb), ws, gpu_stream(ctx));
    OP_REQUIRES_OK(ctx, gpu_status(e, "SafeWhereGrad"));
  }
  static void fill_forward(OpKernelContext* ctx, DType dt, Missing m, const SelectPlan& p,
                           const Tensor& x, const Tensor& v, Tensor* out) {
    const int e =
        cuda::fill_missing_forward(dt, m, p, data(x), data(v), data(out), gpu_stream(ctx));
    OP_REQUIRES_OK(ctx, gpu_status(e, "FillMissing"));
  }
  static void fill_backward(OpKernelContext* ctx, DType dt, Missing m, const SelectPlan& p,
                            const Tensor& x, const Tensor& g, Tensor* gx, Tensor* gv) {
    Tensor scratch;
    void* ws = nullptr;
    OP_REQUIRES_OK(
        ctx, gpu_scratch(ctx, cuda::select_backward_workspace(dt, p, true, true), &scratch, &ws));
    const int e = cuda::fill_missing_backward(dt, m, p, data(x), data(g), data(gv), data(gx), ws,
                                              gpu_stream(ctx));
    OP_REQUIRES_OK(ctx, gpu_status(e, "FillMissingGrad"));
  }
};
#endif

// ---- shared validation -------------------------------------------------------------------

// The plan of where(cond, a, b); false (status set) when the shapes do not broadcast.
bool where_plan(OpKernelContext* ctx, const Tensor& c, const Tensor& a, const Tensor& b,
                SelectPlan* plan, std::vector<int64>* out_shape) {
  std::string err;
  if (!make_select_plan(dims_of(c), dims_of(a), dims_of(b), plan, out_shape, &err)) {
    ctx->CtxFailure(invalid_argument("safe_where: ", err));
    return false;
  }
  return true;
}

// The plan of fill_missing(x, value): value must broadcast to x's shape exactly.
bool fill_plan(OpKernelContext* ctx, const Tensor& x, const Tensor& v, SelectPlan* plan) {
  std::string err;
  if (!make_fill_plan(dims_of(x), dims_of(v), plan, &err)) {
    ctx->CtxFailure(invalid_argument("fill_missing: ", err));
    return false;
  }
  return true;
}

Missing missing_attr(OpKernelConstruction* ctx) {
  Missing m = Missing::kNaN;
  const Status st = read_missing(ctx, &m);
  if (!st.ok()) ctx->CtxFailure(st);
  return m;
}

// ---- kernels ------------------------------------------------------------------------------

template <class Device>
class SafeWhereOp : public OpKernel {
 public:
  using OpKernel::OpKernel;
  void Compute(OpKernelContext* ctx) override {
    const Tensor &c = ctx->input(0), &x = ctx->input(1), &y = ctx->input(2);
    SelectPlan plan;
    std::vector<int64> out_shape;
    if (!where_plan(ctx, c, x, y, &plan, &out_shape)) return;
    Tensor* out = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, shape_of(out_shape), &out));
    Select<Device>::forward(ctx, to_dtype(x.dtype()), plan, c, x, y, out);
  }
};

template <class Device>
class SafeWhereGradOp : public OpKernel {
 public:
  using OpKernel::OpKernel;
  void Compute(OpKernelContext* ctx) override {
    const Tensor &c = ctx->input(0), &x = ctx->input(1), &y = ctx->input(2), &g = ctx->input(3);
    SelectPlan plan;
    std::vector<int64> out_shape;
    if (!where_plan(ctx, c, x, y, &plan, &out_shape)) return;
    OP_REQUIRES(ctx, dims_of(g) == out_shape,
                invalid_argument("safe_where gradient: grad has shape ", g.shape().DebugString(),
                                 ", expected ", shape_of(out_shape).DebugString()));
    Tensor *gx = nullptr, *gy = nullptr;
    // grad_x may overwrite grad when the flat pass writes it (the kernels' contract:
    // select_cpu.h, cuda/select.h).
    const bool overwrite = backward_targets(plan, true, true).a == Target::kFull;
    OP_REQUIRES_OK(ctx, overwrite ? ctx->forward_input_or_allocate_output({3}, 0, x.shape(), &gx)
                                  : ctx->allocate_output(0, x.shape(), &gx));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, y.shape(), &gy));
    Select<Device>::backward(ctx, to_dtype(g.dtype()), plan, c, g, gx, gy);
  }
};

template <class Device>
class FillMissingOp : public OpKernel {
 public:
  explicit FillMissingOp(OpKernelConstruction* ctx) : OpKernel(ctx), missing_(missing_attr(ctx)) {}
  void Compute(OpKernelContext* ctx) override {
    const Tensor &x = ctx->input(0), &v = ctx->input(1);
    SelectPlan plan;
    if (!fill_plan(ctx, x, v, &plan)) return;
    Tensor* out = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, x.shape(), &out));
    Select<Device>::fill_forward(ctx, to_dtype(x.dtype()), missing_, plan, x, v, out);
  }

 private:
  Missing missing_;
};

template <class Device>
class FillMissingGradOp : public OpKernel {
 public:
  explicit FillMissingGradOp(OpKernelConstruction* ctx)
      : OpKernel(ctx), missing_(missing_attr(ctx)) {}
  void Compute(OpKernelContext* ctx) override {
    const Tensor &x = ctx->input(0), &v = ctx->input(1), &g = ctx->input(2);
    SelectPlan plan;
    if (!fill_plan(ctx, x, v, &plan)) return;
    OP_REQUIRES(ctx, g.shape() == x.shape(),
                invalid_argument("fill_missing gradient: grad has shape ", g.shape().DebugString(),
                                 ", expected ", x.shape().DebugString()));
    Tensor *gx = nullptr, *gv = nullptr;
    // grad_x, a full target, may overwrite grad (select_cpu.h, cuda/select.h).
    OP_REQUIRES_OK(ctx, ctx->forward_input_or_allocate_output({2}, 0, x.shape(), &gx));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, v.shape(), &gv));
    Select<Device>::fill_backward(ctx, to_dtype(x.dtype()), missing_, plan, x, g, gx, gv);
  }

 private:
  Missing missing_;
};

#define SAFEOPS_REGISTER(DEV_NAME, DEV, T)                                                         \
  REGISTER_KERNEL_BUILDER(Name("Safeops>SafeWhere").Device(DEV_NAME).TypeConstraint<T>("T"),       \
                          SafeWhereOp<DEV>);                                                       \
  REGISTER_KERNEL_BUILDER(Name("Safeops>SafeWhereGrad").Device(DEV_NAME).TypeConstraint<T>("T"),   \
                          SafeWhereGradOp<DEV>);                                                   \
  REGISTER_KERNEL_BUILDER(Name("Safeops>FillMissing").Device(DEV_NAME).TypeConstraint<T>("T"),     \
                          FillMissingOp<DEV>);                                                     \
  REGISTER_KERNEL_BUILDER(Name("Safeops>FillMissingGrad").Device(DEV_NAME).TypeConstraint<T>("T"), \
                          FillMissingGradOp<DEV>);

#define SAFEOPS_REGISTER_CPU(T) SAFEOPS_REGISTER(tfw::DEVICE_CPU, Cpu, T)
TF_CALL_half(SAFEOPS_REGISTER_CPU);
TF_CALL_bfloat16(SAFEOPS_REGISTER_CPU);
TF_CALL_float(SAFEOPS_REGISTER_CPU);
TF_CALL_double(SAFEOPS_REGISTER_CPU);
#undef SAFEOPS_REGISTER_CPU

#if SAFEOPS_WITH_CUDA
#define SAFEOPS_REGISTER_GPU(T) SAFEOPS_REGISTER(tfw::DEVICE_GPU, Gpu, T)
TF_CALL_half(SAFEOPS_REGISTER_GPU);
TF_CALL_bfloat16(SAFEOPS_REGISTER_GPU);
TF_CALL_float(SAFEOPS_REGISTER_GPU);
TF_CALL_double(SAFEOPS_REGISTER_GPU);
#undef SAFEOPS_REGISTER_GPU
#endif
#undef SAFEOPS_REGISTER

}  // namespace
}  // namespace tf
}  // namespace safeops
