// The CPU path's indicator epilogue of masked_dense (docs/design.md, masked_dense kernels): after
// TensorFlow's MatMul has computed mm = xs @ W, it adds the rows of the indicator weights U
// where x is missing, the bias and the activation in one pass over the output,
//
//     z = mm + m @ U + b,   y = act(z),
//
// and its backward computes dz = g * act'(.), db = sum_rows(dz) and dU = m^T @ dz in one pass
// (fixed row chunks reduced in chunk order: bit-identical whatever the thread count). The work
// of the U term is (1 + missing count) row additions of N per row instead of the K N
// multiply-adds of a GEMM over the indicators, so it grows with the missing fraction.
//
// The row additions run with the widest vectors the CPU has (runtime dispatch, CpuIsa), on U
// packed tile-major in the accumulation type; the forward adds them to mm's rows on the way to
// y's, the backward sums each feature's rows of dz (the dU row of a missing feature). Every
// level adds the same terms in the same order (no multiply, so no FMA contraction): the levels
// give bit-identical results. masked_dense runs this epilogue on the CPU up to
// dense.CPU_INDICATOR_EPILOGUE_MAX_K features (docs/design.md).
#pragma once

#include <cstddef>

#include "activations.h"
#include "cpu_runner.h"
#include "missing.h"

namespace safeops {

// Vector levels of the row additions, in increasing order: kBaseline is the build's own
// (16-byte vectors on x86-64), kAvx2 32-byte and kAvx512 64-byte vectors (x86-64 only).
enum class CpuIsa : int { kBaseline = 0, kAvx2 = 1, kAvx512 = 2 };

// The highest level this CPU (and its operating system) supports.
CpuIsa best_cpu_isa();
// "baseline", "avx2", "avx512"; false for any other name.
bool parse_cpu_isa(const char* name, CpuIsa* isa);
const char* cpu_isa_name(CpuIsa isa);
// The level to run: the environment variable SAFEOPS_CPU_ISA if set and not empty (lowered to
// best_cpu_isa() when the CPU lacks it), otherwise best_cpu_isa(). False for an unknown name.
bool cpu_isa_from_env(CpuIsa* isa);

// x [rows, K], U [K, N], bias [N], mm / y / z / g / dz [rows, N], all of `dtype` (float16 and
// bfloat16 compute in float32).
struct IndicatorCpuArgs {
  DType dtype;
  Missing missing;
  Activation activation;
  CpuIsa isa;
  int64 rows, K, N;
};

// Bytes of scratch the forward / backward needs (any alignment: the kernels align it).
std::size_t indicator_forward_workspace_cpu(const IndicatorCpuArgs& args);
std::size_t indicator_backward_workspace_cpu(const IndicatorCpuArgs& args);

// z = mm + m @ U + bias, y = act(z) (in the accumulation type, rounded once). z is written
// when non-null. mm may be y's or z's buffer (each row is read before it is written).
void indicator_forward_cpu(const IndicatorCpuArgs& args, const void* mm, const void* x,
                           const void* u, const void* bias, void* y, void* z, void* workspace,
                           const CpuRunner& runner);

// dz = g * act'(saved) (saved is y or z as saved_for(activation) says, null for linear),
// db = sum over rows of dz, du = m^T @ dz (db and du from dz before its rounding to the dtype).
// dz may be g's buffer.
void indicator_backward_cpu(const IndicatorCpuArgs& args, const void* x, const void* saved,
                            const void* g, void* dz, void* db, void* du, void* workspace,
                            const CpuRunner& runner);

}  // namespace safeops
