// CUDA kernels of masked_dense (cuda/masked_dense.h; semantics in docs/design.md).
//
// Forward: one kernel. The block GEMM of masked_dense_gemm.cuh multiplies x by W with the
// missing entries of x replaced by 0 as they move from registers to shared memory, counting them
// per row on the way; its epilogue applies s, the bias and the activation and writes y (and z
// for gelu/silu) with 16-byte stores. No workspace. s is computed once per row, into shared
// memory, after the main loop (one division per row); each thread reads the bias of its one
// epilogue column once, as a 16-byte vector (docs/design.md, the fused epilogue).
//
// Forward with indicator weights U: z = s * (xf @ W) + m @ U + b is the GEMM
// [xf | m] @ [W; U] over 2K with s on the first half only. The block runs a second main loop
// over the same x tiles, turned into m ? 1 : 0 on their way to shared memory, against U, and
// accumulates onto the first; with renormalisation the accumulators of xf @ W are multiplied by
// s in between (scale_rows, through shared memory: s is known only once the first loop has
// counted the row's missing entries, and the wmma accumulator layout is unspecified). Why not
// fold s into the operands instead: s * xf or m / s rounded to the dtype is an extra rounding
// in float16 and bfloat16, the bound the tests hold the forward to has no room for it; and two
// sets of accumulators would double the accumulator registers of the 128 x 128 tiles. The
// cost is a second read of the x tile (from L2: it was read by the first loop) and, with
// renormalisation, one round trip of the accumulators through shared memory. Without U the
// kernel is the same template instantiation as before (kU = false): no extra code, registers
// or shared memory.
//
// Backward: dz is computed once, by an elementwise pre-pass, rather than inside the two GEMMs'
// operand loads. dz is an operand of both GEMMs (dx = s * (dz @ W^T) and dW = xf^T @ (s * dz)):
// fused loads would read g and the saved tensor twice and evaluate act' (erf/exp for gelu and
// silu) once per column tile of each GEMM; the pre-pass reads them once, evaluates act' once,
// and leaves one [rows, N] operand ds in the dtype, which the tensor cores take as it is.
//
// ds must not overflow where dx and dW are representable (docs/design.md). s * dz can: with
// renormalisation s = K / n_obs reaches K, and loss scaling puts g near the top of float16's
// range. So the power of two 2^a nearest above s moves onto x, where it is exact, and the
// activation's derivative bound c (derivative_bound, 1 or 2) is taken out of dz:
//   ds = s * dz / (c * 2^a)                  |ds| <= |g|: never overflows
//   dx = m ? 0 : (c * 2^a) * (ds @ W^T)      in the accumulation type (epilogue)
//   dW = c * ((2^a * xf)^T @ ds)             2^a * xf exact: a is lowered (per row) until
//                                            2^a * max|xf| < 2^kMaxExp
// ds is rounded once (relative error 2^-11 in float16, as s * dz was). Only a row whose x is too
// large to take all of 2^a keeps a factor s / 2^a > 1 in ds; its ds can overflow only where a
// single term |x s dz| of dW exceeds 2^(2 kMaxExp - 1) (float16: 2^29, 8192 times its range).
// The pre-pass also sums dz (unscaled, in the accumulation type) over row chunks: db's partial
// sums. For linear without renormalisation ds is g itself and the pre-pass only sums.
//   1. row_scale_kernel (renormalize only): s / (c 2^a) and 2^a per row -> workspace
//   2. dz_kernel: ds -> workspace, db partials -> workspace
//   3. dx_kernel: GEMM ds @ W^T, epilogue m ? 0 : c 2^a acc (x re-read for m)
//   4. dw_kernel: GEMM (2^a xf)^T @ ds per (row chunk, output tile) -> partials in workspace
//   5. reduce_kernel: dW (times c) and db from their partials, chunks summed in a fixed order
// With indicator weights U, dU = m^T @ dz = c * (m^T @ (dz / c)): step 2 also writes
// du_op = dz / c when renormalising (otherwise ds is already dz / c, or g for linear), step 4
// also runs dw_kernel with the A tiles turned into m ? 1 : 0 instead of 2^a xf against du_op
// (same row chunks, partials beside dW's), and step 5 reduces dU's partials like dW's (times
// c). dz / c never overflows (|dz| <= c |g|) and is rounded once, as ds is for dW; no float
// atomics, the same fixed chunk order.
// The row chunks depend on the shape only, so results are bit-identical run to run and GPU to
// GPU of the same architecture; no float atomics anywhere.
// Backward workspace (backward_layout, 256-byte aligned parts): s / (c 2^a) [rows] and 2^a
// [rows] (renormalize only) in the accumulation type, ds [rows, N] in the dtype (absent when ds
// is g), dW partials [dW chunks, K, N] and db partials [dz chunks, N] in the accumulation type;
// with U also du_op [rows, N] in the dtype (renormalise only) and dU partials [dW chunks, K, N].
// ds makes it about the size of g.
#include <cuda_runtime.h>

#include <algorithm>
#include <type_traits>

#include "masked_dense.h"
#include "masked_dense_gemm.cuh"
#include "static_switch.h"

