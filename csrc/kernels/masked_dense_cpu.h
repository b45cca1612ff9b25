// CPU masked_dense (docs/design.md, masked_dense): its pieces and the whole layer. On CPU the
// GEMMs are not ours: the wrapper composes the row prologue below with TensorFlow's own
// MatMul/BiasAdd/activation, which grappler fuses into oneDNN's _FusedMatMul (measured faster
// than any contraction a custom op can call: Eigen's runs 1.20-1.33x slower than tf.matmul on
// these shapes). The fused op's CPU kernel (a GPU-traced graph running on CPU) runs the whole
// layer below, with the GEMM injected by its adapter.
#pragma once

#include <cstddef>

#include "activations.h"
#include "cpu_runner.h"
#include "missing.h"

namespace safeops {

// Buffers marked "Acc" hold Traits<T>::Acc (float for float16/bfloat16/float32, double for
// float64); the others hold the dtype itself.

// Row prologue, x [rows, K]:  xs = m ? 0 : s * x  with m = missing(x) and
// s = renormalize ? (n_obs > 0 ? K / n_obs : 0) : 1 per row (an exact copy of x when s == 1).
// xs is [rows, K], or with `indicator` [rows, 2K]: each row continues with the missing
// indicators m ? 1 : 0, so that one GEMM with [kernel; indicator_kernel] computes
// s * (xf @ kernel) + m @ indicator_kernel (docs/design.md, masked_dense). xs is Acc when
// xs_is_acc.
void masked_input_forward_cpu(DType dtype, Missing missing, bool renormalize, int64 rows, int64 K,
                              const void* x, void* xs, bool xs_is_acc, const CpuRunner& runner,
                              bool indicator = false);

// Its gradient:  dx = m ? 0 : s * dxs  (an exact zero at missing entries whatever dxs holds).
// With `indicator`, dxs is [rows, 2K] and its indicator half, constant in x, is not read.
// dxs is Acc when dxs_is_acc.
void masked_input_backward_cpu(DType dtype, Missing missing, bool renormalize, int64 rows, int64 K,
                               const void* x, const void* dxs, bool dxs_is_acc, void* dx,
                               const CpuRunner& runner, bool indicator = false);

// Epilogue, mm [rows, N] = xs @ W:  z = mm + bias,  y = act(z) (in Acc); z is written when
// non-null. mm is Acc when mm_is_acc; otherwise it may be y's or z's buffer
// (each element is read before it is written).
void bias_activation_cpu(DType dtype, Activation act, int64 rows, int64 N, const void* mm,
                         bool mm_is_acc, const void* bias, void* y, void* z,
                         const CpuRunner& runner);

// Backward of the epilogue:  dz = g * act'(.) from `saved` (y or z as saved_for(act) says,
// unused for linear); db = sum over rows of dz (Acc, deterministic order) when db is non-null.
// dz is Acc when dz_is_acc; otherwise it may be g's buffer.
void activation_backward_cpu(DType dtype, Activation act, int64 rows, int64 N, const void* saved,
                             const void* g, void* dz, bool dz_is_acc, void* db,
                             const CpuRunner& runner);

// ---- the whole layer (forward and backward), GEMM injected ------------------------------

// C [M, N] = op(A) @ op(B), row-major, op(A) = trans_a ? A^T : A (A stored [K, M] then, else
// [M, K]; likewise B, [N, K] or [K, N]), in the accumulation type (float or double). The
// adapter that owns the threads provides it (TensorFlow's: Eigen on its intra-op pool), as it
// provides the CpuRunner. The layer calls it only with M, N, K > 0.
class CpuGemm {
 public:
  virtual ~CpuGemm() = default;
  virtual void operator()(bool trans_a, bool trans_b, int64 M, int64 N, int64 K, const float* a,
                          const float* b, float* c) const = 0;
  virtual void operator()(bool trans_a, bool trans_b, int64 M, int64 N, int64 K, const double* a,
                          const double* b, double* c) const = 0;
};

// x [rows, K] (leading dimensions flattened), W and U [K, N], bias [N], y and z [rows, N];
// every buffer has `dtype`, float16 and bfloat16 compute in float32.
struct MaskedDenseCpuArgs {
  DType dtype;
  Missing missing;
  Activation activation;
  bool renormalize;
  int64 rows, K, N;
  bool indicator = false;  // indicator weights U: the forward reads u, the backward writes du
};

// Bytes of scratch the forward / backward needs (64-byte aligned, from the caller).
std::size_t masked_dense_forward_workspace_cpu(const MaskedDenseCpuArgs& args);
std::size_t masked_dense_backward_workspace_cpu(const MaskedDenseCpuArgs& args);

// z = s * (xf @ W) [+ m @ U] + b,  y = act(z): writes y, and z when non-null (the caller
// passes it when saved_for(activation) == Saved::kPreActivation). u is read with
// args.indicator (one GEMM over [xf s, m] and [W; U]). Any of rows, K, N may be 0.
void masked_dense_forward_cpu(const MaskedDenseCpuArgs& args, const void* x, const void* w,
                              const void* u, const void* bias, void* y, void* z, void* workspace,
                              const CpuRunner& runner, const CpuGemm& gemm);

// dz = g * act'(saved), db = sum_rows(dz), dW = xf^T @ (s * dz), dx = m ? 0 : s * (dz @ W^T),
// and with args.indicator dU = m^T @ dz (du). `saved` is y or z as saved_for(activation) says
// (null for linear).
void masked_dense_backward_cpu(const MaskedDenseCpuArgs& args, const void* x, const void* w,
                               const void* saved, const void* g, void* dx, void* dw, void* du,
                               void* db, void* workspace, const CpuRunner& runner,
                               const CpuGemm& gemm);

}  // namespace safeops
