"""GPU tests of masked_dense's row prologue and its gradient (cuda/masked_input.cu), the first
op of the route a GPU takes for compute-bound shapes (docs/design.md, 3.2 and 4), through
safeops.native on the device of _backend.py; no TensorFlow. Results are compared with the
float64 reference of _reference.py, and bit for bit where the kernel only selects (missing
entries, indicators, the copy without renormalize).

Inputs carry every NaN encoding of the dtype (quiet and signalling, both signs, payloads),
+-Inf, -0.0, rows with every feature missing and a feature never observed; outputs are poisoned
buffers with a guard zone after them, at aligned and misaligned addresses (16-byte vectors or
element loads).
"""

import _reference as ref
import numpy as np
import pytest
from _backend import np_dtype, require

from safeops import _native, native

DEV = require()
DTYPES = ["float16", pytest.param("bfloat16", marks=pytest.mark.bfloat16), "float32", "float64"]
# (rows, K): K = 1 and odd widths (element loads), K a multiple of the 16-byte group of every
# dtype (vector loads), K longer than a warp's group (several iterations per lane), rows past
# one block's 8 warps.
SHAPES = [(1, 1), (3, 7), (37, 8), (20, 64), (65, 33), (9, 300), (130, 16)]
_INT = {2: np.uint16, 4: np.uint32, 8: np.uint64}

# Every NaN encoding class of each dtype: signalling (smallest payload), quiet, negative quiet,
# all-ones payload, negative signalling and an arbitrary payload.
NAN_BITS = {
    "float16": [0x7C01, 0x7E00, 0xFE00, 0x7FFF, 0xFC01, 0x7D55],
    "bfloat16": [0x7F81, 0x7FC0, 0xFFC0, 0x7FFF, 0xFF81, 0x7FA5],
    "float32": [0x7F800001, 0x7FC00000, 0xFFC00000, 0x7FFFFFFF, 0xFF800001, 0x7FA5A5A5],
    "float64": [
        0x7FF0000000000001, 0x7FF8000000000000, 0xFFF8000000000000, 0x7FFFFFFFFFFFFFFF,
        0xFFF0000000000001, 0x7FFA5A5A5A5A5A5A,
    ],
}  # fmt: skip


def bits_of(values, dtype):
    """float64 values rounded to dtype, as unsigned bit patterns."""
    nd = np_dtype(dtype)
    return np.asarray(values).astype(nd).view(_INT[nd.itemsize])


def host_value(bits, dtype):
    with np.errstate(invalid="ignore"):
        return bits.view(np_dtype(dtype)).astype(np.float64)


