"""GPU tests of the masked_dense CUDA kernels with indicator weights U (docs/design.md):
z = s * (xf @ W) + m @ U + b and dU = m^T @ dz, through the raw bindings with poisoned outputs
and workspace as in test_masked_dense_gpu.py, against the float64 reference of _reference.py
(forward(..., u=U), indicator_grad) within its bounds; then the public wrappers of
safeops.native. Markers as in test_masked_dense_gpu.py.
"""

import math

import _reference as ref
import numpy as np
import pytest

# Importing test_masked_dense_gpu skips this module too where _backend finds no device.
from test_masked_dense_gpu import (
    DEV,
    SHAPES,
    VARIANT_IDS,
    VARIANTS,
    Buf,
    make_inputs,
    run_backward,
    run_forward,
)

from safeops import native

pytestmark = pytest.mark.shared_memory
VARIANT = pytest.mark.parametrize("dtype,tf32", VARIANTS, ids=VARIANT_IDS)


def make_u(K, N, seed):
    return np.random.default_rng(seed).standard_normal((K, N)) / math.sqrt(max(K, 1))


def indicator_inputs(rows, K, N, seed, nan_frac=0.15, inf_frac=0.0):
    """make_inputs' x, w, b, g (fully missing rows 1 and rows-1, feature K // 2 never observed)
    with row 0 fully observed, and U."""
    x, w, b, g = make_inputs(rows, K, N, seed, nan_frac, inf_frac)
    if rows >= 4 and nan_frac < 1.0:
        x[0] = np.random.default_rng(seed + 1).standard_normal(K)
    return x, w, b, g, make_u(K, N, seed + 2)


def check_indicator_case(rows, K, N, dtype, tf32, act, renorm, missing="nan", seed=0, offset=0,
                         nan_frac=0.15, inf_frac=0.0):  # fmt: skip
    """Forward and backward with U against the reference; returns the Bufs
    (y, z, dx, dw, db, du) and the inputs as rounded to the dtype."""
    x64, w64, b64, g64, u64 = indicator_inputs(rows, K, N, seed, nan_frac, inf_frac)
    x, w, b, u = (Buf(a.shape, dtype, offset, a) for a in (x64, w64, b64, u64))
    xr, wr, br, ur = x.numpy(), w.numpy(), b.numpy(), u.numpy()
    where = f"U {dtype}{'/tf32' if tf32 else ''} {act} renorm={renorm} {missing} {(rows, K, N)}"

    y, z = run_forward(x, w, b, act, renorm, missing, dtype, tf32, offset, u=u)
    yr, zr = ref.forward(xr, wr, br, act, renorm, missing, u=ur)
    ty, tz = ref.forward_bounds(xr, wr, br, act, renorm, missing, dtype, tf32, u=ur)
    ref.check_close(y.numpy(), yr, ty, f"y {where}")
    if z is not None:
        ref.check_close(z.numpy(), zr, tz, f"z {where}")

    saved = None
    if act != "linear":
        saved = Buf((rows, N), dtype, offset, zr if act in ref.SAVES_Z else yr)
    g = Buf((rows, N), dtype, offset, g64)
    sr = saved.numpy() if saved is not None else None
    gr = g.numpy()
    dx, dw, db, du = run_backward(
        x, w, saved, g, act, renorm, missing, dtype, tf32, offset, with_du=True
    )
    want = ref.backward(xr, wr, sr, gr, act, renorm, missing)
    tols = ref.backward_bounds(xr, wr, sr, gr, act, renorm, missing, dtype, tf32)
    for name, out, wv, tol in zip(("dx", "dw", "db"), (dx, dw, db), want, tols, strict=True):
        ref.check_close(out.numpy(), wv, tol, f"{name} {where}")
    du_ref = ref.indicator_grad(xr, sr, gr, act, missing)
    tdu = ref.indicator_grad_bounds(xr, sr, gr, act, missing, dtype, tf32)
    ref.check_close(du.numpy(), du_ref, tdu, f"du {where}")
    m = ref.missing_mask(xr, missing)
    if inf_frac == 0.0 or missing == "nonfinite":
        for name, out in (("dx", dx), ("dw", dw), ("db", db), ("du", du)):
            assert np.all(np.isfinite(out.numpy())), f"{name} {where}: non-finite gradient"
        # A feature that is never missing has an exact +0 in dU (a sum of exact zeros).
        never = ~m.any(axis=0)
        assert np.all(du.numpy()[never] == 0) and not np.signbit(du.numpy()[never]).any()
    return (y, z, dx, dw, db, du), (xr, wr, br, ur, sr, gr)


