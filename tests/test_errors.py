"""Bad input raises a clear ValueError / TypeError / InvalidArgumentError that names what is
wrong (shapes, dtypes, the offending argument). The cases that reach C++ (op kernels, native
module) also run in a fresh interpreter, so that a crash shows up as a failure."""

import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

import safeops
from safeops import native
from safeops._loader import ops

T3 = tf.constant([True, False, True])


def unknown_shape_fn(fn, *ranks, dtypes=None):
    """fn traced with every dimension unknown, so only the op kernel can check the shapes."""
    dtypes = dtypes or [None] * len(ranks)
    sig = [tf.TensorSpec([None] * r, d or tf.float32) for r, d in zip(ranks, dtypes, strict=True)]
    return tf.function(fn, input_signature=sig, autograph=False)


# Python-level checks: (call, exception, pattern the message must match).
WRAPPER_CASES = {
    "float_condition": (
        lambda: safeops.safe_where(tf.constant([1.0, 0.0]), 1.0, 2.0),
        TypeError,
        r"condition must be a bool.*float32",
    ),
    # A NumPy condition of any dtype converts to bool, as in tf.where; a tensor does not.
    "int_condition_tensor": (
        lambda: safeops.safe_where(tf.constant([1, 0]), 1.0, 2.0),
        TypeError,
        r"condition must be a bool.*int32",
    ),
    # tf.where raises ValueError for a None condition.
    "none_condition": (lambda: safeops.safe_where(None, 1.0, 2.0), ValueError, "condition"),
    "incompatible_shapes": (
        lambda: safeops.safe_where(T3, tf.ones([4]), tf.ones([4])),
        ValueError,
        r"\(3,\) \(condition\), \(4,\) \(x\) and \(4,\) \(y\).*broadcast",
    ),
    "incompatible_y": (
        lambda: safeops.safe_where(tf.ones([2, 3], tf.bool), tf.ones([3]), tf.ones([2, 2])),
        ValueError,
        r"\(2, 2\) \(y\)",
    ),
    "mismatched_dtypes": (
        lambda: safeops.safe_where(T3, tf.ones([3]), tf.ones([3], tf.float64)),
        TypeError,
        r"same dtype.*float32 and float64",
    ),
    # Two NumPy arrays convert to the first one's dtype, as in tf.where; a tensor and a
    # variable keep theirs.
    "mismatched_variable_dtypes": (
        lambda: safeops.safe_where(T3, tf.ones([3], tf.float16), tf.Variable(tf.ones([3]))),
        TypeError,
        r"float16 and float32",
    ),
    "only_x": (lambda: safeops.safe_where(T3, tf.ones([3])), ValueError, r"x and y.*both"),
    "only_y": (lambda: safeops.safe_where(T3, None, tf.ones([3])), ValueError, r"x and y.*both"),
    "callable_without_inputs": (
        lambda: safeops.safe_where(T3, tf.math.log, 0.0),
        ValueError,
        r"callable.*tensors",
    ),
    "inputs_without_callable": (
        lambda: safeops.safe_where(T3, 1.0, 0.0, tf.ones([3])),
        ValueError,
        r"neither x nor y is callable",
    ),
    "inputs_without_branches": (
        lambda: safeops.safe_where(T3, None, None, tf.ones([3])),
        ValueError,
        r"inputs given without x and y",
    ),
    "unknown_missing": (
        lambda: safeops.fill_missing(tf.ones([3]), missing="inf"),
        ValueError,
        r"missing='inf'.*nan, nonfinite",
    ),
    "value_does_not_broadcast": (
        lambda: safeops.fill_missing(tf.ones([3, 4]), tf.ones([3])),
        ValueError,
        r"value of shape \(3,\).*x \(3, 4\)",
    ),
    "value_would_grow_x": (
        lambda: safeops.fill_missing(tf.ones([4]), tf.ones([2, 4])),
        ValueError,
        r"value of shape \(2, 4\).*x \(4,\)",
    ),
    "fill_missing_int_x": (
        lambda: safeops.fill_missing(tf.ones([3], tf.int32)),
        TypeError,
        r"float16, bfloat16, float32 or float64, got int32",
    ),
    "fill_missing_value_dtype": (
        lambda: safeops.fill_missing(tf.ones([3]), tf.ones([3], tf.float64)),
        TypeError,
        r"x and value.*float32 and float64",
    ),
}


