// XLA kernels of the fused ops Safeops>MaskedDense / MaskedDenseGrad (docs/design.md §4, XLA):
// under jit_compile each op becomes one HLO custom call, whose targets run the same layer as the
// op's OpKernel: the CUDA launchers (cuda/masked_dense.h) on the "CUDA" platform, the CPU layer
// (csrc/kernels/masked_dense_cpu.h) on "Host".
//
// The XLA kernel sees concrete shapes (XLA compiles per shape), so everything the launchers
// check is checked here, at compile time, with the OpKernels' messages; a target cannot fail
// but for a CUDA launch error, which it reports through the call's status.
// Each call's result is a tuple: the op's outputs, then the scratch the launcher asks for
// (a u8 buffer XLA allocates; its size is the launcher's *_workspace for these shapes).
// The backend config (the "opaque" string) is the CallArgs struct's bytes: the library that
// writes it is the one that reads it.
#if SAFEOPS_WITH_XLA
#include <cstring>
#include <string>
#include <vector>

#include "kernels/eigen_gemm.h"
#include "kernels/masked_dense_attrs.h"
#include "masked_dense_cpu.h"
#include "tensorflow/compiler/tf2xla/shape_util.h"
#include "tensorflow/compiler/tf2xla/type_util.h"
#include "tensorflow/compiler/tf2xla/xla_op_kernel.h"
#include "tensorflow/compiler/tf2xla/xla_op_registry.h"
#include "tensorflow/core/platform/cpu_info.h"
#include "tf_adapter.h"
#include "xla/hlo/builder/xla_builder.h"
#include "xla/service/custom_call_status_internal.h"
#include "xla/service/custom_call_target_registry.h"
#include "xla/shape_util.h"
#if SAFEOPS_WITH_CUDA
#include "masked_dense.h"
#include "toolkit.h"
#include "tsl/platform/tensor_float_32_utils.h"
#endif

namespace safeops {
namespace tf {
namespace {

// What a target needs to know beyond its buffers.
struct CallArgs {
  DType dtype;
  Missing missing;
  Activation activation;
  bool renormalize;
  bool allow_tf32;
  bool indicator;  // indicator weights U: an operand of the forward, an output of the backward
  int64 rows, K, N;
};

constexpr char kForward[] = "safeops_masked_dense_forward";
constexpr char kBackward[] = "safeops_masked_dense_backward";

CallArgs decode(const char* opaque, std::size_t size) {
  CallArgs a;
  std::memcpy(&a, opaque, size < sizeof a ? size : sizeof a);
  return a;
}

MaskedDenseCpuArgs cpu_args(const CallArgs& a) {
  return {a.dtype, a.missing, a.activation, a.renormalize, a.rows, a.K, a.N, a.indicator};
}

// ---- targets -------------------------------------------------------------------------------

// The host's threads for the CPU layer, one pool for every call: XLA hands a custom call no
// thread pool of its own.
class HostThreads {
 public:
  HostThreads()
      : pool_(tfw::Env::Default(), "safeops_xla", tfw::port::MaxParallelism()),
        device_(pool_.AsEigenThreadPool(), pool_.NumThreads()),
        runner_(&pool_),
        gemm_(device_) {}
  const CpuRunner& runner() const { return runner_; }
  const CpuGemm& gemm() const { return gemm_; }

