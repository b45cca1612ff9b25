// The CPU pieces of masked_dense (masked_dense_cpu.h, indicator_cpu.h) against float64 formulas
// written out here: the row prologue and its gradient, the bias + activation epilogue and its
// backward.
#include <cmath>
#include <cstring>
#include <vector>

#include "check.h"
#include "indicator_cpu.h"
#include "masked_dense_cpu.h"
#include "reference.h"

using namespace safeops;
using namespace safeops_test;

namespace {

const int64 kRows = 300, kK = 13, kN = 9;  // more rows than one bias-gradient chunk (256)

bool missing_of(Missing m, double v) {
  return m == Missing::kNaN ? std::isnan(v) : !std::isfinite(v);
}

double row_scale(Missing m, bool renormalize, const double* row, int64 K) {
  if (!renormalize) return 1.0;
  int64 obs = 0;
  for (int64 k = 0; k < K; ++k) obs += !missing_of(m, row[k]);
  return obs > 0 ? static_cast<double>(K) / static_cast<double>(obs) : 0.0;
}

double act(Activation a, double z) {
  switch (a) {
    case Activation::kRelu:
      return z > 0 ? z : std::isnan(z) ? z : 0.0;
    case Activation::kGelu:
      return 0.5 * z * (1.0 + std::erf(z / std::sqrt(2.0)));
    case Activation::kSigmoid:
      return 1.0 / (1.0 + std::exp(-z));
    case Activation::kTanh:
      return std::tanh(z);
    case Activation::kSilu:
      return z / (1.0 + std::exp(-z));
    case Activation::kLinear:
      break;
  }
  return z;
}

// act'(z) from z itself (the kernels take y or z as saved_for says).
double act_grad(Activation a, double z) {
  const double s = 1.0 / (1.0 + std::exp(-z));
  const double pi = 3.14159265358979323846;
  switch (a) {
    case Activation::kRelu:
      return z > 0 ? 1.0 : 0.0;
    case Activation::kGelu:
      return 0.5 * (1.0 + std::erf(z / std::sqrt(2.0))) +
             z * std::exp(-0.5 * z * z) / std::sqrt(2 * pi);
    case Activation::kSigmoid:
      return s * (1.0 - s);
    case Activation::kTanh:
      return 1.0 - std::tanh(z) * std::tanh(z);
    case Activation::kSilu:
      return s * (1.0 + z * (1.0 - s));
    case Activation::kLinear:
      break;
  }
  return 1.0;
}

const Activation kActivations[] = {Activation::kLinear,  Activation::kRelu, Activation::kGelu,
                                   Activation::kSigmoid, Activation::kTanh, Activation::kSilu};

}  // namespace

TEST(masked_dense_cpu, prologue_and_its_gradient) {
  const auto x = test_values<double>(kRows * kK, 11, 4);  // NaN, +-Inf and -0 in every row
  const auto dxs = test_values<double>(kRows * 2 * kK, 12, 5);
  for (Missing m : {Missing::kNaN, Missing::kNonFinite}) {
    for (bool renormalize : {false, true}) {
      for (bool indicator : {false, true}) {
        const int64 width = indicator ? 2 * kK : kK;
        std::vector<double> xs(kRows * width), dx(kRows * kK);
        masked_input_forward_cpu(DType::kFloat64, m, renormalize, kRows, kK, x.data(), xs.data(),
                                 false, ThreadsRunner(2), indicator);
        masked_input_backward_cpu(DType::kFloat64, m, renormalize, kRows, kK, x.data(), dxs.data(),
                                  false, dx.data(), ThreadsRunner(2), indicator);
        for (int64 r = 0; r < kRows; ++r) {
          const double* row = &x[r * kK];
          const double s = row_scale(m, renormalize, row, kK);
          for (int64 k = 0; k < kK; ++k) {
            const bool miss = missing_of(m, row[k]);
            const double want = miss ? 0.0 : renormalize ? s * row[k] : row[k];
            // Without renormalisation an exact copy (-0 included); masked entries are +0.
            CHECK(bits_of(xs[r * width + k]) == bits_of(want)) << r << "," << k;
            if (indicator) {
              CHECK(xs[r * width + kK + k] == (miss ? 1.0 : 0.0)) << r << "," << k;
            }
            const double dwant = miss ? 0.0 : s * dxs[r * width + k];
            CHECK(bits_of(dx[r * kK + k]) == bits_of(dwant)) << r << "," << k;
          }
        }
      }
    }
  }
}

