// The CPU select kernels (select_cpu.h) against a reference that loops over numpy's broadcast
// by multi-index and sums in long double: forward bits, backward sums, exact selected zeros
// where g is NaN or Inf, results independent of the thread split, and g overwritten in place.
#include <string>
#include <vector>

#include "check.h"
#include "reference.h"
#include "select_cpu.h"

using namespace safeops;
using namespace safeops_test;

namespace {

template <class T>
constexpr DType dtype_of() {
  return sizeof(T) == 8 ? DType::kFloat64 : DType::kFloat32;
}

template <class T>
constexpr double rtol() {
  return sizeof(T) == 8 ? 1e-13 : 1e-4;
}

struct Shapes {
  Shape cond, a, b;
};

// Every backward path: flat (full, scalar and unwanted targets), general (broadcast targets, a
// strided condition), several chunks of the flat sums and split groups of the general sums.
const Shapes kCases[] = {
    {{3, 5}, {3, 5}, {3, 5}},
    {{3, 5}, {}, {3, 5}},
    {{}, {3, 5}, {}},
    {{4, 1}, {4, 6}, {}},
    {{1, 6}, {4, 6}, {4, 6}},
    {{4, 6}, {4, 1}, {1, 6}},
    {{2, 1, 5}, {2, 3, 1}, {1, 3, 5}},
    {{0, 3}, {3}, {0, 3}},
    {{70001}, {70001}, {}},
    {{20000, 2}, {1, 2}, {20000, 1}},
    {{3, 300, 5}, {3, 1, 5}, {300, 1}},
};

std::string str(const Shapes& s) {
  return shape_str(s.cond) + " " + shape_str(s.a) + " " + shape_str(s.b);
}

template <class T>
void check_select(const Shapes& s, const CpuRunner& runner) {
  SelectPlan plan{};
  Shape out;
  std::string error;
  CHECK(make_select_plan(s.cond, s.a, s.b, &plan, &out, &error)) << error;
  const int64 n = numel(out);
  const auto cond = test_conditions(numel(s.cond), 1);
  const auto a = test_values<T>(numel(s.a), 2, 7);
  const auto b = test_values<T>(numel(s.b), 3, 5);
  // Some of g is NaN or Inf: a target's zeros stay exact where it does not take g, its sums
  // take the NaN and Inf where it does.
  const auto g = test_values<T>(n, 4, 37);

  std::vector<T> y(n);
  select_forward_cpu(dtype_of<T>(), plan, cond.data(), a.data(), b.data(), y.data(), runner);
  for (int64 i = 0; i < n; ++i) {
    const bool c = cond[offset_in(out, s.cond, i)] != 0;
    const T want = c ? a[offset_in(out, s.a, i)] : b[offset_in(out, s.b, i)];
    CHECK(bits_of(y[i]) == bits_of(want)) << str(s) << " at " << i;
  }

  // Reference gradients: sums over the broadcast dimensions, and the magnitude of their terms.
  std::vector<long double> ra(a.size(), 0.0L), rb(b.size(), 0.0L);
  std::vector<long double> ma(a.size(), 0.0L), mb(b.size(), 0.0L);
  for (int64 i = 0; i < n; ++i) {
    const bool c = cond[offset_in(out, s.cond, i)] != 0;
    std::vector<long double>& sum = c ? ra : rb;
    std::vector<long double>& mag = c ? ma : mb;
    const int64 j = offset_in(out, c ? s.a : s.b, i);
    sum[j] += g[i];
    if (std::isfinite(static_cast<double>(g[i]))) mag[j] += std::abs(static_cast<double>(g[i]));
  }
  std::vector<T> ga(a.size()), gb(b.size());
  select_backward_cpu(dtype_of<T>(), plan, cond.data(), g.data(), ga.data(), gb.data(), runner);
  auto check_grad = [&](const std::vector<T>& got, const std::vector<long double>& want,
                        const std::vector<long double>& mag, const Shape& shape, const char* name) {
    const bool full = numel(shape) == n;
    for (size_t j = 0; j < got.size(); ++j) {
      if (full) {  // one term: the bits of g, or +0
        const int64 i = static_cast<int64>(j);
        const bool take = (cond[offset_in(out, s.cond, i)] != 0) == (name[0] == 'a');
        CHECK(bits_of(got[j]) == (take ? bits_of(g[i]) : bits_of(T(0)))) << str(s) << name << j;
      } else {
        CHECK(close(got[j], static_cast<double>(want[j]), static_cast<double>(mag[j]), rtol<T>()))
            << str(s) << " grad " << name << "[" << j << "] = " << got[j] << ", want "
            << static_cast<double>(want[j]);
      }
    }
  };
  check_grad(ga, ra, ma, s.a, "a");
  check_grad(gb, rb, mb, s.b, "b");

  // One gradient only: the same values.
  std::vector<T> ga_only(a.size());
  select_backward_cpu(dtype_of<T>(), plan, cond.data(), g.data(), ga_only.data(), nullptr, runner);
  for (size_t j = 0; j < ga.size(); ++j) CHECK(bits_of(ga_only[j]) == bits_of(ga[j])) << str(s);

  // The contract of select_cpu.h: a full target may be g's own buffer.
  const BackwardTargets t = backward_targets(plan, true, true);
  if (t.a == Target::kFull) {
    std::vector<T> shared = g, gb2(b.size());
    select_backward_cpu(dtype_of<T>(), plan, cond.data(), shared.data(), shared.data(), gb2.data(),
                        runner);
    for (size_t j = 0; j < ga.size(); ++j) CHECK(bits_of(shared[j]) == bits_of(ga[j])) << str(s);
    for (size_t j = 0; j < gb.size(); ++j) CHECK(bits_of(gb2[j]) == bits_of(gb[j])) << str(s);
  }
}

template <class T>
std::vector<T> backward_bits(const Shapes& s, const CpuRunner& runner) {
  SelectPlan plan{};
  Shape out;
  std::string error;
  make_select_plan(s.cond, s.a, s.b, &plan, &out, &error);
  const auto cond = test_conditions(numel(s.cond), 5);
  const auto g = test_values<T>(numel(out), 6);
  std::vector<T> grads(numel(s.a) + numel(s.b));
  select_backward_cpu(dtype_of<T>(), plan, cond.data(), g.data(), grads.data(),
                      grads.data() + numel(s.a), runner);
  return grads;
}

}  // namespace

