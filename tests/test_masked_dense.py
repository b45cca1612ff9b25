"""masked_dense against the float64 reference: forward, every gradient, every path
(dense_paths.py)."""

import numpy as np
import pytest
import tensorflow as tf
from dense_paths import PATHS, quantize, run
from dense_reference import ACTIVATIONS
from dense_reference import masked_dense as reference

import safeops
from safeops._loader import ops

# rtol (and atol relative to the magnitude of the values compared) of outputs and gradients.
TOLERANCE = {
    tf.float64: 1e-9,
    tf.float32: 2e-5,
    tf.float16: 2e-2,
    tf.bfloat16: 6e-2,
}
DTYPES = list(TOLERANCE)


def make_inputs(rng, shape, n, missing_fraction=0.25, inf=False):
    x = rng.normal(size=shape)
    x[rng.random(shape) < missing_fraction] = np.nan
    if inf:
        x[rng.random(shape) < 0.1] = np.inf
        x[rng.random(shape) < 0.05] = -np.inf
    k = shape[-1]
    return x, rng.normal(size=(k, n)) / np.sqrt(k), rng.normal(size=n)


def assert_close(actual, expected, dtype, what):
    tol = TOLERANCE[dtype]
    scale = max(1.0, float(np.max(np.abs(expected))) if expected.size else 1.0)
    np.testing.assert_allclose(actual, expected, rtol=tol, atol=tol * scale, err_msg=what)


def check_against_reference(path, shape, n, act, renormalize, missing, dtype, seed, bias=True):
    rng = np.random.default_rng(seed)
    x, w, b = make_inputs(rng, shape, n, inf=missing == "nonfinite")
    x, w = quantize(x, dtype), quantize(w, dtype)
    b = quantize(b, dtype) if bias else None
    upstream = quantize(rng.normal(size=shape[:-1] + (n,)), dtype)
    ref = reference(x, w, b, act, renormalize, missing, upstream)
    y, dx, dw, db = run(path, x, w, b, act, renormalize, missing, upstream, dtype)
    for name, value in (("dx", dx), ("dw", dw), ("db", db)):
        if value is not None:
            assert np.isfinite(value).all(), f"{name} has non-finite entries"
    m = np.isnan(x) if missing == "nan" else ~np.isfinite(x)
    assert np.all(dx[m] == 0.0), "dx must be exactly 0 at missing entries"
    assert_close(y, ref["y"], dtype, "y")
    assert_close(dx, ref["dx"], dtype, "dx")
    assert_close(dw, ref["dw"], dtype, "dw")
    if bias:
        assert_close(db, ref["db"], dtype, "db")


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize("renormalize", [False, True], ids=["plain", "renorm"])
@pytest.mark.parametrize("act", ACTIVATIONS)
def test_matches_reference(path, dtype, renormalize, act):
    check_against_reference(path, (9, 6), 5, act, renormalize, "nan", dtype, seed=1)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("renormalize", [False, True], ids=["plain", "renorm"])
def test_nonfinite_policy(path, renormalize):
    check_against_reference(path, (12, 7), 4, "tanh", renormalize, "nonfinite", tf.float64, 2)


@pytest.mark.parametrize("path", PATHS)
def test_nan_policy_lets_inf_through(path):
    x = np.array([[1.0, np.inf], [np.nan, 2.0]])
    w = np.ones((2, 1))
    y = run(path, x, w, None, "linear", False, "nan", np.ones((2, 1)), tf.float64)[0]
    assert y[0, 0] == np.inf and y[1, 0] == 2.0


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("act", ["relu", "gelu"])
def test_rank3_input(path, act):
    check_against_reference(path, (3, 4, 6), 5, act, True, "nan", tf.float64, seed=3)


@pytest.mark.parametrize("path", PATHS)
def test_without_bias(path):
    check_against_reference(path, (8, 5), 3, "silu", False, "nan", tf.float32, 4, bias=False)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("renormalize", [False, True], ids=["plain", "renorm"])
