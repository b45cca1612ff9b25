"""safe_where's tensor form takes its arguments exactly as tf.where (TF 2.x: where_v2) does.

TensorFlow's own conversion functions decide, applied as tf.where's op, SelectV2, applies them:
  * Eagerly, the branches convert by SelectV2's eager rule (`_tf_compat.args_to_matching_eager`):
    a tensor fixes the dtype, otherwise the first operand that converts does. So
    `where(c, 1000, uint8 array)` is int32 and `where(c, uint8 array, 1000)` is uint8. A
    variable counts as a tensor when SelectV2 takes its fast path, i.e. when every argument is
    a tensor, variable, NumPy array or Python number; a list, tuple or NumPy scalar sends it to
    the Python fallback, where the variable converts in its turn.
  * In a graph the first operand fixes the dtype and the second converts to it.
  * The condition converts to bool: a NumPy array of any dtype does (nonzero is True), a
    non-bool tensor does not.
tests/test_where_conversion.py compares thousands of cases with tf.where.

Wherever any of this fails, tf.where itself runs on the original arguments. If it raises,
safe_where raises the same exception class with its own message that names the problem. If it
returns a value (a case these rules do not cover), that value is the answer: tf.where's own
gradient already has an exact zero in the branch not taken.

TensorFlow raises different classes for the same mistake depending on where it is caught. The
eager kernel raises InvalidArgumentError for a non-bool tensor condition, mismatched dtypes or
shapes that do not broadcast. Graph construction raises TypeError for the first two and
ValueError for the shapes. The two classes below are both at once, so the error matches
tf.where in either mode.
"""

import numpy as np
import tensorflow as tf

from safeops import _tf_compat

# What SelectV2's eager fast path takes (CheckOneInput in TensorFlow's pywrap_tfe_src.cc);
# anything else (lists, tuples, NumPy scalars, None) sends the op to its Python fallback.
_FAST_PATH_INPUTS = (tf.Tensor, tf.Variable, np.ndarray, int, float)


class WhereTypeError(tf.errors.InvalidArgumentError, TypeError):
    """A condition or branch of the wrong dtype."""

    def __init__(self, message):
        super().__init__(None, None, message)


class WhereShapeError(tf.errors.InvalidArgumentError, ValueError):
    """condition, x and y shapes that do not broadcast."""

    def __init__(self, message):
        super().__init__(None, None, message)


def convert_condition(condition, where):
    """condition as a bool tensor, converted like tf.where converts it, or an error saying why
    not (for the callable form, which has no tf.where to ask)."""
    condition, problem = _condition(condition)
    if problem:
        cls, message = problem
        raise cls(f"{where}: {message}")
    return condition


def convert_operands(condition, x, y, where):
    """((condition, x, y), None): the arguments as tensors, converted as tf.where converts
    them, x and y of one dtype, static shapes that broadcast. (None, tf.where's result) in the
    case these rules refuse something that tf.where accepts (none in the sweep test). Raises
    like tf.where otherwise."""
    tensors, problem = _operands(condition, x, y)
    if problem is None:
        return tensors, None
    cls, message = problem
    if cls is WhereShapeError:
        # A broadcast error is the same class in both modes; nothing to ask TensorFlow.
        raise WhereShapeError(f"{where}: {message}")
    try:
        result = tf.where(condition, x, y)
    except Exception as tf_error:
        raise _like(tf_error, cls, f"{where}: {message}") from tf_error
    return None, result


def check_broadcast(condition, x, y, where):
    """WhereShapeError unless the static shapes of condition, x and y broadcast."""
    problem = _broadcast_problem(condition, x, y)
    if problem:
        raise WhereShapeError(f"{where}: {problem}")


def _like(tf_error, cls, message):
    """An exception of tf_error's class (a subclass of it) carrying `message`."""
    if isinstance(tf_error, tf.errors.InvalidArgumentError):
        return cls(message) if issubclass(cls, WhereShapeError) else WhereTypeError(message)
    if isinstance(tf_error, tf.errors.OpError):
        return type(tf_error)(None, None, message)
    try:
        return type(tf_error)(message)
    except TypeError:  # an exception class with another constructor: TensorFlow's own
        return tf_error


def _operands(condition, x, y):
    """((condition, x, y), None) or (None, (class, message)) naming the first problem."""
    try:
        x, y = _branches(condition, x, y)
    except (TypeError, ValueError) as e:
        return None, (type(e), _branch_message(x, y, e))
    condition, problem = _condition(condition)
    if problem:
        return None, problem
    if x.dtype != y.dtype:
        return None, (
            WhereTypeError,
            f"x and y must have the same dtype, got {x.dtype.name} and {y.dtype.name}",
        )
    problem = _broadcast_problem(condition, x, y)
    if problem:
        return None, (WhereShapeError, problem)
    return (condition, x, y), None


def _branches(condition, x, y):
    """x and y converted by SelectV2's rule for the current mode (see the module docstring)."""
    if tf.executing_eagerly():
        if all(isinstance(v, _FAST_PATH_INPUTS) for v in (condition, x, y)):
            # The fast path reads a variable first, so its dtype counts like a tensor's.
            x, y = (tf.convert_to_tensor(v) if isinstance(v, tf.Variable) else v for v in (x, y))
        x, y = _tf_compat.args_to_matching_eager([x, y])
        return x, y
    x = tf.convert_to_tensor(x)
    return x, tf.convert_to_tensor(y, dtype=x.dtype)


def _condition(condition):
    """(bool tensor, None) or (None, (class, message))."""
    if isinstance(condition, tf.Tensor):
        if condition.dtype != tf.bool:
            return None, (
                WhereTypeError,
                f"condition must be a bool tensor, got dtype {condition.dtype.name} "
                "(compare it, e.g. `condition != 0`; only NumPy arrays convert to bool)",
            )
        return condition, None
    try:
        return tf.convert_to_tensor(condition, dtype=tf.bool), None
    except (TypeError, ValueError) as e:
        return None, (type(e), f"condition must be bool, cannot convert {_show(condition)}")


def _branch_message(x, y, error):
    dtypes = [_dtype_name(v) for v in (x, y)]
    return (
        f"x={_show(x)} and y={_show(y)} do not convert to one dtype "
        f"({dtypes[0]} and {dtypes[1]}): {error}"
    )


def _dtype_name(value):
    dtype = getattr(value, "dtype", None)
    if dtype is None:
        return type(value).__name__
    try:
        return tf.as_dtype(dtype).name
    except TypeError:
        return str(dtype)


def _show(value, limit=60):
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _broadcast_problem(condition, x, y):
    try:
        tf.broadcast_static_shape(tf.broadcast_static_shape(condition.shape, x.shape), y.shape)
    except ValueError:
        return (
            f"shapes {condition.shape} (condition), {x.shape} (x) and {y.shape} (y) are not "
            "broadcast-compatible"
        )
    return None