TEST(masked_dense_cpu, epilogue_and_its_backward) {
  const auto mm = test_values<double>(kRows * kN, 13);
  const auto bias = test_values<double>(kN, 14);
  const auto g = test_values<double>(kRows * kN, 15);
  for (Activation a : kActivations) {
    std::vector<double> y(kRows * kN), z(kRows * kN), dz(kRows * kN), db(kN);
    bias_activation_cpu(DType::kFloat64, a, kRows, kN, mm.data(), false, bias.data(), y.data(),
                        z.data(), ThreadsRunner(3));
    const Saved saved = saved_for(a);
    const double* kept = saved == Saved::kPreActivation ? z.data() : y.data();
    activation_backward_cpu(DType::kFloat64, a, kRows, kN, kept, g.data(), dz.data(), false,
                            db.data(), ThreadsRunner(3));
    std::vector<double> want_db(kN, 0.0), mag_db(kN, 0.0);
    for (int64 i = 0; i < kRows * kN; ++i) {
      const double zz = mm[i] + bias[i % kN];
      CHECK(z[i] == zz) << "z at " << i;
      // Scaled by |z| as well: gelu's 1 + erf(z / sqrt 2) cancels for negative z.
      CHECK(close(y[i], act(a, zz), std::abs(zz) + std::abs(act(a, zz)), 1e-14))
          << static_cast<int>(a) << " y at " << i << ": " << y[i];
      const double d = g[i] * act_grad(a, zz);
      CHECK(close(dz[i], d, std::abs(g[i]), 1e-13))
          << static_cast<int>(a) << " dz at " << i << ": " << dz[i] << " want " << d;
      want_db[i % kN] += d;
      mag_db[i % kN] += std::abs(d);
    }
    for (int64 n = 0; n < kN; ++n) {
      CHECK(close(db[n], want_db[n], mag_db[n], 1e-13)) << static_cast<int>(a) << " db " << n;
    }
  }
}

TEST(masked_dense_cpu, float32_epilogue_rounds_once) {
  const auto mm = test_values<float>(kRows * kN, 16);
  const auto bias = test_values<float>(kN, 17);
  std::vector<float> y(kRows * kN);
  bias_activation_cpu(DType::kFloat32, Activation::kTanh, kRows, kN, mm.data(), false, bias.data(),
                      y.data(), nullptr, SerialRunner());
  for (int64 i = 0; i < kRows * kN; ++i) {
    const double want = std::tanh(static_cast<double>(mm[i] + bias[i % kN]));
    CHECK(close(y[i], want, std::abs(want), 1e-6)) << i;
  }
}

// ---- the indicator epilogue (indicator_cpu.h) -----------------------------------------------

namespace {

// Every vector level this CPU runs (baseline first).
std::vector<CpuIsa> isa_levels() {
  std::vector<CpuIsa> levels;
  for (int i = 0; i <= static_cast<int>(best_cpu_isa()); ++i) levels.push_back(CpuIsa(i));
  return levels;
}

struct IndicatorOut {
  std::vector<double> y, z, dz, db, du;
};

IndicatorOut run_indicator(const IndicatorCpuArgs& a, const std::vector<double>& mm,
                           const std::vector<double>& x, const std::vector<double>& u,
                           const std::vector<double>& bias, const std::vector<double>& g,
                           const CpuRunner& runner) {
  const int64 out = a.rows * a.N;
  IndicatorOut o{std::vector<double>(out), std::vector<double>(out), std::vector<double>(out),
                 std::vector<double>(a.N, -1.0), std::vector<double>(a.K * a.N, -1.0)};
  std::vector<char> fws(indicator_forward_workspace_cpu(a));
  std::vector<char> bws(indicator_backward_workspace_cpu(a));
  indicator_forward_cpu(a, mm.data(), x.data(), u.data(), bias.data(), o.y.data(), o.z.data(),
                        fws.data(), runner);
  const double* kept = saved_for(a.activation) == Saved::kPreActivation ? o.z.data() : o.y.data();
  indicator_backward_cpu(a, x.data(), kept, g.data(), o.dz.data(), o.db.data(), o.du.data(),
                         bws.data(), runner);
  return o;
}

bool same_bits(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (bits_of(a[i]) != bits_of(b[i])) return false;
  }
  return true;
}

}  // namespace

