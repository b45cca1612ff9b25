"""safeops.native on NumPy arrays (the CPU kernels without TensorFlow): against NumPy
references, and bit for bit against the TensorFlow op (one kernel, two adapters; reductions are
chunked by shape alone, so the thread pools do not change the sums)."""

import numpy as np
import pytest
import tensorflow as tf
from select_cases import (
    BROADCAST_CASES,
    DTYPES,
    FILL_CASES,
    assert_same,
    assert_sum_close,
    fill_missing_grad_ref,
    fill_missing_ref,
    finite_values,
    random_bool,
    special_values,
    where_grad_ref,
    where_ref,
)
from tf_grads import value_and_grads

import safeops
from safeops import native


@pytest.mark.parametrize("case", list(BROADCAST_CASES.values()), ids=list(BROADCAST_CASES.keys()))
def test_where_forward_and_grad(case, dtype, rng):
    cs, xs, ys = case
    shape = tuple(np.broadcast_shapes(*case))
    c = random_bool(rng, cs)
    x, y = special_values(rng, xs, dtype), special_values(rng, ys, dtype)
    g = finite_values(rng, shape, dtype)
    out = native.where(c, x, y)
    assert out.dtype == dtype.np and out.shape == shape
    assert_same(out, where_ref(c, x, y), "native.where")
    assert_same(out, safeops.safe_where(c, x, y).numpy(), "native.where vs TF op")

    gx, gy = native.where_grad(c, xs, ys, g)
    _, tgx, tgy = value_and_grads(lambda a, b: safeops.safe_where(c, a, b), [x, y], g)
    for name, got, theirs, want in zip(
        "xy", (gx, gy), (tgx, tgy), where_grad_ref(c, xs, ys, g), strict=True
    ):
        assert got.dtype == dtype.np
        assert_sum_close(got, want, dtype, f"native d/d{name}")
        assert_same(got, theirs, f"native d/d{name} vs TF op")


@pytest.mark.parametrize("case", list(FILL_CASES.values()), ids=list(FILL_CASES.keys()))
@pytest.mark.parametrize("missing", ["nan", "nonfinite"])
def test_fill_missing_forward_and_grad(case, missing, dtype, rng):
    xs, vs = case
    x = special_values(rng, xs, dtype)
    value = finite_values(rng, vs, dtype)
    g = finite_values(rng, xs, dtype)
    out = native.fill_missing(x, value, missing)
    assert_same(out, fill_missing_ref(x, value, missing), "native.fill_missing")
    tf_out = safeops.fill_missing(tf.constant(x), tf.constant(value), missing=missing)
    assert_same(out, tf_out.numpy(), "native.fill_missing vs TF op")

    gx, gv = native.fill_missing_grad(x, vs, g, missing)
    want_gx, want_gv = fill_missing_grad_ref(x, vs, g, missing)
    assert_same(gx, want_gx, "native d/dx")
    assert_sum_close(gv, want_gv, dtype, "native d/dvalue")
    _, tgx, tgv = value_and_grads(
        lambda a, v: safeops.fill_missing(a, v, missing=missing), [x, value], g
    )
    assert_same(gx, tgx, "native d/dx vs TF op")
    assert_same(gv, tgv, "native d/dvalue vs TF op")


@pytest.mark.parametrize(
    "shapes",
    [((1 << 20,), (), (1 << 20,)), ((300, 2000), (1, 2000), (300, 1)), ((3, 1), (3, 300000), ())],
    ids=["scalar_sum", "rows_and_cols", "long_rows"],
)
def test_large_reductions_match_tf_bit_for_bit(shapes, rng):
    """Sums over many elements, where the thread split would matter if the chunking did."""
    cs, xs, ys = shapes
    dt = DTYPES[2]
    shape = tuple(np.broadcast_shapes(*shapes))
    c = random_bool(rng, cs)
    g = finite_values(rng, shape, dt)
    gx, gy = native.where_grad(c, xs, ys, g)
    x, y = finite_values(rng, xs, dt), finite_values(rng, ys, dt)
    _, tgx, tgy = value_and_grads(lambda a, b: safeops.safe_where(c, a, b), [x, y], g)
    assert_same(gx, tgx, "d/dx")
    assert_same(gy, tgy, "d/dy")
    again = native.where_grad(c, xs, ys, g)
    assert_same(again[0], gx, "repeat d/dx")
    assert_same(again[1], gy, "repeat d/dy")
    for name, got, want in zip("xy", (gx, gy), where_grad_ref(c, xs, ys, g), strict=True):
        assert_sum_close(got, want, dt, f"d/d{name}")


def test_non_contiguous_inputs(rng):
    dt = DTYPES[2]
    base = special_values(rng, (8, 10), dt)
    x = base[:, ::2]  # strided view
    y = np.asfortranarray(special_values(rng, (8, 5), dt))
    c = random_bool(rng, (16, 5))[::2]
    assert_same(native.where(c, x, y), where_ref(c, x, y))
    assert_same(native.fill_missing(x, np.float32(1.0)), fill_missing_ref(x, 1.0, "nan"))


def test_python_values_and_zero_size(rng):
    assert native.where(np.zeros((0, 3), bool), np.ones(3, np.float64), np.zeros(1)).shape == (0, 3)
    gx, gy = native.where_grad(np.zeros((0, 3), bool), (3,), (1,), np.zeros((0, 3), np.float32))
    assert_same(gx, np.zeros(3))
    assert_same(gy, np.zeros(1))


def test_reports_cuda_build():
    assert isinstance(native.CUDA, bool)
    from safeops import _native

    assert bool(_native.cuda) == native.CUDA
    if native.CUDA:
        assert _native.cuda_toolkit and _native.cuda_required_driver
