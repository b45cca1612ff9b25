"""Self-check of the float64 masked_dense reference that the GPU tests trust (NumPy only, runs
anywhere): the vectorised reference against a naive per-element loop written from
docs/design.md's formulas, and its backward against central finite differences of its forward."""

import math

import numpy as np
import pytest
from _reference import (
    ACTIVATIONS,
    DERIVATIVE_BOUND,
    SAVES_Z,
    activate,
    activation_grad,
    backward,
    backward_bounds,
    check_close,
    forward,
    forward_bounds,
    indicator_grad,
    indicator_grad_bounds,
)


def _naive_act(name, z):
    if name == "relu":
        return 0.0 if z <= 0 else z  # a NaN z stays NaN (docs/design.md, NaN policy)
    if name == "gelu":
        return z * 0.5 * math.erfc(-z / math.sqrt(2.0))
    if name == "sigmoid":
        return 0.5 * (1.0 + math.tanh(0.5 * z))  # a different formula on purpose
    if name == "tanh":
        return math.tanh(z)
    if name == "silu":
        return z * 0.5 * (1.0 + math.tanh(0.5 * z))
    return z


def _naive_forward(x, w, b, act, renormalize, missing, u=None):
    x, w, b = x.tolist(), w.tolist(), b.tolist()  # Python floats: IEEE inf * w, no warnings
    u = None if u is None else u.tolist()
    rows, K, N = len(x), len(x[0]), len(b)
    y = np.zeros((rows, N))
    for r in range(rows):
        n_missing = 0
        for k in range(K):
            v = x[r][k]
            if math.isnan(v) or (missing == "nonfinite" and math.isinf(v)):
                n_missing += 1
        n_obs = K - n_missing
        s = (K / n_obs if n_obs > 0 else 0.0) if renormalize else 1.0
        for n in range(N):
            acc = 0.0
            indicators = 0.0
            for k in range(K):
                v = x[r][k]
                if math.isnan(v) or (missing == "nonfinite" and math.isinf(v)):
                    indicators += u[k][n] if u is not None else 0.0
                    continue  # select: the missing value never enters a product
                acc += v * w[k][n]
            y[r, n] = _naive_act(act, s * acc + indicators + b[n])
    return y


