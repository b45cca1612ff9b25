"""Argument checks shared by the wrappers: clear exceptions that name shapes and dtypes."""

import tensorflow as tf

# dtypes with compiled kernels; everything else is delegated or refused by each wrapper.
KERNEL_DTYPES = (tf.float16, tf.bfloat16, tf.float32, tf.float64)
MISSING_POLICIES = ("nan", "nonfinite")


def has_dtype(value):
    """True for values that carry their own dtype (tensors, variables, NumPy arrays)."""
    return hasattr(value, "dtype")


def check_missing(missing, where):
    if missing not in MISSING_POLICIES:
        raise ValueError(
            f"{where}: unknown missing={missing!r}; expected one of {', '.join(MISSING_POLICIES)}"
        )


def missing_mask(x, missing):
    """Composite-op mask of the missing entries of x (for XLA and unfused paths)."""
    return tf.math.is_nan(x) if missing == "nan" else tf.logical_not(tf.math.is_finite(x))


def convert_pair(x, y, where, x_name="x", y_name="y"):
    """Converts two operands to tensors of one dtype, as tf.where would: a value without a
    dtype of its own (a Python number or list) takes the other's dtype; two typed values must
    agree."""
    if has_dtype(x) or not has_dtype(y):
        x = tf.convert_to_tensor(x)
        first, second, second_name = x, y, y_name
    else:
        y = tf.convert_to_tensor(y)
        first, second, second_name = y, x, x_name
    if has_dtype(second) and tf.as_dtype(second.dtype) != first.dtype:
        raise TypeError(
            f"{where}: {x_name} and {y_name} must have the same dtype, got "
            f"{tf.as_dtype(x.dtype).name} and {tf.as_dtype(y.dtype).name}"
        )
    try:
        second = tf.convert_to_tensor(second, dtype=first.dtype)
    except (TypeError, ValueError) as e:
        raise TypeError(
            f"{where}: cannot convert {second_name}={second!r} to {first.dtype.name}"
        ) from e
    return (first, second) if first is x else (second, first)
