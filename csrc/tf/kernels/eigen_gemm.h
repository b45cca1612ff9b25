// EigenGemm: the CpuGemm of the CPU masked_dense layer (csrc/kernels/masked_dense_cpu.h).
// EIGEN_USE_THREADS (the contraction on a thread pool) is defined for the whole op library
// (csrc/tf/CMakeLists.txt).
#pragma once

#include "masked_dense_cpu.h"
#include "unsupported/Eigen/CXX11/Tensor"

namespace safeops {
namespace tf {

// The GEMM of the CPU layer (csrc/kernels/masked_dense_cpu.h): Eigen's contraction on a thread
// pool (an OpKernel's intra-op pool; the XLA host target's own).
class EigenGemm : public CpuGemm {
 public:
  explicit EigenGemm(const Eigen::ThreadPoolDevice& device) : device_(device) {}
  void operator()(bool trans_a, bool trans_b, int64 M, int64 N, int64 K, const float* a,
                  const float* b, float* c) const override {
    run(trans_a, trans_b, M, N, K, a, b, c);
  }
  void operator()(bool trans_a, bool trans_b, int64 M, int64 N, int64 K, const double* a,
                  const double* b, double* c) const override {
    run(trans_a, trans_b, M, N, K, a, b, c);
  }

 private:
  template <class A>
  void run(bool trans_a, bool trans_b, int64 M, int64 N, int64 K, const A* a, const A* b,
           A* c) const {
    using ConstMatrix =
        Eigen::TensorMap<Eigen::Tensor<const A, 2, Eigen::RowMajor>, Eigen::Unaligned>;
    using Matrix = Eigen::TensorMap<Eigen::Tensor<A, 2, Eigen::RowMajor>, Eigen::Unaligned>;
    const ConstMatrix am = trans_a ? ConstMatrix(a, K, M) : ConstMatrix(a, M, K);
    const ConstMatrix bm = trans_b ? ConstMatrix(b, N, K) : ConstMatrix(b, K, N);
    const Eigen::array<Eigen::IndexPair<int>, 1> contract = {
        Eigen::IndexPair<int>(trans_a ? 0 : 1, trans_b ? 1 : 0)};
    Matrix(c, M, N).device(device_) = am.contract(bm, contract);
  }

  const Eigen::ThreadPoolDevice& device_;
};

}  // namespace tf
}  // namespace safeops
