"""Cases and NumPy references of the select family (safe_where, fill_missing), shared by the
TensorFlow tests and the TensorFlow-free GPU tests in tests/gpu. NumPy only: no TensorFlow, no
torch, no safeops.

Every reference computes in float64 from the test's inputs; the conversion of float16,
bfloat16 and float32 values to float64 is exact, so a select compares bit for bit after it.
"""

import dataclasses
import math

import numpy as np


@dataclasses.dataclass(frozen=True)
class DType:
    """A kernel dtype and how closely a reduction in it must match a float64 reference (see
    assert_sum_close)."""

    name: str
    rtol: float  # half an ulp of the result (its final rounding), with a margin
    acc_eps: float  # unit roundoff of safeops' accumulator (float32 for the 16-bit types)
    unit: float  # unit roundoff of the dtype itself

    @property
    def np(self):
        """NumPy dtype (ml_dtypes.bfloat16 for bfloat16, imported only when asked)."""
        if self.name == "bfloat16":
            import ml_dtypes

            return np.dtype(ml_dtypes.bfloat16)
        return np.dtype(self.name)


DTYPES = (
    DType("float16", rtol=1e-3, acc_eps=2**-24, unit=2**-11),
    DType("bfloat16", rtol=4e-3, acc_eps=2**-24, unit=2**-8),
    DType("float32", rtol=2e-7, acc_eps=2**-24, unit=2**-24),
    DType("float64", rtol=4e-16, acc_eps=2**-53, unit=2**-53),
)

# (condition, x, y) shapes: every broadcasting pattern tf.where accepts that the kernels treat
# differently (flat, scalar, strided, general reductions, empty outputs).
BROADCAST_CASES = {
    "same_1d": ((37,), (37,), (37,)),
    "same_3d": ((3, 5, 7), (3, 5, 7), (3, 5, 7)),
    "scalar_x": ((4, 9), (), (4, 9)),
    "scalar_y": ((4, 9), (4, 9), ()),
    "scalar_xy": ((4, 9), (), ()),
    "scalar_cond": ((), (4, 9), (4, 9)),
    "scalar_cond_x": ((), (), (4, 9)),
    "all_scalar": ((), (), ()),
    "size1_all": ((1,), (1, 1), (1, 1, 1)),
    "cond_B1_x_BN": ((6, 1), (6, 7), (6, 7)),
    "cond_B1_y_scalar": ((6, 1), (6, 7), ()),
    "x_N_y_BN": ((6, 7), (7,), (6, 7)),
    "x_B1_y_1N": ((6, 7), (6, 1), (1, 7)),
    "x_1N": ((6, 7), (1, 7), (6, 7)),
    "cond_N_x_BN": ((7,), (5, 7), (5, 1)),
    "mixed_3d": ((2, 3, 4), (2, 1, 4), (1, 3, 1)),
    "outer_product": ((1, 4, 1), (3, 1, 5), (3, 4, 1)),
    "strided_cond": ((3, 1, 8), (3, 5, 8), (3, 5, 8)),
    "size1_middle": ((4, 1, 3), (4, 5, 3), (1, 5, 1)),
    "size1_leading": ((1, 5, 1), (4, 1, 3), (1,)),
    "rank5": ((2, 1, 3, 1, 4), (1, 3, 3, 5, 1), (2, 3, 1, 5, 4)),
    "rank6": ((2, 3, 1, 2, 1, 3), (3, 1, 2, 2, 1), (1, 1, 1, 1, 1, 3)),
    "rank8_alternating": ((2, 1, 2, 1, 2, 1, 2, 1), (1, 2, 1, 2, 1, 2, 1, 2), ()),
    "wide_rows": ((3, 1), (3, 300), (1, 300)),
    "empty": ((0,), (0,), (0,)),
    "empty_x_broadcast": ((3, 0), (3, 1), ()),
    "empty_y_nonempty": ((0, 4), (0, 1), (1, 4)),
    "empty_middle": ((2, 0, 3), (), (3,)),
}

# (x, value) shapes of fill_missing: value broadcasts to x's shape.
FILL_CASES = {
    "scalar": ((5, 6), ()),
    "per_feature": ((5, 6), (6,)),
    "per_feature_keepdims": ((5, 6), (1, 6)),
    "per_row": ((5, 6), (5, 1)),
    "full": ((5, 6), (5, 6)),
    "3d_middle": ((2, 3, 4), (3, 1)),
    "1d": ((33,), (1,)),
    "x_scalar": ((), ()),
    "empty": ((0, 6), (6,)),
}


def special_values(rng, shape, dtype, nan=0.2, inf=0.1):
    """Random normal values of `dtype` with a fraction of NaN and +-Inf (never all zeros);
    dtype None gives float64 (for a device array that rounds them itself)."""
    a = rng.standard_normal(shape) * 3.0 + 0.5
    u = rng.random(shape)
    a = np.where(u < nan, np.nan, a)
    a = np.where((u >= nan) & (u < nan + inf), np.where(u < nan + inf / 2, np.inf, -np.inf), a)
    return _as(a, dtype)


def finite_values(rng, shape, dtype):
    """Random normal values of `dtype` (float64 for None), never zero."""
    a = rng.standard_normal(shape) + 0.25
    a = np.where(a == 0, 1.0, a)
    return _as(a, dtype)


def _as(a, dtype):
    a = np.asarray(a, np.float64)
    return a if dtype is None else a.astype(dtype.np)


def random_bool(rng, shape, p=0.5):
    return np.asarray(rng.random(shape) < p)