 private:
  tfw::thread::ThreadPool pool_;
  Eigen::ThreadPoolDevice device_;
  TfCpuRunner runner_;
  EigenGemm gemm_;
};

const HostThreads& host_threads() {
  static const HostThreads* threads = new HostThreads();  // never destroyed: used at exit
  return *threads;
}

// The buffers of one call: the operands in the op's order (x, kernel, bias, [U] forward; x,
// kernel, saved, grad backward), then the result tuple's elements (the op's outputs, dU after
// db with indicator weights, then the scratch).
struct ForwardBuffers {
  const void *x, *w, *bias, *u;
  void *y, *z, *workspace;
};
struct BackwardBuffers {
  const void *x, *w, *saved, *g;
  void *dx, *dw, *db, *du, *workspace;
};

ForwardBuffers forward_buffers(const CallArgs& a, const void* const* in, void* const* out) {
  const bool save_z = saved_for(a.activation) == Saved::kPreActivation;
  return {in[0], in[1], in[2], a.indicator ? in[3] : nullptr, out[0], save_z ? out[1] : nullptr,
          out[2]};
}

BackwardBuffers backward_buffers(const CallArgs& a, const void* const* in, void* const* out) {
  const bool needs_saved = saved_for(a.activation) != Saved::kNone;
  return {in[0],
          in[1],
          needs_saved ? in[2] : nullptr,
          in[3],
          out[0],
          out[1],
          out[2],
          a.indicator ? out[3] : nullptr,
          out[a.indicator ? 4 : 3]};
}

// API_VERSION_STATUS_RETURNING_UNIFIED on the host: out is the result tuple's buffer table.
void forward_host(void* out, const void** in, const char* opaque, std::size_t size,
                  XlaCustomCallStatus*) {
  const CallArgs a = decode(opaque, size);
  const ForwardBuffers f = forward_buffers(a, in, static_cast<void**>(out));
  masked_dense_forward_cpu(cpu_args(a), f.x, f.w, f.u, f.bias, f.y, f.z, f.workspace,
                           host_threads().runner(), host_threads().gemm());
}

void backward_host(void* out, const void** in, const char* opaque, std::size_t size,
                   XlaCustomCallStatus*) {
  const CallArgs a = decode(opaque, size);
  const BackwardBuffers b = backward_buffers(a, in, static_cast<void**>(out));
  masked_dense_backward_cpu(cpu_args(a), b.x, b.w, b.saved, b.g, b.dx, b.dw, b.du, b.db,
                            b.workspace, host_threads().runner(), host_threads().gemm());
}

XLA_REGISTER_CUSTOM_CALL_TARGET_WITH_SYM(kForward, forward_host, "Host");
XLA_REGISTER_CUSTOM_CALL_TARGET_WITH_SYM(kBackward, backward_host, "Host");

#if SAFEOPS_WITH_CUDA
cuda::MaskedDenseArgs launch_args(const CallArgs& a) {
  return {a.dtype, a.missing, a.activation, a.renormalize, a.rows,
          a.K,     a.N,       a.allow_tf32, a.indicator};
}

void fail(XlaCustomCallStatus* status, const char* what, int code) {
  if (code != 0) {
    status->message = std::string(what) + ": CUDA launch failed: " + cuda::error_string(code);
  }
}

// On "CUDA" one table holds the operands (4 forward with U, else 3; 4 backward), then the
// result tuple's elements.
void forward_cuda(void* stream, void** buffers, const char* opaque, std::size_t size,
                  XlaCustomCallStatus* status) {
  const CallArgs a = decode(opaque, size);
  const ForwardBuffers f = forward_buffers(a, buffers, buffers + (a.indicator ? 4 : 3));
  fail(status, "MaskedDense",
       cuda::masked_dense_forward(launch_args(a), f.x, f.w, f.u, f.bias, f.y, f.z, f.workspace,
                                  stream));
}

void backward_cuda(void* stream, void** buffers, const char* opaque, std::size_t size,
                   XlaCustomCallStatus* status) {
  const CallArgs a = decode(opaque, size);
  const BackwardBuffers b = backward_buffers(a, buffers, buffers + 4);
  fail(status, "MaskedDenseGrad",
       cuda::masked_dense_backward(launch_args(a), b.x, b.w, b.saved, b.g, b.dx, b.dw, b.du, b.db,
                                   b.workspace, stream));
}

XLA_REGISTER_CUSTOM_CALL_TARGET_WITH_SYM(kForward, forward_cuda, "CUDA");
XLA_REGISTER_CUSTOM_CALL_TARGET_WITH_SYM(kBackward, backward_cuda, "CUDA");
#endif

// ---- XLA kernels -------------------------------------------------------------------------

using tfw::XlaOpKernel;
using tfw::XlaOpKernelContext;

// Whether the XLA kernel being constructed compiles for a GPU.
bool for_gpu(tfw::OpKernelConstruction* ctx) {
  return ctx->device_type() == tfw::DeviceType(tfw::DEVICE_GPU_XLA_JIT);
}

// The scratch's size for these arguments on the device XLA compiles for.
std::size_t workspace(bool gpu, const CallArgs& a, bool forward) {
#if SAFEOPS_WITH_CUDA
  if (gpu) {
    return forward ? cuda::masked_dense_forward_workspace(launch_args(a))
                   : cuda::masked_dense_backward_workspace(launch_args(a));
  }
#endif
  return forward ? masked_dense_forward_workspace_cpu(cpu_args(a))
                 : masked_dense_backward_workspace_cpu(cpu_args(a));
}

xla::Shape shape(xla::PrimitiveType type, const tfw::TensorShape& s) {
  return xla::ShapeUtil::MakeShape(type, s.dim_sizes());
}

// One custom call: `outputs` then the scratch; sets the op's outputs to the tuple's elements.
void emit(XlaOpKernelContext* ctx, bool gpu, const char* target, const CallArgs& a, bool forward,
          const std::vector<xla::XlaOp>& operands, std::vector<xla::Shape> outputs) {
  const int n_outputs = static_cast<int>(outputs.size());
  outputs.push_back(
      xla::ShapeUtil::MakeShape(xla::U8, {static_cast<int64>(workspace(gpu, a, forward))}));
  const std::string opaque(reinterpret_cast<const char*>(&a), sizeof a);
  const xla::XlaOp call = xla::CustomCall(
      ctx->builder(), target, operands, xla::ShapeUtil::MakeTupleShape(outputs), opaque,
      /*has_side_effect=*/false, /*output_operand_aliasing=*/{}, /*literal=*/nullptr,
      xla::CustomCallSchedule::SCHEDULE_NONE,
      xla::CustomCallApiVersion::API_VERSION_STATUS_RETURNING_UNIFIED);
  for (int i = 0; i < n_outputs; ++i) ctx->SetOutput(i, xla::GetTupleElement(call, i));
}

// Input i's shape. The custom call's buffers have static sizes, so a dynamic (bounded)
// dimension is refused rather than read as its bound.
Status static_input_shape(XlaOpKernelContext* ctx, int i, tfw::TensorShape* out) {
  const absl::StatusOr<xla::Shape> s = ctx->InputXlaShape(i);
  if (!s.ok()) return s.status();
  for (int d = 0; d < static_cast<int>(s->dimensions().size()); ++d) {
    if (s->is_dynamic_dimension(d)) {
      return invalid_argument("masked_dense under XLA: input ", i, " has a dynamic dimension ", d,
                              "; its custom call needs static shapes");
    }
  }
  return tfw::XLAShapeToTensorShape(*s, out);
}

// Shapes as MaskedDenseOp checks them; false (status set) when they disagree.
bool call_args(XlaOpKernelContext* ctx, const DenseAttrs& at, const tfw::TensorShape& x,
               const tfw::TensorShape& kernel, DenseDims* d, CallArgs* a) {
  const Status st = dense_dims(x, kernel, d);
  if (!st.ok()) {
    ctx->CtxFailure(st);
    return false;
  }
  a->dtype = to_dtype(ctx->input_type(0));
  a->missing = at.missing;
  a->activation = at.activation;
  a->renormalize = at.renormalize;
#if SAFEOPS_WITH_CUDA
  a->allow_tf32 = tsl::tensor_float_32_execution_enabled();
#else
  a->allow_tf32 = false;
#endif
  a->indicator = at.indicator;
  a->rows = d->rows;
  a->K = d->K;
  a->N = d->N;
  return true;
}

class MaskedDenseXla : public XlaOpKernel {
 public:
  explicit MaskedDenseXla(tfw::OpKernelConstruction* ctx)
      : XlaOpKernel(ctx),
        at_(read_attrs(ctx, kMasking | kActivation | kIndicators)),
        gpu_(for_gpu(ctx)) {}

