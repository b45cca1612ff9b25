"""safe_where, tensor form: forward against np.where and gradients against tf.where's, for
every broadcasting pattern and kernel dtype; other dtypes, the single-argument form, static
shapes, second-order gradients, determinism and a tensor larger than 2^24 elements."""

import numpy as np
import pytest
import tensorflow as tf
from select_cases import (
    BROADCAST_CASES,
    DTYPES,
    assert_same,
    assert_sum_close,
    finite_values,
    random_bool,
    size,
    special_values,
    where_grad_ref,
    where_ref,
)
from tf_grads import upstream_second_order, value_and_grads

import safeops

CASES = pytest.mark.parametrize(
    "case", list(BROADCAST_CASES.values()), ids=list(BROADCAST_CASES.keys())
)


def out_shape(case):
    return tuple(np.broadcast_shapes(*case))


def grads(where_fn, cond, x, y, upstream):
    """[output, d/dx, d/dy] of where_fn(cond, x, y) for the upstream gradient (NumPy)."""
    return value_and_grads(lambda a, b: where_fn(cond, a, b), [x, y], upstream)


@CASES
def test_forward_matches_numpy(case, dtype, rng):
    cs, xs, ys = case
    c = random_bool(rng, cs)
    x, y = special_values(rng, xs, dtype), special_values(rng, ys, dtype)
    got = safeops.safe_where(c, tf.constant(x), tf.constant(y))
    assert got.dtype == tf.as_dtype(dtype.name)
    assert_same(got.numpy(), where_ref(c, x, y), "safe_where")


@CASES
def test_forward_in_tf_function(case, rng):
    cs, xs, ys = case
    dt = DTYPES[2]
    c = random_bool(rng, cs)
    x, y = special_values(rng, xs, dt), special_values(rng, ys, dt)
    got = tf.function(safeops.safe_where)(tf.constant(c), tf.constant(x), tf.constant(y))
    assert_same(got.numpy(), where_ref(c, x, y), "safe_where in tf.function")


@CASES
def test_gradient_matches_tf_where(case, dtype, rng):
    cs, xs, ys = case
    c = random_bool(rng, cs)
    x, y = finite_values(rng, xs, dtype), finite_values(rng, ys, dtype)
    g = finite_values(rng, out_shape(case), dtype)
    _, gx, gy = grads(safeops.safe_where, c, x, y, g)
    _, tx, ty = grads(tf.where, c, x, y, g)
    for name, got, theirs, shape, want in zip(
        "xy", (gx, gy), (tx, ty), (xs, ys), where_grad_ref(c, xs, ys, g), strict=True
    ):
        assert got.shape == shape
        if size(shape) == size(out_shape(case)):  # no reduction: a bit-exact select
            assert_same(got, theirs, f"d/d{name} vs tf.where")
            assert_same(got, want.value, f"d/d{name} vs reference")
        else:
            assert_sum_close(got, want, dtype, f"d/d{name} vs reference")
            assert_sum_close(theirs, want, dtype, f"tf.where d/d{name}", in_dtype=True)


@pytest.mark.parametrize(
    "case",
    [c for c in BROADCAST_CASES.values() if size(out_shape(c)) > 0],
    ids=[k for k, c in BROADCAST_CASES.items() if size(out_shape(c)) > 0],
)
def test_compute_gradient_float64(case, rng):
    cs, xs, ys = case
    c = tf.constant(random_bool(rng, cs))
    x, y = finite_values(rng, xs, DTYPES[3]), finite_values(rng, ys, DTYPES[3])
    theoretical, numerical = tf.test.compute_gradient(
        lambda a, b: safeops.safe_where(c, a, b), [tf.constant(x), tf.constant(y)]
    )
    for t, n in zip(theoretical, numerical, strict=True):
        np.testing.assert_allclose(t, n, rtol=1e-7, atol=1e-7)


