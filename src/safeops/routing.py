"""Which implementation masked_dense runs on a GPU for a shape (docs/design.md §4): the fused
CUDA kernel, or the row prologue (Safeops>MaskedDenseInput's CUDA kernel) followed by
TensorFlow's own MatMul (cuBLAS), bias add and activation.

The rule comes from a static analysis of the fused kernel's sm_90 machine code and published
cuBLAS times (issue 15; no GPU has checked it yet, benchmarks/RESULTS.md says so). Per row of
x, the route costs the fused kernel's GEMM inefficiency against extra memory passes:

    fused     2KN / F_fused  + (K + N) b / BW
    route     2KN / F_cublas + (K + N) b / BW  + 2K b / BW  (prologue: read x, write xs)
                                               + 2N b / BW  (bias + activation: read, write)

so the route is faster where 2KN (1/F_fused - 1/F_cublas) > 2 (K + N) b / BW, that is where

    h(K, N) = K N / (K + N)  >=  T = b / (BW (1/F_fused - 1/F_cublas))

(b bytes per element, BW the achievable memory bandwidth, F the GEMM rates at compute-bound
shapes). On an H200 (BW ~4.0 TB/s of 4.8), 16384 x 1024 x 1024 (3.4e10 flops): cuBLAS
measured bfloat16 0.072 ms (477 TFLOP/s), TF32 0.153 ms (225); the fused kernel estimated at
bfloat16 0.14-0.19 ms (245-181 TFLOP/s), TF32 0.34-0.44 ms (101-78). That gives T = 146-253
for bfloat16 and 120-184 for float32. THRESHOLD is the top of that range rounded up to a power
of two: a shape leaves the fused kernel only where every estimate says the route is faster.
Examples: K = N = 1024 (h = 512) takes the route; the memory-bound tabular shape K = 64,
N = 256 (h = 51, where the fused kernel is estimated at 0.022-0.04 ms against cuBLAS's
0.041) stays fused, as does every K < 256.

float64 follows the same rule from peak figures only: the fused kernel runs float64 on SIMT
64 x 64 tiles while cuBLAS runs FP64 tensor cores (twice the SIMT peak), which gives T < 100.
float16 stays fused: the route would form xs = s * xf and dz in float16, where s (up to K) and
the derivative bound of gelu and silu can overflow a range the fused kernel keeps (it moves a
power of two onto x, docs/design.md §3.2), and running the route in float32 instead (as the
CPU path does) gives up the half-precision tensor cores. A K or N unknown when the op is
created (tf.function with None) keeps the fused kernel. The rows do not enter: both costs are
linear in them (only a few rows make the route's three or four launches matter).
"""

FUSED = "fused"
PROLOGUE = "prologue"
THRESHOLD = 256
# dtypes the route is for (names as in tf.DType.name / NumPy)
ROUTED_DTYPES = ("bfloat16", "float32", "float64")


def gpu_route(K, N, dtype):
    """FUSED or PROLOGUE: the implementation of masked_dense on a GPU for a kernel [K, N] of
    `dtype` (a name or anything with `.name`, such as a tf.DType). K or N None: FUSED."""
    name = getattr(dtype, "name", dtype)
    if K is None or N is None or name not in ROUTED_DTYPES or K <= 0 or N <= 0:
        return FUSED
    return PROLOGUE if K * N >= THRESHOLD * (K + N) else FUSED


def describe():
    """The rule in one line (safeops info, explain_paths)."""
    return (
        f"fused kernel, but row prologue + TensorFlow MatMul (cuBLAS) where "
        f"K*N/(K+N) >= {THRESHOLD} for {'/'.join(ROUTED_DTYPES)} "
        "(from static analysis, not yet measured on a GPU)"
    )