namespace safeops {
namespace cuda {
namespace {

using md::BlockGemm;
using md::kGemmThreads;

template <int V>
using IntC = std::integral_constant<int, V>;

// ---------------------------------------------------------------------------------------
// Tile shapes, chosen from the problem shape alone.

struct TileShape {
  int bm, bn;
};

// Row-major outputs C[rows, cols] (forward: y, cols = N; backward: dx, cols = K): 64-wide
// tiles for narrow outputs, where 128 would be mostly padding. float64 runs 64 x 64 SIMT tiles.
TileShape out_tiles(DType dt, int64 cols) {
  if (dt == DType::kFloat64) return {64, 64};
  return {128, cols <= 64 ? 64 : 128};
}

// dW[K, N]: 64-row tiles for few features.
TileShape weight_tiles(DType dt, int64 K) {
  if (dt == DType::kFloat64) return {64, 64};
  return {K <= 64 ? 64 : 128, 128};
}

// Calls fn(IntC<BM>, IntC<BN>) for the tile shape t, which is 64 x 64 (float64), 128 x 128 or
// the kernel's one alternative kAltM x kAltN (only these are compiled).
template <class T, int kAltM, int kAltN, class Fn>
int with_tiles(TileShape t, Fn&& fn) {
  if constexpr (std::is_same<T, double>::value) {
    return fn(IntC<64>{}, IntC<64>{});
  } else {
    if (t.bm == kAltM && t.bn == kAltN) return fn(IntC<kAltM>{}, IntC<kAltN>{});
    return fn(IntC<128>{}, IntC<128>{});
  }
}

// Tensor cores for the half types always, for float32 when TF32 is allowed, never for float64.
template <class T, class Fn>
int with_tc(bool allow_tf32, Fn&& fn) {
  if constexpr (std::is_same<T, float>::value) {
    return allow_tf32 ? fn(std::true_type{}) : fn(std::false_type{});
  } else {
    return fn(std::bool_constant<!std::is_same<T, double>::value>{});
  }
}

// 16-byte vectors are used for a row-major [*, ld] matrix when its base is 16-byte aligned and
// every row starts aligned.
template <class T>
bool vec_ok(const T* p, int64 ld) {
  return aligned(p, 16) && ld % Vec<T>::N == 0;
}

int launch_grid(int64 blocks, int* grid) {
  if (blocks > 0x7fffffff) return static_cast<int>(cudaErrorInvalidConfiguration);
  *grid = static_cast<int>(blocks);
  return 0;
}

// ---------------------------------------------------------------------------------------
// Forward

template <class T>
struct FwdParams {
  const T* x;
  const T* w;
  const T* u;     // indicator weights, read when kU
  const T* bias;  // may be null
  T* y;
  T* z;  // written when the activation saves z
  int64 rows, K, N, tiles_n;
  Activation activation;
  bool renormalize, nonfinite, vec_x, vec_w, vec_u, vec_out, vec_bias;
};

// kU: z gains m @ U (see the top of this file).
template <class T, int BM, int BN, bool kTC, bool kU>
__global__ void __launch_bounds__(kGemmThreads,
                                  (BlockGemm<T, BM, BN, true, false, kTC>::kMinBlocks))
    forward_kernel(const FwdParams<T> p) {
  // A = x [rows, K] (k-contiguous), B = W [K, N] (n-contiguous).
  using G = BlockGemm<T, BM, BN, true, false, kTC>;
  using Acc = typename G::Acc;
  using V = Vec<T>;
  constexpr int kOV = V::N;
  __shared__ __align__(128) unsigned char smem[G::kSmemBytes];
  __shared__ Acc row_scale[BM];  // s per tile row (renormalize only)

  const int64 m0 = blockIdx.x / p.tiles_n * BM, n0 = blockIdx.x % p.tiles_n * BN;
  typename G::Mma mma;
  int missing[G::LoaderA::kPer];
  const typename G::Operand a{p.x, p.K, m0, p.rows, p.vec_x};
  const typename G::Operand b{p.w, p.N, n0, p.N, p.vec_w};
  G::template mainloop<md::MaskA::kCount>(mma, smem, a, b, 0, p.K, p.nonfinite, missing);
  // Read after the next barrier (the epilogue's or scale_rows' first).
  if (p.renormalize) G::publish_row_scale(missing, p.K, row_scale);
  if constexpr (kU) {
    // acc = s * acc, then acc += m @ U: the epilogue's s is 1.
    if (p.renormalize) G::scale_rows(mma, smem, row_scale);
    const typename G::Operand u{p.u, p.N, n0, p.N, p.vec_u};
    G::template mainloop<md::MaskA::kIndicator, true>(mma, smem, a, u, 0, p.K, p.nonfinite,
                                                      missing);
  }

  // The bias of this thread's epilogue column, read once. Without a bias it is -0, which adds
  // nothing to any value (x + -0 is x, -0 and NaN included; +0 would turn -0 into +0), so
  // every element takes the same addition.
  const int64 bias_col = n0 + G::epilogue_col();
  const int bias_cnt =
      static_cast<int>(max(static_cast<int64>(0), min(static_cast<int64>(kOV), p.N - bias_col)));
  uint4 bias;
  if (p.bias != nullptr) {
    bias = bias_cnt > 0 ? V::load(p.bias + bias_col, bias_cnt, p.vec_bias)
                        : make_uint4(0u, 0u, 0u, 0u);
  } else {
    Bits<T> nz[kOV];
#pragma unroll
    for (int e = 0; e < kOV; ++e) nz[e] = bit_cast<Bits<T>>(Traits<T>::from_acc(-Acc(0)));
    bias = V::pack(nz);
  }

  const Acc* s = !kU && p.renormalize ? row_scale : nullptr;  // null: 1
  // The activation is a run-time switch over six epilogues in one kernel rather than a template
  // parameter of the kernel: the main loops are compiled once per (T, tile, TC, U), not once
  // per activation too. This file's sm_90 code: 195 kernels and 44 s of compile CPU before,
  // 105 and 24 s after, each kernel with the registers its most demanding activation had (no
  // spills); the branch is uniform across the grid.
  dispatch_activation(p.activation, [&](auto act) {
    constexpr Activation kAct = decltype(act)::value;
    constexpr bool kSaveZ = saved_for(kAct) == Saved::kPreActivation;
    G::epilogue(mma, smem, s, [&](int r, int c, const Acc(&v)[kOV]) {
      const int64 row = m0 + r, col = n0 + c;
      if (row >= p.rows || col >= p.N) return;
      const int cnt = static_cast<int>(min(static_cast<int64>(kOV), p.N - col));
      T yv[kOV], zv[kOV];
#pragma unroll
      for (int e = 0; e < kOV; ++e) {
        // v is s * acc; past cnt the bias is 0 and the element is not stored.
        const Acc zz = v[e] + Traits<T>::to_acc(bit_cast<T>(V::get(bias, e)));
        zv[e] = Traits<T>::from_acc(zz);
        yv[e] = Traits<T>::from_acc(activate<kAct>(zz));
      }
      const int64 off = row * p.N + col;
      md::store_elems(p.y + off, yv, cnt, p.vec_out);
      if constexpr (kSaveZ) md::store_elems(p.z + off, zv, cnt, p.vec_out);
    });
  });
}

template <class T>
int forward_impl(const MaskedDenseArgs& args, const T* x, const T* w, const T* u, const T* bias,
                 T* y, T* z, cudaStream_t stream) {
  FwdParams<T> p{};
  p.x = x;
  p.w = w;
  p.u = u;
  p.bias = bias;
  p.y = y;
  p.z = z;
  p.rows = args.rows;
  p.K = args.K;
  p.N = args.N;
  p.renormalize = args.renormalize;
  p.nonfinite = args.missing == Missing::kNonFinite;
  p.vec_x = vec_ok(x, args.K);
  p.vec_w = vec_ok(w, args.N);
  p.vec_u = u != nullptr && vec_ok(u, args.N);
  p.vec_out = vec_ok(y, args.N) && (z == nullptr || vec_ok(z, args.N));
  p.vec_bias = bias != nullptr && aligned(bias, 16);
  p.activation = args.activation;
  return with_tc<T>(args.allow_tf32, [&](auto tc) {
    return with_tiles<T, 128, 64>(out_tiles(args.dtype, args.N), [&](auto bm, auto bn) {
      return bool_switch(
          [&](auto has_u) {
            constexpr int BM = decltype(bm)::value, BN = decltype(bn)::value;
            p.tiles_n = ceil_div(args.N, BN);
            int grid = 0;
            if (int e = launch_grid(ceil_div(args.rows, BM) * p.tiles_n, &grid)) return e;
            forward_kernel<T, BM, BN, decltype(tc)::value, decltype(has_u)::value>
                <<<grid, kGemmThreads, 0, stream>>>(p);
            return launch_status();
          },
          args.indicator && args.K > 0);
    });
  });
}

// ---------------------------------------------------------------------------------------
// Backward: workspace layout (one function sizes and carves it)

// dW's row chunks: enough (row chunk, output tile) blocks to fill a GPU, never fewer than
// kMinChunkRows rows a chunk. dz's row chunks (db partials): likewise for the pre-pass blocks.
constexpr int64 kDwTargetBlocks = 256;
constexpr int64 kMinChunkRows = 512;
constexpr int64 kDzTargetBlocks = 1024;
constexpr int64 kMinDzChunkRows = 64;

struct Split {
  int64 chunks, rows_per_chunk;
};

Split make_split(int64 rows, int64 parallel, int64 target, int64 min_rows) {
  if (rows <= 0) return {0, 0};
  const int64 want = std::max<int64>(1, ceil_div(target, std::max<int64>(parallel, 1)));
  const int64 chunks = std::min(want, std::max<int64>(1, ceil_div(rows, min_rows)));
  const int64 per = ceil_div(ceil_div(rows, chunks), 32) * 32;
  return {ceil_div(rows, per), per};
}

// dz pre-pass threads: tcol threads across 16-byte column groups (a power of two, at most one
// row of groups), 256 / tcol rows of threads.
struct DzShape {
  int tcol, strips;
};

DzShape dz_shape(DType dt, int64 N) {
  const int64 groups = ceil_div(N, 16 / dtype_size(dt));
  int tcol = 1;
  while (tcol < 256 && tcol < groups) tcol *= 2;
  return {tcol, static_cast<int>(ceil_div(groups, tcol))};
}

struct BackwardLayout {
  bool ds_is_g;      // linear without renormalisation: ds = g, nothing to write
  Split dw, dz;      // row chunks of dW's partials and of db's partials
  DzShape dzs;       // pre-pass block shape
  int64 dw_tiles_n;  // dW output tiles along N (and dw_tiles in total)
  int64 dw_tiles;
  bool du_op_is_ds;  // with U, without renormalisation: dU's operand dz / c is ds (or g)
  // byte offsets, size (du_op and du_partial: with U only)
  std::size_t ds_scale, x_scale, ds, du_op, dw_partial, du_partial, db_partial, total;
};

BackwardLayout backward_layout(const MaskedDenseArgs& a) {
  BackwardLayout l{};
  const std::size_t acc = a.dtype == DType::kFloat64 ? 8 : 4;
  const std::size_t t = static_cast<std::size_t>(dtype_size(a.dtype));
  l.ds_is_g = a.activation == Activation::kLinear && !a.renormalize;
  l.du_op_is_ds = !a.renormalize;
  if (a.rows <= 0 || a.N <= 0) return l;
  const TileShape wt = weight_tiles(a.dtype, a.K);
  l.dw_tiles_n = ceil_div(a.N, wt.bn);
  l.dw_tiles = ceil_div(a.K, wt.bm) * l.dw_tiles_n;
  l.dw = a.K > 0 ? make_split(a.rows, l.dw_tiles, kDwTargetBlocks, kMinChunkRows) : Split{0, 0};
  l.dzs = dz_shape(a.dtype, a.N);
  l.dz = make_split(a.rows, l.dzs.strips, kDzTargetBlocks, kMinDzChunkRows);
  std::size_t off = 0;
  const std::size_t per_row = a.renormalize ? round_up(static_cast<std::size_t>(a.rows) * acc) : 0;
  l.ds_scale = off;
  off += per_row;
  l.x_scale = off;
  off += per_row;
  l.ds = off;
  off += l.ds_is_g ? 0 : round_up(static_cast<std::size_t>(a.rows * a.N) * t);
  l.du_op = off;
  off += a.indicator && !l.du_op_is_ds ? round_up(static_cast<std::size_t>(a.rows * a.N) * t) : 0;
  l.dw_partial = off;
  off += round_up(static_cast<std::size_t>(l.dw.chunks * a.K * a.N) * acc);
  l.du_partial = off;
  off += a.indicator ? round_up(static_cast<std::size_t>(l.dw.chunks * a.K * a.N) * acc) : 0;
  l.db_partial = off;
  off += round_up(static_cast<std::size_t>(l.dz.chunks * a.N) * acc);
  l.total = off;
  return l;
}

// ---------------------------------------------------------------------------------------
// Backward kernels

// The exponent a of 2^a, the factor the backward moves from s * dz onto x (see the top of this
// file): the least a with s <= 2^a, lowered until 2^a * xmax < 2^kMaxExp (xmax: the row's
// largest observed |x|), never below 0. Per row, so double costs nothing.
template <class T>
__device__ int x_exponent(double s, double xmax) {
  if (!(s > 1.0)) return 0;  // s is 0 (nothing observed) or 1
  int a = ilogb(s);
  if (s > ldexp(1.0, a)) ++a;
  // xmax < 2^(ilogb(xmax) + 1), so 2^a xmax < 2^kMaxExp; an Inf x (data under "nan") gives 0.
  if (xmax > 0.0) a = min(a, Traits<T>::kMaxExp - 1 - ilogb(xmax));
  return max(a, 0);
}

template <class T>
struct RowScaleParams {
  using Acc = typename Traits<T>::Acc;
  const T* x;
  Acc* ds_scale;  // [rows] s / (c 2^a)
  Acc* x_scale;   // [rows] 2^a
  int64 rows, K;
  int c;  // derivative_bound
  bool nonfinite, vec;
};

// Per row, one warp per row: s / (c 2^a) (ds_scale, c = derivative_bound) and 2^a (x_scale).
template <class T>
__global__ void __launch_bounds__(kThreads) row_scale_kernel(const RowScaleParams<T> p) {
  using Acc = typename Traits<T>::Acc;
  using V = Vec<T>;
  const T* x = p.x;
  const int64 rows = p.rows, K = p.K;
  const bool nonfinite = p.nonfinite, vec = p.vec;
  const int lane = threadIdx.x % 32;
  const int64 warps = grid_threads() / 32;
  for (int64 r = global_thread() / 32; r < rows; r += warps) {
    int n = 0;
    Acc xmax = Acc(0);
    for (int64 k = lane * V::N; k < K; k += 32 * V::N) {
      const int cnt = static_cast<int>(min(static_cast<int64>(V::N), K - k));
      const uint4 v = V::load(x + r * K + k, cnt, vec);
#pragma unroll
      for (int e = 0; e < V::N; ++e) {
        const bool m = md::missing_bits<T>(V::get(v, e), nonfinite);
        n += (e < cnt && m);
        // Zeros past cnt do not change the maximum.
        const Acc xv = Traits<T>::to_acc(bit_cast<T>(V::get(v, e)));
        xmax = m ? xmax : max(xmax, xv < Acc(0) ? -xv : xv);
      }
    }
    for (int off = 16; off > 0; off >>= 1) {
      n += __shfl_xor_sync(0xffffffffu, n, off);
      xmax = max(xmax, __shfl_xor_sync(0xffffffffu, xmax, off));
    }
    if (lane == 0) {
      const Acc s = md::renorm_scale<Acc>(K, K - n);
      const Acc f = static_cast<Acc>(ldexp(1.0, x_exponent<T>(s, xmax)));
      p.ds_scale[r] = s / (static_cast<Acc>(p.c) * f);  // exact: c f is a power of two
      p.x_scale[r] = f;
    }
  }
}

template <class T>
struct DzParams {
  using Acc = typename Traits<T>::Acc;
  const T* g;
  const T* saved;       // null for linear
  const Acc* ds_scale;  // s / (c 2^a) per row; null without renormalisation: 1 / c
  Acc inv_c;
  T* ds;            // written when kWriteDs
  T* du;            // dz / c, written when kWriteDu
  Acc* db_partial;  // [dz chunks, N]
  int64 rows, N, rows_per_chunk;
  int tcol, strips;
  bool vec;
};

// ds = s / (c 2^a) * act'(saved) * g over one (row chunk, column strip), and the chunk's column
// sums of dz; with kWriteDu also dz / c (dU's operand when renormalising). Threads (ty, tx): tx
// walks 16-byte column groups, ty rows; 4 rows are loaded before any is used, to keep enough
// loads in flight.
template <class T, Activation kAct, bool kWriteDs, bool kWriteDu>
__global__ void __launch_bounds__(kThreads) dz_kernel(const DzParams<T> p) {
  using Acc = typename Traits<T>::Acc;
  using V = Vec<T>;
  // Rows loaded ahead: fewer for gelu's longer math, and one for float64, whose division slow
  // path is a called subroutine that would otherwise need registers spilled around the call.
  constexpr int kV = V::N, kUnroll = sizeof(T) == 8 ? 1 : kAct == Activation::kGelu ? 2 : 4;
  constexpr bool kSaved = saved_for(kAct) != Saved::kNone;
  __shared__ Acc red[kThreads * kV];

  const int64 chunk = blockIdx.x / p.strips, strip = blockIdx.x % p.strips;
  const int tx = threadIdx.x % p.tcol, ty = threadIdx.x / p.tcol, trows = kThreads / p.tcol;
  const int64 col = (strip * p.tcol + tx) * kV;
  const int cnt =
      static_cast<int>(max(static_cast<int64>(0), min(static_cast<int64>(kV), p.N - col)));
  const int64 r_begin = chunk * p.rows_per_chunk;
  const int64 r_end = min(p.rows, r_begin + p.rows_per_chunk);

  Acc sum[kV];
#pragma unroll
  for (int e = 0; e < kV; ++e) sum[e] = Acc(0);
  for (int64 r = r_begin + ty; r < r_end; r += kUnroll * trows) {
    uint4 gv[kUnroll], sv[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64 ru = r + u * trows;
      const bool ok = ru < r_end && cnt > 0;
      gv[u] = ok ? V::load(p.g + ru * p.N + col, cnt, p.vec) : make_uint4(0u, 0u, 0u, 0u);
      if constexpr (kSaved) {
        sv[u] = ok ? V::load(p.saved + ru * p.N + col, cnt, p.vec) : make_uint4(0u, 0u, 0u, 0u);
      }
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64 ru = r + u * trows;
      if (ru >= r_end || cnt == 0) break;
      const Acc s = p.ds_scale != nullptr ? p.ds_scale[ru] : p.inv_c;
      T out[kV], out_u[kV];
#pragma unroll
      for (int e = 0; e < kV; ++e) {
        const Acc gz = Traits<T>::to_acc(bit_cast<T>(V::get(gv[u], e)));
        const Acc sz = kSaved ? Traits<T>::to_acc(bit_cast<T>(V::get(sv[u], e))) : Acc(0);
        const Acc dz = activation_grad<kAct>(sz, gz);
        if (e < cnt) sum[e] += dz;
        out[e] = Traits<T>::from_acc(s * dz);
        if constexpr (kWriteDu) out_u[e] = Traits<T>::from_acc(p.inv_c * dz);
      }
      if constexpr (kWriteDs) md::store_elems(p.ds + ru * p.N + col, out, cnt, p.vec);
      if constexpr (kWriteDu) md::store_elems(p.du + ru * p.N + col, out_u, cnt, p.vec);
    }
  }
  const int width = p.tcol * kV;
#pragma unroll
  for (int e = 0; e < kV; ++e) red[ty * width + tx * kV + e] = sum[e];
  __syncthreads();
  if (ty == 0) {
    for (int e = 0; e < cnt; ++e) {
      Acc t = Acc(0);
      for (int q = 0; q < trows; ++q) t += red[q * width + tx * kV + e];
      p.db_partial[chunk * p.N + col + e] = t;
    }
  }
}

template <class T>
struct DxParams {
  using Acc = typename Traits<T>::Acc;
  const T* ds;
  const T* w;
  const T* x;
  const Acc* x_scale;  // 2^a per row; null without renormalisation: 1
  Acc c;
  T* dx;
  int64 rows, K, N, tiles_n;
  bool nonfinite, vec_ds, vec_w, vec_x;
};

// dx = m ? 0 : c 2^a (ds @ W^T).
template <class T, int BM, int BN, bool kTC>
__global__ void __launch_bounds__(kGemmThreads, (BlockGemm<T, BM, BN, true, true, kTC>::kMinBlocks))
    dx_kernel(const DxParams<T> p) {
  // A = ds [rows, N] (k-contiguous), B = W^T, read as W [K, N] rows (k-contiguous).
  using G = BlockGemm<T, BM, BN, true, true, kTC>;
  using Acc = typename G::Acc;
  using V = Vec<T>;
  constexpr int kOV = V::N;
  __shared__ __align__(128) unsigned char smem[G::kSmemBytes];
  __shared__ Acc row_scale[BM];  // c 2^a per tile row

  const int64 m0 = blockIdx.x / p.tiles_n * BM, n0 = blockIdx.x % p.tiles_n * BN;
  // Read once per row, after mainloop's barriers; c 2^a is a power of two: the product is exact.
  G::load_rows(row_scale, [&](int r) {
    const int64 row = m0 + r;
    return p.x_scale != nullptr && row < p.rows ? p.c * p.x_scale[row] : p.c;
  });
  typename G::Mma mma;
  int unused[G::LoaderA::kPer];
  const typename G::Operand a{p.ds, p.N, m0, p.rows, p.vec_ds};
  const typename G::Operand b{p.w, p.N, n0, p.K, p.vec_w};
  G::template mainloop<md::MaskA::kNone>(mma, smem, a, b, 0, p.N, p.nonfinite, unused);

  G::epilogue(mma, smem, row_scale, [&](int r, int c, const Acc(&v)[kOV]) {
    const int64 row = m0 + r, col = n0 + c;
    if (row >= p.rows || col >= p.K) return;
    const int cnt = static_cast<int>(min(static_cast<int64>(kOV), p.K - col));
    const int64 off = row * p.K + col;
    const uint4 xv = V::load(p.x + off, cnt, p.vec_x);
    T out[kOV];
#pragma unroll
    for (int e = 0; e < kOV; ++e) {
      out[e] = md::missing_bits<T>(V::get(xv, e), p.nonfinite) ? bit_cast<T>(Bits<T>(0))
                                                               : Traits<T>::from_acc(v[e]);
    }
    md::store_elems(p.dx + off, out, cnt, p.vec_x);
  });
}

template <class T>
struct DwParams {
  using Acc = typename Traits<T>::Acc;
  const T* x;
  const Acc* x_scale;  // 2^a per row (null: 1)
  const T* ds;
  Acc* partial;  // [dW chunks, K, N]
  int64 rows, K, N, tiles_n, tiles, rows_per_chunk;
  bool nonfinite, vec_x, vec_ds, vec_partial;
};

// Partial dW of one row chunk and output tile: (2^a xf[chunk])^T @ ds[chunk] (kMask kSelect),
// or partial dU: m[chunk]^T @ (dz / c)[chunk] (kMask kIndicator, x_scale null, ds = dz / c).
template <class T, int BM, int BN, bool kTC, md::MaskA kMask>
__global__ void __launch_bounds__(kGemmThreads,
                                  (BlockGemm<T, BM, BN, false, false, kTC>::kMinBlocks))
    dw_kernel(const DwParams<T> p) {
  // A = x^T, read as x [rows, K] (m-contiguous); B = ds [rows, N] (n-contiguous).
  using G = BlockGemm<T, BM, BN, false, false, kTC>;
  using Acc = typename G::Acc;
  constexpr int kOV = Vec<T>::N;
  __shared__ __align__(128) unsigned char smem[G::kSmemBytes];

  const int64 chunk = blockIdx.x / p.tiles, tile = blockIdx.x % p.tiles;
  const int64 m0 = tile / p.tiles_n * BM, n0 = tile % p.tiles_n * BN;
  const int64 k0 = chunk * p.rows_per_chunk, k_end = min(p.rows, k0 + p.rows_per_chunk);
  typename G::Mma mma;
  int unused[G::LoaderA::kPer];
  const typename G::Operand a{p.x, p.K, m0, p.K, p.vec_x, p.x_scale};
  const typename G::Operand b{p.ds, p.N, n0, p.N, p.vec_ds};
  G::template mainloop<kMask>(mma, smem, a, b, k0, k_end, p.nonfinite, unused);

  Acc* out = p.partial + chunk * p.K * p.N;
  G::epilogue(mma, smem, nullptr, [&](int r, int c, const Acc(&v)[kOV]) {
    const int64 k = m0 + r, n = n0 + c;
    if (k >= p.K || n >= p.N) return;
    const int cnt = static_cast<int>(min(static_cast<int64>(kOV), p.N - n));
    Acc vals[kOV];
#pragma unroll
    for (int e = 0; e < kOV; ++e) vals[e] = v[e];
    md::store_elems(out + k * p.N + n, vals, cnt, p.vec_partial);
  });
}

template <class T>
struct ReduceParams {
  using Acc = typename Traits<T>::Acc;
  const Acc* dw_partial;  // [dw_chunks, K * N]
  const Acc* du_partial;  // [dw_chunks, K * N] (with du)
  const Acc* db_partial;  // [db_chunks, N]
  int64 dw_chunks, db_chunks, KN, N;
  Acc c;  // derivative_bound: dW's and dU's factor
  T* dw;
  T* du;  // null without indicator weights
  T* db;  // may be null
};

// dW[k, n] = c * sum over dW chunks, dU likewise, db[n] = sum over dz chunks, each in chunk
// order. Outputs are numbered dW, then dU (if any), then db.
template <class T>
__global__ void __launch_bounds__(kThreads) reduce_kernel(const ReduceParams<T> p) {
  using Acc = typename Traits<T>::Acc;
  const int64 KN = p.KN, N = p.N;
  const int64 weights = p.du != nullptr ? 2 * KN : KN;
  const int64 total = weights + (p.db != nullptr ? N : 0);
  for (int64 e = global_thread(); e < total; e += grid_threads()) {
    Acc s = Acc(0);
    if (e < KN) {
      for (int64 q = 0; q < p.dw_chunks; ++q) s += p.dw_partial[q * KN + e];
      p.dw[e] = Traits<T>::from_acc(p.c * s);
    } else if (e < weights) {
      for (int64 q = 0; q < p.dw_chunks; ++q) s += p.du_partial[q * KN + (e - KN)];
      p.du[e - KN] = Traits<T>::from_acc(p.c * s);
    } else {
      for (int64 q = 0; q < p.db_chunks; ++q) s += p.db_partial[q * N + (e - weights)];
      p.db[e - weights] = Traits<T>::from_acc(s);
    }
  }
}

template <class T>
int backward_impl(const MaskedDenseArgs& args, const T* x, const T* w, const T* saved, const T* g,
                  T* dx, T* dw, T* du, T* db, void* workspace, cudaStream_t stream) {
  using Acc = typename Traits<T>::Acc;
  const BackwardLayout l = backward_layout(args);
  const int64 rows = args.rows, K = args.K, N = args.N;
  const bool nonfinite = args.missing == Missing::kNonFinite;
  char* ws = static_cast<char*>(workspace);

  // 1. s / (c 2^a) and 2^a per row
  const int c = derivative_bound(args.activation);
  Acc* ds_scale = nullptr;
  Acc* x_scale = nullptr;
  if (args.renormalize) {
    ds_scale = reinterpret_cast<Acc*>(ws + l.ds_scale);
    x_scale = reinterpret_cast<Acc*>(ws + l.x_scale);
    RowScaleParams<T> p{};
    p.x = x;
    p.ds_scale = ds_scale;
    p.x_scale = x_scale;
    p.rows = rows;
    p.K = K;
    p.c = c;
    p.nonfinite = nonfinite;
    p.vec = vec_ok(x, K);
    row_scale_kernel<<<grid_for(rows * 32), kThreads, 0, stream>>>(p);
    if (int e = launch_status()) return e;
  }

  // 2. ds = s / (c 2^a) * dz and db's partial sums
  T* ds_buf = l.ds_is_g ? nullptr : reinterpret_cast<T*>(ws + l.ds);
  const T* ds = l.ds_is_g ? g : ds_buf;
  // dU's operand dz / c: ds itself without renormalisation
  const bool with_u = du != nullptr;
  T* du_buf = with_u && !l.du_op_is_ds ? reinterpret_cast<T*>(ws + l.du_op) : nullptr;
  const T* du_op = du_buf != nullptr ? du_buf : ds;
  Acc* db_partial = reinterpret_cast<Acc*>(ws + l.db_partial);
  {
    const bool vec = vec_ok(g, N) && (saved == nullptr || vec_ok(saved, N)) &&
                     (ds_buf == nullptr || vec_ok(ds_buf, N)) &&
                     (du_buf == nullptr || vec_ok(du_buf, N));
    DzParams<T> p{};
    p.g = g;
    p.saved = saved;
    p.ds_scale = ds_scale;
    p.inv_c = Acc(1) / static_cast<Acc>(c);
    p.ds = ds_buf;
    p.du = du_buf;
    p.db_partial = db_partial;
    p.rows = rows;
    p.N = N;
    p.rows_per_chunk = l.dz.rows_per_chunk;
    p.tcol = l.dzs.tcol;
    p.strips = l.dzs.strips;
    p.vec = vec;
    int grid = 0;
    if (int e = launch_grid(l.dz.chunks * l.dzs.strips, &grid)) return e;
    if (l.ds_is_g) {
      dz_kernel<T, Activation::kLinear, false, false><<<grid, kThreads, 0, stream>>>(p);
    } else {
      dispatch_activation(args.activation, [&](auto act) {
        return bool_switch(
            [&](auto write_du) {
              dz_kernel<T, decltype(act)::value, true, decltype(write_du)::value>
                  <<<grid, kThreads, 0, stream>>>(p);
              return 0;
            },
            du_buf != nullptr);
      });
    }
    if (int e = launch_status()) return e;
  }

  if (K > 0) {
    // 3. dx
    int e = with_tc<T>(args.allow_tf32, [&](auto tc) {
      return with_tiles<T, 128, 64>(out_tiles(args.dtype, K), [&](auto bm, auto bn) {
        constexpr int BM = decltype(bm)::value, BN = decltype(bn)::value;
        DxParams<T> p{};
        p.ds = ds;
        p.w = w;
        p.x = x;
        p.x_scale = x_scale;
        p.c = static_cast<Acc>(c);
        p.dx = dx;
        p.rows = rows;
        p.K = K;
        p.N = N;
        p.tiles_n = ceil_div(K, BN);
        p.nonfinite = nonfinite;
        p.vec_ds = vec_ok(ds, N);
        p.vec_w = vec_ok(w, N);
        p.vec_x = vec_ok(x, K) && vec_ok(dx, K);
        int grid = 0;
        if (int err = launch_grid(ceil_div(rows, BM) * p.tiles_n, &grid)) return err;
        dx_kernel<T, BM, BN, decltype(tc)::value><<<grid, kGemmThreads, 0, stream>>>(p);
        return launch_status();
      });
    });
    if (e) return e;

    // 4. dW partials, and dU's (the same GEMM with m for 2^a xf and dz / c for ds)
    Acc* dw_partial = reinterpret_cast<Acc*>(ws + l.dw_partial);
    Acc* du_partial = reinterpret_cast<Acc*>(ws + l.du_partial);
    auto weight_grad = [&](auto mask, const Acc* k_scale, const T* b_op, Acc* partial) {
      return with_tc<T>(args.allow_tf32, [&](auto tc) {
        return with_tiles<T, 64, 128>(weight_tiles(args.dtype, K), [&](auto bm, auto bn) {
          constexpr int BM = decltype(bm)::value, BN = decltype(bn)::value;
          DwParams<T> p{};
          p.x = x;
          p.x_scale = k_scale;
          p.ds = b_op;
          p.partial = partial;
          p.rows = rows;
          p.K = K;
          p.N = N;
          p.tiles_n = l.dw_tiles_n;
          p.tiles = l.dw_tiles;
          p.rows_per_chunk = l.dw.rows_per_chunk;
          p.nonfinite = nonfinite;
          p.vec_x = vec_ok(x, K);
          p.vec_ds = vec_ok(b_op, N);
          p.vec_partial = aligned(partial, 16) && (N * sizeof(Acc)) % 16 == 0;
          static_assert(BM > 0 && BN > 0, "tile");
          int grid = 0;
          if (int err = launch_grid(l.dw.chunks * l.dw_tiles, &grid)) return err;
          dw_kernel<T, BM, BN, decltype(tc)::value, decltype(mask)::value>
              <<<grid, kGemmThreads, 0, stream>>>(p);
          return launch_status();
        });
      });
    };
    using Mask = md::MaskA;
    e = weight_grad(std::integral_constant<Mask, Mask::kSelect>{}, x_scale, ds, dw_partial);
    if (e) return e;
    if (with_u) {
      e = weight_grad(std::integral_constant<Mask, Mask::kIndicator>{}, nullptr, du_op, du_partial);
      if (e) return e;
    }
  }

  // 5. dW and db
  ReduceParams<T> p{};
  p.dw_partial = reinterpret_cast<const Acc*>(ws + l.dw_partial);
  p.du_partial = reinterpret_cast<const Acc*>(ws + l.du_partial);
  p.db_partial = db_partial;
  p.dw_chunks = l.dw.chunks;
  p.db_chunks = l.dz.chunks;
  p.KN = K * N;
  p.N = N;
  p.c = static_cast<Acc>(c);
  p.dw = dw;
  p.du = du;
  p.db = db;
  const int64 outputs = K * N * (with_u ? 2 : 1) + (db != nullptr ? N : 0);
  reduce_kernel<T><<<grid_for(outputs), kThreads, 0, stream>>>(p);
  return launch_status();
}

bool valid(const MaskedDenseArgs& a) { return a.rows >= 0 && a.K >= 0 && a.N >= 0; }

// U (forward) or dU (backward) is given exactly when args.indicator says so (an empty one,
// K * N = 0, may be null).
bool indicator_ok(const MaskedDenseArgs& a, const void* u) {
  return a.indicator ? (u != nullptr || a.K * a.N == 0) : u == nullptr;
}

}  // namespace

std::size_t masked_dense_forward_workspace(const MaskedDenseArgs&) { return 0; }

int masked_dense_forward(const MaskedDenseArgs& args, const void* x, const void* w, const void* u,
                         const void* bias, void* y, void* z, void* workspace, void* stream) {
  (void)workspace;
  if (!valid(args) || !indicator_ok(args, u)) return static_cast<int>(cudaErrorInvalidValue);
  if (args.rows == 0 || args.N == 0) return 0;
  if (saved_for(args.activation) == Saved::kPreActivation && z == nullptr) {
    return static_cast<int>(cudaErrorInvalidValue);
  }
  return dispatch_float(args.dtype, [&](auto tag) {
    using T = decltype(tag);
    return forward_impl<T>(args, static_cast<const T*>(x), static_cast<const T*>(w),
                           args.indicator ? static_cast<const T*>(u) : nullptr,
                           static_cast<const T*>(bias), static_cast<T*>(y), static_cast<T*>(z),
                           as_stream(stream));
  });
}

std::size_t masked_dense_backward_workspace(const MaskedDenseArgs& args) {
  return valid(args) ? backward_layout(args).total : 0;
}

int masked_dense_backward(const MaskedDenseArgs& args, const void* x, const void* w,
                          const void* saved, const void* g, void* dx, void* dw, void* du, void* db,
                          void* workspace, void* stream) {
  if (!valid(args) || !indicator_ok(args, du)) return static_cast<int>(cudaErrorInvalidValue);
  const cudaStream_t s = as_stream(stream);
  const std::size_t t = static_cast<std::size_t>(dtype_size(args.dtype));
  if (args.rows == 0 || args.N == 0) {  // nothing flows back: zero gradients
    if (args.K * args.N > 0) {
      cudaMemsetAsync(dw, 0, static_cast<std::size_t>(args.K * args.N) * t, s);
      if (du != nullptr) cudaMemsetAsync(du, 0, static_cast<std::size_t>(args.K * args.N) * t, s);
    }
    if (db != nullptr && args.N > 0)
      cudaMemsetAsync(db, 0, static_cast<std::size_t>(args.N) * t, s);
    if (args.rows * args.K > 0) {
      cudaMemsetAsync(dx, 0, static_cast<std::size_t>(args.rows * args.K) * t, s);
    }
    return launch_status();
  }
  if (saved_for(args.activation) != Saved::kNone && saved == nullptr) {
    return static_cast<int>(cudaErrorInvalidValue);
  }
  return dispatch_float(args.dtype, [&](auto tag) {
    using T = decltype(tag);
    return backward_impl<T>(args, static_cast<const T*>(x), static_cast<const T*>(w),
                            static_cast<const T*>(saved), static_cast<const T*>(g),
                            static_cast<T*>(dx), static_cast<T*>(dw),
                            args.indicator && args.K * args.N > 0 ? static_cast<T*>(du) : nullptr,
                            static_cast<T*>(db), workspace, s);
  });
}

}  // namespace cuda
}  // namespace safeops
