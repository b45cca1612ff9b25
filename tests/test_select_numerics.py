"""The select family's sums and conditions bit for bit, on the CPU kernels through safeops.native
and through the TensorFlow op (eager, tf.function, XLA): a one-term "sum" is a bit copy of its
term, sums start from -0 (IEEE's additive identity) so that -0 + -0 stays -0, and a condition
byte is true whenever it is not 0 (docs/design.md, safe_where)."""

import numpy as np
import pytest
from nan_bits import nan_bits
from select_cases import assert_same, assert_sum_close, where_grad_ref, where_ref
from tf_grads import value_and_grads

import safeops
from safeops import native

MODES = ["native", "eager", "graph", "xla"]


def where_grad(mode, cond, x_shape, y_shape, g):
    """(gx, gy) of where(cond, x, y) for upstream g, as arrays of g's dtype (bits kept)."""
    if mode == "native":
        return native.where_grad(cond, x_shape, y_shape, g)
    x, y = np.zeros(x_shape, g.dtype), np.zeros(y_shape, g.dtype)
    jit = {"eager": None, "graph": False, "xla": True}[mode]
    _, gx, gy = value_and_grads(lambda a, b: safeops.safe_where(cond, a, b), [x, y], g, jit)
    return gx, gy


def bits(a):
    a = np.asarray(a)
    return a.view({2: np.uint16, 4: np.uint32, 8: np.uint64}[a.itemsize])


@pytest.mark.parametrize("mode", MODES)
def test_one_term_sum_is_a_bit_copy(mode, dtype):
    """cond [2, 1] broadcast over x, y [2, 3]: each gradient element has one term. It must be that
    term's bits: -0.0 stays -0.0 (it became +0.0), NaN payloads (signalling too) are kept (XLA,
    which runs TensorFlow's own ops, may quiet a NaN: there the values must match)."""
    g = np.full((2, 3), -0.0, dtype.np)
    g.reshape(-1)[1:5] = nan_bits(dtype.name)[[3, 4, 9, 10]].view(dtype.np)  # signalling, payloads
    cond = np.array([[True], [False]])
    gx, gy = where_grad(mode, cond, (2, 3), (2, 3), g)
    zero = np.zeros(3, bits(g).dtype)
    want_x, want_y = np.stack([bits(g)[0], zero]), np.stack([zero, bits(g)[1]])
    if mode == "xla":
        assert_same(gx, want_x.view(dtype.np), "d/dx")
        assert_same(gy, want_y.view(dtype.np), "d/dy")
    else:
        np.testing.assert_array_equal(bits(gx), want_x)
        np.testing.assert_array_equal(bits(gy), want_y)


# XLA runs TensorFlow's own reduce_sum, which starts from +0.
@pytest.mark.parametrize("mode", ["native", "eager", "graph"])
@pytest.mark.parametrize(
    "cond_shape,x_shape,y_shape",
    [
        ((2, 3), (1, 3), (2, 3)),
        ((4, 5), (), (4, 5)),
        ((3, 1), (1, 4), (3, 4)),
        ((2, 20000), (2, 1), (2, 20000)),
        ((5, 1), (), (5, 3)),
    ],
    ids=["rows", "scalar", "strided_cond", "grouped", "strided_to_scalar"],
)
def test_sum_of_negative_zeros_is_negative_zero(mode, cond_shape, x_shape, y_shape, dtype):
    """Every selected term -0: the sum is -0 (IEEE); the other target sums only unselected (+0)
    terms: +0. Flat, scalar, strided and grouped reductions."""
    shape = np.broadcast_shapes(cond_shape, x_shape, y_shape)
    g = np.full(shape, -0.0, dtype.np)
    gx, gy = where_grad(mode, np.ones(cond_shape, bool), x_shape, y_shape, g)
    gx, gy = gx.astype(np.float64), gy.astype(np.float64)
    assert gx.shape == x_shape and np.all(gx == 0) and np.all(np.signbit(gx)), gx
    assert np.all(gy == 0) and not np.any(np.signbit(gy))


# Condition bytes as a reinterpreted buffer can hold them: any non-zero byte is true.
BYTES = np.array([0, 1, 2, 0x80, 0xFF, 0x40, 0, 0x10, 0x7F, 3, 0, 0xFE, 8, 0, 0x20, 4], np.uint8)


def raw_condition(shape):
    return np.resize(BYTES, int(np.prod(shape))).reshape(shape).view(np.bool_)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "cond_shape,x_shape,y_shape",
    [((67,), (67,), (67,)), ((67,), (), (67,)), ((9, 1), (9, 5), (9, 5)), ((16,), (3, 16), ())],
    ids=["flat", "flat_scalar_x", "strided", "broadcast_cond"],
)
def test_condition_bytes_other_than_one_are_true(mode, cond_shape, x_shape, y_shape, rng, dtype):
    c = raw_condition(cond_shape)
    truth = np.resize(BYTES, c.size).reshape(cond_shape) != 0
    x = rng.standard_normal(x_shape).astype(dtype.np)
    y = rng.standard_normal(y_shape).astype(dtype.np)
    shape = np.broadcast_shapes(cond_shape, x_shape, y_shape)
    g = (rng.standard_normal(shape) + 3).astype(dtype.np)
    if mode == "native":
        out = native.where(c, x, y)
    else:
        jit = {"eager": None, "graph": False, "xla": True}[mode]
        out = value_and_grads(lambda a, b: safeops.safe_where(c, a, b), [x, y], g, jit)[0]
    assert_same(out, where_ref(truth, x, y), "where")
    gx, gy = where_grad(mode, c, x_shape, y_shape, g)
    want_x, want_y = where_grad_ref(truth, x_shape, y_shape, g)
    assert_sum_close(gx, want_x, dtype, "d/dx", in_dtype=mode == "xla")
    assert_sum_close(gy, want_y, dtype, "d/dy", in_dtype=mode == "xla")
