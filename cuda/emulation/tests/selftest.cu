// Self-test of the CUDA emulation: the semantics the kernels rely on (barriers, shuffles,
// votes, wmma, built-ins) in every resume order, and the failures it must report instead of
// hanging or passing. Built with the emulated kernels (target emulation_selftest) and run by
// tools/emulation_check.py; prints one line per check and exits non-zero on any failure.
#include <cuda_runtime.h>
#include <mma.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

int g_failures = 0;

void check(bool ok, const std::string& what) {
  std::printf("%s %s\n", ok ? "ok  " : "FAIL", what.c_str());
  if (!ok) ++g_failures;
}

// The launch failed with a diagnostic that contains `needle`.
void check_fails(const char* needle, const std::string& what) {
  const cudaError_t e = cudaGetLastError();
  const std::string msg = cudaGetErrorString(e);
  const bool ok = e != cudaSuccess && msg.find(needle) != std::string::npos;
  check(ok, what + (ok ? "" : " (got: " + msg + ")"));
}

bool launched_ok() { return cudaGetLastError() == cudaSuccess; }

// ---- kernels that must work -------------------------------------------------------------

// Block-wide reversal through shared memory, then a warp sum: needs the barrier.
__global__ void reverse_and_sum(int* out) {
  __shared__ int s[256];
  s[threadIdx.x] = threadIdx.x + 1000 * blockIdx.x;
  __syncthreads();
  int v = s[blockDim.x - 1 - threadIdx.x];
  for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
  if (threadIdx.x % 32 == 0) out[blockIdx.x * 8 + threadIdx.x / 32] = v;
}

// The same without the barrier: its result depends on the order the threads run in.
__global__ void reverse_without_barrier(int* out) {
  __shared__ int s[256];
  s[threadIdx.x] = threadIdx.x;
  out[threadIdx.x] = s[blockDim.x - 1 - threadIdx.x];
}

// Every shuffle kind at every width, and the votes: lane l contributes 100 + l.
__global__ void shuffles(int* out) {
  const int lane = threadIdx.x % 32, v = 100 + lane;
  int* o = out + threadIdx.x * 16;
  int k = 0;
  for (int width = 32; width >= 8; width /= 2) {
    o[k++] = __shfl_sync(0xffffffffu, v, 3, width);
    o[k++] = __shfl_up_sync(0xffffffffu, v, 2, width);
    o[k++] = __shfl_down_sync(0xffffffffu, v, 5, width);
    o[k++] = __shfl_xor_sync(0xffffffffu, v, 9, width);
  }
  o[k++] = static_cast<int>(__ballot_sync(0xffffffffu, lane % 3 == 0));
  o[k++] = __any_sync(0xffffffffu, lane == 7);
  o[k++] = __all_sync(0xffffffffu, lane < 31);
  __syncwarp();
  // Half warps with their own masks at once.
  const unsigned half = lane < 16 ? 0x0000ffffu : 0xffff0000u;
  o[k++] = __shfl_xor_sync(half, v, 1);
}

int shfl_want(int kind, int lane, int width, int param) {
  const int base = lane & ~(width - 1);
  int src = lane;
  if (kind == 0) src = base + (param & (width - 1));
  if (kind == 1) src = lane - param >= base ? lane - param : lane;
  if (kind == 2) src = lane + param < base + width ? lane + param : lane;
  if (kind == 3) src = (lane ^ param) < base + width ? lane ^ param : lane;
  return 100 + src;
}

// 2-D grid and 3-D blocks: every thread writes its coordinates once.
__global__ void coordinates(unsigned* out) {
  const unsigned block = blockIdx.x + gridDim.x * blockIdx.y;
  const unsigned t = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  const unsigned i = block * (blockDim.x * blockDim.y * blockDim.z) + t;
  out[i] = (blockIdx.x << 24) | (blockIdx.y << 16) | (threadIdx.x << 8) | (threadIdx.y << 4) |
           threadIdx.z;
}

// Shared memory a block has not written reads as 0xFF bytes, whatever an earlier block left.
__global__ void shared_poison(unsigned* out) {
  __shared__ unsigned s[32];
  if (blockIdx.x == 0) s[threadIdx.x] = 7;
  __syncthreads();
  out[blockIdx.x * 32 + threadIdx.x] = s[threadIdx.x];
}

template <class T, int K, class LayoutA, class LayoutB>
__global__ void wmma_gemm(const T* a, const T* b, float* c, int lda, int ldb) {
  using namespace nvcuda::wmma;
  using In = std::conditional_t<std::is_same<T, float>::value, precision::tf32, T>;
  fragment<matrix_a, 16, 16, K, In, LayoutA> fa;
  fragment<matrix_b, 16, 16, K, In, LayoutB> fb;
  fragment<accumulator, 16, 16, K, float> acc;
  fill_fragment(acc, 1.0f);
  load_matrix_sync(fa, a, lda);
  load_matrix_sync(fb, b, ldb);
  mma_sync(acc, fa, fb, acc);
  store_matrix_sync(c, acc, 16, mem_row_major);
}

// ---- kernels that must fail ---------------------------------------------------------------

