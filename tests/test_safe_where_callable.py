"""safe_where, callable form (the automated "double where"): branches that are NaN or Inf at
the positions not taken give finite values, gradients equal to the analytic ones where taken
and exact zeros elsewhere, in eager mode, in tf.function and under XLA."""

import numpy as np
import pytest
import tensorflow as tf
from select_cases import DTYPES

import safeops

# branch, its derivative (float64 NumPy); every branch is NaN or Inf somewhere in x <= 0.
BRANCHES = {
    "log": (tf.math.log, lambda x: 1 / x),
    "reciprocal": (tf.math.reciprocal, lambda x: -1 / x**2),
    "sqrt": (tf.sqrt, lambda x: 0.5 / np.sqrt(x)),
    "pow_0.5": (lambda t: t**0.5, lambda x: 0.5 * x**-0.5),
    "pow_1.5": (lambda t: t**1.5, lambda x: 1.5 * x**0.5),
}
MODES = ("eager", "function", "xla")
# Analytic gradients against TF's in the dtype: a few roundings of the dtype.
RTOL = {"float16": 4e-3, "bfloat16": 3e-2, "float32": 1e-6, "float64": 1e-13}


def run(mode, fn, *args):
    if mode == "eager":
        return fn(*args)
    return tf.function(fn, jit_compile=mode == "xla", autograph=False)(*args)


def inputs(rng, dtype):
    """Positive values plus the troublesome ones: 0, negative, NaN, -Inf."""
    pos = rng.uniform(0.1, 4.0, 24)
    bad = np.array([0.0, -0.0, -1.5, -7.0, np.nan, -np.inf, np.nan, -1e-3])
    x = rng.permutation(np.concatenate([pos, bad])).astype(dtype.np)
    return x, np.asarray(x, np.float64) > 0


