"""The masked_dense CUDA kernels' numerics (docs/design.md, masked_dense and NaN policy), through
the raw bindings with poisoned outputs as in test_masked_dense_gpu.py:

- the NaN policy: a NaN weight or bias (or one made by the arithmetic) reaches y for every
  activation, relu included, and a NaN output has a NaN gradient; relu's backward selects;
- the backward's scaled operand ds never overflows where dx and dW are representable (float16
  and bfloat16 at the edge of their ranges, renormalisation scale s = 64);
- every NaN encoding is missing (negative float16 NaNs, bfloat16 signalling NaNs, payloads);
- more output columns than one strip of the dz pre-pass (N = 2049), no output column (N = 0),
  tile-edge shapes, bit-identical results where renormalize / "nonfinite" change nothing, a
  fully missing row's z equal to b, determinism of every output.

On the device of _backend.py (a GPU or the emulated one); exact bit patterns (NaN encodings)
reach it through its put_bits and leave through its bits. Markers as in test_masked_dense_gpu.py.
"""

import math

import _reference as ref
import numpy as np
import pytest
from _backend import np_dtype
from nan_bits import nan_bits, with_nans

# Importing test_masked_dense_gpu skips this module too where _backend finds no device (neither
# a GPU with a CUDA build nor an emulated build).
from test_masked_dense_gpu import (
    DEV,
    VARIANT_IDS,
    VARIANTS,
    Buf,
    check_case,
    make_inputs,
    run_backward,
    run_forward,
)

pytestmark = pytest.mark.shared_memory  # every masked_dense kernel (test_masked_dense_gpu.py)
VARIANT = pytest.mark.parametrize("dtype,tf32", VARIANTS, ids=VARIANT_IDS)
BF16 = pytest.mark.bfloat16


def bits(buf):
    return DEV.bits(buf.t)


def forward_backward(x64, w64, b64, g64, act, renorm, missing, dtype, tf32, x_bits=None):
    """Forward, then backward with the saved tensor the forward wrote. x_bits: the exact bit
    patterns of x (NaN encodings), written over the converted values."""
    rows, K = x64.shape
    N = w64.shape[1]
    x = Buf((rows, K), dtype, 0, x64)
    if x_bits is not None:
        x.t[...] = DEV.put_bits(x_bits, dtype)
    w = Buf((K, N), dtype, 0, w64)
    b = Buf((N,), dtype, 0, b64)
    g = Buf((rows, N), dtype, 0, g64)
    y, z = run_forward(x, w, b, act, renorm, missing, dtype, tf32)
    saved = None if act == "linear" else z if act in ref.SAVES_Z else y
    dx, dw, db = run_backward(x, w, saved, g, act, renorm, missing, dtype, tf32)
    return dict(x=x, w=w, b=b, g=g, y=y, z=z, saved=saved, dx=dx, dw=dw, db=db)


def check_against_reference(r, act, renorm, missing, dtype, tf32):
    """Every output of forward_backward against the float64 reference and its error bounds
    (NaN and Inf patterns must match exactly)."""
    xr = r["x"].numpy()
    wr, br, gr = r["w"].numpy(), r["b"].numpy(), r["g"].numpy()
    yr, zr = ref.forward(xr, wr, br, act, renorm, missing)
    ty, tz = ref.forward_bounds(xr, wr, br, act, renorm, missing, dtype, tf32)
    ref.check_close(r["y"].numpy(), yr, ty, "y")
    if r["z"] is not None:
        ref.check_close(r["z"].numpy(), zr, tz, "z")
    sr = None if r["saved"] is None else r["saved"].numpy()
    want = ref.backward(xr, wr, sr, gr, act, renorm, missing)
    tols = ref.backward_bounds(xr, wr, sr, gr, act, renorm, missing, dtype, tf32)
    for name, wv, tol in zip(("dx", "dw", "db"), want, tols, strict=True):
        ref.check_close(r[name].numpy(), wv, tol, name)


# ---- NaN policy -------------------------------------------------------------------------------


