// The CPU pieces of masked_dense (masked_dense_cpu.h) against float64 formulas written out
// here: the row prologue and its gradient, the bias + activation epilogue and its backward.
#include <cmath>
#include <vector>

#include "check.h"
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
