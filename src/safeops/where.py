"""safeops.safe_where: tf.where whose gradient is an exact zero in the branch not taken.

The problem it fixes (docs/design.md)::

    x = tf.constant([0.0, -1.0, 4.0])
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = tf.where(x > 0, tf.math.log(x), 0.0)   # forward is fine: [0, 0, 1.386]
    tape.gradient(y, x)                             # [nan, nan, 0.25]

tf.where's own gradient is an exact zero at 0 and -1, but log's backward multiplies that zero
by 1/x = inf there (and NaN flows through log(-1)): 0 * inf = NaN. The fix is the "double
where": replace the inputs of log by a safe value where the branch is not taken, before log
runs. safe_where automates it::

    y = safeops.safe_where(x > 0, tf.math.log, 0.0, x)   # gradient [0, 0, 0.25]

Which implementation runs (docs/design.md §4): the ops Safeops>SafeWhere / SafeWhereGrad (CPU
or CUDA kernels) for float16, bfloat16, float32 and float64, eagerly and in tf.function; inside
jit_compile=True (XLA, Keras' default where a GPU is visible) composite TensorFlow ops with the
same values and exact zeros, which XLA fuses with their neighbours; tf.where for other dtypes.
safeops.explain_paths shows it for a model or function.
"""

import tensorflow as tf

from safeops import _checks, _where_args
from safeops._loader import ops
from safeops._tf_compat import in_xla_context


def safe_where(condition, x=None, y=None, *inputs, fill=1.0, name=None):
    """Selects `x` where `condition` is true and `y` elsewhere, with NaN-safe gradients.

    Tensor form, a drop-in for `tf.where(condition, x, y)`: numpy broadcasting of all three,
    any dtype tf.where accepts (float16, bfloat16, float32 and float64 run safeops' kernels,
    other dtypes tf.where). The gradient is `condition ? g : 0` for x and `condition ? 0 : g`
    for y, summed to their shapes, with zeros that are exact even where g is NaN or Inf.

    Callable form: when `x` and/or `y` is callable, it is called on `inputs` in which every
    position not selected for that branch is replaced by `fill`, through a guard whose gradient
    is an exact zero there. So `safe_where(x > 0, tf.sqrt, 0.0, x)` has finite values and an
    exact-zero gradient wherever `x <= 0`, and variables used inside a branch get finite
    gradients as long as the branch is finite at `fill`.

    `safe_where(condition)` alone behaves like `tf.where(condition)` (indices of true entries).

    Arguments convert exactly as tf.where converts them (see safeops/_where_args.py): a NumPy
    condition of any dtype becomes bool, a tensor operand fixes the dtype of the other, and
    otherwise the first operand does.

    Args:
      condition: bool tensor, or a value tf.where converts to bool (NumPy arrays of any dtype,
        Python bools and lists of them).
      x, y: tensors (or Python/NumPy values) broadcastable with `condition`, or callables.
      *inputs: the tensors passed to callable branches.
      fill: the value the guard puts at unselected positions (must keep the branch finite).
      name: name scope.

    Raises:
      The exception class tf.where raises for the same arguments, with a message of its own:
      a non-bool condition tensor or x and y of different dtypes raise an error that is both
      a tf.errors.InvalidArgumentError (as tf.where's eager kernel) and a TypeError (as
      tf.where while tracing); shapes that do not broadcast one that is both an
      InvalidArgumentError and a ValueError.
      ValueError: only one of x and y given, callables without inputs, or inputs without
        callables.
    """
    if x is None and y is None:
        if inputs:
            raise ValueError("safe_where: inputs given without x and y")
        return tf.where(condition, name=name)
    if x is None or y is None:
        raise ValueError("safe_where: x and y must both be given, or both be None")
    with tf.name_scope(name or "safe_where"):
        if callable(x) or callable(y):
            if not inputs:
                raise ValueError("safe_where: callable branches need the tensors to call them on")
            condition = _where_args.convert_condition(condition, "safe_where")
            inputs = [tf.convert_to_tensor(t) for t in inputs]
            if callable(x):
                x = x(*[_guard(condition, t, fill, taken=True) for t in inputs])
            if callable(y):
                y = y(*[_guard(condition, t, fill, taken=False) for t in inputs])
        elif inputs:
            raise ValueError("safe_where: extra inputs given but neither x nor y is callable")
        tensors, tf_where_result = _where_args.convert_operands(condition, x, y, "safe_where")
        if tensors is None:
            return tf_where_result
        return _where(*tensors)


def _guard(condition, t, fill, taken):
    """t where the branch is taken, `fill` elsewhere; gradient exactly 0 at the fill."""
    if not (t.dtype.is_floating or t.dtype.is_complex or t.dtype.is_integer):
        return t
    fill = tf.cast(fill, t.dtype)
    _where_args.check_broadcast(condition, t, fill, "safe_where")
    return _where(condition, t, fill) if taken else _where(condition, fill, t)


def _where(condition, x, y):
    if x.dtype not in _checks.KERNEL_DTYPES or in_xla_context():
        # tf.where's own gradient already selects exact zeros: same values, same guarantee.
        return tf.where(condition, x, y)
    return ops.safeops_safe_where(condition, x, y)


@tf.RegisterGradient("Safeops>SafeWhere")
def _safe_where_grad(op, grad):
    condition, x, y = op.inputs
    gx, gy = ops.safeops_safe_where_grad(condition, x, y, grad)
    return [None, gx, gy]


@tf.RegisterGradient("Safeops>SafeWhereGrad")
def _safe_where_grad_grad(op, ggx, ggy):
    # grad_x and grad_y are selects of grad (then sums over broadcast dims), so their
    # derivative with respect to grad is the select of the incoming gradients, broadcast back.
    condition, x, y, _ = op.inputs
    return [None, None, None, ops.safeops_safe_where(condition, ggx, ggy)]