TEST(select_cpu, float32_matches_reference) {
  for (const Shapes& s : kCases) check_select<float>(s, SerialRunner());
}

TEST(select_cpu, float64_matches_reference_on_threads) {
  for (const Shapes& s : kCases) check_select<double>(s, ThreadsRunner(3));
}

TEST(select_cpu, sums_do_not_depend_on_the_thread_split) {
  for (const Shapes& s : kCases) {
    const auto serial = backward_bits<float>(s, SerialRunner());
    const auto threads = backward_bits<float>(s, ThreadsRunner(4));
    for (size_t j = 0; j < serial.size(); ++j) {
      CHECK(bits_of(serial[j]) == bits_of(threads[j])) << str(s) << " at " << j;
    }
  }
}

TEST(select_cpu, fill_missing_matches_reference) {
  const std::pair<Shape, Shape> cases[] = {{{4, 7}, {}}, {{4, 7}, {1, 7}}, {{3, 40000}, {3, 1}}};
  for (Missing missing : {Missing::kNaN, Missing::kNonFinite}) {
    for (const auto& [xs, vs] : cases) {
      SelectPlan plan{};
      std::string error;
      CHECK(make_fill_plan(xs, vs, &plan, &error)) << error;
      const int64 n = numel(xs);
      const auto x = test_values<double>(n, 7, 3);
      const auto v = test_values<double>(numel(vs), 8);
      const auto g = test_values<double>(n, 9, 11);
      auto is_missing = [&](double e) {
        return missing == Missing::kNaN ? std::isnan(e) : !std::isfinite(e);
      };
      std::vector<double> y(n), gv(v.size()), gx(n);
      fill_missing_forward_cpu(DType::kFloat64, missing, plan, x.data(), v.data(), y.data(),
                               ThreadsRunner(2));
      fill_missing_backward_cpu(DType::kFloat64, missing, plan, x.data(), g.data(), gv.data(),
                                gx.data(), ThreadsRunner(2));
      std::vector<long double> want(v.size(), 0.0L), mag(v.size(), 0.0L);
      for (int64 i = 0; i < n; ++i) {
        const bool m = is_missing(x[i]);
        const int64 j = offset_in(xs, vs, i);
        CHECK(bits_of(y[i]) == bits_of(m ? v[j] : x[i])) << shape_str(xs) << " at " << i;
        CHECK(bits_of(gx[i]) == bits_of(m ? 0.0 : g[i])) << shape_str(xs) << " at " << i;
        if (m) {
          want[j] += g[i];
          if (std::isfinite(g[i])) mag[j] += std::abs(g[i]);
        }
      }
      for (size_t j = 0; j < gv.size(); ++j) {
        CHECK(close(gv[j], static_cast<double>(want[j]), static_cast<double>(mag[j]), 1e-13))
            << shape_str(vs) << " grad value[" << j << "]";
      }
    }
  }
}
