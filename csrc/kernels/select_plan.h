// The broadcast plan of a three-operand select `out = cond ? a : b` (numpy broadcasting).
//
// The shapes are right-aligned, size-1 dimensions dropped and adjacent dimensions merged
// wherever every operand is contiguous across them, so a plain elementwise select is rank 1
// and `where(c[B,1], x[B,N], y[])` is rank 2. Each operand gets element strides over the
// merged dimensions (0 where it is broadcast). The plan is a POD passed by value to CPU and
// CUDA kernels alike.
#pragma once

#include <string>
#include <vector>

#include "dtypes.h"
#include "static_switch.h"

namespace safeops {

constexpr int kMaxDims = 8;

// How a kernel finds an operand's element for output index i.
enum class Access : int {
  kFull = 0,     // operand has the output's shape: offset i
  kScalar = 1,   // a single element: offset 0
  kStrided = 2,  // broadcast along some dimensions: offset from the unravelled index
};

struct Operand {
  int64 stride[kMaxDims];
  int64 size;
  Access access;
};

struct SelectPlan {
  int rank;  // merged rank, 1..kMaxDims (a scalar output has rank 1, dims[0] == 1)
  int64 dims[kMaxDims];
  int64 total;  // number of output elements
  Operand cond, a, b;
};

// Builds the plan; returns false and fills *error (naming the shapes) when the shapes do not
// broadcast or the merged rank exceeds kMaxDims. `out_shape` receives the broadcast shape.
bool make_select_plan(const std::vector<int64>& cond_shape, const std::vector<int64>& a_shape,
                      const std::vector<int64>& b_shape, SelectPlan* plan,
                      std::vector<int64>* out_shape, std::string* error);

// The plan of fill_missing(x, value), built as (cond = x, a = value, b = x): value must
// broadcast to x's shape exactly. False, with *error naming both shapes, otherwise.
bool make_fill_plan(const std::vector<int64>& x_shape, const std::vector<int64>& value_shape,
                    SelectPlan* plan, std::string* error);

// "[2,3]": a shape as the error messages print it.
std::string shape_str(const std::vector<int64>& shape);

// The reduction of an output-shaped gradient g onto operand t: t's kept dimensions (where it
// varies) and the reduced ones (where it is broadcast), each with its length and the strides of
// g (row-major over the plan) and of the condition. Kept dimensions are listed outer to inner,
// so t's linear index is the row-major index over them.
struct ReduceLayout {
  int nk, nr;
  int64 kdim[kMaxDims], kg[kMaxDims], kc[kMaxDims];
  int64 rdim[kMaxDims], rg[kMaxDims], rc[kMaxDims];
  int64 P;  // elements of t
  int64 R;  // elements summed into each of them
};

ReduceLayout make_reduce_layout(const SelectPlan& plan, const Operand& t);

// How the backward pass produces the gradient of one operand (its target), for an output-shaped
// upstream gradient g. The CPU kernels (select_cpu.cc) and the CUDA kernels (cuda/select.cu)
// take the same decisions from this vocabulary.
enum class Target : int {
  kNone = 0,     // not wanted (a null output pointer)
  kFull = 1,     // the output's shape: a select of g, written by the flat pass
  kScalar = 2,   // one element: a sum over all of g, accumulated by the flat pass
  kGeneral = 3,  // any other broadcast: its own reduction over a ReduceLayout
};

struct BackwardTargets {
  Target a, b;
};

// The targets of a backward pass. A strided condition sends every wanted target to the general
// reduction (the flat pass reads the condition at the output index).
BackwardTargets backward_targets(const SelectPlan& plan, bool want_a, bool want_b);

// What the flat pass does for a target: the general ones are reduced before it, so it skips them.
constexpr Target flat_part(Target t) { return t == Target::kGeneral ? Target::kNone : t; }

// Calls fn(std::integral_constant<Target, A>{}, std::integral_constant<Target, B>{}) with the
// flat parts of t.a and t.b (kFull, kScalar or kNone), for a flat pass templated on them; not at
// all when both are kNone (the flat pass has nothing to do).
template <class Fn>
void with_flat_targets(BackwardTargets t, Fn&& fn) {
  constexpr Target kFull = Target::kFull, kScalar = Target::kScalar, kNone = Target::kNone;
  value_switch<kFull, kScalar, kNone>(flat_part(t.a), [&](auto ka) {
    constexpr Target A = decltype(ka)::value;
    value_switch<kFull, kScalar, kNone>(flat_part(t.b), [&](auto kb) {
      if constexpr (A != kNone || decltype(kb)::value != kNone) fn(ka, kb);
    });
  });
}

// The forward runs the flat kernel (each operand full or scalar, read at i or 0) unless some
// operand is strided.
inline bool flat_forward(const SelectPlan& p) {
  return p.cond.access != Access::kStrided && p.a.access != Access::kStrided &&
         p.b.access != Access::kStrided;
}

// Offset of output element i in an operand (kStrided case), by unravelling i over the plan.
SAFEOPS_HD int64 strided_offset(const SelectPlan& p, const Operand& op, int64 i) {
  int64 off = 0;
  for (int d = p.rank - 1; d >= 0 && i > 0; --d) {
    const int64 q = i / p.dims[d];
    off += (i - q * p.dims[d]) * op.stride[d];
    i = q;
  }
  return off;
}

SAFEOPS_HD int64 operand_offset(const SelectPlan& p, const Operand& op, int64 i) {
  return op.access == Access::kFull     ? i
         : op.access == Access::kScalar ? 0
                                        : strided_offset(p, op, i);
}

}  // namespace safeops
