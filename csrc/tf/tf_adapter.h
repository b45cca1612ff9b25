// What every safeops OpKernel shares: dtype and shape conversion, the CPU runner over TF's
// intra-op thread pool, and (GPU builds) the op's CUDA stream and launch status.
#pragma once

#include <string>
#include <vector>

#include "cpu_runner.h"
#include "dtypes.h"
#include "missing.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/tensor.h"
#include "tf_compat.h"

namespace safeops {
namespace tf {

namespace tfw = ::tensorflow;

inline DType to_dtype(tfw::DataType t) {
  switch (t) {
    case tfw::DT_HALF:
      return DType::kFloat16;
    case tfw::DT_BFLOAT16:
      return DType::kBFloat16;
    case tfw::DT_FLOAT:
      return DType::kFloat32;
    default:
      return DType::kFloat64;  // the op definitions admit no other type
  }
}

inline std::vector<int64> dims_of(const tfw::Tensor& t) {
  std::vector<int64> d(t.dims());
  for (int i = 0; i < t.dims(); ++i) d[i] = t.dim_size(i);
  return d;
}

inline tfw::TensorShape shape_of(const std::vector<int64>& d) {
  tfw::TensorShape s;
  for (int64 v : d) s.AddDim(v);
  return s;
}

inline const void* data(const tfw::Tensor& t) { return t.tensor_data().data(); }
inline void* data(tfw::Tensor* t) { return const_cast<char*>(t->tensor_data().data()); }

// The op's "missing" attribute. The op definitions restrict it to "nan" / "nonfinite", so an
// error here means a malformed graph.
inline Status read_missing(tfw::OpKernelConstruction* ctx, Missing* out) {
  std::string s;
  TF_RETURN_IF_ERROR(ctx->GetAttr("missing", &s));
  if (!parse_missing(s, out)) {
    return invalid_argument("unknown missing policy '", s, "'; expected 'nan' or 'nonfinite'");
  }
  return ok_status();
}

// Runs CPU kernels on a TensorFlow thread pool: the op's intra-op pool, or another.
class TfCpuRunner : public CpuRunner {
 public:
  explicit TfCpuRunner(tfw::OpKernelContext* ctx)
      : TfCpuRunner(ctx->device()->tensorflow_cpu_worker_threads()->workers) {}
  explicit TfCpuRunner(tfw::thread::ThreadPool* pool) : pool_(pool) {}
  void parallel_for(int64 n, int64 cost_per_unit,
                    const std::function<void(int64, int64)>& fn) const override {
    if (n * cost_per_unit < kMinParallelWork) {
      if (n > 0) fn(0, n);
      return;
    }
    thread_pool_parallel_for(pool_, n, cost_per_unit, fn);
  }

 private:
  tfw::thread::ThreadPool* pool_;
};

// Device tags: the OpKernels are templates on these, each op's adapter provides the calls.
struct Cpu {};
struct Gpu {};

#if SAFEOPS_WITH_CUDA
// The op's CUDA stream, without CUDA headers.
void* gpu_stream(tfw::OpKernelContext* ctx);
// OK, or an Internal error carrying the launcher's explanation of `code`.
Status gpu_status(int code, const char* what);
// Device scratch of `bytes` (null when 0) owned by the op for this call.
Status gpu_scratch(tfw::OpKernelContext* ctx, std::size_t bytes, tfw::Tensor* holder, void** ptr);
#endif

}  // namespace tf
}  // namespace safeops
