"""safeops.fill_missing: replace missing entries with a gradient that is exactly zero there.

Which implementation runs (docs/design.md §4): the ops Safeops>FillMissing / FillMissingGrad
(CPU or CUDA kernels) eagerly and in tf.function; inside jit_compile=True (XLA) composite
TensorFlow ops with the same values and exact zeros, which XLA fuses with their neighbours.
"""

import tensorflow as tf

from safeops import _checks
from safeops._loader import ops
from safeops._tf_compat import in_xla_context


def fill_missing(x, value=0.0, missing="nan", name=None):
    """Replaces missing entries of `x` by `value`; their gradient is an exact zero.

    `x * mask` does not work for this (NaN * 0 = NaN) and neither does a where after the fact
    (the gradient still flows into the NaN). fill_missing computes the mask inline and selects::

        x = tf.constant([1.0, float("nan"), 3.0])
        safeops.fill_missing(x)              # [1, 0, 3]; d/dx = [1, 0, 1]

    Args:
      x: float16, bfloat16, float32 or float64 tensor.
      value: scalar or tensor broadcastable to x's shape (e.g. per-feature means of shape
        [K] for x of shape [B, K]). Its gradient is the sum of the upstream gradient over the
        entries it filled, so a learned imputation value trains.
      missing: "nan" (NaN entries) or "nonfinite" (NaN and +-Inf).
      name: name scope.

    Raises:
      TypeError: x not of a floating dtype, or value of another dtype.
      ValueError: unknown `missing`, or value that does not broadcast to x's shape.
    """
    _checks.check_missing(missing, "fill_missing")
    with tf.name_scope(name or "fill_missing"):
        x = tf.convert_to_tensor(x)
        if x.dtype not in _checks.KERNEL_DTYPES:
            raise TypeError(
                f"fill_missing: x must be float16, bfloat16, float32 or float64, got {x.dtype.name}"
            )
        x, value = _checks.convert_pair(x, value, "fill_missing", "x", "value")
        try:
            merged = tf.broadcast_static_shape(x.shape, value.shape)
        except ValueError:
            merged = None
        if merged is None or (merged.is_fully_defined() and merged != x.shape):
            raise ValueError(
                f"fill_missing: value of shape {value.shape} does not broadcast to the shape of x "
                f"{x.shape}"
            )
        if in_xla_context():
            return tf.where(_checks.missing_mask(x, missing), value, x)
        return ops.safeops_fill_missing(x, value, missing=missing)


@tf.RegisterGradient("Safeops>FillMissing")
def _fill_missing_grad(op, grad):
    x, value = op.inputs
    gx, gvalue = ops.safeops_fill_missing_grad(x, value, grad, missing=op.get_attr("missing"))
    return [gx, gvalue]


@tf.RegisterGradient("Safeops>FillMissingGrad")
def _fill_missing_grad_grad(op, ggx, ggvalue):
    # grad_x = m ? 0 : g and grad_value = sum(m ? g : 0): both are selects of g.
    x, value, _ = op.inputs
    mask = _checks.missing_mask(x, op.get_attr("missing").decode())
    return [None, None, tf.where(mask, tf.broadcast_to(ggvalue, tf.shape(x)), ggx)]
