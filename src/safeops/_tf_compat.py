"""What safeops needs from TensorFlow that has no public API, in one place.

Each function uses private TensorFlow modules or methods; tests/test_tf_compat.py checks every
one against a public reference, so that a TensorFlow upgrade that moves them fails there, with
the name of what moved, rather than deep inside a wrapper.
"""

import tensorflow as tf
from tensorflow.python.eager import context, execute
from tensorflow.python.ops import control_flow_util


def in_xla_context():
    """True while tracing inside `tf.function(jit_compile=True)` (Keras' `jit_compile`)."""
    return control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph())


class _DeviceProbe:
    """Stands for an op in Graph._apply_device_functions, which sets on it the device a new op
    would get (TensorFlow's device functions take any object with a `device` attribute)."""

    device = ""

    def _set_device_from_string(self, device):
        self.device = device


def device_scope():
    """The device that `tf.device` scopes give an op created now ("" where none applies),
    eagerly and at trace time, without creating an op."""
    if tf.executing_eagerly():
        return context.context().device_name or ""
    probe = _DeviceProbe()
    tf.compat.v1.get_default_graph()._apply_device_functions(probe)
    return probe.device


def args_to_matching_eager(values):
    """`values` converted to tensors of one dtype by the rule of an eager op's inputs (a tensor
    fixes the dtype, otherwise the first value that converts does): what SelectV2 applies."""
    _, converted = execute.args_to_matching_eager(values, context.context(), [])
    return converted