__global__ void partial_barrier() {
  if (threadIdx.x < 128) __syncthreads();
}

__global__ void divergent_barriers() {
  if (threadIdx.x < 128) {
    __syncthreads();
  } else {
    __syncthreads();
  }
}

__global__ void deadlock() {
  if (threadIdx.x == 0) {
    __shfl_sync(0xffffffffu, 1, 0);
  } else {
    __syncthreads();
  }
}

__global__ void shfl_outside_mask(int* out) {
  if (threadIdx.x < 16) out[threadIdx.x] = __shfl_sync(0x0000ffffu, 1, threadIdx.x + 16);
}

__global__ void mask_leaves_caller_out() { __syncwarp(0x1u); }

__global__ void lane_exits_before_collective() {
  if (threadIdx.x == 5) return;
  __syncwarp();
}

__global__ void wmma_lane_pointer_differs(const __half* a) {
  using namespace nvcuda::wmma;
  fragment<matrix_a, 16, 16, 16, __half, row_major> fa;
  load_matrix_sync(fa, a + (threadIdx.x == 3 ? 16 : 0), 16);
}

__global__ void wmma_misaligned(const __half* a) {
  using namespace nvcuda::wmma;
  fragment<matrix_a, 16, 16, 16, __half, row_major> fa;
  load_matrix_sync(fa, a + 8, 16);
}

__global__ void empty_kernel() {}

// ---- checks -------------------------------------------------------------------------------

const char* const kOrders[] = {"forward", "reverse", "warps", "shuffle:7"};

void check_barrier_and_sum(const char* order) {
  std::vector<int> out(16);
  reverse_and_sum<<<2, 256>>>(out.data());
  bool ok = launched_ok();
  for (int b = 0; b < 2; ++b) {
    for (int w = 0; w < 8; ++w) {  // warp w reads s[255 - 32 w - 31 .. 255 - 32 w]
      int want = 0;
      for (int l = 0; l < 32; ++l) want += 255 - 32 * w - l + 1000 * b;
      ok = ok && out[b * 8 + w] == want;
    }
  }
  check(ok, std::string("__syncthreads and __shfl_down_sync (") + order + ")");
}

void check_shuffles(const char* order) {
  std::vector<int> out(64 * 16);
  shuffles<<<1, 64>>>(out.data());
  bool ok = launched_ok();
  for (int t = 0; t < 64; ++t) {
    const int lane = t % 32, *o = &out[t * 16];
    int k = 0;
    for (int width = 32; width >= 8; width /= 2) {
      const int params[4] = {3, 2, 5, 9};
      for (int kind = 0; kind < 4; ++kind)
        ok = ok && o[k++] == shfl_want(kind, lane, width, params[kind]);
    }
    unsigned ballot = 0;
    for (int l = 0; l < 32; l += 3) ballot |= 1u << l;
    ok = ok && static_cast<unsigned>(o[k++]) == ballot && o[k++] == 1 && o[k++] == 0;
    ok = ok && o[k++] == 100 + (lane ^ 1);
  }
  check(ok,
        std::string("shuffles with widths, votes, __syncwarp, half-warp masks (") + order + ")");
}

void check_coordinates() {
  std::vector<unsigned> out(3 * 2 * 4 * 3 * 2, 0xffffffffu);
  coordinates<<<dim3(3, 2), dim3(4, 3, 2)>>>(out.data());
  bool ok = launched_ok();
  std::size_t i = 0;
  for (unsigned by = 0; by < 2; ++by)
    for (unsigned bx = 0; bx < 3; ++bx)
      for (unsigned tz = 0; tz < 2; ++tz)
        for (unsigned ty = 0; ty < 3; ++ty)
          for (unsigned tx = 0; tx < 4; ++tx)
            ok = ok && out[i++] == ((bx << 24) | (by << 16) | (tx << 8) | (ty << 4) | tz);
  static_assert(std::is_same<decltype(threadIdx.x), unsigned int>::value, "32-bit unsigned");
  static_assert(std::is_same<decltype(gridDim.x), unsigned int>::value, "32-bit unsigned");
  check(ok, "threadIdx/blockIdx/blockDim/gridDim on a 2-D grid of 3-D blocks");
}

void check_shared_poison() {
  std::vector<unsigned> out(4 * 32);
  shared_poison<<<4, 32>>>(out.data());
  bool ok = launched_ok();
  for (int b = 0; b < 4; ++b) {
    for (int t = 0; t < 32; ++t) ok = ok && out[b * 32 + t] == (b == 0 ? 7u : 0xffffffffu);
  }
  check(ok, "__shared__ memory not written by the block reads as 0xFF bytes");
}

float to_float(float v) { return v; }
float to_float(__half v) { return __half2float(v); }
float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }

