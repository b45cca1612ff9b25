"""fill_missing: both policies against NumPy for every value shape and kernel dtype; exact-zero
gradients at the missing entries even with NaN/Inf upstream; value's gradient is the sum of the
upstream over the entries it filled; XLA path; numeric gradients; second order."""

import numpy as np
import pytest
import tensorflow as tf
from select_cases import (
    DTYPES,
    FILL_CASES,
    assert_same,
    assert_sum_close,
    fill_missing_grad_ref,
    fill_missing_ref,
    finite_values,
    missing_ref,
    special_values,
)
from tf_grads import upstream_second_order, value_and_grads

import safeops

CASES = pytest.mark.parametrize("case", list(FILL_CASES.values()), ids=list(FILL_CASES.keys()))
POLICIES = pytest.mark.parametrize("missing", ["nan", "nonfinite"])


def fill_and_grads(x, value, upstream, missing, jit_compile=None):
    """[output, d/dx, d/dvalue] of fill_missing (see tf_grads.value_and_grads)."""
    fill = lambda a, v: safeops.fill_missing(a, v, missing=missing)  # noqa: E731
    return value_and_grads(fill, [x, value], upstream, jit_compile)


@CASES
@POLICIES
def test_forward_matches_numpy(case, missing, dtype, rng):
    xs, vs = case
    x = special_values(rng, xs, dtype)
    value = finite_values(rng, vs, dtype)
    got = safeops.fill_missing(tf.constant(x), tf.constant(value), missing=missing)
    assert got.dtype == tf.as_dtype(dtype.name) and got.shape == xs
    assert_same(got.numpy(), fill_missing_ref(x, value, missing), f"fill_missing {missing}")


@POLICIES
def test_python_scalar_value_takes_x_dtype(missing, dtype, rng):
    x = special_values(rng, (4, 7), dtype)
    got = safeops.fill_missing(tf.constant(x), -3.0, missing=missing)
    assert got.dtype == tf.as_dtype(dtype.name)
    assert_same(got.numpy(), fill_missing_ref(x, -3.0, missing))
    assert_same(
        safeops.fill_missing(tf.constant(x), missing=missing).numpy(),
        fill_missing_ref(x, 0.0, missing),
    )


@CASES
@POLICIES
def test_gradients(case, missing, dtype, rng):
    xs, vs = case
    x = special_values(rng, xs, dtype)
    value = finite_values(rng, vs, dtype)
    g = finite_values(rng, xs, dtype)
    _, gx, gv = fill_and_grads(x, value, g, missing)
    want_gx, want_gv = fill_missing_grad_ref(x, vs, g, missing)
    assert_same(gx, want_gx, "d/dx")
    assert gv.shape == vs
    assert_sum_close(gv, want_gv, dtype, "d/dvalue")


@CASES
@POLICIES
def test_nan_upstream_at_missing_entries_gives_exact_zeros(case, missing, dtype, rng):
    xs, vs = case
    x = special_values(rng, xs, dtype, nan=0.3, inf=0.2)
    m = missing_ref(x, missing)
    g = np.where(m, special_values(rng, xs, dtype, 0.5, 0.5), finite_values(rng, xs, dtype))
    g = g.astype(dtype.np)
    _, gx, _ = fill_and_grads(x, finite_values(rng, vs, dtype), g, missing)
    gx = np.asarray(gx, np.float64)
    assert (gx[m] == 0).all() and not np.signbit(gx[m]).any()
    assert_same(gx[~m], np.asarray(g, np.float64)[~m], "d/dx at present entries")


@pytest.mark.parametrize("case", ["scalar", "per_feature", "per_row", "3d_middle"])
@POLICIES
def test_jit_compile_matches_eager(case, missing, rng):
    xs, vs = FILL_CASES[case]
    dt = DTYPES[2]
    x = special_values(rng, xs, dt)
    value, g = finite_values(rng, vs, dt), finite_values(rng, xs, dt)
    eager = fill_and_grads(x, value, g, missing)
    xla = fill_and_grads(x, value, g, missing, jit_compile=True)
    graph = fill_and_grads(x, value, g, missing, jit_compile=False)
    for name, e, a, b in zip(("out", "d/dx", "d/dvalue"), eager, xla, graph, strict=True):
        if name == "d/dvalue":  # XLA may sum in another order
            np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-5)
        else:
            assert_same(a, e, f"xla {name}")
        assert_same(b, e, f"tf.function {name}")


