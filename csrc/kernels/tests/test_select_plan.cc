// Broadcast plans, backward targets, reduction layouts and the compile-time switches, checked
// against numpy's broadcasting by multi-index (reference.h).
#include <set>
#include <string>

#include "check.h"
#include "reference.h"
#include "select_plan.h"
#include "static_switch.h"

using namespace safeops;
using namespace safeops_test;

namespace {

struct Shapes {
  Shape cond, a, b;
};

// Shapes that exercise every access kind, dimension merging, and empty outputs.
const Shapes kCases[] = {
    {{3, 5}, {3, 5}, {3, 5}},           // elementwise: merged to rank 1
    {{}, {}, {}},                       // scalars
    {{3, 5}, {}, {3, 5}},               // scalar x
    {{4, 1}, {4, 6}, {}},               // where(c[B,1], x[B,N], y[])
    {{1, 6}, {4, 6}, {4, 6}},           // strided condition
    {{4, 6}, {4, 1}, {1, 6}},           // both operands broadcast
    {{2, 1, 5}, {2, 3, 1}, {1, 3, 5}},  // rank 3, nothing merges
    {{2, 3, 4, 5}, {3, 4, 5}, {5}},     // partial merges
    {{0, 3}, {3}, {0, 3}},              // empty output
    {{1, 1, 7}, {7}, {1}},              // size-1 dimensions dropped
};

SelectPlan plan_of(const Shapes& s, Shape* out) {
  SelectPlan plan{};
  std::string error;
  const bool ok = make_select_plan(s.cond, s.a, s.b, &plan, out, &error);
  CHECK(ok) << error;
  return plan;
}

}  // namespace

TEST(select_plan, offsets_match_numpy_broadcasting) {
  for (const Shapes& s : kCases) {
    Shape out;
    const SelectPlan plan = plan_of(s, &out);
    CHECK(out == broadcast({s.cond, s.a, s.b})) << shape_str(out);
    CHECK(plan.total == numel(out)) << plan.total;
    CHECK(plan.rank >= 1 && plan.rank <= kMaxDims) << plan.rank;
    const std::pair<const Operand*, const Shape*> ops[] = {
        {&plan.cond, &s.cond}, {&plan.a, &s.a}, {&plan.b, &s.b}};
    for (const auto& [op, shape] : ops) {
      CHECK(op->size == numel(*shape)) << shape_str(*shape);
      for (int64 i = 0; i < plan.total; ++i) {
        CHECK(operand_offset(plan, *op, i) == offset_in(out, *shape, i))
            << shape_str(*shape) << " in " << shape_str(out) << " at " << i;
      }
    }
  }
}

TEST(select_plan, access_kinds_and_merged_ranks) {
  Shape out;
  SelectPlan p = plan_of({{3, 5}, {3, 5}, {3, 5}}, &out);
  CHECK(p.rank == 1 && p.dims[0] == 15) << p.rank;
  CHECK(p.cond.access == Access::kFull && p.a.access == Access::kFull);
  p = plan_of({{4, 1}, {4, 6}, {}}, &out);
  CHECK(p.rank == 2) << p.rank;
  CHECK(p.cond.access == Access::kStrided && p.a.access == Access::kFull &&
        p.b.access == Access::kScalar);
  CHECK(flat_forward(plan_of({{3, 5}, {}, {3, 5}}, &out)));
  CHECK(!flat_forward(plan_of({{1, 6}, {4, 6}, {4, 6}}, &out)));
}

TEST(select_plan, errors_name_the_shapes) {
  SelectPlan plan{};
  Shape out;
  std::string error;
  CHECK(!make_select_plan({3}, {4}, {}, &plan, &out, &error));
  CHECK(error.find("[3] (condition), [4] (x) and [] (y)") != std::string::npos) << error;
  CHECK(error.find("not broadcast-compatible") != std::string::npos) << error;
  // Nine dimensions in which the operands alternate between varying and broadcast: none merge.
  const Shape c = {2, 1, 2, 1, 2, 1, 2, 1, 2}, x = {1, 2, 1, 2, 1, 2, 1, 2, 1};
  error.clear();
  CHECK(!make_select_plan(c, x, {}, &plan, &out, &error));
  CHECK(error.find("needs 9 dimensions after merging; at most 8") != std::string::npos) << error;
  error.clear();
  CHECK(!make_fill_plan({2, 3}, {2, 1, 3}, &plan, &error));
  CHECK(error == "value of shape [2,1,3] does not broadcast to the shape of x [2,3]") << error;
  error.clear();
  CHECK(make_fill_plan({2, 3}, {1, 3}, &plan, &error)) << error;
}