  void Compile(XlaOpKernelContext* ctx) override {
    tfw::TensorShape x, kernel, bias;
    OP_REQUIRES_OK(ctx, static_input_shape(ctx, 0, &x));
    OP_REQUIRES_OK(ctx, static_input_shape(ctx, 1, &kernel));
    OP_REQUIRES_OK(ctx, static_input_shape(ctx, 2, &bias));
    DenseDims d;
    CallArgs a;
    if (!call_args(ctx, at_, x, kernel, &d, &a)) return;
    OP_REQUIRES_OK(ctx, bias_shape(bias, kernel));
    std::vector<xla::XlaOp> operands = {ctx->Input(0), ctx->Input(1), ctx->Input(2)};
    if (at_.indicator) {
      tfw::TensorShape u;
      OP_REQUIRES_OK(ctx, static_input_shape(ctx, 3, &u));
      OP_REQUIRES_OK(ctx, indicator_shape(u, kernel));
      operands.push_back(ctx->Input(3));
    }
    const xla::PrimitiveType type = ctx->input_xla_type(0);
    const bool save_z = saved_for(at_.activation) == Saved::kPreActivation;
    emit(ctx, gpu_, kForward, a, true, operands,
         {shape(type, d.out), shape(type, save_z ? d.out : tfw::TensorShape({0}))});
  }