def test_fully_missing_row_and_never_observed_feature(path, renormalize):
    rng = np.random.default_rng(5)
    x, w, b = make_inputs(rng, (6, 4), 3, missing_fraction=0.2)
    x[2, :] = np.nan  # a row with every feature missing
    x[:, 1] = np.nan  # a feature never observed
    upstream = rng.normal(size=(6, 3))
    ref = reference(x, w, b, "sigmoid", renormalize, "nan", upstream)
    y, dx, dw, db = run(path, x, w, b, "sigmoid", renormalize, "nan", upstream, tf.float64)
    np.testing.assert_allclose(y[2], 1.0 / (1.0 + np.exp(-b)), rtol=1e-12)  # act(bias)
    np.testing.assert_array_equal(dx[2], 0.0)
    np.testing.assert_array_equal(dw[1], 0.0)  # an unobserved feature gets no weight gradient
    for got, want in ((y, ref["y"]), (dx, ref["dx"]), (dw, ref["dw"]), (db, ref["db"])):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("path", PATHS)
def test_empty_batch(path):
    x = np.zeros((0, 4))
    w = np.random.default_rng(6).normal(size=(4, 3))
    y, dx, dw, db = run(path, x, w, np.ones(3), "relu", True, "nan", np.zeros((0, 3)), tf.float32)
    assert y.shape == (0, 3) and dx.shape == (0, 4)
    np.testing.assert_array_equal(dw, 0.0)
    np.testing.assert_array_equal(db, 0.0)


@pytest.mark.parametrize("path", PATHS)
def test_clean_data_equals_plain_dense(path):
    rng = np.random.default_rng(7)
    x = rng.normal(size=(32, 16)).astype(np.float32)
    w = rng.normal(size=(16, 8)).astype(np.float32)
    b = rng.normal(size=8).astype(np.float32)
    upstream = rng.normal(size=(32, 8)).astype(np.float32)
    got = run(path, x, w, b, "relu", False, "nan", upstream, tf.float32)
    xt, wt, bt = tf.constant(x), tf.constant(w), tf.constant(b)
    with tf.GradientTape() as tape:
        tape.watch([xt, wt, bt])
        y = tf.nn.relu(tf.matmul(xt, wt) + bt)
    want = [y, *tape.gradient(y, [xt, wt, bt], output_gradients=tf.constant(upstream))]
    for g, e in zip(got, want, strict=True):
        np.testing.assert_allclose(g, e.numpy(), rtol=1e-5, atol=1e-5)


def test_numerical_gradient_float64():
    rng = np.random.default_rng(8)
    x, w, b = make_inputs(rng, (5, 4), 3)
    for act in ACTIVATIONS:
        if act == "relu":  # keep away from the kink, where the derivative is undefined
            b = b + 3.0
        for renormalize in (False, True):

            def f(wt, bt, act=act, renormalize=renormalize):
                return safeops.masked_dense(
                    tf.constant(x), wt, bt, activation=act, renormalize=renormalize
                )

            theoretical, numerical = tf.test.compute_gradient(
                f, [tf.constant(w), tf.constant(b)], delta=1e-5
            )
            for t, n in zip(theoretical, numerical, strict=True):
                np.testing.assert_allclose(t, n, rtol=1e-6, atol=1e-7, err_msg=act)


def test_x_gradient_numerically_at_observed_entries():
    rng = np.random.default_rng(9)
    x, w, b = make_inputs(rng, (4, 5), 2)
    observed = np.nan_to_num(x, nan=0.5)  # compute_gradient perturbs every entry

    def f(xt):
        # The NaN positions stay missing: perturbations there must not leak into the output.
        return safeops.masked_dense(
            tf.where(tf.math.is_nan(tf.constant(x)), np.nan, xt), w, b, activation="tanh"
        )

    theoretical, numerical = tf.test.compute_gradient(f, [tf.constant(observed)], delta=1e-5)
    np.testing.assert_allclose(theoretical[0], numerical[0], rtol=1e-6, atol=1e-8)