@pytest.mark.parametrize("act", ref.ACTIVATIONS)
@VARIANT
def test_nan_weight_or_bias_reaches_the_output(dtype, tf32, act):
    """Column 0 has a NaN weight, column 1 a NaN bias: y is NaN there for every activation (relu
    gave 0), and so are dW and db for every activation whose derivative reads y or z."""
    rows, K, N = 37, 3, 5
    x64, w64, b64, g64 = make_inputs(rows, K, N, seed=30, nan_frac=0.2)
    w64[1, 0] = np.nan
    b64[1] = np.nan
    for renorm in (False, True):
        r = forward_backward(x64, w64, b64, g64, act, renorm, "nan", dtype, tf32)
        y = r["y"].numpy()
        assert np.isnan(y[:, :2]).all() and np.isfinite(y[:, 2:]).all()
        if act != "linear":
            assert np.isnan(r["db"].numpy()[:2]).all()
        check_against_reference(r, act, renorm, "nan", dtype, tf32)


@VARIANT
def test_nan_made_by_the_arithmetic_reaches_the_output(dtype, tf32):
    """Inf inputs are data under missing="nan": inf * 0 and inf - inf give NaN, relu keeps it."""
    x64 = np.array([[np.inf, 1.0], [np.inf, np.inf], [1.0, 2.0]])
    w64 = np.array([[0.0, 1.0], [1.0, -1.0]])
    x, w = Buf((3, 2), dtype, 0, x64), Buf((2, 2), dtype, 0, w64)
    b = Buf((2,), dtype, 0, np.zeros(2))
    y, _ = run_forward(x, w, b, "relu", False, "nan", dtype, tf32)
    y = y.numpy()
    assert np.isnan(y[0, 0]) and np.isnan(y[1]).all() and np.isfinite(y[2]).all()


@VARIANT
def test_relu_backward_is_a_select(dtype, tf32):
    """dz = g where y > 0, an exact +0 where y <= 0 even where g is NaN or Inf, NaN where y is
    NaN."""
    rows, N = 4, 3
    saved = Buf((rows, N), dtype, 0, [[2.0, 0.0, np.nan]] * rows)
    g = Buf((rows, N), dtype, 0, [[1.0, np.nan, 1.0], [2.0, np.inf, 1.0], [3.0, -np.inf, 1.0],
                                  [4.0, np.nan, 1.0]])  # fmt: skip
    x = Buf((rows, 1), dtype, 0, np.ones((rows, 1)))
    w = Buf((1, N), dtype, 0, np.ones((1, N)))
    dx, dw, db = run_backward(x, w, saved, g, "relu", False, "nan", dtype, tf32)
    db = db.numpy()
    assert db[0] == 10.0 and db[1] == 0.0 and not np.signbit(db[1]) and np.isnan(db[2])
    dw = dw.numpy()
    assert dw[0, 0] == 10.0 and dw[0, 1] == 0.0 and np.isnan(dw[0, 2])
    assert np.isnan(dx.numpy()).all()  # dz has a NaN in every row


# ---- the scaled operand ds at the edge of the range ------------------------------------------


@pytest.mark.parametrize(
    "dtype,g_edge", [("float16", 2000.0), pytest.param("bfloat16", 3e37, marks=BF16)]
)
def test_scaled_gradient_does_not_overflow(dtype, g_edge):
    """The issue's repro: float16, renormalize, linear, one row with x[0, 0] = 0.01 and the other
    63 features missing (s = 64), W[0] = [1, -1], g = [2000, 2000]: s * g overflows float16, the
    true dx (0) and dW (about 1280) do not. bfloat16 the same near its largest value."""
    x64 = np.full((1, 64), np.nan)
    x64[0, 0] = 0.01
    w64 = np.zeros((64, 2))
    w64[0] = [1.0, -1.0]
    r = forward_backward(x64, w64, np.zeros(2), np.full((1, 2), g_edge), "linear", True, "nan",
                         dtype, True)  # fmt: skip
    assert np.all(r["dx"].numpy() == 0), r["dx"].numpy()
    dw = r["dw"].numpy()
    np.testing.assert_allclose(dw[0], r["x"].numpy()[0, 0] * 64 * r["g"].numpy()[0], rtol=2e-2)
    assert np.all(dw[1:] == 0)
    check_against_reference(r, "linear", True, "nan", dtype, True)