TEST(select_plan, backward_targets) {
  Shape out;
  struct Expect {
    Shapes shapes;
    Target a, b;
  };
  const Expect expect[] = {
      {{{3, 5}, {3, 5}, {3, 5}}, Target::kFull, Target::kFull},
      {{{3, 5}, {}, {3, 5}}, Target::kScalar, Target::kFull},
      {{{4, 6}, {4, 1}, {1, 6}}, Target::kGeneral, Target::kGeneral},
      {{{4, 6}, {4, 6}, {1, 6}}, Target::kFull, Target::kGeneral},
      // A strided condition sends every target to the general reduction, a full one included.
      {{{4, 1}, {4, 6}, {}}, Target::kGeneral, Target::kGeneral},
  };
  for (const Expect& e : expect) {
    const SelectPlan p = plan_of(e.shapes, &out);
    const BackwardTargets t = backward_targets(p, true, true);
    CHECK(t.a == e.a && t.b == e.b) << static_cast<int>(t.a) << "," << static_cast<int>(t.b);
    const BackwardTargets none = backward_targets(p, false, true);
    CHECK(none.a == Target::kNone && none.b == e.b);
  }
  CHECK(flat_part(Target::kGeneral) == Target::kNone);
  CHECK(flat_part(Target::kScalar) == Target::kScalar);
}

TEST(select_plan, with_flat_targets_skips_general_targets) {
  const Target all[] = {Target::kNone, Target::kFull, Target::kScalar, Target::kGeneral};
  for (Target a : all) {
    for (Target b : all) {
      int calls = 0;
      Target got_a = Target::kGeneral, got_b = Target::kGeneral;
      with_flat_targets({a, b}, [&](auto ka, auto kb) {
        ++calls;
        got_a = decltype(ka)::value;
        got_b = decltype(kb)::value;
      });
      const bool nothing = flat_part(a) == Target::kNone && flat_part(b) == Target::kNone;
      CHECK(calls == (nothing ? 0 : 1)) << static_cast<int>(a) << "," << static_cast<int>(b);
      if (!nothing) {
        CHECK(got_a == flat_part(a) && got_b == flat_part(b));
      }
    }
  }
}

TEST(select_plan, reduce_layout_covers_each_output_once) {
  for (const Shapes& s : kCases) {
    Shape out;
    const SelectPlan plan = plan_of(s, &out);
    const std::pair<const Operand*, const Shape*> targets[] = {{&plan.a, &s.a}, {&plan.b, &s.b}};
    for (const auto& [op, shape] : targets) {
      const ReduceLayout l = make_reduce_layout(plan, *op);
      if (plan.total == 0) continue;
      CHECK(l.P == numel(*shape) && l.P * l.R == plan.total) << shape_str(*shape);
      // Walk every (kept index p, reduced index r): the output element it names, the operand
      // element it adds into (p) and the condition element must be numpy's.
      std::set<int64> seen;
      for (int64 p = 0; p < l.P; ++p) {
        for (int64 r = 0; r < l.R; ++r) {
          int64 go = 0, co = 0;
          int64 rem = p;
          for (int k = l.nk - 1; k >= 0; --k) {
            go += rem % l.kdim[k] * l.kg[k];
            co += rem % l.kdim[k] * l.kc[k];
            rem /= l.kdim[k];
          }
          rem = r;
          for (int k = l.nr - 1; k >= 0; --k) {
            go += rem % l.rdim[k] * l.rg[k];
            co += rem % l.rdim[k] * l.rc[k];
            rem /= l.rdim[k];
          }
          seen.insert(go);
          CHECK(offset_in(out, *shape, go) == p) << shape_str(*shape) << " output " << go;
          CHECK(offset_in(out, s.cond, go) == co) << shape_str(s.cond) << " output " << go;
        }
      }
      CHECK(static_cast<int64>(seen.size()) == plan.total) << shape_str(*shape);
    }
  }
}

TEST(static_switch, every_combination_reaches_its_instantiation) {
  for (int key = 0; key < 8; ++key) {
    const int got = bool_switch(
        [](auto x, auto y, auto z) {
          return decltype(x)::value * 4 + decltype(y)::value * 2 + decltype(z)::value;
        },
        (key & 4) != 0, (key & 2) != 0, (key & 1) != 0);
    CHECK(got == key) << got;
  }
  auto twice = [](auto v) { return 2 * decltype(v)::value; };
  CHECK((value_switch<1, 2, 3>(2, twice)) == 4);
  CHECK((value_switch<1, 2, 3>(3, twice)) == 6);
  CHECK((value_switch<1, 2, 3>(9, twice)) == 6);  // the last value is the fallback
}