@CASES
@pytest.mark.parametrize("target", ["x", "y"])
def test_nan_upstream_gives_exact_zeros_where_not_selected(case, target, dtype, rng):
    """Upstream NaN/Inf wherever `target` is not selected: its gradient stays finite (exact
    zeros there), and a full-shape target's gradient is exactly zero at those positions."""
    cs, xs, ys = case
    c = random_bool(rng, cs)
    x, y = finite_values(rng, xs, dtype), finite_values(rng, ys, dtype)
    shape = out_shape(case)
    selected = np.broadcast_to(c if target == "x" else ~c, shape)
    g = np.where(
        selected, finite_values(rng, shape, dtype), special_values(rng, shape, dtype, 0.5, 0.5)
    ).astype(dtype.np)
    _, gx, gy = grads(safeops.safe_where, c, x, y, g)
    got = gx if target == "x" else gy
    t_shape = xs if target == "x" else ys
    want = where_grad_ref(c, xs, ys, g)[0 if target == "x" else 1]
    assert np.isfinite(np.asarray(got, np.float64)).all()
    if size(t_shape) == size(shape):
        assert_same(got, want.value, f"d/d{target}")
        zeros = np.asarray(got, np.float64).reshape(shape)[~selected]
        assert (zeros == 0).all() and not np.signbit(zeros).any()
    else:
        assert_sum_close(got, want, dtype, f"d/d{target}")


@pytest.mark.parametrize("np_dtype", ["int32", "int64", "complex64", "bool"])
def test_other_dtypes_delegate_to_tf_where(np_dtype, rng):
    c = random_bool(rng, (4, 5))
    x = (rng.standard_normal((4, 5)) * 10).astype(np_dtype)
    y = (rng.standard_normal((5,)) * 10).astype(np_dtype)
    got = safeops.safe_where(c, x, y)
    assert got.dtype == tf.as_dtype(np_dtype)
    np.testing.assert_array_equal(got.numpy(), np.where(c, x, y))


@pytest.mark.parametrize("shape", [(7,), (3, 4), (2, 3, 4), (2, 0)])
def test_single_argument_form_is_tf_where(shape, rng):
    c = random_bool(rng, shape)
    got = safeops.safe_where(c)
    want = tf.where(c)
    assert got.dtype == want.dtype == tf.int64
    np.testing.assert_array_equal(got.numpy(), want.numpy())
    np.testing.assert_array_equal(got.numpy(), np.argwhere(c))


@pytest.mark.parametrize(
    "specs",
    [
        ([None, 3], [None, 1], [3]),
        ([None, None], [5, 1], []),
        ([None], [4, None], [1, 1]),
        ([2, None, 1], [None, 6], [None, 2, 1, 1]),
        (None, [3], [3]),
    ],
    ids=["batch", "unknown_cond", "mixed", "rank_grows", "unknown_rank"],
)
def test_static_shape_inference(specs):
    cs, xs, ys = specs
    signature = [
        tf.TensorSpec(cs, tf.bool),
        tf.TensorSpec(xs, tf.float32),
        tf.TensorSpec(ys, tf.float32),
    ]
    seen = {}

    @tf.function(input_signature=signature)
    def f(c, x, y):
        with tf.GradientTape() as tape:
            tape.watch([x, y])
            out = safeops.safe_where(c, x, y)
        gx, gy = tape.gradient(out, [x, y])
        seen.update(out=out.shape, want=tf.where(c, x, y).shape, gx=gx.shape, gy=gy.shape)
        return out

    f.get_concrete_function()
    if seen["want"].rank is None:
        assert seen["out"].rank is None
    else:
        assert seen["out"].as_list() == seen["want"].as_list()
    assert seen["gx"].as_list() == xs and seen["gy"].as_list() == ys


@pytest.mark.parametrize("mode", ["eager", "function"])
@pytest.mark.parametrize(
    "shapes", [((6, 5), (6, 5)), ((6, 5), (6, 1)), ((6, 5), (5,))], ids=["same", "B1", "N"]
)
def test_second_order_gradient(mode, shapes, rng):
    cs, xs = shapes
    c = tf.constant(random_bool(rng, cs))
    x = tf.constant(np.abs(finite_values(rng, xs, DTYPES[3])) + 0.5)
    w = tf.constant(finite_values(rng, cs, DTYPES[3]))

    def second(where_fn):
        with tf.GradientTape() as outer:
            outer.watch(x)
            with tf.GradientTape() as inner:
                inner.watch(x)
                both = where_fn(c, x**3, tf.math.log(x))
                one = where_fn(c, x**2, 1.0)  # only one branch depends on x
                y = tf.reduce_sum(w * both) + tf.reduce_sum(w * one)
            g = inner.gradient(y, x)
        return g, outer.gradient(g, x)

    if mode == "function":
        second = tf.function(second, autograph=False)  # noqa: F811
    g, h = second(safeops.safe_where)
    tg, th = second(tf.where)
    np.testing.assert_allclose(g.numpy(), tg.numpy(), rtol=1e-12)
    np.testing.assert_allclose(h.numpy(), th.numpy(), rtol=1e-12)