@pytest.mark.parametrize("act", ["linear", "relu", "gelu"])
@pytest.mark.parametrize(
    "dtype,x_edge", [("float16", 1500.0), pytest.param("bfloat16", 1e37, marks=BF16)]
)
def test_scaled_input_does_not_overflow(dtype, x_edge, act):
    """x[0, 0] with s = 64 out of the dtype's range (float16: 64 * 1500 > 65504), W small: z, dx
    and dW = x s g (about 48000 in float16) are representable. The backward can move only part
    of s onto x here."""
    x64 = np.full((1, 64), np.nan)
    x64[0, 0] = x_edge
    w64 = np.zeros((64, 2))
    w64[0] = [1e-3, -1e-3]
    g64 = np.full((1, 2), 0.5 if dtype == "float16" else 0.25)
    r = forward_backward(x64, w64, np.zeros(2), g64, act, True, "nan", dtype, True)
    for name in ("y", "dx", "dw", "db"):
        assert np.isfinite(r[name].numpy()).all(), name
    assert abs(r["dw"].numpy()[0, 0]) > 0.5 * x_edge * 64 * g64[0, 0]
    check_against_reference(r, act, True, "nan", dtype, True)


@pytest.mark.parametrize("renorm", [False, True])
@pytest.mark.parametrize("act", ["gelu", "silu"])
def test_largest_float16_gradient_does_not_overflow(act, renorm):
    """g = +-65504 at z = 1.5, where gelu' and silu' exceed 1: g * act'(z) leaves float16's range
    while dW, dx and db (the two rows cancel) are representable."""
    x64 = np.array([[0.01, 0.03], [0.02, 0.05]])
    w64 = np.full((2, 3), 1e-5)
    g64 = np.array([[65504.0] * 3, [-65504.0] * 3])
    r = forward_backward(x64, w64, np.full(3, 1.5), g64, act, renorm, "nan", "float16", True)
    for name in ("y", "dx", "dw", "db"):
        assert np.isfinite(r[name].numpy()).all(), name
    check_against_reference(r, act, renorm, "nan", "float16", True)


# ---- every NaN encoding is missing -------------------------------------------------------------


@pytest.mark.parametrize("missing", ["nan", "nonfinite"])
@VARIANT
def test_every_nan_encoding_is_missing(dtype, tf32, missing):
    """Negative float16 NaNs, signalling bfloat16 NaNs (quiet bit clear) and every payload are
    missing: counted for s, masked to 0 in both GEMMs, +0 in dx."""
    rows, K, N = 40, 12, 9
    x64, w64, b64, g64 = make_inputs(rows, K, N, seed=31, nan_frac=0.0)
    mask = np.zeros((rows, K), bool)
    mask[0] = True  # one of each encoding
    mask[3:, ::2] = True
    typed = x64.astype(np_dtype(dtype))
    x_bits = with_nans(typed, mask, nan_bits(dtype)).view(f"u{typed.itemsize}")
    for renorm in (False, True):
        r = forward_backward(x64, w64, b64, g64, "relu", renorm, missing, dtype, tf32, x_bits)
        np.testing.assert_array_equal(bits(r["x"]), x_bits.view(f"i{typed.itemsize}"))
        assert not bits(r["dx"])[mask].any(), "dx must be +0 at every NaN encoding"
        check_against_reference(r, "relu", renorm, missing, dtype, tf32)


# ---- shapes --------------------------------------------------------------------------------------


@pytest.mark.parametrize("act", ["relu", "gelu"])
@VARIANT
def test_more_columns_than_one_strip(dtype, tf32, act):
    """N = 2049: the dz pre-pass splits the columns into several strips (2049 > 256 threads x 8
    or 4 columns); each strip must write its own columns of ds and db."""
    check_case(300, 17, 2049, dtype, tf32, act, True, seed=32)
    check_case(70, 3, 2049, dtype, tf32, act, False, seed=33)


@VARIANT
def test_no_output_columns_zeroes_dx(dtype, tf32):
    """N = 0: nothing flows back; dx (poisoned before the call) must be all +0."""
    rows, K = 33, 7
    x64, _, _, _ = make_inputs(rows, K, 1, seed=34)
    x = Buf((rows, K), dtype, 0, x64)
    w = Buf((K, 0), dtype)
    g = Buf((rows, 0), dtype)
    for act, renorm in (("linear", False), ("relu", True), ("gelu", True)):
        saved = Buf((rows, 0), dtype) if act != "linear" else None
        dx, dw, db = run_backward(x, w, saved, g, act, renorm, "nan", dtype, tf32)
        assert not bits(dx).any(), f"{act}: dx not zeroed"
        assert dw.t.shape == (K, 0) and db.t.shape == (0,)
        y, _ = run_forward(x, w, Buf((0,), dtype), act, renorm, "nan", dtype, tf32)
        assert y.t.shape == (rows, 0)


