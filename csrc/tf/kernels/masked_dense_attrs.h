// What the fused masked_dense op's kernels share, its OpKernels (masked_dense_kernels.cc) and
// its XLA kernels (csrc/tf/xla/masked_dense_xla.cc): the attributes, and the shape checks with
// their messages.
#pragma once

#include <string>

#include "activations.h"
#include "missing.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/tensor_shape.h"
#include "tf_adapter.h"

namespace safeops {
namespace tf {

struct DenseAttrs {
  Activation activation = Activation::kLinear;
  bool renormalize = false;
  Missing missing = Missing::kNaN;
  bool indicator = false;  // the fused op's `indicators` attribute is 1: indicator weights U
};

// The attributes an op has: masking (renormalize, missing), the activation, indicators, or
// the missing policy alone (the indicator epilogue, which does not scale).
enum AttrSet : int { kMasking = 1, kActivation = 2, kIndicators = 4, kMissingOnly = 8 };

inline DenseAttrs read_attrs(tfw::OpKernelConstruction* ctx, int which) {
  DenseAttrs a;
  std::string activation = "linear";
  Status st;
  if (which & kMasking) st = ctx->GetAttr("renormalize", &a.renormalize);
  if (st.ok() && (which & (kMasking | kMissingOnly))) st = read_missing(ctx, &a.missing);
  if (st.ok() && (which & kActivation)) st = ctx->GetAttr("activation", &activation);
  int indicators = 0;
  if (st.ok() && (which & kIndicators)) st = ctx->GetAttr("indicators", &indicators);
  if (st.ok() && indicators > 1) {
    st = invalid_argument("masked_dense: indicators must be 0 or 1, got ", indicators);
  }
  a.indicator = indicators == 1;
  // The op definition restricts the activation too; a failure means a malformed graph.
  if (st.ok() && !parse_activation(activation, &a.activation)) {
    st = invalid_argument("unknown activation '", activation, "'");
  }
  if (!st.ok()) ctx->CtxFailure(st);
  return a;
}

// The sizes of x [..., K] @ kernel [K, N].
struct DenseDims {
  int64 rows, K, N;
  tfw::TensorShape out;  // x's leading dims + [N]
};

inline Status dense_dims(const tfw::TensorShape& x, const tfw::TensorShape& kernel, DenseDims* d) {
  if (x.dims() < 2) {
    return invalid_argument("masked_dense: x must have rank >= 2, got shape ", x.DebugString());
  }
  if (kernel.dims() != 2) {
    return invalid_argument("masked_dense: kernel must have rank 2, got shape ",
                            kernel.DebugString());
  }
  if (kernel.dim_size(0) != x.dim_size(x.dims() - 1)) {
    return invalid_argument("masked_dense: x of shape ", x.DebugString(), " has ",
                            x.dim_size(x.dims() - 1), " features but kernel of shape ",
                            kernel.DebugString(), " expects ", kernel.dim_size(0));
  }
  d->K = x.dim_size(x.dims() - 1);
  d->N = kernel.dim_size(1);
  d->rows = 1;
  for (int i = 0; i + 1 < x.dims(); ++i) d->rows *= x.dim_size(i);
  d->out = x;
  d->out.set_dim(x.dims() - 1, d->N);
  return ok_status();
}

inline Status bias_shape(const tfw::TensorShape& bias, const tfw::TensorShape& kernel) {
  if (bias.dims() == 1 && bias.dim_size(0) == kernel.dim_size(1)) return ok_status();
  return invalid_argument("masked_dense: bias must have shape [", kernel.dim_size(1),
                          "] to match kernel ", kernel.DebugString(), ", got ", bias.DebugString());
}

inline Status indicator_shape(const tfw::TensorShape& u, const tfw::TensorShape& kernel) {
  if (u == kernel) return ok_status();
  return invalid_argument("masked_dense: indicator_kernel must have the kernel's shape ",
                          kernel.DebugString(), ", got ", u.DebugString());
}

// The gradient op's saved activation and incoming gradient against the forward's output.
inline Status grad_shapes(const DenseAttrs& at, const DenseDims& d, const tfw::TensorShape& saved,
                          const tfw::TensorShape& g) {
  if (g != d.out) {
    return invalid_argument("masked_dense gradient: grad has shape ", g.DebugString(),
                            ", expected ", d.out.DebugString());
  }
  if (saved_for(at.activation) != Saved::kNone && saved != d.out) {
    return invalid_argument("masked_dense gradient: saved activation has shape ",
                            saved.DebugString(), ", expected ", d.out.DebugString());
  }
  return ok_status();
}

}  // namespace tf
}  // namespace safeops