@pytest.mark.parametrize("case", ["scalar", "per_feature", "per_row", "full", "3d_middle"])
@POLICIES
def test_compute_gradient_float64(case, missing, rng):
    xs, vs = FILL_CASES[case]
    dt = DTYPES[3]
    # Inf is present under "nan" and would make the numeric difference inf - inf.
    x = special_values(rng, xs, dt, nan=0.25, inf=0.15 if missing == "nonfinite" else 0.0)
    value = finite_values(rng, vs, dt)
    theoretical, numerical = tf.test.compute_gradient(
        lambda v: safeops.fill_missing(tf.constant(x), v, missing=missing), [tf.constant(value)]
    )
    np.testing.assert_allclose(theoretical[0], numerical[0], rtol=1e-7, atol=1e-7)
    # d/dx: perturbing the present entries only (a perturbed NaN is still NaN).
    present = ~missing_ref(x, missing)
    x_present = np.where(present, x, 0.0)
    holes = np.where(present, 0.0, x)

    def f(xp):
        return safeops.fill_missing(xp + tf.constant(holes), tf.constant(value), missing=missing)

    theoretical, numerical = tf.test.compute_gradient(f, [tf.constant(x_present)])
    np.testing.assert_allclose(theoretical[0], numerical[0], rtol=1e-7, atol=1e-7)


def test_second_order_gradient(rng):
    x = special_values(rng, (5, 4), DTYPES[3])
    value = finite_values(rng, (4,), DTYPES[3])
    g = finite_values(rng, (5, 4), DTYPES[3])

    def combine(inputs, grads):
        gx, gv = grads
        return tf.reduce_sum(tf.where(tf.math.is_finite(gx), gx, 0.0) ** 2) + tf.reduce_sum(
            gv * inputs[1]
        )

    got = upstream_second_order(safeops.fill_missing, [x, value], g, combine)
    composite = lambda x, v: tf.where(tf.math.is_nan(x), v, x)  # noqa: E731
    want = upstream_second_order(composite, [x, value], g, combine)
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_static_shape_is_x_shape():
    seen = {}

    @tf.function(input_signature=[tf.TensorSpec([None, 3]), tf.TensorSpec([3])])
    def f(x, v):
        with tf.GradientTape() as tape:
            tape.watch([x, v])
            out = safeops.fill_missing(x, v)
        gx, gv = tape.gradient(out, [x, v])
        seen.update(out=out.shape, gx=gx.shape, gv=gv.shape)
        return out

    f.get_concrete_function()
    assert seen == {"out": [None, 3], "gx": [None, 3], "gv": [3]}


def test_scalar_value_gradient_when_grad_x_overwrites_the_upstream(rng):
    """In a graph grad_x may be written over the upstream gradient (select_cpu.h,
    cuda/select.h): the scalar value's gradient must still sum the upstream values at the
    missing entries, not the zeros grad_x puts there."""
    n = 100_000
    x = rng.standard_normal(n).astype(np.float32)
    x[rng.random(n) < 0.3] = np.nan
    missing = np.isnan(x)

    @tf.function
    def grads(x, value):
        with tf.GradientTape() as tape:
            tape.watch([x, value])
            loss = tf.reduce_sum(tf.sin(safeops.fill_missing(x, value)))
        return tape.gradient(loss, [x, value])

    gx, gvalue = grads(tf.constant(x), tf.constant(np.float32(2.0)))
    upstream = np.cos(np.where(missing, 2.0, x))
    np.testing.assert_allclose(gx.numpy(), np.where(missing, 0.0, upstream), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(float(gvalue), upstream[missing].sum(), rtol=1e-4)