template <class T, int K, class LA, class LB>
void check_wmma(const char* what) {
  const bool a_col = std::is_same<LA, nvcuda::wmma::col_major>::value;
  const bool b_col = std::is_same<LB, nvcuda::wmma::col_major>::value;
  alignas(32) T a[16 * 16], b[16 * 16];
  alignas(32) float c[16 * 16];
  for (int i = 0; i < 256; ++i) {
    a[i] = T(static_cast<float>((i * 7) % 11) - 5.0f + (std::is_same<T, float>::value ? 1e-4f : 0));
    b[i] = T(static_cast<float>((i * 5) % 13) - 6.0f);
  }
  wmma_gemm<T, K, LA, LB><<<1, 32>>>(a, b, c, 16, 16);
  bool ok = launched_ok();
  for (int i = 0; i < 16; ++i) {
    for (int j = 0; j < 16; ++j) {
      double want = 1.0;
      for (int k = 0; k < K; ++k) {
        float av = to_float(a_col ? a[k * 16 + i] : a[i * 16 + k]);
        const float bv = to_float(b_col ? b[j * 16 + k] : b[k * 16 + j]);
        if (std::is_same<T, float>::value) {  // the hardware reads 19 bits of each float
          std::uint32_t u;
          std::memcpy(&u, &av, 4);
          u &= 0xffffe000u;
          std::memcpy(&av, &u, 4);
        }
        want += static_cast<double>(av) * bv;
      }
      ok = ok && c[i * 16 + j] == static_cast<float>(want);
    }
  }
  check(ok, std::string("wmma ") + what);
}

void check_tf32_rounding() {
  // cvt.rna: to nearest, ties away from zero, on the 13 dropped bits.
  auto bits = [](float f) {
    std::uint32_t u;
    std::memcpy(&u, &f, 4);
    return u;
  };
  auto from = [](std::uint32_t u) {
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  };
  using nvcuda::wmma::__float_to_tf32;
  const bool ok = bits(__float_to_tf32(from(0x3f800fffu))) == 0x3f800000u &&
                  bits(__float_to_tf32(from(0x3f801000u))) == 0x3f802000u &&  // tie: away
                  bits(__float_to_tf32(from(0xbf801000u))) == 0xbf802000u &&
                  std::isnan(__float_to_tf32(from(0x7f800001u))) &&
                  bits(__float_to_tf32(from(0x7f800000u))) == 0x7f800000u;
  check(ok, "__float_to_tf32 rounds to nearest, ties away from zero");
}

void check_failures() {
  partial_barrier<<<1, 256>>>();
  check_fails("reached by part of the block", "a barrier reached by part of the block fails");
  divergent_barriers<<<1, 256>>>();
  check_fails("different barriers", "threads at different __syncthreads fail");
  deadlock<<<1, 64>>>();
  check_fails("deadlock", "a deadlock fails");
  std::vector<int> out(32);
  shfl_outside_mask<<<1, 32>>>(out.data());
  check_fails("outside the shuffle's mask", "a shuffle from a lane outside the mask fails");
  mask_leaves_caller_out<<<1, 32>>>();
  check_fails("whose mask leaves it out", "a collective whose mask leaves the caller out fails");
  lane_exits_before_collective<<<1, 32>>>();
  check_fails("ended", "a collective waiting for an ended lane fails");
  alignas(32) __half a[16 * 32] = {};
  wmma_lane_pointer_differs<<<1, 32>>>(a);
  check_fails("every lane must pass the same matrix", "wmma lanes with different pointers fail");
  wmma_misaligned<<<1, 32>>>(a);
  check_fails("not 256-bit aligned", "a misaligned wmma pointer fails");
  empty_kernel<<<1, 2048>>>();
  check_fails("outside 1..1024 threads", "a block of 2048 threads is refused");
  empty_kernel<<<1, 32>>>();
  check(launched_ok(), "the next launch runs again");
}

}  // namespace

int main() {
  std::vector<int> first(256);
  for (const char* order : kOrders) {
    setenv("SAFEOPS_EMU_ORDER", order, 1);
    check_barrier_and_sum(order);
    check_shuffles(order);
    std::vector<int> out(256);
    reverse_without_barrier<<<1, 256>>>(out.data());
    if (order == kOrders[0]) first = out;
    if (order == kOrders[1]) {
      check(out != first, "a missing barrier changes the result between forward and reverse");
    }
  }
  setenv("SAFEOPS_EMU_ORDER", "sideways", 1);
  empty_kernel<<<1, 32>>>();
  check_fails("expected forward, reverse, warps or shuffle", "an unknown order is refused");
  unsetenv("SAFEOPS_EMU_ORDER");
  check_coordinates();
  check_shared_poison();
  using nvcuda::wmma::col_major;
  using nvcuda::wmma::row_major;
  check_wmma<__half, 16, row_major, col_major>("m16n16k16 half, A row-major, B col-major");
  check_wmma<__half, 16, col_major, row_major>("m16n16k16 half, A col-major, B row-major");
  check_wmma<__nv_bfloat16, 16, row_major, row_major>("m16n16k16 bfloat16");
  check_wmma<float, 8, row_major, col_major>("m16n16k8 tf32 (inputs truncated to 19 bits)");
  check_tf32_rounding();
  check_failures();
  std::printf("%s: %d failure(s)\n", g_failures ? "FAILED" : "passed", g_failures);
  return g_failures ? 1 : 0;
}