# Checks in C++: op kernels (shapes unknown at trace time, raw ops) and the native module.
KERNEL_CASES = {
    "where_shapes_at_run_time": (
        lambda: unknown_shape_fn(safeops.safe_where, 1, 1, 1, dtypes=[tf.bool, None, None])(
            T3, tf.ones([4]), tf.ones([4])
        ),
        tf.errors.InvalidArgumentError,
        r"\[3\] \(condition\), \[4\] \(x\) and \[4\] \(y\) are not broadcast-compatible",
    ),
    "where_2d_at_run_time": (
        lambda: unknown_shape_fn(safeops.safe_where, 2, 2, 1, dtypes=[tf.bool, None, None])(
            tf.ones([2, 3], tf.bool), tf.ones([2, 1]), tf.ones([2])
        ),
        tf.errors.InvalidArgumentError,
        r"\[2,3\] \(condition\), \[2,1\] \(x\) and \[2\] \(y\)",
    ),
    "fill_value_at_run_time": (
        lambda: unknown_shape_fn(safeops.fill_missing, 2, 1)(tf.ones([3, 4]), tf.ones([3])),
        tf.errors.InvalidArgumentError,
        r"value of shape \[3\] does not broadcast to the shape of x \[3,4\]",
    ),
    "fill_value_grows_x_at_run_time": (
        lambda: unknown_shape_fn(safeops.fill_missing, 1, 2)(tf.ones([4]), tf.ones([2, 4])),
        tf.errors.InvalidArgumentError,
        r"value of shape \[2,4\] does not broadcast to the shape of x \[4\]",
    ),
    "too_many_dimensions": (
        lambda: safeops.safe_where(
            tf.ones([2, 1] * 4 + [2], tf.bool), tf.ones([1, 2] * 4 + [1]), 0.0
        ),
        tf.errors.InvalidArgumentError,
        r"needs 9 dimensions after merging; at most 8",
    ),
    "raw_where_grad_shape": (
        lambda: ops.safeops_safe_where_grad(T3, tf.ones([3]), tf.ones([3]), tf.ones([4])),
        tf.errors.InvalidArgumentError,
        r"grad has shape \[4\], expected \[3\]",
    ),
    "raw_fill_grad_shape": (
        lambda: ops.safeops_fill_missing_grad(tf.ones([3]), tf.ones([]), tf.ones([2])),
        tf.errors.InvalidArgumentError,
        r"grad has shape \[2\], expected \[3\]",
    ),
    "raw_fill_missing_attr": (
        lambda: ops.safeops_fill_missing(tf.ones([3]), tf.ones([]), missing="zero"),
        tf.errors.InvalidArgumentError,
        r"'missing' of \"zero\".*\"nan\", \"nonfinite\"",
    ),
    "native_condition_dtype": (
        lambda: native.where(np.ones(3), np.ones(3, np.float32), np.ones(3, np.float32)),
        TypeError,
        r"condition must be a bool array, got float64",
    ),
    "native_shapes": (
        lambda: native.where(np.ones(3, bool), np.ones(4, np.float32), np.ones(3, np.float32)),
        ValueError,
        r"\[3\] \(condition\), \[4\] \(x\) and \[3\] \(y\)",
    ),
    "native_mismatched_dtypes": (
        lambda: native.where(np.ones(3, bool), np.ones(3, np.float32), np.ones(3, np.float64)),
        TypeError,
        r"x \(float32\) and y \(float64\)",
    ),
    "native_int_dtype": (
        lambda: native.where(np.ones(3, bool), np.ones(3, np.int32), np.ones(3, np.int32)),
        TypeError,
        r"unsupported dtype int32",
    ),
    "native_grad_shape": (
        lambda: native.where_grad(np.ones(3, bool), (3,), (1,), np.ones(4, np.float32)),
        ValueError,
        r"grad has shape \[4\], expected \[3\]",
    ),
    "native_fill_value_shape": (
        lambda: native.fill_missing(np.ones(3, np.float32), np.ones(2, np.float32)),
        ValueError,
        r"value of shape \[2\] does not broadcast to the shape of x \[3\]",
    ),
    "native_fill_grad_value_shape": (
        lambda: native.fill_missing_grad(np.ones(3, np.float32), (2,), np.ones(3, np.float32)),
        ValueError,
        r"value of shape \[2\] does not broadcast to the shape of x \[3\]",
    ),
    "native_fill_grad_shape": (
        lambda: native.fill_missing_grad(np.ones(3, np.float32), (1,), np.ones(2, np.float32)),
        ValueError,
        r"grad has shape \[2\], expected \[3\]",
    ),
    "native_unknown_missing": (
        lambda: native.fill_missing(np.ones(3, np.float32), np.ones(1, np.float32), "zero"),
        ValueError,
        r"unknown missing policy 'zero'",
    ),
}


@pytest.mark.parametrize("name", list(WRAPPER_CASES))
def test_wrapper_errors(name):
    call, exc, pattern = WRAPPER_CASES[name]
    with pytest.raises(exc, match=pattern):
        call()


@pytest.mark.parametrize("name", list(KERNEL_CASES))
def test_kernel_errors(name):
    call, exc, pattern = KERNEL_CASES[name]
    with pytest.raises(exc, match=pattern):
        call()


def test_kernel_errors_in_a_fresh_process():
    """Every C++ error case once more in a child interpreter: a crash (signal) or a missing
    error fails this test with the child's output."""
    safeops_root = os.path.dirname(os.path.dirname(os.path.abspath(safeops.__file__)))
    script = textwrap.dedent(
        f"""
        import importlib.util, re, sys
        sys.path[:0] = [{os.path.dirname(__file__)!r}, {safeops_root!r}]
        spec = importlib.util.spec_from_file_location("error_cases", {__file__!r})
        cases = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(cases)
        for name, (call, exc, pattern) in cases.KERNEL_CASES.items():
            try:
                call()
            except exc as e:
                assert re.search(pattern, str(e)), (name, str(e))
                print("raised", name, flush=True)
            else:
                sys.exit(f"{{name}}: no error")
        """
    )
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    r = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=600
    )
    output = f"exit status {r.returncode}\n{r.stdout}\n{r.stderr[-4000:]}"
    assert r.returncode == 0, output
    assert re.findall(r"^raised (\S+)$", r.stdout, re.M) == list(KERNEL_CASES), output
