"""Property-based tests (hypothesis): random shapes, broadcasting, dtypes and NaN/Inf patterns
(all-missing rows and columns, subnormals, huge magnitudes) against float64 references; no
output or gradient is ever NaN because of a missing entry."""

import numpy as np
import tensorflow as tf
from dense_reference import ACTIVATIONS
from dense_reference import masked_dense as dense_reference
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import safeops

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FLOAT_DTYPES = {
    "float16": tf.float16,
    "bfloat16": tf.bfloat16,
    "float32": tf.float32,
    "float64": tf.float64,
}

# Magnitudes a tabular feature may hold, per dtype: ordinary, subnormal, huge (but with room
# for a few products and sums before overflow).
SPECIAL = {
    "float64": (1e-310, 1e150),
    "float32": (1e-40, 1e15),
    "bfloat16": (1e-39, 1e15),
    "float16": (1e-7, 20.0),
}


@st.composite
def values(draw, shape, dtype, nonfinite=False):
    """An array of `shape` mixing normal numbers, subnormals, huge values, NaN (and Inf),
    with some whole rows and columns missing."""
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    tiny, huge = SPECIAL[dtype]
    x = rng.normal(size=shape)
    kind = rng.integers(0, 10, size=shape)
    x = np.where(kind == 0, np.sign(x) * tiny, x)
    x = np.where(kind == 1, np.sign(x) * huge, x)
    x = np.where(kind == 2, np.nan, x)
    if nonfinite:
        x = np.where(kind == 3, np.inf * np.sign(x + 0.5), x)
    if len(shape) >= 2 and shape[0] > 1 and draw(st.booleans()):
        x[rng.integers(shape[0])] = np.nan  # a fully missing row
    if len(shape) >= 2 and shape[-1] > 1 and draw(st.booleans()):
        x[..., rng.integers(shape[-1])] = np.nan  # a never-observed column
    return tf.cast(tf.constant(x), FLOAT_DTYPES[dtype]).numpy()


def as64(a):
    return tf.cast(a, tf.float64).numpy()


@st.composite
def broadcast_shapes(draw):
    """(condition, x, y) shapes that numpy broadcasting accepts."""
    out = draw(st.lists(st.integers(0, 4), min_size=0, max_size=4))

    def operand():
        keep = draw(st.integers(0, len(out)))
        dims = out[len(out) - keep :]
        return tuple(d if draw(st.booleans()) else 1 for d in dims)

    return operand(), operand(), operand()


@SETTINGS
@given(data=st.data(), shapes=broadcast_shapes(), dtype=st.sampled_from(list(FLOAT_DTYPES)))
def test_safe_where(data, shapes, dtype):
    c_shape, x_shape, y_shape = shapes
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31 - 1)))
    c = rng.random(c_shape) < 0.5
    x = data.draw(values(x_shape, dtype, nonfinite=True))
    y = data.draw(values(y_shape, dtype, nonfinite=True))
    out_shape = np.broadcast_shapes(c_shape, x_shape, y_shape)
    g = data.draw(values(out_shape, dtype, nonfinite=True))  # NaN/Inf upstream gradients too

    xt, yt = tf.constant(x), tf.constant(y)
    with tf.GradientTape() as tape:
        tape.watch([xt, yt])
        out = safeops.safe_where(c, xt, yt)
    gx, gy = tape.gradient(out, [xt, yt], output_gradients=tf.constant(g))

    np.testing.assert_array_equal(as64(out), np.where(c, as64(x), as64(y)))
    cb = np.broadcast_to(c, out_shape)
    g64 = as64(g)
    # The unselected side of every gradient is an exact zero: where a target element receives
    # only unselected positions, its gradient is exactly 0 even though g holds NaN/Inf there.
    for grad, shape, sel in ((gx, x_shape, cb), (gy, y_shape, ~cb)):
        contrib = np.where(sel, g64, 0.0)
        axes = tuple(range(len(out_shape) - len(shape)))
        axes += tuple(
            len(axes) + i for i, d in enumerate(shape) if d == 1 and out_shape[len(axes) + i] != 1
        )
        want = contrib.sum(axis=axes, keepdims=True).reshape(shape) if axes else contrib
        only_unselected = ~np.broadcast_to(sel, out_shape).reshape(out_shape)
        untouched = (
            np.all(only_unselected, axis=axes, keepdims=True).reshape(shape)
            if axes
            else only_unselected
        )
        got = as64(grad)
        assert np.all(got[untouched] == 0.0)
        finite = np.isfinite(want)
        tol = {"float64": 1e-9, "float32": 1e-5, "float16": 2e-2, "bfloat16": 5e-2}[dtype]
        np.testing.assert_allclose(got[finite], want[finite], rtol=tol, atol=tol)


