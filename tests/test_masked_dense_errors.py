"""Bad input to masked_dense raises a clear exception naming the shapes/dtypes, in eager and in
graphs whose static shapes are unknown (then the op kernel itself must refuse)."""

import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import safeops
from safeops._loader import ops

X = np.ones((4, 3), np.float32)
W = np.ones((3, 2), np.float32)
B = np.ones(2, np.float32)


@pytest.mark.parametrize(
    "args,kwargs,error,words",
    [
        ((np.ones(3, np.float32), W), {}, ValueError, ["rank >= 2", "(3,)"]),
        ((X, np.ones((3, 2, 1), np.float32)), {}, ValueError, ["rank 2", "(3, 2, 1)"]),
        ((X, np.ones((4, 2), np.float32)), {}, ValueError, ["3 features", "(4, 2)"]),
        ((X, W, np.ones(3, np.float32)), {}, ValueError, ["bias", "(3,)"]),
        ((X, W, np.ones((1, 2), np.float32)), {}, ValueError, ["bias", "rank 1"]),
        ((X, W.astype(np.float64)), {}, TypeError, ["float64", "float32"]),
        ((X, W, B.astype(np.float16)), {}, TypeError, ["bias", "float16"]),
        ((X.astype(np.int32), W.astype(np.int32)), {}, TypeError, ["int32"]),
        ((X, W), {"activation": "no-such-activation"}, ValueError, ["no-such-activation"]),
        ((X, W), {"activation": 3}, TypeError, ["activation"]),
        ((X, W), {"missing": "zero"}, ValueError, ["zero", "nan", "nonfinite"]),
    ],
)
def test_eager_errors(args, kwargs, error, words):
    with pytest.raises(error) as info:
        safeops.masked_dense(*args, **kwargs)
    for word in words:
        assert word in str(info.value)


def _unknown(rank):
    return tf.TensorSpec([None] * rank if rank is not None else None, tf.float32)


@pytest.mark.parametrize(
    "x,w,b,words",
    [
        (X, np.ones((4, 2), np.float32), B, ["last dimension of x", "first of kernel"]),
        (np.ones((2, 3, 3), np.float32), np.ones((4, 2), np.float32), B, ["last dimension"]),
    ],
)
def test_graph_with_unknown_shapes_composite(x, w, b, words):
    f = tf.function(
        lambda x, w, b: safeops.masked_dense(x, w, b),
        input_signature=[_unknown(None), _unknown(None), _unknown(None)],
    )
    with pytest.raises(tf.errors.InvalidArgumentError) as info:
        f(x, w, b)
    for word in words:
        assert word in str(info.value)


@pytest.mark.parametrize(
    "x,w,b,words",
    [
        (np.ones(3, np.float32), W, B, ["rank >= 2", "[3]"]),
        (X, np.ones((3, 2, 1), np.float32), B, ["rank 2", "[3,2,1]"]),
        (X, np.ones((4, 2), np.float32), B, ["3 features", "[4,2]"]),
        (X, W, np.ones(3, np.float32), ["bias", "[2]", "[3]"]),
    ],
)
def test_fused_op_kernel_errors_with_unknown_shapes(x, w, b, words):
    f = tf.function(
        lambda x, w, b: ops.safeops_masked_dense(x, w, b, [])[0],
        input_signature=[_unknown(None), _unknown(None), _unknown(None)],
    )
    with pytest.raises(tf.errors.InvalidArgumentError) as info:
        f(x, w, b)
    for word in words:
        assert word in str(info.value)


def test_fused_grad_op_checks_shapes():
    with pytest.raises(tf.errors.InvalidArgumentError) as info:
        ops.safeops_masked_dense_grad(
            X, W, np.ones((4, 2), np.float32), np.ones((5, 2), np.float32), activation="relu"
        )
    assert "grad has shape" in str(info.value)
    with pytest.raises(tf.errors.InvalidArgumentError) as info:
        ops.safeops_masked_dense_grad(
            X, W, np.ones((1, 2), np.float32), np.ones((4, 2), np.float32), activation="relu"
        )
    assert "saved activation" in str(info.value)


def test_error_cases_in_a_subprocess(tmp_path):
    """The cases above again in a separate process, so that a crash in an op kernel shows up as
    this test failing rather than as a dead test run."""
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            __file__,
            "-q",
            "-p",
            "no:cacheprovider",
            "-k",
            "not subprocess",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert out.returncode == 0, f"exit {out.returncode}\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    assert " passed" in out.stdout
