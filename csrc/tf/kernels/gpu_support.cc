// The TF side of the CUDA launchers: the op's stream, scratch memory and error reporting.
#if SAFEOPS_WITH_CUDA
#include "tf_adapter.h"
#include "toolkit.h"
#include "xla/stream_executor/stream.h"

namespace safeops {
namespace tf {

void* gpu_stream(tfw::OpKernelContext* ctx) {
  return ctx->op_device_context()->stream()->platform_specific_handle().stream;
}

Status gpu_status(int code, const char* what) {
  if (code == 0) return ok_status();
  return internal_error(what, ": CUDA launch failed: ", cuda::error_string(code));
}

Status gpu_scratch(tfw::OpKernelContext* ctx, std::size_t bytes, tfw::Tensor* holder, void** ptr) {
  *ptr = nullptr;
  if (bytes == 0) return ok_status();
  TF_RETURN_IF_ERROR(
      ctx->allocate_temp(tfw::DT_INT8, tfw::TensorShape({static_cast<int64>(bytes)}), holder));
  *ptr = data(holder);
  return ok_status();
}

}  // namespace tf
}  // namespace safeops
#endif
