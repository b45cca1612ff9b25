"""float64 NumPy reference of masked_dense (docs/design.md), and the error bounds the GPU kernels
are held to. Pure NumPy: no TensorFlow, no torch.

    m = missing(x), xf = m ? 0 : x, n_obs = K - count(m, row)
    s = renormalize ? (n_obs > 0 ? K / n_obs : 0) : 1
    z = s * (xf @ W) + b, y = act(z)
    dz = g * act'(saved), db = sum_rows(dz), dW = xf^T @ (s * dz), dx = m ? 0 : s * (dz @ W^T)

With indicator weights U [K, N] (optional everywhere): z gains m @ U (not scaled by s), and
dU = m^T @ dz; dx, dW and db keep their formulas.

`saved` is y for relu/sigmoid/tanh and z for gelu/silu, exactly as the kernels receive it (so
the backward is checked on its own, with the derivative written in terms of what is saved).

NaN policy (docs/design.md): only missing inputs are masked. A NaN pre-activation stays NaN
through every activation, relu included; relu's backward gives an exact 0 where y <= 0 (even for
a NaN g) and NaN where y is NaN.
"""

import math

import numpy as np

ACTIVATIONS = ("linear", "relu", "gelu", "sigmoid", "tanh", "silu")
SAVES_Z = ("gelu", "silu")

_erf = np.vectorize(math.erf, otypes=[np.float64])


def _sigmoid(z):
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-z))


