"""Whether ops are being traced for XLA (`jit_compile=True`), where custom ops cannot run."""

from tensorflow.python.framework import ops as tf_ops
from tensorflow.python.ops import control_flow_util


def in_xla_context():
    """True inside `tf.function(jit_compile=True)` (Keras' `jit_compile`), at trace time."""
    return control_flow_util.GraphOrParentsInXlaContext(tf_ops.get_default_graph())