TEST(masked_dense_cpu, isa_names) {
  CpuIsa isa = CpuIsa::kAvx2;
  CHECK(parse_cpu_isa("baseline", &isa) && isa == CpuIsa::kBaseline);
  CHECK(parse_cpu_isa("avx512", &isa) && isa == CpuIsa::kAvx512);
  CHECK(!parse_cpu_isa("sse9", &isa));
  for (CpuIsa level : isa_levels()) {
    CHECK(parse_cpu_isa(cpu_isa_name(level), &isa) && isa == level) << cpu_isa_name(level);
  }
}

// z = mm + bias + the rows of U where x is missing (in that order: exact in float64 against the
// same sums), y = act(z); dz = g act'(z), db = sum_rows(dz), dU = m^T @ dz. Rows over several
// backward chunks, N not a multiple of any vector width, a row with every feature missing, a
// feature missing in that row only (its dU row is that row's dz); every level and thread split
// bit-identical.
TEST(masked_dense_cpu, indicator_epilogue_and_its_backward) {
  const int64 rows = 600, K = kK;
  auto x = test_values<double>(rows * K, 21, 4);     // NaN, +-Inf and -0 in every row
  for (int64 r = 0; r < rows; ++r) x[r * K] = 0.5;   // feature 0 observed but in row 7
  for (int64 k = 0; k < K; ++k) x[7 * K + k] = NAN;  // row 7: every feature missing
  for (int64 N : {int64{9}, int64{37}}) {
    const auto mm = test_values<double>(rows * N, 22), u = test_values<double>(K * N, 23);
    const auto bias = test_values<double>(N, 24), g = test_values<double>(rows * N, 25);
    for (Missing m : {Missing::kNaN, Missing::kNonFinite}) {
      for (Activation act_kind : kActivations) {
        IndicatorCpuArgs a{DType::kFloat64, m, act_kind, CpuIsa::kBaseline, rows, K, N};
        const IndicatorOut base = run_indicator(a, mm, x, u, bias, g, SerialRunner());
        std::vector<double> want_db(N, 0.0), mag_db(N, 0.0), want_du(K * N, 0.0),
            mag_du(K * N, 0.0);
        for (int64 r = 0; r < rows; ++r) {
          for (int64 n = 0; n < N; ++n) {
            const int64 i = r * N + n;
            double zz = mm[i] + bias[n];
            for (int64 k = 0; k < K; ++k) zz += missing_of(m, x[r * K + k]) ? u[k * N + n] : 0.0;
            CHECK(bits_of(base.z[i]) == bits_of(zz)) << "z at " << i << ": " << base.z[i];
            CHECK(close(base.y[i], act(act_kind, zz), std::abs(zz) + std::abs(act(act_kind, zz)),
                        1e-14))
                << static_cast<int>(act_kind) << " y at " << i;
            const double d = g[i] * act_grad(act_kind, zz);
            CHECK(close(base.dz[i], d, std::abs(g[i]), 1e-13)) << "dz at " << i;
            want_db[n] += d;
            mag_db[n] += std::abs(d);
            for (int64 k = 0; k < K; ++k) {
              if (!missing_of(m, x[r * K + k])) continue;
              want_du[k * N + n] += d;
              mag_du[k * N + n] += std::abs(d);
            }
          }
        }
        for (int64 n = 0; n < N; ++n) {
          CHECK(close(base.db[n], want_db[n], mag_db[n], 1e-13)) << "db " << n;
          // Feature 0 is missing in row 7 only: a one-term sum, dz's own bits.
          CHECK(bits_of(base.du[n]) == bits_of(base.dz[7 * N + n])) << "dU[0] " << n;
        }
        for (int64 i = 0; i < K * N; ++i) {
          CHECK(close(base.du[i], want_du[i], mag_du[i], 1e-13)) << "dU " << i;
        }
        for (CpuIsa isa : isa_levels()) {
          a.isa = isa;
          const IndicatorOut o = run_indicator(a, mm, x, u, bias, g, ThreadsRunner(3));
          CHECK(same_bits(o.y, base.y) && same_bits(o.z, base.z) && same_bits(o.dz, base.dz) &&
                same_bits(o.db, base.db) && same_bits(o.du, base.du))
              << cpu_isa_name(isa) << " N=" << N << " act " << static_cast<int>(act_kind);
        }
      }
    }
  }
}