def _inputs(rows, K, N, seed, inf=False):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, K))
    x[rng.random((rows, K)) < 0.2] = np.nan
    x[1, :] = np.nan  # every feature missing
    x[:, K // 2] = np.nan  # a feature never observed
    if inf:
        x[0, 0] = np.inf
        x[2, K - 1] = -np.inf
    w = rng.standard_normal((K, N)) / math.sqrt(K)
    b = 0.5 * rng.standard_normal(N)
    g = rng.standard_normal((rows, N))
    return x, w, b, g


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("renormalize", [False, True])
@pytest.mark.parametrize("missing", ["nan", "nonfinite"])
def test_forward_matches_naive_loop(activation, renormalize, missing):
    x, w, b, _ = _inputs(7, 5, 4, seed=1, inf=True)
    y, _ = forward(x, w, b, activation, renormalize, missing)
    want = _naive_forward(x, w, b, activation, renormalize, missing)
    # Inf entries (rows 0 and 2) propagate under "nan" and are missing under "nonfinite".
    np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-12)
    assert np.all(np.isfinite(y[[0, 2]])) == (missing == "nonfinite") or activation in (
        "sigmoid",
        "tanh",
        "relu",
    )
    # A row with every feature missing gives act(b).
    np.testing.assert_allclose(y[1], [_naive_act(activation, v) for v in b], rtol=1e-12)


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("renormalize", [False, True])
def test_backward_matches_finite_differences(activation, renormalize):
    x, w, b, g = _inputs(6, 4, 3, seed=2)
    y, z = forward(x, w, b, activation, renormalize, "nan")
    saved = z if activation in SAVES_Z else y
    dx, dw, db = backward(x, w, saved, g, activation, renormalize, "nan")

    def loss(x_, w_, b_):
        return float(np.sum(g * forward(x_, w_, b_, activation, renormalize, "nan")[0]))

    eps = 1e-6

    def fd(arr, idx, make):
        hi, lo = arr.copy(), arr.copy()
        hi[idx] += eps
        lo[idx] -= eps
        return (loss(*make(hi)) - loss(*make(lo))) / (2 * eps)

    for idx in np.ndindex(w.shape):
        assert fd(w, idx, lambda a: (x, a, b)) == pytest.approx(dw[idx], rel=1e-5, abs=1e-6)
    for idx in np.ndindex(b.shape):
        assert fd(b, idx, lambda a: (x, w, a)) == pytest.approx(db[idx], rel=1e-5, abs=1e-6)
    for idx in np.ndindex(x.shape):
        if np.isnan(x[idx]):
            assert dx[idx] == 0.0  # the select: exact zero at missing entries
        else:
            assert fd(x, idx, lambda a: (a, w, b)) == pytest.approx(dx[idx], rel=1e-5, abs=1e-6)
    assert np.all(np.isfinite(dx)) and np.all(np.isfinite(dw)) and np.all(np.isfinite(db))
    # The never-observed feature gets an exact-zero weight gradient.
    assert np.all(dw[x.shape[1] // 2] == 0.0)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_nan_pre_activation_is_never_hidden(activation):
    """A NaN weight makes z NaN; every activation, relu included, keeps it, and a NaN saved
    value gives a NaN dz. relu's backward is a select: g where y > 0, an exact 0 where y <= 0
    even for a NaN g."""
    x = np.ones((4, 3))
    w = np.ones((3, 2))
    w[1, 0] = np.nan
    y, z = forward(x, w, np.zeros(2), activation, False, "nan")
    assert np.isnan(y[:, 0]).all() and np.isnan(z[:, 0]).all()
    assert np.isfinite(y[:, 1]).all()
    if activation != "linear":  # (linear's derivative does not depend on z)
        saved = z if activation in SAVES_Z else y
        assert np.isnan(activation_grad(activation, saved[:, :1], np.ones((4, 1)))).all()
    if activation == "relu":
        got = activation_grad("relu", np.array([2.0, 0.0, -0.0, np.nan]), np.full(4, np.nan))
        assert np.isnan(got[0]) and got[1] == 0 and got[2] == 0 and np.isnan(got[3])
        assert not np.signbit(got[1:3]).any()


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
def test_bounds_are_positive_and_pass_the_reference_itself(dtype):
    x, w, b, g = _inputs(9, 6, 5, seed=3)
    y, z = forward(x, w, b, "gelu", True, "nan")
    ty, tz = forward_bounds(x, w, b, "gelu", True, "nan", dtype, tf32=False)
    assert np.all(ty > 0) and np.all(tz > 0)
    check_close(y, y, ty, "y")
    dx, dw, db = backward(x, w, z, g, "gelu", True, "nan")
    tdx, tdw, tdb = backward_bounds(x, w, z, g, "gelu", True, "nan", dtype, tf32=False)
    check_close(dx, dx, tdx, "dx")
    # Zero where the result is an exact zero (missing entries, never-observed feature).
    assert np.all(tdx[np.isnan(x)] == 0) and np.all(tdw[x.shape[1] // 2] == 0)
    with pytest.raises(AssertionError):
        check_close(dx + 10 * tdx + 1e-3, dx, tdx, "dx")
    with pytest.raises(AssertionError):
        check_close(np.where(np.isnan(x), np.nan, dx), dx, tdx, "dx")


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("renormalize", [False, True])
@pytest.mark.parametrize("missing", ["nan", "nonfinite"])
def test_indicator_forward_matches_naive_loop(activation, renormalize, missing):
    x, w, b, _ = _inputs(7, 5, 4, seed=6, inf=True)
    u = np.random.default_rng(7).standard_normal(w.shape)
    y, _ = forward(x, w, b, activation, renormalize, missing, u)
    want = _naive_forward(x, w, b, activation, renormalize, missing, u)
    np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-12)
    # A row with every feature missing gives act(b + the sum of U's rows), unscaled by s.
    np.testing.assert_allclose(y[1], activate(activation, b + u.sum(axis=0)), rtol=1e-12)


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("renormalize", [False, True])
def test_indicator_grad_matches_finite_differences(activation, renormalize):
    x, w, b, g = _inputs(6, 4, 3, seed=8)
    u = 0.5 * np.random.default_rng(9).standard_normal(w.shape)
    y, z = forward(x, w, b, activation, renormalize, "nan", u)
    du = indicator_grad(x, z if activation in SAVES_Z else y, g, activation, "nan")
    eps = 1e-6
    for idx in np.ndindex(u.shape):
        hi, lo = u.copy(), u.copy()
        hi[idx] += eps
        lo[idx] -= eps
        f_hi = np.sum(g * forward(x, w, b, activation, renormalize, "nan", hi)[0])
        f_lo = np.sum(g * forward(x, w, b, activation, renormalize, "nan", lo)[0])
        assert (f_hi - f_lo) / (2 * eps) == pytest.approx(du[idx], rel=1e-5, abs=1e-6)
    # dx, dW and db do not change with U beyond what z carries.
    dx, dw, db = backward(
        x, w, z if activation in SAVES_Z else y, g, activation, renormalize, "nan"
    )
    assert np.all(dx[np.isnan(x)] == 0.0) and np.all(np.isfinite(du))


# ---- the bounds against an emulation of the kernels' arithmetic -------------------------------
# Operands rounded to the dtype (and to TF32), float32 accumulation (float64 for float64),
# activations in the accumulation type, ds = s * dz / (c 2^a) rounded to the dtype with 2^a
# moved onto x (exact) and c 2^a applied to dx, results rounded once.
# A correct kernel must pass with these bounds; a kernel that drops the bias or the scale
# must not.


# The dtypes the kernels run, with TF32 on and off for float32.
KERNEL_DTYPES = [
    ("float16", False),
    ("bfloat16", False),
    ("float32", False),
    ("float32", True),
    ("float64", False),
]


def _round_bits(a, keep):
    """Round float32 values to `keep` explicit mantissa bits (nearest even); NaN/Inf kept."""
    a = np.asarray(a, dtype=np.float32)
    u = a.view(np.uint32).astype(np.uint64)
    drop = 23 - keep
    r = (u + ((1 << (drop - 1)) - 1) + ((u >> drop) & 1)) >> drop << drop
    out = r.astype(np.uint32).view(np.float32)
    return np.where(np.isfinite(a), out, a)


def _to_dtype(a, dtype):
    if dtype == "float64":
        return np.asarray(a, dtype=np.float64)
    if dtype == "float16":
        return np.asarray(a, dtype=np.float16).astype(np.float32)
    if dtype == "bfloat16":
        return _round_bits(a, 7)
    return np.asarray(a, dtype=np.float32)


def _emulate(x, w, b, g, act, renormalize, dtype, tf32, drop_bias=False, drop_scale=False, u=None):
    acc_t = np.float64 if dtype == "float64" else np.float32
    m = np.isnan(x)
    xf = np.where(m, 0.0, x).astype(acc_t)
    wa = w.astype(acc_t)
    ua = None if u is None else u.astype(acc_t)
    if tf32 and dtype == "float32":
        xf, wa = _round_bits(xf, 10), _round_bits(wa, 10)
        ua = None if u is None else _round_bits(ua, 10)
    K = x.shape[1]
    n_obs = K - m.sum(axis=1)
    s = np.where(n_obs > 0, K / np.maximum(n_obs, 1), 0).astype(acc_t) if renormalize else None
    s = np.ones(x.shape[0], acc_t) if s is None or drop_scale else s
    with np.errstate(all="ignore"):
        z = s[:, None] * (xf @ wa) + (0 if drop_bias else b.astype(acc_t))
        if ua is not None:
            z = z + m.astype(acc_t) @ ua
        z = z.astype(acc_t)
        y = _to_dtype(activate(act, z).astype(acc_t), dtype)
        zq = _to_dtype(z, dtype)
        saved = zq if act in SAVES_Z else y
        dz = activation_grad(act, saved, g).astype(acc_t)
        c = DERIVATIVE_BOUND.get(act, 1)
        p = 2.0 ** np.ceil(np.log2(np.maximum(s, 1.0)))  # |x| is small: all of 2^a moves onto x
        ds = _to_dtype((s / (c * p)).astype(acc_t)[:, None] * dz, dtype).astype(acc_t)
        if tf32 and dtype == "float32":
            ds = _round_bits(ds, 10)
        dx = _to_dtype(np.where(m, 0.0, (c * p)[:, None] * (ds @ wa.T)), dtype)
        dw = _to_dtype(c * ((p[:, None] * xf).T @ ds), dtype)
        db = _to_dtype(dz.sum(axis=0, dtype=acc_t), dtype)
        dzq = c * _to_dtype(dz / c, dtype).astype(acc_t)  # dz / c stored in the dtype, as ds is
        if tf32 and dtype == "float32":
            dzq = _round_bits(dzq, 10)
        du = _to_dtype(m.T.astype(acc_t) @ dzq, dtype)
    if u is not None:
        return y, zq, saved, dx, dw, db, du
    return y, zq, saved, dx, dw, db


def _check_emulated(x, w, b, g, activation, dtype, tf32, outputs, u=None):
    """Checks emulated (y, z, saved, dx, dw, db) against the reference within the bounds;
    returns (y_ref, tol_y)."""
    y, z, saved, dx, dw, db = outputs
    yr, zr = forward(x, w, b, activation, True, "nan", u)
    ty, tz = forward_bounds(x, w, b, activation, True, "nan", dtype, tf32, u=u)
    check_close(y, yr, ty, "y")
    check_close(z, zr, tz, "z")
    refs = backward(x, w, saved, g, activation, True, "nan")
    tols = backward_bounds(x, w, saved, g, activation, True, "nan", dtype, tf32)
    for name, out, want, tol in zip(("dx", "dw", "db"), (dx, dw, db), refs, tols, strict=True):
        check_close(out, want, tol, name)
    return yr, ty


@pytest.mark.parametrize("dtype,tf32", KERNEL_DTYPES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_bounds_accept_emulated_kernel_and_reject_bugs(dtype, tf32, activation):
    rng = np.random.default_rng(4)
    rows, K, N = 300, 130, 70
    x, w, b, g = (_to_dtype(a, dtype).astype(np.float64) for a in _inputs(rows, K, N, seed=5))
    x[rng.random(x.shape) < 0.05] = np.nan
    y, z, saved, dx, dw, db = _emulate(x, w, b, g, activation, True, dtype, tf32)
    yr, ty = _check_emulated(x, w, b, g, activation, dtype, tf32, (y, z, saved, dx, dw, db))
    # The same arithmetic without the bias / without the renormalisation scale must fail.
    for bug in ("drop_bias", "drop_scale"):
        yb = _emulate(x, w, b, g, activation, True, dtype, tf32, **{bug: True})[0]
        with pytest.raises(AssertionError):
            check_close(yb, yr, ty, "y")


@pytest.mark.parametrize("dtype,tf32", KERNEL_DTYPES)
@pytest.mark.parametrize("activation", ["linear", "relu", "gelu", "sigmoid"])
def test_indicator_bounds_accept_emulated_kernel_and_reject_bugs(dtype, tf32, activation):
    """What the fused kernel with indicator weights will be held to (tests/gpu): its emulated
    arithmetic passes; the same arithmetic without the m @ U term, or with U scaled by s, fails."""
    rng = np.random.default_rng(10)
    rows, K, N = 300, 130, 70
    x, w, b, g = (_to_dtype(a, dtype).astype(np.float64) for a in _inputs(rows, K, N, seed=11))
    x[rng.random(x.shape) < 0.05] = np.nan
    u = _to_dtype(rng.standard_normal((K, N)) / math.sqrt(K), dtype).astype(np.float64)
    y, z, saved, dx, dw, db, du = _emulate(x, w, b, g, activation, True, dtype, tf32, u=u)
    outputs = (y, z, saved, dx, dw, db)
    yr, ty = _check_emulated(x, w, b, g, activation, dtype, tf32, outputs, u)
    tdu = indicator_grad_bounds(x, saved, g, activation, "nan", dtype, tf32)
    check_close(du, indicator_grad(x, saved, g, activation, "nan"), tdu, "du")
    assert np.all(tdu[K // 2] > 0)  # the never-observed feature is missing everywhere
    # Bugs the bounds must catch: the indicator term dropped, or scaled by s with xf @ W.
    y_drop = _emulate(x, w, b, g, activation, True, dtype, tf32)[0]
    with pytest.raises(AssertionError):
        check_close(y_drop, yr, ty, "y")
    m = np.isnan(x)
    n_obs = K - m.sum(axis=1)
    s = np.where(n_obs > 0, K / np.maximum(n_obs, 1), 0)
    _, z_scaled = forward(x, w, b, "linear", True, "nan", u * 0)
    z_scaled = z_scaled + s[:, None] * (m.astype(np.float64) @ u)
    with pytest.raises(AssertionError):
        check_close(activate(activation, z_scaled), yr, ty, "y")
    with pytest.raises(AssertionError):
        check_close(du + 10 * tdu + 1e-3, indicator_grad(x, saved, g, activation, "nan"), tdu, "du")