TILE_EDGES = [
    (127, 63, 63), (128, 64, 64), (129, 65, 65), (129, 64, 129), (127, 65, 1), (128, 1, 63),
    (1, 63, 129), (129, 1, 1), (0, 65, 129), (0, 1, 1),
]  # fmt: skip


@pytest.mark.parametrize("shape", TILE_EDGES, ids=[f"{r}x{k}x{n}" for r, k, n in TILE_EDGES])
@VARIANT
def test_tile_edge_shapes(dtype, tf32, shape):
    rows, K, N = shape
    for i, (act, renorm) in enumerate((("relu", True), ("silu", False), ("linear", True))):
        check_case(rows, K, N, dtype, tf32, act, renorm, seed=40 + i)


# ---- bit-for-bit properties ----------------------------------------------------------------------


OUTPUTS = ("y", "z", "dx", "dw", "db")


def same_bits(a, b, what):
    for name in OUTPUTS:
        if a[name] is not None:
            np.testing.assert_array_equal(bits(a[name]), bits(b[name]), err_msg=f"{what}: {name}")


@pytest.mark.parametrize("act", ref.ACTIVATIONS)
@VARIANT
def test_options_that_change_nothing_change_no_bit(dtype, tf32, act):
    """renormalize on rows without missing entries (s = 1) and "nonfinite" on data without Inf
    give the same bits as their defaults."""
    # K * (1 / K) != 1 in float32 for K = 41 and in float64 for K = 49: s must be exactly 1.
    rows, K, N = 150, 49 if dtype == "float64" else 41, 130
    _, w64, b64, g64 = make_inputs(rows, K, N, seed=35)
    x64 = np.random.default_rng(35).standard_normal((rows, K))  # nothing missing: s = 1
    plain = forward_backward(x64, w64, b64, g64, act, False, "nan", dtype, tf32)
    same_bits(plain, forward_backward(x64, w64, b64, g64, act, True, "nan", dtype, tf32), "renorm")
    x64, w64, b64, g64 = make_inputs(rows, K, N, seed=36, nan_frac=0.2)
    for renorm in (False, True):
        nan = forward_backward(x64, w64, b64, g64, act, renorm, "nan", dtype, tf32)
        other = forward_backward(x64, w64, b64, g64, act, renorm, "nonfinite", dtype, tf32)
        same_bits(nan, other, f"nonfinite renorm={renorm}")


@VARIANT
def test_fully_missing_row_has_z_equal_to_b(dtype, tf32):
    rows, K, N = 64, 9, 33
    x64, w64, b64, g64 = make_inputs(rows, K, N, seed=37)  # rows 1 and 63 fully missing
    for renorm in (False, True):
        r = forward_backward(x64, w64, b64, g64, "gelu", renorm, "nan", dtype, tf32)
        z, b = r["z"].numpy(), r["b"].numpy()
        np.testing.assert_array_equal(z[[1, rows - 1]], np.stack([b, b]))
        assert np.all(r["dx"].numpy()[[1, rows - 1]] == 0)


DETERMINISM_SHAPES = [(3000, 64, 256), (700, 1, 2049), (5000, 130, 3)]


@pytest.mark.large  # as test_masked_dense_gpu.py's: three runs of millions of outputs
@pytest.mark.parametrize("shape", DETERMINISM_SHAPES, ids=lambda s: "x".join(map(str, s)))
@VARIANT
def test_deterministic(dtype, tf32, shape):
    """y, z, dx, dW and db bit-identical over three runs (dW row chunks, db chunks, strips)."""
    rows, K, N = shape
    x64, w64, b64, g64 = make_inputs(rows, K, N, seed=38)
    runs = [
        forward_backward(x64, w64, b64, g64, "silu", True, "nan", dtype, tf32) for _ in range(3)
    ]
    for again in runs[1:]:
        same_bits(runs[0], again, "rerun")
    assert math.isfinite(float(runs[0]["db"].numpy().sum()))