def where_ref(cond, x, y):
    """condition ? x : y in float64 (exact for every kernel dtype)."""
    return np.where(cond, np.asarray(x, np.float64), np.asarray(y, np.float64))


def reduce_to(a, shape):
    """Sums a (of the broadcast shape) over the dimensions along which `shape` broadcasts.
    The sum runs in long double (x86: 64-bit significand; aarch64: quad), so that it is far
    more accurate than the float64 kernels it checks; the result is rounded to float64."""
    a = np.asarray(a, np.float64)
    lead = a.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + d for d, n in enumerate(shape) if n == 1)
    if a.size == math.prod(shape):  # nothing to sum (and -0.0 stays -0.0, as in a select)
        return a.reshape(shape)
    with np.errstate(invalid="ignore", over="ignore"):  # NaN/Inf terms give NaN/Inf sums
        total = a.astype(np.longdouble).sum(axis=axes, keepdims=True)
    return total.astype(np.float64).reshape(shape)


@dataclasses.dataclass(frozen=True)
class Sum:
    """A float64 reference reduction: its value, the sum of |terms| (the scale of the rounding
    errors) and how many terms each result sums."""

    value: np.ndarray
    scale: np.ndarray
    terms: int


def reduce_ref(selected, shape):
    n = max(selected.size // max(math.prod(shape), 1), 1)
    return Sum(reduce_to(selected, shape), reduce_to(np.abs(selected), shape), n)


def where_grad_ref(cond, x_shape, y_shape, grad):
    """Sums reduce_to_x(cond ? g : 0) and reduce_to_y(cond ? 0 : g), in float64."""
    g = np.asarray(grad, np.float64)
    c = np.broadcast_to(cond, g.shape)
    return reduce_ref(np.where(c, g, 0.0), x_shape), reduce_ref(np.where(c, 0.0, g), y_shape)


def missing_ref(x, missing):
    x = np.asarray(x, np.float64)
    return np.isnan(x) if missing == "nan" else ~np.isfinite(x)


def fill_missing_ref(x, value, missing):
    return np.where(
        missing_ref(x, missing), np.asarray(value, np.float64), np.asarray(x, np.float64)
    )


def fill_missing_grad_ref(x, value_shape, grad, missing):
    """(missing ? 0 : g, Sum of reduce_to_value(missing ? g : 0))."""
    m = missing_ref(x, missing)
    g = np.asarray(grad, np.float64)
    return np.where(m, 0.0, g), reduce_ref(np.where(m, g, 0.0), value_shape)


def as_float64(a):
    return np.asarray(np.asarray(a).astype(np.float64))


def assert_same(got, want, what=""):
    """Exact equality after an exact widening to float64 (NaN equals NaN, -0 differs from +0)."""
    got, want = as_float64(got), as_float64(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    same = (got == want) & (np.signbit(got) == np.signbit(want))
    same |= np.isnan(got) & np.isnan(want)
    if not same.all():
        bad = np.argwhere(~same)[:5].tolist()
        raise AssertionError(
            f"{what}: {int((~same).sum())} of {same.size} elements differ, e.g. at {bad}: "
            f"got {[got[tuple(i)] for i in bad]}, want {[want[tuple(i)] for i in bad]}"
        )


def assert_sum_close(got, ref, dtype, what="", in_dtype=False):
    """A reduction in `dtype` against its float64 reference `ref` (a Sum):

        |got - want| <= rtol * |want| + k * eps * sum(|terms|)

    rtol covers the final rounding to the dtype. safeops accumulates in float32 (16-bit
    types) or the dtype, in short chains (lanes, blocks, chunks): eps is that accumulator's
    unit roundoff and k = 4 + log2(terms), the bound of pairwise summation with a margin.
    `in_dtype` is for TensorFlow's own reductions, which may accumulate 16-bit types in 16
    bits and in any order: eps is then the dtype's and k = terms - 1 (recursive summation)."""
    got = as_float64(got)
    want = np.asarray(ref.value, np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    if in_dtype:
        acc = max(ref.terms - 1, 1) * dtype.unit
    else:
        acc = (4 + math.log2(ref.terms)) * dtype.acc_eps
    tol = dtype.rtol * np.abs(want) + acc * np.asarray(ref.scale) + _tiny(dtype)
    with np.errstate(invalid="ignore"):
        err = np.abs(got - want)
    ok = err <= tol
    # A sum beyond the dtype's range rounds to +-Inf (float16 overflows at 65520).
    overflow = np.abs(want) >= _OVERFLOW[dtype.name]
    ok = np.where(overflow, got == np.copysign(np.inf, want), ok)
    if not ok.all():
        i = np.unravel_index(np.argmax(np.where(ok, 0, err - tol)), got.shape)
        raise AssertionError(
            f"{what} ({dtype.name}): {int((~ok).sum())} of {ok.size} sums off, worst at {i}: "
            f"got {got[i]!r}, want {want[i]!r}, tolerance {tol[i]!r}"
        )


_OVERFLOW = {  # the smallest magnitude that rounds to Inf: max finite + half an ulp
    "float16": 65520.0,
    "bfloat16": 2.0**128 * (1 - 2.0**-9),
    "float32": 2.0**128 * (1 - 2.0**-25),
    "float64": np.inf,
}


def _tiny(dtype):
    """Smallest subnormal of the dtype: a sum that rounds to it from 0 is still right."""
    return {"float16": 2**-24, "bfloat16": 2**-133, "float32": 2**-149, "float64": 0.0}[dtype.name]


def size(shape):
    return math.prod(shape)