# ---- against the reference ---------------------------------------------------------------------


@pytest.mark.parametrize("renorm", [False, True], ids=["plain", "renorm"])
@pytest.mark.parametrize("act", ref.ACTIVATIONS)
@VARIANT
def test_indicator_matches_reference(dtype, tf32, act, renorm):
    # SHAPES: K and N off the tiles (K = 1, 3, 17, 130; N = 1, 5, 257), N = 1 and K = 1.
    for i, (rows, K, N) in enumerate(SHAPES):
        check_indicator_case(rows, K, N, dtype, tf32, act, renorm, seed=200 + i)


@pytest.mark.parametrize("act", ["linear", "gelu", "sigmoid"])
@VARIANT
def test_indicator_every_value_missing(dtype, tf32, act):
    # Every row fully missing: z = U's column sums + b (s = 0), dU = column sums of dz.
    for renorm in (False, True):
        outs, (xr, _, br, ur, _, _) = check_indicator_case(
            40, 9, 12, dtype, tf32, act, renorm, seed=21, nan_frac=1.0
        )
        dx, dw = outs[2].numpy(), outs[3].numpy()
        assert np.all(dx == 0) and np.all(dw == 0)


@pytest.mark.parametrize("renorm", [False, True], ids=["plain", "renorm"])
@VARIANT
def test_indicator_adds_nothing_where_nothing_is_missing(dtype, tf32, renorm):
    # No missing value: y and every gradient but dU are bit-identical to the run without U
    # (m @ U adds exact zeros), and dU is exactly +0.
    rows, K, N = 70, 21, 19
    _, w64, b64, g64 = make_inputs(rows, K, N, seed=22)
    x64 = np.random.default_rng(22).standard_normal((rows, K))  # no missing row or feature
    x, w, b, g = (Buf(a.shape, dtype, 0, a) for a in (x64, w64, b64, g64))
    u = Buf((K, N), dtype, 0, make_u(K, N, 23))
    runs = []
    for uu in (None, u):
        y, z = run_forward(x, w, b, "gelu", renorm, "nan", dtype, tf32, u=uu)
        grads = run_backward(x, w, z, g, "gelu", renorm, "nan", dtype, tf32, with_du=uu is not None)
        runs.append([DEV.bits(o.t) for o in (y, z, *grads)])
    for name, a, c in zip(("y", "z", "dx", "dw", "db"), runs[0], runs[1], strict=False):
        assert np.array_equal(a, c), f"{name}: differs with U"
    du = DEV.get(grads[3].t)
    assert np.all(du == 0) and not np.signbit(du).any()


# Under "nonfinite" an Inf is missing (m = 1, it reaches U); under "nan" it is data, and the
# backward is compared for linear and relu only, where it is well defined (test_masked_dense_gpu).
@pytest.mark.parametrize(
    "act,missing",
    [(a, "nan") for a in ("linear", "relu")]
    + [(a, "nonfinite") for a in ("linear", "relu", "silu")],
)
@VARIANT
def test_indicator_inf_is_missing_only_under_nonfinite(dtype, tf32, act, missing):
    check_indicator_case(64, 17, 33, dtype, tf32, act, True, missing, seed=24, inf_frac=0.05)


@pytest.mark.parametrize("offset", [1, 3])
@VARIANT
def test_indicator_unaligned_pointers(dtype, tf32, offset):
    # U and dU `offset` elements past an aligned address: element loads and stores.
    for rows, K, N in [(70, 64, 128), (33, 17, 65)]:
        check_indicator_case(rows, K, N, dtype, tf32, "silu", True, seed=25, offset=offset)
        check_indicator_case(rows, K, N, dtype, tf32, "relu", False, seed=26, offset=offset)


@VARIANT
def test_indicator_multi_chunk_reduction(dtype, tf32):
    # Several dW / dU row chunks (1100 rows of 512-row chunks for a single output tile) and a
    # 128-wide K tile with two column tiles.
    check_indicator_case(1100, 17, 5, dtype, tf32, "tanh", True, seed=27)
    check_indicator_case(1100, 130, 70, dtype, tf32, "linear", False, seed=28)


