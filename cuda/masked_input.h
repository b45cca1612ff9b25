// Launchers of masked_dense's row prologue on CUDA (cuda/masked_input.cu): the GPU twin of
// masked_input_forward_cpu / masked_input_backward_cpu (csrc/kernels/masked_dense_cpu.h), the
// first op of the route a GPU takes for compute-bound shapes (docs/design.md, 3.2 and 4):
// prologue, then the platform's GEMM. Called by the TensorFlow GPU kernels of
// Safeops>MaskedDenseInput / MaskedDenseInputGrad and by the native module.
//
// x is [rows, K] (leading dimensions flattened); every buffer has `dtype`; the scale is computed
// in the accumulation type (float for the 16-bit types). Conventions (void* stream, error codes)
// as in cuda/toolkit.h.
#pragma once

#include "dtypes.h"
#include "missing.h"

namespace safeops {
namespace cuda {

// xs = m ? 0 : s * x with m = missing(x), s = renormalize ? (n_obs > 0 ? K / n_obs : 0) : 1 per
// row (without renormalize a select of bits: an exact copy of x where observed). With
// `indicator` xs is [rows, 2K]: each row continues with m ? 1 : 0.
int masked_input_forward(DType dtype, Missing missing, bool renormalize, bool indicator, int64 rows,
                         int64 K, const void* x, void* xs, void* stream);

// dx = m ? 0 : s * dxs, an exact +0 at a missing entry whatever dxs holds there (a select).
// dxs is [rows, K], or [rows, 2K] with `indicator` (its indicator half, constant in x, is not
// read). Without renormalize the observed entries are bit copies of dxs.
int masked_input_backward(DType dtype, Missing missing, bool renormalize, bool indicator,
                          int64 rows, int64 K, const void* x, const void* dxs, void* dx,
                          void* stream);

}  // namespace cuda
}  // namespace safeops