def assert_exact_zeros(a):
    assert (a == 0).all() and not np.signbit(a).any(), a


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("branch", list(BRANCHES), ids=list(BRANCHES))
def test_branch_gradient_is_analytic_where_taken_and_zero_elsewhere(branch, mode, dtype, rng):
    fn, dfn = BRANCHES[branch]
    x_np, sel = inputs(rng, dtype)
    x = tf.constant(x_np)

    def f(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = safeops.safe_where(x > 0, fn, tf.constant(-2.0, x.dtype), x)
        return y, tape.gradient(y, x)

    y, g = run(mode, f, x)
    y, g = np.asarray(y.numpy(), np.float64), np.asarray(g.numpy(), np.float64)
    assert np.isfinite(y).all() and np.isfinite(g).all()
    np.testing.assert_allclose(
        y[sel], np.asarray(fn(tf.constant(x_np[sel])).numpy(), np.float64), rtol=RTOL[dtype.name]
    )
    assert (y[~sel] == -2.0).all()
    xs = np.asarray(x_np[sel], np.float64)
    np.testing.assert_allclose(g[sel], dfn(xs), rtol=RTOL[dtype.name])
    assert_exact_zeros(g[~sel])


@pytest.mark.parametrize("mode", MODES)
def test_both_branches_callable(mode, rng):
    """Each branch is NaN where the other is taken (log at x <= 0, sqrt(1 - x) at x > 1)."""
    dt = DTYPES[3]
    x_np, sel = inputs(rng, dt)
    x_np = np.where(np.isnan(x_np), -2.0, x_np)  # a NaN input would be taken by the y branch
    x = tf.constant(x_np)

    def f(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = safeops.safe_where(x > 0, tf.math.log, lambda t: tf.sqrt(1 - t), x)
        return y, tape.gradient(y, x)

    y, g = (a.numpy() for a in run(mode, f, x))
    np.testing.assert_allclose(y[sel], np.log(x_np[sel]), rtol=1e-13)
    np.testing.assert_allclose(y[~sel], np.sqrt(1 - x_np[~sel]), rtol=1e-13)
    np.testing.assert_allclose(g[sel], 1 / x_np[sel], rtol=1e-13)
    np.testing.assert_allclose(g[~sel], -0.5 / np.sqrt(1 - x_np[~sel]), rtol=1e-13)
    assert np.isfinite(g).all()


@pytest.mark.parametrize("mode", MODES)
def test_variable_inside_branch(mode, dtype, rng):
    x_np, sel = inputs(rng, dtype)
    x = tf.constant(x_np)
    v = tf.Variable(1.5, dtype=tf.as_dtype(dtype.name))

    def f(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = safeops.safe_where(x > 0, lambda t: v * tf.math.log(t), 0.0, x)
            loss = tf.reduce_sum(y)
        return tape.gradient(loss, [x, v])

    gx, gv = (np.asarray(a.numpy(), np.float64) for a in run(mode, f, x))
    xs = np.asarray(x_np[sel], np.float64)
    np.testing.assert_allclose(gx[sel], 1.5 / xs, rtol=RTOL[dtype.name])
    assert_exact_zeros(gx[~sel])
    # d/dv = sum of log(x) over the taken positions (accumulated in the dtype by TF).
    rtol = RTOL[dtype.name] * 10 if dtype.name in ("float16", "bfloat16") else RTOL[dtype.name]
    np.testing.assert_allclose(
        gv, np.log(xs).sum(), rtol=rtol, atol=rtol * np.abs(np.log(xs)).sum()
    )


@pytest.mark.parametrize("mode", MODES)
def test_multiple_inputs_and_a_broadcast_parameter(mode, rng):
    """Callables of several inputs: each input is guarded with the condition's pattern, and a
    parameter broadcast against the condition gets the gradient summed over taken entries."""
    dt = DTYPES[2]
    x_np, sel = inputs(rng, dt)
    x = tf.constant(x_np)
    p = tf.constant(np.float32(1.5))

    def f(x, p):
        with tf.GradientTape() as tape:
            tape.watch([x, p])
            y = safeops.safe_where(x > 0, lambda t, q: t**q, 0.0, x, p)
        return (y, *tape.gradient(y, [x, p]))

    y, gx, gp = (a.numpy() for a in run(mode, f, x, p))
    xs = x_np[sel].astype(np.float64)
    np.testing.assert_allclose(y[sel], xs**1.5, rtol=1e-6)
    np.testing.assert_allclose(gx[sel], 1.5 * xs**0.5, rtol=1e-6)
    assert_exact_zeros(gx[~sel])
    np.testing.assert_allclose(gp, (xs**1.5 * np.log(xs)).sum(), rtol=1e-5)


def test_fill_value_is_what_the_branch_sees(rng):
    x = tf.constant([-1.0, 2.0, np.nan])
    seen = []

    def branch(t):
        seen.append(t)
        return t

    y = safeops.safe_where(x > 0, 0.0, branch, x, fill=7.0)
    np.testing.assert_array_equal(seen[0].numpy(), [-1.0, 7.0, np.nan])
    np.testing.assert_array_equal(y.numpy(), [-1.0, 0.0, np.nan])


def test_xla_uses_no_custom_op():
    """Under jit_compile the wrappers emit composite ops (custom ops have no XLA kernel)."""
    f = tf.function(
        lambda x: safeops.safe_where(x > 0, tf.math.log, 0.0, x), jit_compile=True
    ).get_concrete_function(tf.TensorSpec([4], tf.float32))
    op_types = {op.type for op in f.graph.get_operations()}
    assert not any(t.startswith("Safeops") for t in op_types), op_types
    eager = tf.function(lambda x: safeops.safe_where(x > 0, tf.math.log, 0.0, x))
    op_types = {
        op.type
        for op in eager.get_concrete_function(tf.TensorSpec([4], tf.float32)).graph.get_operations()
    }
    assert "Safeops>SafeWhere" in op_types