def test_no_nan_gradient_through_a_deep_model():
    """The seed failure in miniature: a NaN feature must not reach any weight gradient."""
    rng = np.random.default_rng(10)
    x, w, b = make_inputs(rng, (16, 3), 8, missing_fraction=0.3)
    w2 = tf.Variable(rng.normal(size=(8, 1)))
    wt, bt = tf.Variable(w), tf.Variable(b)
    with tf.GradientTape() as tape:
        h = safeops.masked_dense(tf.constant(x), wt, bt, activation="relu")
        loss = tf.reduce_mean((h @ w2) ** 2)
    for g in tape.gradient(loss, [wt, bt, w2]):
        assert np.isfinite(g.numpy()).all()


def test_unfused_activation_applied_after():
    rng = np.random.default_rng(11)
    x, w, b = make_inputs(rng, (4, 3), 2)
    y = safeops.masked_dense(x, w, b, activation="softplus").numpy()
    z = reference(x, w, b)["z"]
    np.testing.assert_allclose(y, np.log1p(np.exp(z)), rtol=1e-10)
    y2 = safeops.masked_dense(x, w, b, activation=lambda t: 2.0 * t).numpy()
    np.testing.assert_allclose(y2, 2.0 * z, rtol=1e-10)


@pytest.mark.parametrize(
    "activation,name",
    [
        (tf.nn.relu, "relu"),
        ("swish", "silu"),
        (tf.nn.gelu, "gelu"),
        ("GELU", "gelu"),
        (None, "linear"),
    ],
)
def test_activation_aliases_are_fused(activation, name):
    from safeops.dense import resolve_activation

    assert resolve_activation(activation) == (name, None)


def test_determinism():
    rng = np.random.default_rng(12)
    x, w, b = make_inputs(rng, (300, 40), 30)
    upstream = rng.normal(size=(300, 30))
    for path in ("eager", "graph", "fused", "xla_custom_call"):
        first = run(path, x, w, b, "gelu", True, "nan", upstream, tf.float32)
        second = run(path, x, w, b, "gelu", True, "nan", upstream, tf.float32)
        for a, c in zip(first, second, strict=True):
            np.testing.assert_array_equal(a, c)


def test_more_than_2_to_the_24_elements():
    """int64-safe indexing on the CPU paths: x of (2^18 + 3) x 65 > 2^24 elements."""
    rows, k, n = (1 << 18) + 3, 65, 4
    rng = np.random.default_rng(13)
    x = rng.normal(size=(rows, k)).astype(np.float32)
    x[rng.random(x.shape) < 0.15] = np.nan
    x[-1] = np.nan  # the last row, past 2^24 elements, fully missing
    w = rng.normal(size=(k, n)).astype(np.float32)
    b = rng.normal(size=n).astype(np.float32)
    sample = np.r_[0:32, rows - 32 : rows]
    for path in ("eager", "fused"):
        xt, wt, bt = tf.constant(x), tf.constant(w), tf.constant(b)
        with tf.GradientTape() as tape:
            tape.watch(xt)
            if path == "fused":
                y, _ = ops.safeops_masked_dense(xt, wt, bt, [], activation="relu", renormalize=True)
            else:
                y = safeops.masked_dense(xt, wt, bt, activation="relu", renormalize=True)
        dx = tape.gradient(y, xt).numpy()
        ref = reference(x[sample], w, b, "relu", True, "nan", np.ones((len(sample), n)))
        np.testing.assert_allclose(y.numpy()[sample], ref["y"], rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(dx[sample], ref["dx"], rtol=1e-4, atol=1e-4)
        np.testing.assert_array_equal(dx[-1], 0.0)