 private:
  DenseAttrs at_;
  bool gpu_;
};

class MaskedDenseGradXla : public XlaOpKernel {
 public:
  explicit MaskedDenseGradXla(tfw::OpKernelConstruction* ctx)
      : XlaOpKernel(ctx),
        at_(read_attrs(ctx, kMasking | kActivation | kIndicators)),
        gpu_(for_gpu(ctx)) {}

  void Compile(XlaOpKernelContext* ctx) override {
    tfw::TensorShape x, kernel, saved, g;
    OP_REQUIRES_OK(ctx, static_input_shape(ctx, 0, &x));
    OP_REQUIRES_OK(ctx, static_input_shape(ctx, 1, &kernel));
    OP_REQUIRES_OK(ctx, static_input_shape(ctx, 2, &saved));
    OP_REQUIRES_OK(ctx, static_input_shape(ctx, 3, &g));
    DenseDims d;
    CallArgs a;
    if (!call_args(ctx, at_, x, kernel, &d, &a)) return;
    OP_REQUIRES_OK(ctx, grad_shapes(at_, d, saved, g));
    const xla::PrimitiveType type = ctx->input_xla_type(0);
    std::vector<xla::Shape> outputs = {shape(type, x), shape(type, kernel),
                                       shape(type, tfw::TensorShape({a.N}))};
    if (at_.indicator) outputs.push_back(shape(type, kernel));  // dU
    emit(ctx, gpu_, kBackward, a, false,
         {ctx->Input(0), ctx->Input(1), ctx->Input(2), ctx->Input(3)}, outputs);
  }

 private:
  DenseAttrs at_;
  bool gpu_;
};

// Registered as OpKernels of XLA's compilation devices, not with REGISTER_XLA_OP: XlaOpRegistry
// turns its entries into such kernels once per process, the first time TensorFlow sets up its
// devices, so a library loaded after that (`import tensorflow; tf.config.list_logical_devices()`
// then `import safeops`) would not be compiled ("No registered 'Safeops>MaskedDense' OpKernel
// for XLA_CPU_JIT devices"). The kernel registry takes registrations at any time.
#define SAFEOPS_REGISTER_XLA(DEVICE)                                                              \
  REGISTER_KERNEL_BUILDER(Name("Safeops>MaskedDense").Device(DEVICE).TypeConstraint("T", kTypes), \
                          MaskedDenseXla);                                                        \
  REGISTER_KERNEL_BUILDER(                                                                        \
      Name("Safeops>MaskedDenseGrad").Device(DEVICE).TypeConstraint("T", kTypes),                 \
      MaskedDenseGradXla)
const std::vector<tfw::DataType> kTypes = {tfw::DT_HALF, tfw::DT_BFLOAT16, tfw::DT_FLOAT,
                                           tfw::DT_DOUBLE};
SAFEOPS_REGISTER_XLA(tfw::DEVICE_CPU_XLA_JIT);
SAFEOPS_REGISTER_XLA(tfw::DEVICE_GPU_XLA_JIT);
#undef SAFEOPS_REGISTER_XLA

}  // namespace
}  // namespace tf
}  // namespace safeops
#endif
