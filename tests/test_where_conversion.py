"""safe_where takes its arguments exactly as tf.where does, checked by a sweep against tf.where.

Operands: tensors, variables, NumPy arrays and scalars, lists and Python scalars of many dtypes;
conditions: bool and non-bool tensors, NumPy arrays and scalars, lists, Python values; shapes:
equal, broadcasting, scalar, empty, and shapes that do not broadcast; eagerly and inside
tf.function. Wherever tf.where returns, safe_where returns the same values with the same dtype;
wherever tf.where raises, safe_where raises the same class (or a subclass) with a message of
its own.
"""

import functools
import itertools

import numpy as np
import pytest
import tensorflow as tf

import safeops

# TensorFlow warns as it converts the deliberately out-of-range and complex values.
pytestmark = [
    pytest.mark.filterwarnings("ignore:.*encountered in cast:RuntimeWarning"),
    pytest.mark.filterwarnings("ignore::numpy.exceptions.ComplexWarning"),
]

SHAPES = {  # (condition, x, y)
    "equal": ((3,), (3,), (3,)),
    "broadcast": ((2, 1), (3,), (2, 3)),
    "scalar": ((), (), ()),
    "empty": ((0,), (0,), (1,)),
    "no_broadcast": ((3,), (4,), (4,)),
}

NUMERIC = ["float16", "bfloat16", "float32", "float64", "int8", "uint8", "int32", "int64"]
DTYPES = [*NUMERIC, "bool", "complex64"]


def _values(dtype, shape, seed):
    """Values of `dtype` that tell conversions apart: large magnitudes (which overflow float16
    and wrap small integers), fractions, a NaN, negatives only where the dtype has them."""
    rng = np.random.default_rng(seed)
    if dtype == "bool":
        return rng.random(shape) < 0.5
    if dtype in ("int8", "uint8", "int32", "int64"):
        info = np.iinfo(dtype)
        return rng.integers(max(info.min, -300), min(info.max, 300), shape, endpoint=True)
    v = rng.normal(size=shape) * 100.0
    if v.size > 1:
        v.flat[0] = 70000.0  # beyond float16's range
        v.flat[1] = np.nan
    return v + 1j * v if dtype == "complex64" else v


def _array(dtype, shape, seed):
    return _values(dtype, shape, seed).astype(tf.as_dtype(dtype).as_numpy_dtype)


def _tensor(dtype, shape, seed):
    return tf.constant(_array(dtype, shape, seed))


# Operand makers: name -> f(shape, seed). Python scalars ignore the shape.
OPERANDS = {
    **{f"tensor_{d}": functools.partial(_tensor, d) for d in DTYPES},
    **{f"numpy_{d}": functools.partial(_array, d) for d in DTYPES},
    "variable_float32": lambda s, k: tf.Variable(_values("float32", s, k).astype("float32")),
    "variable_float64": lambda s, k: tf.Variable(_values("float64", s, k)),
    "numpy_scalar_float16": lambda s, k: np.float16(2.5),
    "numpy_scalar_float32": lambda s, k: np.float32(2.5),
    "numpy_scalar_int64": lambda s, k: np.int64(300),
    "list_float": lambda s, k: _values("float64", s, k).tolist(),
    "list_int": lambda s, k: _values("int64", s, k).tolist(),
    "list_bool": lambda s, k: _values("bool", s, k).tolist(),
    "tuple_float": lambda s, k: tuple(np.atleast_1d(_values("float64", s, k)).tolist()),
    "python_float": lambda s, k: 2.5,
    "python_big_float": lambda s, k: 70000.0,
    "python_int": lambda s, k: 1000,
    "python_bool": lambda s, k: True,
}


def _bool(shape, seed):
    return np.random.default_rng(seed).random(shape) < 0.5


# Condition makers: name -> f(shape, seed).
CONDITIONS = {
    "tensor_bool": lambda s, k: tf.constant(_bool(s, k)),
    "numpy_bool": lambda s, k: _bool(s, k),
    "list_bool": lambda s, k: _bool(s, k).tolist(),
    "python_bool": lambda s, k: False,
    "numpy_bool_scalar": lambda s, k: np.bool_(True),
    "numpy_int64": lambda s, k: _bool(s, k).astype("int64") * 7,
    "numpy_float64_nan": lambda s, k: np.where(_bool(s, k), np.nan, 0.0),
    "numpy_uint8": lambda s, k: _bool(s, k).astype("uint8"),
    "numpy_int_scalar": lambda s, k: np.int64(0),
    "numpy_float_scalar": lambda s, k: np.float32(1.5),
    "tensor_int32": lambda s, k: tf.constant(_bool(s, k).astype("int32")),
    "tensor_float32": lambda s, k: tf.constant(_bool(s, k).astype("float32")),
    "variable_bool": lambda s, k: tf.Variable(_bool(s, k)),
    "variable_float32": lambda s, k: tf.Variable(_bool(s, k).astype("float32")),
    "list_int": lambda s, k: _bool(s, k).astype(int).tolist(),
    "python_int": lambda s, k: 1,
    "none": lambda s, k: None,
    "numpy_str": lambda s, k: np.full(s, "yes"),
}

# The condition sweep runs each condition against these operand pairs.
CONDITION_OPERANDS = [
    ("tensor_float32", "tensor_float32"),
    ("numpy_float64", "list_float"),
    ("python_float", "python_float"),
    ("list_float", "tensor_float32"),
    ("tensor_int32", "python_int"),
    ("numpy_float16", "python_big_float"),
    ("numpy_float16", "variable_float32"),
    ("tuple_float", "numpy_int8"),
]


