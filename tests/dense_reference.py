"""float64 NumPy reference of masked_dense, written from docs/design.md's formulas (no
TensorFlow). NaN policy: a NaN pre-activation stays NaN through every activation, relu included
(np.maximum propagates NaN); relu's backward is a select: g where z > 0, an exact 0 where z <= 0
(even for a NaN g), NaN where z is NaN."""

import math

import numpy as np

ACTIVATIONS = ("linear", "relu", "gelu", "sigmoid", "tanh", "silu")

_erf = np.vectorize(math.erf, otypes=[np.float64])


def _sigmoid(z):
    with np.errstate(over="ignore"):  # exp(-z) = inf for very negative z: sigmoid is 0
        return 1.0 / (1.0 + np.exp(-z))


def activate(act, z):
    if act == "relu":
        return np.maximum(z, 0.0)
    if act == "gelu":
        return 0.5 * z * (1.0 + _erf(z / math.sqrt(2.0)))
    if act == "sigmoid":
        return _sigmoid(z)
    if act == "tanh":
        return np.tanh(z)
    if act == "silu":
        return z * _sigmoid(z)
    return z


def derivative(act, z):
    if act == "relu":
        return (z > 0).astype(np.float64)
    if act == "gelu":
        return 0.5 * (1.0 + _erf(z / math.sqrt(2.0))) + z * np.exp(-0.5 * z * z) / math.sqrt(
            2.0 * math.pi
        )
    if act == "sigmoid":
        s = _sigmoid(z)
        return s * (1.0 - s)
    if act == "tanh":
        return 1.0 - np.tanh(z) ** 2
    if act == "silu":
        s = _sigmoid(z)
        return s * (1.0 + z * (1.0 - s))
    return np.ones_like(z)


def activation_grad(act, z, g):
    """g * act'(z); relu selects (see the module docstring)."""
    if act == "relu":
        return np.where(z > 0, g, np.where(z <= 0, 0.0, z))
    return g * derivative(act, z)


def missing_mask(x, missing):
    return np.isnan(x) if missing == "nan" else ~np.isfinite(x)


def masked_dense(
    x, w, b, act="linear", renormalize=False, missing="nan", upstream=None, indicator_kernel=None
):
    """Forward y and, when `upstream` (dL/dy) is given, (dx, dw, db) as a dict; with an
    indicator_kernel U, z gains m @ U and the dict "du" = m^T @ dz."""
    x = np.asarray(x, np.float64)
    w = np.asarray(w, np.float64)
    k = x.shape[-1]
    m = missing_mask(x, missing)
    xf = np.where(m, 0.0, x)
    n_obs = k - m.sum(axis=-1, keepdims=True)
    if renormalize:
        s = np.where(n_obs > 0, k / np.maximum(n_obs, 1), 0.0)
    else:
        s = np.ones_like(n_obs, dtype=np.float64)
    z = s * (xf @ w) + (0.0 if b is None else np.asarray(b, np.float64))
    if indicator_kernel is not None:
        z = z + m.astype(np.float64) @ np.asarray(indicator_kernel, np.float64)
    out = {"y": activate(act, z), "z": z}
    if upstream is not None:
        g = np.asarray(upstream, np.float64)
        dz = activation_grad(act, z, g)
        rows_dz = dz.reshape(-1, dz.shape[-1])
        out["db"] = rows_dz.sum(axis=0)
        out["dw"] = xf.reshape(-1, k).T @ (s.reshape(-1, 1) * rows_dz)
        out["dx"] = np.where(m, 0.0, s * (dz @ w.T))
        if indicator_kernel is not None:
            out["du"] = m.reshape(-1, k).T.astype(np.float64) @ rows_dz
    return out