// float32 (the CPU path's dtype for float32 and float16): every level and thread split gives the
// same bits, and no rows gives zero sums.
TEST(masked_dense_cpu, indicator_epilogue_float32_levels_agree) {
  const int64 rows = 700, K = 70, N = 45;
  const auto x = test_values<float>(rows * K, 31, 3);
  const auto mm = test_values<float>(rows * N, 32), u = test_values<float>(K * N, 33);
  const auto bias = test_values<float>(N, 34), g = test_values<float>(rows * N, 35);
  std::vector<float> first_y, first_du;
  for (CpuIsa isa : isa_levels()) {
    const IndicatorCpuArgs a{DType::kFloat32, Missing::kNaN, Activation::kRelu, isa, rows, K, N};
    std::vector<float> y(rows * N), dz(rows * N), db(N), du(K * N);
    std::vector<char> fws(indicator_forward_workspace_cpu(a)),
        bws(indicator_backward_workspace_cpu(a));
    indicator_forward_cpu(a, mm.data(), x.data(), u.data(), bias.data(), y.data(), nullptr,
                          fws.data(), ThreadsRunner(2));
    indicator_backward_cpu(a, x.data(), y.data(), g.data(), dz.data(), db.data(), du.data(),
                           bws.data(), ThreadsRunner(2));
    if (first_y.empty()) {
      first_y = y;
      first_du = du;
    }
    CHECK(std::memcmp(y.data(), first_y.data(), y.size() * 4) == 0) << cpu_isa_name(isa);
    CHECK(std::memcmp(du.data(), first_du.data(), du.size() * 4) == 0) << cpu_isa_name(isa);
  }
  const IndicatorCpuArgs none{
      DType::kFloat32, Missing::kNaN, Activation::kLinear, best_cpu_isa(), 0, K, N};
  std::vector<float> db(N, -1.0f), du(K * N, -1.0f);
  std::vector<char> bws(indicator_backward_workspace_cpu(none));
  indicator_backward_cpu(none, nullptr, nullptr, nullptr, nullptr, db.data(), du.data(), bws.data(),
                         SerialRunner());
  for (float v : db) CHECK(bits_of(v) == 0) << v;
  for (float v : du) CHECK(bits_of(v) == 0) << v;
}

// NaN policy: a NaN in U reaches every row of its column (the GEMM's 0 * NaN), an Inf gives
// +-Inf where its feature is missing and NaN (0 * Inf) where it is observed; other columns are
// untouched.
TEST(masked_dense_cpu, indicator_epilogue_nonfinite_weights) {
  const int64 rows = 40, K = 5, N = 20;
  auto x = test_values<double>(rows * K, 41);
  for (int64 r = 0; r < rows; r += 3) x[r * K + 2] = NAN;  // feature 2 missing in some rows
  const auto mm = test_values<double>(rows * N, 42), bias = test_values<double>(N, 43);
  auto u = test_values<double>(K * N, 44);
  u[0 * N + 3] = NAN;
  u[2 * N + 7] = INFINITY;
  for (CpuIsa isa : isa_levels()) {
    const IndicatorCpuArgs a{DType::kFloat64, Missing::kNaN, Activation::kLinear, isa, rows, K, N};
    std::vector<double> y(rows * N);
    std::vector<char> ws(indicator_forward_workspace_cpu(a));
    indicator_forward_cpu(a, mm.data(), x.data(), u.data(), bias.data(), y.data(), nullptr,
                          ws.data(), SerialRunner());
    for (int64 r = 0; r < rows; ++r) {
      const bool miss2 = r % 3 == 0;
      CHECK(std::isnan(y[r * N + 3])) << cpu_isa_name(isa) << " row " << r;
      CHECK(miss2 ? y[r * N + 7] == INFINITY : std::isnan(y[r * N + 7]))
          << r << ": " << y[r * N + 7];
      for (int64 n = 0; n < N; ++n) {
        if (n == 3 || n == 7) continue;
        const double want = mm[r * N + n] + bias[n] + (miss2 ? u[2 * N + n] : 0.0);
        CHECK(close(y[r * N + n], want, std::abs(want) + 1.0, 1e-15)) << r << "," << n;
      }
    }
  }
}
