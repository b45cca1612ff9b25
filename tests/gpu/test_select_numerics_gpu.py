"""The select kernels bit for bit (docs/design.md, safe_where and fill_missing): a one-term
gradient "sum" is a bit copy of its term (-0.0 and NaN payloads kept), sums start from -0 so that
a sum of -0 terms is -0 (flat, per-block, grouped and general reductions), any non-zero
condition byte is true (2, 0x80, 0xFF, ... on the vector, element, strided and reduction paths),
and every NaN encoding is missing for fill_missing. Through safeops.native on the device of
_backend.py, as the other tests/gpu; exact bit patterns reach the device through its put_bits.

Every case runs a backward (block sums in shared memory: marker `shared_memory`); `large` and
`bfloat16` mark what the compute-sanitizer runs of tools/gpu_check.sh leave out."""

import numpy as np
import pytest
from nan_bits import nan_bits, with_nans
from select_cases import assert_same, assert_sum_close, where_grad_ref, where_ref
from test_select_gpu import named_cases

from safeops import native

pytestmark = pytest.mark.shared_memory


# ---- -0.0 and one-term sums ----------------------------------------------------------------------


def test_one_term_sum_is_a_bit_copy(arrays, dtype):
    """cond [2, 1] broadcast over x, y [2, 3] (the general reduction with one term per element):
    gx and gy are the bits of g or +0, as on the flat path (-0.0 became +0.0)."""
    g_bits = np.resize(nan_bits(dtype.name), 6).reshape(2, 3)
    g_bits[0, 0] = g_bits[1, 2] = np.array(-0.0, dtype.np).view(g_bits.dtype)
    g = arrays.put_bits(g_bits, dtype)
    for cond_shape in ((2, 1), (2, 3)):  # general, flat
        c = np.ones(cond_shape, bool)
        c[1] = False
        gx, gy = native.where_grad(arrays.put(c), (2, 3), (2, 3), g)
        zero = np.zeros(3, g_bits.dtype)
        np.testing.assert_array_equal(arrays.bits(gx).view(g_bits.dtype), [g_bits[0], zero])
        np.testing.assert_array_equal(arrays.bits(gy).view(g_bits.dtype), [zero, g_bits[1]])


NEG_ZERO_CASES = {  # (condition, x, y): x's gradient sums several -0 terms
    "rows": ((4, 7), (1, 7), (4, 7)),
    "scalar": ((4, 7), (), (4, 7)),
    "large_scalar_blocks": ((1 << 20,), (), (1 << 20,)),
    "strided_cond": ((3, 1), (1, 4), (3, 4)),
    "large_grouped": ((8, 1 << 16), (8, 1), (8, 1 << 16)),
    "strided_to_scalar": ((5, 1), (), (5, 3)),
}


@pytest.mark.parametrize("case", named_cases(NEG_ZERO_CASES.items()))
def test_sum_of_negative_zeros_is_negative_zero(case, arrays, dtype):
    cs, xs, ys = case
    shape = np.broadcast_shapes(cs, xs, ys)
    g = arrays.put(np.full(shape, -0.0), dtype)
    gx, gy = native.where_grad(arrays.put(np.ones(cs, bool)), xs, ys, g)
    gx, gy = arrays.get(gx), arrays.get(gy)
    assert np.all(gx == 0) and np.all(np.signbit(gx)), "selected -0 terms sum to -0"
    assert np.all(gy == 0) and not np.any(np.signbit(gy)), "unselected terms are +0"


# ---- condition bytes -----------------------------------------------------------------------------


BYTES = np.array([0, 1, 2, 0x80, 0xFF, 0x40, 0, 0x10, 0x7F, 3, 0, 0xFE, 8, 0, 0x20, 4], np.uint8)

COND_CASES = {  # (condition, x, y)
    "flat": ((67,), (67,), (67,)),
    "flat_vectors": ((64,), (64,), (64,)),
    "flat_scalar_target": ((67,), (), (67,)),
    "strided": ((9, 1), (9, 5), (9, 5)),
    "broadcast_cond": ((16,), (3, 16), ()),
    "general_reduction": ((6, 16), (6, 1), (1, 16)),
}


@pytest.mark.parametrize("offset", [0, 1], ids=["aligned", "odd_offset"])
@pytest.mark.parametrize("case", list(COND_CASES.values()), ids=list(COND_CASES))
def test_condition_bytes_other_than_one_are_true(case, offset, arrays, rng, dtype):
    """A bool tensor made by reinterpreting bytes holds any byte value; every non-zero byte is
    true (a kernel that reads bit 0 takes 2, 0x80 and 0xFE as false)."""
    cs, xs, ys = case
    raw_bytes = np.resize(BYTES, int(np.prod(cs))).reshape(cs)
    c = arrays.put_bits(raw_bytes, None, offset)
    np.testing.assert_array_equal(arrays.bits(c).view(np.uint8), raw_bytes)  # the bytes arrived
    truth = raw_bytes != 0
    x = arrays.put(rng.standard_normal(xs), dtype, offset)
    y = arrays.put(rng.standard_normal(ys), dtype, offset)
    assert_same(arrays.get(native.where(c, x, y)), where_ref(truth, arrays.get(x), arrays.get(y)))
    shape = np.broadcast_shapes(cs, xs, ys)
    g = arrays.put(rng.standard_normal(shape) + 3.0, dtype, offset)
    gx, gy = native.where_grad(c, xs, ys, g)
    want_x, want_y = where_grad_ref(truth, xs, ys, arrays.get(g))
    assert_sum_close(arrays.get(gx), want_x, dtype, "d/dx")
    assert_sum_close(arrays.get(gy), want_y, dtype, "d/dy")


def test_scalar_condition_byte(arrays, dtype):
    """A scalar condition (byte 0x80) broadcast over x and y: x everywhere."""
    c = arrays.put_bits(np.array(0x80, np.uint8))
    x = arrays.put(np.arange(5.0), dtype)
    y = arrays.put(-np.arange(5.0), dtype)
    assert_same(arrays.get(native.where(c, x, y)), np.arange(5.0))
    gx, gy = native.where_grad(c, (5,), (5,), arrays.put(np.ones(5), dtype))
    assert_same(arrays.get(gx), np.ones(5))
    assert_same(arrays.get(gy), np.zeros(5))


# ---- NaN encodings -------------------------------------------------------------------------------


@pytest.mark.parametrize("missing", ["nan", "nonfinite"])
def test_every_nan_encoding_is_missing(missing, arrays, dtype):
    """Negative float16 NaNs, signalling bfloat16 NaNs and every payload are missing."""
    n = 67
    mask = np.arange(n) % 3 == 1
    values = with_nans(np.arange(n).astype(dtype.np), mask, nan_bits(dtype.name))
    x = arrays.put_bits(values.view(f"u{values.itemsize}"), dtype)
    value = arrays.put(np.array(-7.0), dtype)
    want = np.where(mask, -7.0, np.arange(n, dtype=np.float64))
    assert_same(arrays.get(native.fill_missing(x, value, missing)), want)
    gx, gv = native.fill_missing_grad(x, (), arrays.put(np.ones(n), dtype), missing)
    assert_same(arrays.get(gx), np.where(mask, 0.0, 1.0))
    assert float(arrays.get(gv)) == mask.sum()