@VARIANT
def test_indicator_deterministic(dtype, tf32):
    # Bit-identical reruns; dx, dW and db bit-identical to the backward without U.
    rows, K, N = 1500, 40, 24
    x64, w64, b64, g64, u64 = indicator_inputs(rows, K, N, seed=29)
    x, w, b, g, u = (Buf(a.shape, dtype, 0, a) for a in (x64, w64, b64, g64, u64))
    runs = []
    for _ in range(2):
        y, z = run_forward(x, w, b, "silu", True, "nan", dtype, tf32, u=u)
        grads = run_backward(x, w, z, g, "silu", True, "nan", dtype, tf32, with_du=True)
        runs.append([DEV.bits(o.t) for o in (y, z, *grads)])
    for name, a, c in zip(("y", "z", "dx", "dw", "db", "du"), runs[0], runs[1], strict=True):
        assert np.array_equal(a, c), f"{name}: runs differ"
    plain = run_backward(x, w, z, g, "silu", True, "nan", dtype, tf32)
    for name, a, o in zip(("dx", "dw", "db"), runs[0][2:5], plain, strict=True):
        assert np.array_equal(a, DEV.bits(o.t)), f"{name}: differs from the backward without U"


@VARIANT
def test_indicator_zero_rows_and_empty_shapes(dtype, tf32):
    K, N = 5, 7
    x = Buf((0, K), dtype)
    w = Buf((K, N), dtype, 0, np.ones((K, N)))
    u = Buf((K, N), dtype, 0, np.ones((K, N)))
    g = Buf((0, N), dtype)
    y, z = run_forward(x, w, None, "gelu", True, "nan", dtype, tf32, u=u)
    assert y.t.shape == (0, N)
    dx, dw, db, du = run_backward(x, w, Buf((0, N), dtype), g, "gelu", True, "nan", dtype, tf32,
                                  with_du=True)  # fmt: skip
    assert np.all(du.numpy() == 0) and np.all(dw.numpy() == 0)  # written, not left poisoned


# ---- the public wrappers ---------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_indicator_wrappers_rank3_input(dtype):
    x64, w64, b64, g64, u64 = indicator_inputs(3 * 41, 19, 23, seed=30)
    x = DEV.put(x64.reshape(3, 41, 19), dtype)
    w, b, u = (DEV.put(a, dtype) for a in (w64, b64, u64))
    g = DEV.put(g64.reshape(3, 41, 23), dtype)
    y, z = native.masked_dense(x, w, b, activation="silu", renormalize=True, indicator_kernel=u)
    assert y.shape == (3, 41, 23) and DEV.dtype_name(y) == dtype
    xr, wr, br, ur = (DEV.get(t) for t in (x.reshape(-1, 19), w, b, u))
    yr, _ = ref.forward(xr, wr, br, "silu", True, "nan", u=ur)
    ty, _ = ref.forward_bounds(xr, wr, br, "silu", True, "nan", dtype, True, u=ur)
    ref.check_close(DEV.get(y).reshape(-1, 23), yr, ty, "y rank 3 with U")
    grads = native.masked_dense_grad(
        x, w, z, g, activation="silu", renormalize=True, indicator=True
    )
    assert len(grads) == 4 and grads[3].shape == (19, 23)
    sr, gr = DEV.get(z).reshape(-1, 23), DEV.get(g).reshape(-1, 23)
    tdu = ref.indicator_grad_bounds(xr, sr, gr, "silu", "nan", dtype, True)
    du_ref = ref.indicator_grad(xr, sr, gr, "silu", "nan")
    ref.check_close(DEV.get(grads[3]), du_ref, tdu, "du rank 3")
    assert len(native.masked_dense_grad(x, w, z, g, activation="silu")) == 3


def test_indicator_wrapper_errors():
    def zeros(*shape, dtype="float32"):
        return DEV.put(np.zeros(shape), dtype)

    x, w = zeros(4, 3), zeros(3, 2)
    with pytest.raises(ValueError, match="indicator_kernel must have shape"):
        native.masked_dense(x, w, indicator_kernel=zeros(2, 3))
    with pytest.raises(TypeError, match="indicator_kernel"):
        native.masked_dense(x, w, indicator_kernel=zeros(3, 2, dtype="float64"))