def test_second_order_through_the_upstream_gradient(rng):
    """d/dg of SafeWhereGrad's outputs: differentiating the gradient with respect to the
    upstream gradient itself (the path _safe_where_grad_grad serves)."""
    c = random_bool(rng, (4, 6))
    x, y = finite_values(rng, (4, 1), DTYPES[3]), finite_values(rng, (6,), DTYPES[3])
    g = finite_values(rng, (4, 6), DTYPES[3])

    def combine(inputs, grads):
        return tf.reduce_sum(grads[0] * inputs[0]) + tf.reduce_sum(grads[1] ** 2)

    got = upstream_second_order(lambda a, b: safeops.safe_where(c, a, b), [x, y], g, combine)
    want = upstream_second_order(lambda a, b: tf.where(c, a, b), [x, y], g, combine)
    np.testing.assert_allclose(got, want, rtol=1e-12)


@pytest.mark.parametrize(
    "shapes",
    [((1 << 21,), (), (1 << 21,)), ((512, 4096), (1, 4096), (512, 1)), ((8, 1 << 18), (8, 1), ())],
    ids=["scalar_sum", "general_rows_cols", "few_rows"],
)
def test_determinism(shapes, rng):
    cs, xs, ys = shapes
    dt = DTYPES[2]
    c = random_bool(rng, cs)
    x, y = finite_values(rng, xs, dt), finite_values(rng, ys, dt)
    g = finite_values(rng, out_shape(shapes), dt)

    @tf.function
    def step(c, x, y, g):
        with tf.GradientTape() as tape:
            tape.watch([x, y])
            out = safeops.safe_where(c, x, y)
        return (out, *tape.gradient(out, [x, y], output_gradients=g))

    args = [tf.constant(a) for a in (c, x, y, g)]
    first = [t.numpy() for t in step(*args)]
    for _ in range(3):
        for a, b in zip(first, step(*args), strict=True):
            assert_same(b.numpy(), a, "repeat run")
    for a, b in zip(first[1:], grads(safeops.safe_where, c, x, y, g)[1:], strict=True):
        assert_same(b, a, "eager vs tf.function")


def test_larger_than_2_pow_24_elements(rng):
    n = (1 << 24) + 3
    dt = DTYPES[2]
    c = random_bool(rng, (n,))
    x = finite_values(rng, (n,), dt)
    g = finite_values(rng, (n,), dt)
    out, gx, gy = grads(safeops.safe_where, c, x, np.float32(2.5), g)
    assert_same(out, np.where(c, x, np.float32(2.5)), "forward")
    assert_same(gx, np.where(c, g, np.float32(0)), "d/dx")
    assert_sum_close(gy, where_grad_ref(c, (n,), (), g)[1], dt, "d/dy")


def test_scalar_gradient_when_grad_x_overwrites_the_upstream(rng):
    """In a graph the upstream gradient is a temporary that grad_x (a full target) may be
    written over (select_cpu.h, cuda/select.h): the scalar y's gradient must still sum the
    upstream values, not the zeros grad_x puts where the condition is false."""
    n = 100_000
    c = rng.random(n) > 0.5
    x = rng.standard_normal(n).astype(np.float32)

    @tf.function
    def grads(x, y):
        with tf.GradientTape() as tape:
            tape.watch([x, y])
            loss = tf.reduce_sum(tf.sin(safeops.safe_where(c, x, y)))
        return tape.gradient(loss, [x, y])

    gx, gy = grads(tf.constant(x), tf.constant(np.float32(2.0)))
    upstream = np.cos(np.where(c, x, 2.0))
    np.testing.assert_allclose(gx.numpy(), np.where(c, upstream, 0.0), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(float(gy), upstream[~c].sum(), rtol=1e-4)