def activate(name, z):
    z = np.asarray(z, dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        if name == "relu":
            return np.where(z <= 0, 0.0, z)  # NaN stays NaN
        if name == "gelu":
            return 0.5 * z * (1.0 + _erf(z / math.sqrt(2.0)))
        if name == "sigmoid":
            return _sigmoid(z)
        if name == "tanh":
            return np.tanh(z)
        if name == "silu":
            return z * _sigmoid(z)
    return z


def activation_grad(name, saved, g):
    """g * act', from what the forward saved (y or z; ignored for linear)."""
    saved = np.asarray(saved, dtype=np.float64)
    g = np.asarray(g, dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        if name == "relu":
            return np.where(saved > 0, g, np.where(saved <= 0, 0.0, saved))
        if name == "gelu":
            cdf = 0.5 * (1.0 + _erf(saved / math.sqrt(2.0)))
            pdf = np.exp(-0.5 * saved * saved) / math.sqrt(2.0 * math.pi)
            return g * (cdf + saved * pdf)
        if name == "sigmoid":
            return g * saved * (1.0 - saved)
        if name == "tanh":
            return g * (1.0 - saved * saved)
        if name == "silu":
            s = _sigmoid(saved)
            return g * s * (1.0 + saved * (1.0 - s))
    return g


def missing_mask(x, missing):
    if missing == "nan":
        return np.isnan(x)
    if missing == "nonfinite":
        return ~np.isfinite(x)
    raise ValueError(missing)


def row_scale(m, renormalize):
    K = m.shape[1]
    if not renormalize:
        return np.ones(m.shape[0])
    n_obs = K - m.sum(axis=1)
    return np.where(n_obs > 0, K / np.maximum(n_obs, 1), 0.0)


def _matmul(a, b):
    # Products with an Inf operand must follow IEEE (inf * 0 = nan) as on the device; BLAS
    # is not guaranteed to, so sum explicit products when a non-finite value is present.
    if np.all(np.isfinite(a)) and np.all(np.isfinite(b)):
        return a @ b
    with np.errstate(invalid="ignore", over="ignore"):
        return (a[:, :, None] * b[None, :, :]).sum(axis=1)


def forward(x, w, b, activation, renormalize, missing, u=None):
    """(y, z) in float64 for x [rows, K], w [K, N], b [N] or None, u [K, N] or None."""
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    m = missing_mask(x, missing)
    xf = np.where(m, 0.0, x)
    s = row_scale(m, renormalize)
    with np.errstate(invalid="ignore", over="ignore"):
        z = s[:, None] * _matmul(xf, w)
        if u is not None:
            z = z + _matmul(m.astype(np.float64), np.asarray(u, dtype=np.float64))
        if b is not None:
            z = z + np.asarray(b, dtype=np.float64)[None, :]
    return activate(activation, z), z


def backward(x, w, saved, g, activation, renormalize, missing):
    """(dx, dW, db) in float64."""
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    m = missing_mask(x, missing)
    xf = np.where(m, 0.0, x)
    s = row_scale(m, renormalize)
    g = np.asarray(g, dtype=np.float64)
    dz = activation_grad(activation, np.zeros_like(g) if saved is None else saved, g)
    sdz = s[:, None] * dz
    with np.errstate(invalid="ignore", over="ignore"):
        dx = np.where(m, 0.0, _matmul(sdz, w.T))
        dw = _matmul(xf.T, sdz)
    return dx, dw, dz.sum(axis=0)


def masked_input(x, renormalize, missing, indicator=False):
    """The row prologue in float64: xs = m ? 0 : s * x ([rows, K]), with `indicator` followed by
    m ? 1 : 0 ([rows, 2K])."""
    x = np.asarray(x, dtype=np.float64)
    m = missing_mask(x, missing)
    with np.errstate(invalid="ignore"):
        xs = np.where(m, 0.0, row_scale(m, renormalize)[:, None] * np.where(m, 0.0, x))
    return np.concatenate([xs, m.astype(np.float64)], axis=1) if indicator else xs


def masked_input_grad(x, g, renormalize, missing):
    """dx = m ? 0 : s * g in float64 (g [rows, K]: the prologue's gradient without its
    indicator half, which dx does not depend on)."""
    x = np.asarray(x, dtype=np.float64)
    m = missing_mask(x, missing)
    with np.errstate(invalid="ignore", over="ignore"):
        return np.where(m, 0.0, row_scale(m, renormalize)[:, None] * np.asarray(g, np.float64))


def indicator_grad(x, saved, g, activation, missing):
    """dU = m^T @ dz in float64 (the gradient of the indicator weights; independent of U)."""
    x = np.asarray(x, dtype=np.float64)
    g = np.asarray(g, dtype=np.float64)
    dz = activation_grad(activation, np.zeros_like(g) if saved is None else saved, g)
    with np.errstate(invalid="ignore", over="ignore"):
        return _matmul(missing_mask(x, missing).T.astype(np.float64), dz)


# ---- error bounds ---------------------------------------------------------------------------
#
# A kernel output is accepted where |out - ref| <= tol, with
#   tol = r_out * |ref| + r_gemm * bound,
# r_out the rounding of the stored result (half an ulp of the dtype, with slack for float
# activations), bound the sum of the absolute products that formed it (|xf| @ |W| etc.) and
# r_gemm the relative error of one such sum: operand rounding (TF32, or ds stored in the dtype)
# plus worst-case accumulation error over the reduced length.

# derivative_bound (activations.h): a power of two >= max |act'|. The backward stores
# ds = s * dz / (c * 2^a) in the dtype, 2^a <= 2 s (2^a = 1 without renormalisation).
DERIVATIVE_BOUND = {"gelu": 2, "silu": 2}

UNIT = {"float16": 2.0**-11, "bfloat16": 2.0**-8, "float32": 2.0**-24, "float64": 2.0**-53}
# Half the smallest subnormal: the absolute rounding error of a value that is stored subnormal
# (float16 subnormals start below 6.1e-5, so small gradients land there).
TINY = {"float16": 2.0**-25, "bfloat16": 2.0**-134, "float32": 2.0**-150, "float64": 0.0}


def r_out(dtype):
    return 4 * UNIT[dtype] if dtype in ("float32", "float64") else 1.5 * UNIT[dtype]


def r_gemm(dtype, length, tf32=False, rounded_operand=False):
    acc = 2.0**-53 if dtype == "float64" else 2.0**-24
    r = 2 * length * acc + 8 * acc
    if tf32 and dtype == "float32":
        r += 2 * 2.0**-11
    if rounded_operand:  # ds = s * dz / (c 2^a) stored in the dtype before the GEMM
        r += UNIT[dtype]
    return r


def forward_bounds(x, w, b, activation, renormalize, missing, dtype, tf32, u=None):
    """(tol_y, tol_z) arrays. With u, the sum runs over 2K products (xf @ W and m @ U)."""
    x = np.asarray(x, dtype=np.float64)
    m = missing_mask(x, missing)
    xf = np.abs(np.where(m, 0.0, x))
    s = row_scale(m, renormalize)
    with np.errstate(invalid="ignore", over="ignore"):
        bound = s[:, None] * _matmul(xf, np.abs(np.asarray(w, dtype=np.float64)))
        if u is not None:
            bound = bound + _matmul(m.astype(np.float64), np.abs(np.asarray(u, np.float64)))
        if b is not None:
            bound = bound + np.abs(np.asarray(b, dtype=np.float64))[None, :]
    K = x.shape[1] * (2 if u is not None else 1)
    _, z = forward(x, w, b, activation, renormalize, missing, u)
    y = activate(activation, z)
    ro, tiny = r_out(dtype), TINY[dtype]
    tol_z = ro * np.abs(z) + r_gemm(dtype, K, tf32) * bound + tiny
    # act is at most 1.13-Lipschitz (gelu); y is computed from the unrounded z.
    tol_y = ro * np.abs(y) + 1.2 * (r_gemm(dtype, K, tf32) * bound + ro * np.abs(z) + tiny) + tiny
    return tol_y, tol_z


def backward_bounds(x, w, saved, g, activation, renormalize, missing, dtype, tf32):
    """(tol_dx, tol_dw, tol_db) arrays."""
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    g = np.asarray(g, dtype=np.float64)
    saved = np.zeros_like(g) if saved is None else np.asarray(saved, dtype=np.float64)
    m = missing_mask(x, missing)
    xf = np.abs(np.where(m, 0.0, x))
    s = row_scale(m, renormalize)
    dz = activation_grad(activation, saved, g)
    sdz = np.abs(s[:, None] * dz)
    # act' is evaluated in the accumulation type: a few ulps of float, relative to the terms of
    # the derivative (|g| (1 + |saved|) bounds them for every activation; gelu' cancels).
    r_dz = 8 * (2.0**-53 if dtype == "float64" else 2.0**-24)
    # (linear and relu pass g through exactly.)
    with np.errstate(invalid="ignore", over="ignore"):
        dz_err = r_dz * np.abs(g) * (1.0 + np.abs(saved))
    if activation in ("linear", "relu"):
        dz_err = np.zeros_like(g)
    # ds = s * dz / (c 2^a) is stored in the dtype: a subnormal ds has an absolute rounding error
    # of TINY, c 2^a <= c * max(1, 2 s) times that in units of s * dz.
    tiny = TINY[dtype]
    c = DERIVATIVE_BOUND.get(activation, 1)
    ds_unit = c * np.maximum(1.0, 2.0 * s)[:, None]
    sdz_err = s[:, None] * dz_err + np.where(s[:, None] * dz != 0, tiny * ds_unit, 0.0)
    dx, dw, db = backward(x, w, saved, g, activation, renormalize, missing)
    rows, K = x.shape
    N = w.shape[1]
    ro = r_out(dtype)
    rg_dx = r_gemm(dtype, N, tf32, rounded_operand=True)
    rg_dw = r_gemm(dtype, rows, tf32, rounded_operand=True)
    aw = np.abs(w)
    with np.errstate(invalid="ignore", over="ignore"):
        # exactly 0 at the missing entries (a select)
        ex = _matmul(rg_dx * sdz + sdz_err, aw.T)
        ew = _matmul(xf.T, rg_dw * sdz + sdz_err)
    # Results that are sums of exact zeros (a never-observed feature) must be exactly 0.
    tol_dx = np.where(m, 0.0, ro * np.abs(dx) + ex + np.where(ex != 0, tiny, 0.0))
    tol_dw = ro * np.abs(dw) + ew + np.where(ew != 0, tiny, 0.0)
    tol_db = ro * np.abs(db) + r_gemm(dtype, rows) * np.abs(dz).sum(axis=0) + dz_err.sum(axis=0)
    tol_db = tol_db + np.where(tol_db != 0, tiny, 0.0)
    return tol_dx, tol_dw, tol_db


def masked_input_bounds(ref, dtype):
    """tol of the prologue (or its gradient) against the float64 `ref`: s = K / n_obs and the
    product rounded in the accumulation type (two roundings there), then once to the dtype; a
    result that lands subnormal has an absolute error of TINY. Exact where ref is 0 (a missing
    entry, an indicator, a 0 input)."""
    acc = 2.0**-53 if dtype == "float64" else 2.0**-24
    a = np.abs(np.asarray(ref, dtype=np.float64))
    return np.where(a != 0, (UNIT[dtype] + 2 * acc) * a + TINY[dtype], 0.0)


def prologue_route_bounds(x, w, b, activation, renormalize, missing, dtype, tf32, u=None):
    """(tol_y, tol_z) of the GPU route for compute-bound shapes: xs = s * xf rounded to the
    dtype by the prologue, then the platform's GEMM on xs. Against forward_bounds (which has
    s * (xf @ W), one rounding at the end) the only extra term is that rounding of xs: a
    relative UNIT[dtype] of each product, i.e. UNIT * s (|xf| @ |W|) in absolute terms (plus
    TINY per product for an xs that lands subnormal)."""
    tol_y, tol_z = forward_bounds(x, w, b, activation, renormalize, missing, dtype, tf32, u)
    x = np.asarray(x, dtype=np.float64)
    m = missing_mask(x, missing)
    xf = np.abs(np.where(m, 0.0, x))
    s = row_scale(m, renormalize)
    aw = np.abs(np.asarray(w, dtype=np.float64))
    with np.errstate(invalid="ignore", over="ignore"):
        extra = (UNIT[dtype] * s[:, None]) * _matmul(xf, aw) + TINY[dtype] * aw.sum(axis=0)
    # act is at most 1.2-Lipschitz (as in forward_bounds)
    return tol_y + 1.2 * extra, tol_z + extra


def indicator_grad_bounds(x, saved, g, activation, missing, dtype, tf32):
    """tol_du: dU = m^T @ dz summed over the rows, dz / c rounded to the dtype before the sum (as
    s * dz / (c 2^a) is for dW; c = DERIVATIVE_BOUND keeps it from overflowing, and scales a
    subnormal's rounding error by c); exactly 0 for a feature never missing."""
    x = np.asarray(x, dtype=np.float64)
    g = np.asarray(g, dtype=np.float64)
    saved = np.zeros_like(g) if saved is None else np.asarray(saved, dtype=np.float64)
    m = missing_mask(x, missing).astype(np.float64)
    dz = activation_grad(activation, saved, g)
    r_dz = (
        0.0
        if activation in ("linear", "relu")
        else 8 * (2.0**-53 if dtype == "float64" else 2.0**-24)
    )
    c = DERIVATIVE_BOUND.get(activation, 1)
    with np.errstate(invalid="ignore", over="ignore"):
        dz_err = r_dz * np.abs(g) * (1.0 + np.abs(saved)) + np.where(dz != 0, c * TINY[dtype], 0.0)
        du = indicator_grad(x, saved, g, activation, missing)
        rg = r_gemm(dtype, x.shape[0], tf32, rounded_operand=True)
        e = _matmul(m.T, rg * np.abs(dz) + dz_err)
    return r_out(dtype) * np.abs(du) + e + np.where(e != 0, TINY[dtype], 0.0)


def check_close(out, ref, tol, what):
    """Asserts |out - ref| <= tol elementwise; NaN and +-Inf must match exactly."""
    out = np.asarray(out, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    assert out.shape == ref.shape, f"{what}: shape {out.shape} != {ref.shape}"
    nan_out, nan_ref = np.isnan(out), np.isnan(ref)
    if not np.array_equal(nan_out, nan_ref):
        idx = np.argwhere(nan_out != nan_ref)[:5].tolist()
        raise AssertionError(f"{what}: NaN pattern differs at {idx}")
    inf_ref = np.isinf(ref)
    if not np.array_equal(out[inf_ref], ref[inf_ref]) or np.any(np.isinf(out) & ~inf_ref):
        raise AssertionError(f"{what}: Inf pattern differs")
    fin = np.isfinite(ref)
    with np.errstate(invalid="ignore"):
        err = np.where(fin, np.abs(out - ref), 0.0)
    tol = np.broadcast_to(np.asarray(tol, dtype=np.float64), ref.shape)
    # A non-finite bound (an Inf operand) leaves finite results that are exact constants, such
    # as relu(-inf) = 0 or sigmoid(inf) = 1: those must match exactly.
    tol = np.where(np.isfinite(tol), tol, 0.0)
    bad = err > np.where(fin, tol, np.inf)
    if np.any(bad):
        i = tuple(np.argwhere(bad)[0])
        worst = np.nanmax(np.where(fin, err / np.maximum(tol, 1e-300), 0.0))
        raise AssertionError(
            f"{what}: {int(bad.sum())} of {ref.size} elements out of tolerance; first at {i}: "
            f"got {out[i]!r}, want {ref[i]!r} (tol {tol[i]:.3g}); worst err/tol {worst:.3g}"
        )