def _outcome(fn, *args):
    try:
        return fn(*args)
    except Exception as e:
        return e


def _run(mode, fn, c, x, y):
    if mode == "eager":
        return _outcome(fn, c, x, y)
    return _outcome(lambda: tf.function(lambda: fn(c, x, y), autograph=False)())


def _mismatch(ref, got):
    """None when got is what tf.where's outcome ref asks for, else what differs."""
    if isinstance(ref, Exception):
        if not isinstance(got, Exception):
            return f"tf.where raised {type(ref).__name__}, safe_where returned {got!r}"
        if not isinstance(got, type(ref)):
            return f"tf.where raised {type(ref).__name__}, safe_where {type(got).__name__}: {got}"
        if not str(got).startswith("safe_where: "):
            return f"message not safe_where's own: {got}"
        return None
    if isinstance(got, Exception):
        return f"tf.where returned {ref.dtype.name}, safe_where raised {type(got).__name__}: {got}"
    if got.dtype != ref.dtype or got.shape != ref.shape:
        return f"tf.where {ref.dtype.name}{ref.shape}, safe_where {got.dtype.name}{got.shape}"
    want, have = ref.numpy(), got.numpy()
    if ref.dtype in (tf.bfloat16, tf.float16):
        want, have = want.astype("float32"), have.astype("float32")
    if not np.array_equal(want, have, equal_nan=ref.dtype.is_floating or ref.dtype.is_complex):
        return f"values {have} != tf.where's {want}"
    return None


def _sweep(mode, cases):
    """Runs (label, c, x, y) cases through both; fails with every mismatch found."""
    problems = []
    for label, c, x, y in cases:
        ref = _run(mode, tf.where, c, x, y)
        got = _run(mode, safeops.safe_where, c, x, y)
        problem = _mismatch(ref, got)
        if problem:
            problems.append(f"{label}: {problem}")
    assert not problems, f"{len(problems)} of {len(cases)} cases differ:\n" + "\n".join(
        problems[:40]
    )


def operand_cases(shapes):
    cs, xs, ys = SHAPES[shapes]
    cases = []
    for (nx, mx), (ny, my) in itertools.product(OPERANDS.items(), OPERANDS.items()):
        label = f"{shapes} x={nx} y={ny}"
        cases.append((label, _bool(cs, 0), mx(xs, 1), my(ys, 2)))
    return cases


def condition_cases(shapes):
    cs, xs, ys = SHAPES[shapes]
    cases = []
    for nc, mc in CONDITIONS.items():
        for nx, ny in CONDITION_OPERANDS:
            label = f"{shapes} condition={nc} x={nx} y={ny}"
            cases.append((label, mc(cs, 0), OPERANDS[nx](xs, 1), OPERANDS[ny](ys, 2)))
    return cases


# Tracing a tf.function per case costs milliseconds: the graph sweep takes fewer shapes.
GRAPH_SHAPES = ["equal", "no_broadcast"]


@pytest.mark.parametrize("shapes", list(SHAPES))
def test_operands_eager(shapes):
    _sweep("eager", operand_cases(shapes))


@pytest.mark.parametrize("shapes", list(SHAPES))
def test_conditions_eager(shapes):
    _sweep("eager", condition_cases(shapes))


@pytest.mark.slow
@pytest.mark.parametrize("shapes", GRAPH_SHAPES)
def test_operands_tf_function(shapes):
    _sweep("graph", operand_cases(shapes))


@pytest.mark.parametrize("shapes", GRAPH_SHAPES)
def test_conditions_tf_function(shapes):
    _sweep("graph", condition_cases(shapes))


@pytest.mark.parametrize(
    "c, x, y, dtype, want",
    [  # the minimal repros: tf.where's answers
        (np.array([1, 0]), [1.0, 2.0], [3.0, 4.0], tf.float32, [1.0, 4.0]),
        (np.array([1.5, 0.0]), [1.0, 2.0], [3.0, 4.0], tf.float32, [1.0, 4.0]),
        ([True, False], tf.constant([1.0, 2.0]), np.zeros(2), tf.float32, [1.0, 0.0]),
        ([True, False], 1000, np.array([1, 2], np.uint8), tf.int32, [1000, 2]),
        ([True, False], 70000.0, np.array([1.0, 2.0], np.float16), tf.float32, [70000.0, 2.0]),
    ],
)
def test_reported_cases(c, x, y, dtype, want):
    got = safeops.safe_where(c, x, y)
    assert got.dtype == dtype
    np.testing.assert_array_equal(got.numpy(), want)


def test_eager_broadcast_error_is_invalid_argument():
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"not broadcast-compatible"):
        safeops.safe_where([True, False, True], tf.ones([4]), tf.ones([4]))


def test_converted_operands_run_the_kernel():
    """NumPy and Python operands converted to a float dtype still run safeops' kernel."""
    fn = tf.function(lambda: safeops.safe_where(np.array([0, 0, 1]), np.zeros(3), 2.5))
    graph = fn.get_concrete_function().graph
    assert "Safeops>SafeWhere" in [op.type for op in graph.get_operations()]
    np.testing.assert_array_equal(fn().numpy(), [2.5, 2.5, 0.0])


def test_numpy_condition_in_the_callable_form():
    x = tf.constant([0.0, -1.0, 4.0])
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = safeops.safe_where(np.array([0, 0, 1]), tf.math.log, 0.0, x)
    np.testing.assert_array_equal(y.numpy(), [0.0, 0.0, np.log(np.float32(4.0))])
    np.testing.assert_array_equal(tape.gradient(y, x).numpy(), [0.0, 0.0, 0.25])
