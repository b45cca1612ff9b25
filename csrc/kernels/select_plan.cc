#include "select_plan.h"

#include <algorithm>
#include <array>

namespace safeops {
namespace {

int64 product(const std::vector<int64>& s) {
  int64 n = 1;
  for (int64 d : s) n *= d;
  return n;
}

std::string operands_str(const std::vector<int64>& c, const std::vector<int64>& a,
                         const std::vector<int64>& b) {
  return shape_str(c) + " (condition), " + shape_str(a) + " (x) and " + shape_str(b) + " (y)";
}

}  // namespace

std::string shape_str(const std::vector<int64>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) {
    if (i) out += ",";
    out += std::to_string(s[i]);
  }
  return out + "]";
}

bool make_select_plan(const std::vector<int64>& cond_shape, const std::vector<int64>& a_shape,
                      const std::vector<int64>& b_shape, SelectPlan* plan,
                      std::vector<int64>* out_shape, std::string* error) {
  const std::array<const std::vector<int64>*, 3> shapes = {&cond_shape, &a_shape, &b_shape};
  size_t rank = 0;
  for (auto* s : shapes) rank = std::max(rank, s->size());

  // Right-align every shape to `rank` and broadcast.
  std::array<std::vector<int64>, 3> padded;
  std::vector<int64> out(rank, 1);
  for (int k = 0; k < 3; ++k) {
    padded[k].assign(rank - shapes[k]->size(), 1);
    padded[k].insert(padded[k].end(), shapes[k]->begin(), shapes[k]->end());
    for (size_t d = 0; d < rank; ++d) {
      const int64 dim = padded[k][d];
      if (dim == 1) continue;
      if (out[d] == 1) {
        out[d] = dim;
      } else if (out[d] != dim) {
        *error = "Shapes " + operands_str(cond_shape, a_shape, b_shape) +
                 " are not broadcast-compatible (dimension " + std::to_string(d) +
                 " of the right-aligned shapes: " + std::to_string(out[d]) + " vs " +
                 std::to_string(dim) + ")";
        return false;
      }
    }
  }
  *out_shape = out;

  // Row-major strides of each operand over its own (padded) shape; 0 where broadcast.
  std::array<std::vector<int64>, 3> strides;
  for (int k = 0; k < 3; ++k) {
    strides[k].assign(rank, 0);
    int64 s = 1;
    for (size_t d = rank; d-- > 0;) {
      strides[k][d] = padded[k][d] == 1 ? 0 : s;
      s *= padded[k][d];
    }
  }

  // Drop size-1 output dimensions, then merge a dimension into its inner neighbour when every
  // operand is contiguous across the pair (outer stride == inner stride * inner dim).
  std::vector<int64> dims;
  std::array<std::vector<int64>, 3> st;
  for (size_t d = rank; d-- > 0;) {
    if (out[d] == 1) continue;
    bool merge = !dims.empty();
    for (int k = 0; k < 3 && merge; ++k) {
      merge = strides[k][d] == st[k].back() * dims.back();
    }
    if (merge) {
      dims.back() *= out[d];
    } else {
      dims.push_back(out[d]);
      for (int k = 0; k < 3; ++k) st[k].push_back(strides[k][d]);
    }
  }
  if (dims.empty()) {  // scalar output
    dims.push_back(1);
    for (int k = 0; k < 3; ++k) st[k].push_back(0);
  }
  if (dims.size() > static_cast<size_t>(kMaxDims)) {
    *error = "Broadcasting " + operands_str(cond_shape, a_shape, b_shape) + " needs " +
             std::to_string(dims.size()) + " dimensions after merging; at most " +
             std::to_string(kMaxDims) + " are supported";
    return false;
  }

  plan->rank = static_cast<int>(dims.size());
  plan->total = product(out);
  std::array<Operand*, 3> ops = {&plan->cond, &plan->a, &plan->b};
  for (int d = 0; d < plan->rank; ++d) {
    // `dims` was built inner-first; the plan stores outer-first.
    const int src = plan->rank - 1 - d;
    plan->dims[d] = dims[src];
    for (int k = 0; k < 3; ++k) ops[k]->stride[d] = st[k][src];
  }
  for (int d = plan->rank; d < kMaxDims; ++d) {
    plan->dims[d] = 1;
    for (int k = 0; k < 3; ++k) ops[k]->stride[d] = 0;
  }
  for (int k = 0; k < 3; ++k) {
    Operand& op = *ops[k];
    op.size = product(*shapes[k]);
    op.access = op.size == plan->total ? Access::kFull
                : op.size == 1         ? Access::kScalar
                                       : Access::kStrided;
  }
  return true;
}

bool make_fill_plan(const std::vector<int64>& x_shape, const std::vector<int64>& value_shape,
                    SelectPlan* plan, std::string* error) {
  std::vector<int64> out_shape;
  if (!make_select_plan(x_shape, value_shape, x_shape, plan, &out_shape, error) ||
      out_shape != x_shape) {
    *error = "value of shape " + shape_str(value_shape) + " does not broadcast to the shape of x " +
             shape_str(x_shape);
    return false;
  }
  return true;
}

ReduceLayout make_reduce_layout(const SelectPlan& p, const Operand& t) {
  ReduceLayout l{};
  l.P = 1;
  l.R = 1;
  int64 g_stride = 1;
  int64 gs[kMaxDims];
  for (int d = p.rank - 1; d >= 0; --d) {
    gs[d] = g_stride;
    g_stride *= p.dims[d];
  }
  for (int d = 0; d < p.rank; ++d) {
    if (t.stride[d] != 0) {
      l.kdim[l.nk] = p.dims[d];
      l.kg[l.nk] = gs[d];
      l.kc[l.nk++] = p.cond.stride[d];
      l.P *= p.dims[d];
    } else {
      l.rdim[l.nr] = p.dims[d];
      l.rg[l.nr] = gs[d];
      l.rc[l.nr++] = p.cond.stride[d];
      l.R *= p.dims[d];
    }
  }
  return l;
}

namespace {

Target target_of(const Operand& op, bool wanted, bool cond_strided) {
  if (!wanted) return Target::kNone;
  if (cond_strided || op.access == Access::kStrided) return Target::kGeneral;
  return op.access == Access::kFull ? Target::kFull : Target::kScalar;
}

}  // namespace

BackwardTargets backward_targets(const SelectPlan& p, bool want_a, bool want_b) {
  const bool cond_strided = p.cond.access == Access::kStrided;
  return {target_of(p.a, want_a, cond_strided), target_of(p.b, want_b, cond_strided)};
}

}  // namespace safeops