@SETTINGS
@given(
    data=st.data(),
    rows=st.integers(0, 6),
    k=st.integers(1, 5),
    dtype=st.sampled_from(list(FLOAT_DTYPES)),
    missing=st.sampled_from(["nan", "nonfinite"]),
    per_feature=st.booleans(),
)
def test_fill_missing(data, rows, k, dtype, missing, per_feature):
    x = data.draw(values((rows, k), dtype, nonfinite=True))
    value = data.draw(values((k,) if per_feature else (), dtype)).astype(x.dtype)
    value = np.nan_to_num(value.astype(np.float64), nan=0.5).astype(x.dtype)
    xt, vt = tf.constant(x), tf.constant(value)
    g = np.ones((rows, k))
    with tf.GradientTape() as tape:
        tape.watch([xt, vt])
        out = safeops.fill_missing(xt, vt, missing=missing)
    gx, gv = tape.gradient(out, [xt, vt], output_gradients=tf.constant(g, xt.dtype))
    m = np.isnan(as64(x)) if missing == "nan" else ~np.isfinite(as64(x))
    np.testing.assert_array_equal(
        as64(out), np.where(m, np.broadcast_to(as64(value), x.shape), as64(x))
    )
    assert np.all(as64(gx)[m] == 0.0) and np.all(as64(gx)[~m] == 1.0)
    want_gv = m.sum(axis=0) if per_feature else m.sum()
    np.testing.assert_allclose(as64(gv), want_gv, rtol=1e-2)


@SETTINGS
@given(
    data=st.data(),
    rows=st.integers(0, 7),
    k=st.integers(1, 6),
    n=st.integers(1, 5),
    dtype=st.sampled_from(["float32", "float64"]),
    act=st.sampled_from(ACTIVATIONS),
    renormalize=st.booleans(),
    missing=st.sampled_from(["nan", "nonfinite"]),
)
def test_masked_dense(data, rows, k, n, dtype, act, renormalize, missing):
    x = data.draw(values((rows, k), dtype, nonfinite=missing == "nonfinite"))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31 - 1)))
    w = rng.normal(size=(k, n)).astype(x.dtype)
    b = rng.normal(size=n).astype(x.dtype)
    g = rng.normal(size=(rows, n)).astype(x.dtype)
    xt, wt, bt = tf.constant(x), tf.constant(w), tf.constant(b)
    with tf.GradientTape() as tape:
        tape.watch([xt, wt, bt])
        y = safeops.masked_dense(
            xt, wt, bt, activation=act, renormalize=renormalize, missing=missing
        )
    dx, dw, db = tape.gradient(y, [xt, wt, bt], output_gradients=tf.constant(g))
    ref = dense_reference(x, w, b, act, renormalize, missing, g)
    m = np.isnan(x) if missing == "nan" else ~np.isfinite(x)
    assert np.all(dx.numpy()[m] == 0.0)
    # Error bounds from the magnitudes summed (not the sums, which may cancel): the reference
    # run on absolute values bounds every term of every dot product.
    abs_ref = dense_reference(
        np.where(m, np.nan, np.abs(np.nan_to_num(x))),
        np.abs(w),
        np.abs(b),
        "linear",
        renormalize,
        "nan",
        np.abs(g) * 1.5,
    )
    bound = {"y": abs_ref["z"] * 1.5, "dx": abs_ref["dx"], "dw": abs_ref["dw"], "db": abs_ref["db"]}
    eps = 1e-12 if dtype == "float64" else 1e-5
    for name, got in (("y", y), ("dx", dx), ("dw", dw), ("db", db)):
        got, want = got.numpy().astype(np.float64), ref[name]
        # Where the float64 reference is finite (huge values may overflow legitimately), ours
        # is finite and close; a missing entry never makes anything NaN.
        ok = np.isfinite(want) & np.isfinite(bound[name]) & (bound[name] < 1e30)
        assert np.isfinite(got[ok]).all(), name
        assert np.all(np.abs(got[ok] - want[ok]) <= eps * (1 + bound[name][ok]) * (k + 2)), name
