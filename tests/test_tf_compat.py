"""safeops._tf_compat, the private TensorFlow APIs safeops uses, against public references: a
TensorFlow upgrade that moves or changes one fails here, naming it."""

import numpy as np
import pytest
import tensorflow as tf

from safeops import _tf_compat


def test_in_xla_context():
    seen = []

    def probe(x):
        seen.append(_tf_compat.in_xla_context())
        return x + 1

    assert not _tf_compat.in_xla_context()
    tf.function(probe)(tf.constant(1.0))
    tf.function(probe, jit_compile=True)(tf.constant(1.0))
    assert seen == [False, True]


SCOPES = [
    (),
    ("/CPU:0",),
    ("/GPU:0",),
    ("/job:localhost", "/device:CPU:0"),
    ("/device:GPU:0", "/device:CPU:0"),
    (tf.DeviceSpec(device_type="CPU", device_index=0),),
]


def _nested(scopes, fn):
    if not scopes:
        return fn()
    with tf.device(scopes[0]):
        return _nested(scopes[1:], fn)


@pytest.mark.parametrize("scopes", SCOPES, ids=str)
def test_device_scope_in_a_graph_is_what_an_op_gets(scopes):
    with tf.Graph().as_default():
        got, op_device = _nested(scopes, lambda: (_tf_compat.device_scope(), tf.no_op().device))
    assert got == op_device


@pytest.mark.parametrize("scopes", SCOPES, ids=str)
def test_device_scope_at_trace_time_under_an_eager_scope(scopes):
    seen = []

    @tf.function
    def probe():
        seen.append((_tf_compat.device_scope(), tf.no_op().device))

    _nested(scopes, probe.get_concrete_function)
    ((got, op_device),) = seen
    assert got == op_device


def test_device_scope_eagerly():
    assert _tf_compat.device_scope() == ""
    with tf.device("/CPU:0"):
        assert "CPU:0" in _tf_compat.device_scope()
        assert tf.constant(1.0).device.endswith("CPU:0")


@pytest.mark.parametrize(
    "values",
    [
        [1000, np.array([1, 2], np.uint8)],
        [np.array([1, 2], np.uint8), 1000],
        [tf.constant([1.0, 2.0], tf.float16), 3],
    ],
    ids=str,
)
def test_args_to_matching_eager_is_select_v2s_rule(values):
    x, y = _tf_compat.args_to_matching_eager(values)
    expected = tf.raw_ops.SelectV2(condition=tf.constant([True, False]), t=values[0], e=values[1])
    assert x.dtype == y.dtype == expected.dtype
