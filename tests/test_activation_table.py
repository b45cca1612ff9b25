"""Every consumer of the activation table (csrc/kernels/activations.h, read in Python through
safeops._native) agrees with it: the ops' "activation" attribute, the shape functions and
kernels of the ops that output the pre-activation, the Python wrappers, safeops.native, the
CUDA bindings' message, and the independent test references."""

import importlib.util
import os

import numpy as np
import pytest
import tensorflow as tf
from dense_reference import ACTIVATIONS as REFERENCE_ACTIVATIONS

from safeops import _activations, _native, dense, native
from safeops._loader import ops

NAMES = _activations.NAMES
SAVES_Z = tuple(a for a in NAMES if _activations.SAVED[a] == "pre_activation")


def test_table_as_documented():
    """docs/design.md, masked_dense: the fused activations, and what each backward reads."""
    assert NAMES == ("linear", "relu", "gelu", "sigmoid", "tanh", "silu")
    assert _activations.SAVED == {
        "linear": "none",
        "relu": "output",
        "gelu": "pre_activation",
        "sigmoid": "output",
        "tanh": "output",
        "silu": "pre_activation",
    }


def _attr(op):
    (attr,) = (a for a in op.op_def.attr if a.name == "activation")
    return [s.decode() for s in attr.allowed_values.list.s], attr.default_value.s.decode()


@pytest.mark.parametrize("act", NAMES)
def test_ops_attribute_and_shape_functions(act):
    with tf.Graph().as_default():
        x, w, b = tf.zeros([3, 2]), tf.zeros([2, 4]), tf.zeros([4])
        y, z = ops.safeops_masked_dense(x, w, b, [], activation=act)
        grads = ops.safeops_masked_dense_grad(x, w, z, y, activation=act)
        out, pre = ops.safeops_masked_dense_output(y, b, activation=act)
        dz, _ = ops.safeops_masked_dense_output_grad(pre, out, activation=act)
        for op in (y.op, grads[0].op, out.op, dz.op):
            assert _attr(op) == (list(NAMES), "linear"), op.type
        expected = [3, 4] if act in SAVES_Z else [0]
        assert z.shape.as_list() == expected
        assert pre.shape.as_list() == expected


@pytest.mark.parametrize("act", NAMES)
def test_kernels_output_the_pre_activation_where_the_table_says(act):
    x = tf.constant([[1.0, float("nan")], [0.5, 2.0], [-1.0, 3.0]])
    w, b = tf.ones([2, 4]), tf.zeros([4])
    _, z = ops.safeops_masked_dense(x, w, b, [], activation=act)
    _, pre = ops.safeops_masked_dense_output(tf.matmul(tf.zeros_like(x), w), b, activation=act)
    expected = (3, 4) if act in SAVES_Z else (0,)
    assert tuple(z.shape) == expected
    assert tuple(pre.shape) == expected


def test_python_wrappers_cover_the_table():
    assert tuple(dense._TF_ACTIVATIONS) == NAMES
    assert set(dense._KNOWN_CALLABLES.values()) <= set(NAMES)
    for act in NAMES:
        assert dense.resolve_activation(act) == (act, None)
        assert native._activation_name(act) == act
    with pytest.raises(ValueError, match="unknown activation 'elu'; expected one of"):
        native._activation_name("elu")


@pytest.mark.skipif(
    not hasattr(_native, "cuda_masked_dense_workspace"), reason="a build without CUDA bindings"
)
def test_cuda_bindings_message_lists_the_table():
    expected = ", ".join(NAMES[:-1]) + " or " + NAMES[-1]
    with pytest.raises(ValueError, match=f"expected {expected}$"):
        _native.cuda_masked_dense_workspace(1, 1, 1, "float32", "elu", False, "nan", False)


def test_test_references_agree():
    path = os.path.join(os.path.dirname(__file__), "gpu", "_reference.py")
    spec = importlib.util.spec_from_file_location("gpu_reference", path)
    gpu_reference = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_reference)
    assert REFERENCE_ACTIVATIONS == NAMES
    assert gpu_reference.ACTIVATIONS == NAMES
    assert gpu_reference.SAVES_Z == SAVES_Z


def test_saved_for_backward():
    y, z = np.array([1.0]), np.array([2.0])
    for act in NAMES:
        saved = _activations.saved_for_backward(act, y, z)
        assert saved is (y if _activations.SAVED[act] == "output" else z)
