// Launchers of the fused masked_dense CUDA kernels (no CUDA headers needed to include this).
//
// With m = missing(x), xf = m ? 0 : x, n_obs = K - count(m, row) and
// s = renormalize ? (n_obs > 0 ? K / n_obs : 0) : 1 per row (docs/design.md):
//   forward   z = s * (xf @ W) + b,  y = act(z)
//   backward  dz = g * act'(z),  db = sum_rows(dz),  dW = xf^T @ (s * dz),
//             dx = m ? 0 : s * (dz @ W^T)
// With indicator weights U [K, N] (args.indicator; the model concat([xf, m]) @ [W; U] without
// the concatenation):
//   forward   z = s * (xf @ W) + m @ U + b   (m @ U is not scaled by s)
//   backward  dU = m^T @ dz, exact in the sense of dW (one rounding of dz, float accumulation)
//             and deterministic; dx, dW and db do not change (m is constant in x).
// x is [rows, K] (leading dimensions flattened), W and U [K, N], b [N], y and z [rows, N]; every
// buffer has `dtype`, half types accumulate in float32. Reductions over rows are deterministic
// (no float atomics). Launchers enqueue on `stream` and return 0 or a CUDA error code
// (explained by error_string in toolkit.h).
#pragma once

#include <cstddef>

#include "activations.h"
#include "dtypes.h"
#include "missing.h"

namespace safeops {
namespace cuda {

struct MaskedDenseArgs {
  DType dtype;
  Missing missing;
  Activation activation;
  bool renormalize;
  int64 rows, K, N;
  bool allow_tf32;         // float32 may run on TF32 tensor cores (TensorFlow's TF32 setting)
  bool indicator = false;  // indicator weights U: the forward reads u, the backward writes du
};

std::size_t masked_dense_forward_workspace(const MaskedDenseArgs& args);

// Writes y, and z when saved_for(activation) == Saved::kPreActivation (z may be null
// otherwise). bias may be null (no bias); u is U with args.indicator, else null.
int masked_dense_forward(const MaskedDenseArgs& args, const void* x, const void* w, const void* u,
                         const void* bias, void* y, void* z, void* workspace, void* stream);

std::size_t masked_dense_backward_workspace(const MaskedDenseArgs& args);

// `saved` is y or z as saved_for(activation) says (null for linear); g is dL/dy. Writes dx, dw,
// du (with args.indicator, else null; U itself is not needed) and db (db may be null when the
// layer has no bias).
int masked_dense_backward(const MaskedDenseArgs& args, const void* x, const void* w,
                          const void* saved, const void* g, void* dx, void* dw, void* du, void* db,
                          void* workspace, void* stream);

}  // namespace cuda
}  // namespace safeops