def make_x(rows, K, dtype, seed, inf=True):
    """Bit patterns of x [rows, K]: normal values with ~20 % missing entries spread over every
    NaN encoding, +-Inf and -0.0 sprinkled in, row 1 and the last row (rows >= 3) all missing
    in mixed encodings, feature K // 2 never observed (K >= 2, rows >= 2)."""
    rng = np.random.default_rng(seed)
    bits = bits_of(rng.standard_normal((rows, K)), dtype)
    enc = np.array(NAN_BITS[dtype], dtype=bits.dtype)
    infs = bits_of(np.array([np.inf, -np.inf]), dtype)
    pick = rng.random((rows, K))
    nan_at = pick < 0.2
    bits[nan_at] = enc[rng.integers(0, enc.size, int(nan_at.sum()))]
    if inf:
        inf_at = (pick >= 0.2) & (pick < 0.25)
        bits[inf_at] = infs[rng.integers(0, 2, int(inf_at.sum()))]
    zero_at = (pick >= 0.25) & (pick < 0.28)
    bits[zero_at] = bits_of(np.array([-0.0]), dtype)[0]
    if rows >= 3:
        for r in (1, rows - 1):
            bits[r] = enc[np.arange(K) % enc.size]
    if K >= 2 and rows >= 2:
        bits[:, K // 2] = enc[np.arange(rows) % enc.size]
    return bits


def every_case(test):
    """Parametrizes `test` over dtype, shape, missing policy, renormalize and indicator."""
    marks = (
        pytest.mark.parametrize("indicator", [False, True], ids=["plain", "indicator"]),
        pytest.mark.parametrize("renorm", [False, True], ids=["keep", "renorm"]),
        pytest.mark.parametrize("missing", ["nan", "nonfinite"]),
        pytest.mark.parametrize("shape", SHAPES, ids=[f"{r}x{k}" for r, k in SHAPES]),
        pytest.mark.parametrize("dtype", DTYPES),
    )
    for mark in marks:
        test = mark(test)
    return test


def run_forward(xb, dtype, renorm, missing, indicator, offset=0):
    rows, K = xb.shape
    x = DEV.put_bits(xb, dtype, offset)
    xs = DEV.poisoned((rows, 2 * K if indicator else K), dtype, offset)
    _native.cuda_masked_input(
        DEV.ptr(x), DEV.ptr(xs), rows, K, dtype, renorm, missing, indicator, DEV.stream()
    )
    DEV.sync()
    assert DEV.guard_intact(xs), "xs: write past the end"
    return xs


def run_backward(xb, gb, dtype, renorm, missing, indicator, offset=0):
    rows, K = xb.shape
    x = DEV.put_bits(xb, dtype, offset)
    g = DEV.put_bits(gb, dtype, offset)
    dx = DEV.poisoned((rows, K), dtype, offset)
    _native.cuda_masked_input_grad(
        DEV.ptr(x), DEV.ptr(g), DEV.ptr(dx), rows, K, dtype, renorm, missing, indicator,
        DEV.stream(),
    )  # fmt: skip
    DEV.sync()
    assert DEV.guard_intact(dx), "dx: write past the end"
    return dx


def check_forward(xb, dtype, renorm, missing, indicator, offset=0):
    rows, K = xb.shape
    xs = run_forward(xb, dtype, renorm, missing, indicator, offset)
    x = host_value(xb, dtype)
    m = ref.missing_mask(x, missing)
    want = ref.masked_input(x, renorm, missing, indicator)
    got = DEV.get(xs)
    ref.check_close(got, want, ref.masked_input_bounds(want, dtype), "xs")
    out = DEV.bits(xs).view(xb.dtype)
    assert np.all(out[:, :K][m] == 0), "a missing entry is not an exact +0"
    if not renorm:  # a select of bits: observed entries are exact copies, NaN payloads and all
        assert np.array_equal(out[:, :K][~m], xb[~m])
    if indicator:
        one = bits_of(np.array([1.0]), dtype)[0]
        assert np.array_equal(out[:, K:], np.where(m, one, 0).astype(xb.dtype))
    return out


@every_case
def test_forward(dtype, shape, missing, renorm, indicator):
    xb = make_x(*shape, dtype, seed=hash((shape, dtype)) % 2**32)
    check_forward(xb, dtype, renorm, missing, indicator)


@every_case
def test_backward(dtype, shape, missing, renorm, indicator):
    """dx = m ? 0 : s * g: an exact +0 at every missing entry even where g is NaN or Inf there;
    a NaN or Inf of g at an observed entry passes through; the indicator half of g (poison
    here) is never read."""
    rows, K = shape
    rng = np.random.default_rng(hash((shape, dtype, 1)) % 2**32)
    xb = make_x(rows, K, dtype, seed=hash((shape, dtype)) % 2**32)
    gv = rng.standard_normal((rows, K))
    spots = rng.random((rows, K))
    gv[spots < 0.3] = np.nan
    gv[(spots >= 0.3) & (spots < 0.35)] = np.inf
    gb = bits_of(gv, dtype)
    if indicator:
        gb = np.concatenate([gb, np.full_like(gb, NAN_BITS[dtype][1])], axis=1)
    dx = run_backward(xb, gb, dtype, renorm, missing, indicator)
    x = host_value(xb, dtype)
    m = ref.missing_mask(x, missing)
    want = ref.masked_input_grad(x, host_value(gb[:, :K], dtype), renorm, missing)
    ref.check_close(DEV.get(dx), want, ref.masked_input_bounds(want, dtype), "dx")
    out = DEV.bits(dx).view(xb.dtype)
    assert np.all(out[m] == 0), "dx at a missing entry is not an exact +0"
    if not renorm:
        assert np.array_equal(out[~m], gb[:, :K][~m])


@pytest.mark.parametrize("offset", [1, 3])
@pytest.mark.parametrize("dtype", DTYPES)
def test_misaligned(dtype, offset):
    """Buffers that do not start 16-byte aligned take the element loads, same values."""
    for indicator in (False, True):
        xb = make_x(20, 64, dtype, seed=offset)
        check_forward(xb, dtype, True, "nan", indicator, offset)
        gb = bits_of(np.random.default_rng(offset).standard_normal((20, 64)), dtype)
        if indicator:
            gb = np.concatenate([gb, gb], axis=1)
        dx = run_backward(xb, gb, dtype, True, "nan", indicator, offset)
        x = host_value(xb, dtype)
        want = ref.masked_input_grad(x, host_value(gb[:, :64], dtype), True, "nan")
        ref.check_close(DEV.get(dx), want, ref.masked_input_bounds(want, dtype), "dx")


@pytest.mark.parametrize("dtype", DTYPES)
def test_deterministic(dtype):
    xb = make_x(65, 33, dtype, seed=7)
    a = DEV.bits(run_forward(xb, dtype, True, "nonfinite", True))
    b = DEV.bits(run_forward(xb, dtype, True, "nonfinite", True))
    assert np.array_equal(a, b)


@pytest.mark.parametrize("dtype", DTYPES)
def test_empty(dtype):
    """rows == 0 or K == 0: nothing to do, and nothing written."""
    for rows, K in ((0, 5), (4, 0)):
        xb = np.zeros((rows, K), _INT[np_dtype(dtype).itemsize])
        run_forward(xb, dtype, True, "nan", True)
        run_backward(xb, np.zeros((rows, 2 * K), xb.dtype), dtype, True, "nan", True)


@pytest.mark.parametrize("dtype", DTYPES)
def test_prologue_route_matches_reference(dtype):
    """The route for compute-bound shapes: the CUDA prologue, then a GEMM on the rounded xs (here
    in float64, standing in for the platform's GEMM, whose own error forward_bounds already
    covers). Its result differs from the fused formula s * (xf @ W) only by the rounding of xs,
    which prologue_route_bounds adds."""
    rows, K, N = 40, 48, 24
    xb = make_x(rows, K, dtype, seed=11, inf=False)
    rng = np.random.default_rng(12)
    w = rng.standard_normal((K, N)).astype(np_dtype(dtype)).astype(np.float64) / np.sqrt(K)
    b = rng.standard_normal(N).astype(np_dtype(dtype)).astype(np.float64)
    x = host_value(xb, dtype)
    for renorm in (False, True):
        xs = DEV.get(run_forward(xb, dtype, renorm, "nan", False))
        z = xs @ w + b
        _, want = ref.forward(x, w, b, "linear", renorm, "nan")
        _, tol = ref.prologue_route_bounds(x, w, b, "linear", renorm, "nan", dtype, False)
        ref.check_close(z, want, tol, f"z (renormalize={renorm})")


def test_wrappers():
    """safeops.native.masked_input(_grad) on device arrays: shapes, leading dimensions, errors."""
    xb = make_x(6, 5, "float32", seed=3)
    x3 = DEV.put_bits(xb.reshape(2, 3, 5), "float32")
    xs = native.masked_input(x3, renormalize=True, indicator=True)
    assert tuple(xs.shape) == (2, 3, 10)
    want = ref.masked_input(host_value(xb, "float32"), True, "nan", True)
    tol = ref.masked_input_bounds(want, "float32")
    ref.check_close(DEV.get(xs).reshape(6, 10), want, tol, "xs")
    dx = native.masked_input_grad(x3, xs, renormalize=True, indicator=True)
    assert tuple(dx.shape) == (2, 3, 5)
    with pytest.raises(ValueError, match="grad must have shape"):
        native.masked_input_grad(x3, x3, indicator=True)
    with pytest.raises(TypeError, match="device arrays"):
        native.masked_input(np.zeros((2, 2), np.float32))
    with pytest.raises(ValueError, match="missing"):
        native.masked_input(x3, missing="inf")
