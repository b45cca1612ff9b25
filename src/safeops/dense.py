"""safeops.masked_dense: a dense layer that treats NaN inputs as missing, forward and backward.

The problem it fixes (docs/design.md §1): a NaN feature fed to Dense poisons the weight gradient
`x^T @ g` (NaN * 0 = NaN) even when the outputs are patched afterwards, and one step later
every weight is NaN. masked_dense replaces missing inputs by 0 inside the matmul's operand
load, with an exact zero gradient at those entries::

    x = tf.constant([[1.0, float("nan")], [0.5, 2.0]])
    y = safeops.masked_dense(x, kernel, bias, activation="relu")   # finite, and so is d/dW

NaN policy: only a missing input is masked. A NaN in the kernel or the bias, or one made by the
arithmetic, propagates to the output on every path and for every activation (relu included),
and a NaN output has a NaN gradient: a diverged unit is never hidden (docs/design.md).

Execution paths, chosen when the op is created (same values, same zero-gradient guarantee):
  * GPU (a GPU is visible and no CPU device scope is active): the fused op Safeops>MaskedDense,
    one CUDA kernel forward and one fused backward for memory-bound shapes, with or without an
    indicator_kernel (its m @ U term and dU = m^T @ dz are computed inside the same kernels,
    docs/design.md). Compute-bound shapes (the rule of safeops.routing, on K, N and the dtype)
    run the row prologue op's CUDA kernel, then TensorFlow's MatMul (cuBLAS), bias add and
    activation; the values differ only by the rounding of xs = s * xf.
  * CPU: the row prologue Safeops>MaskedDenseInput (missing mask, count and scale in one pass)
    composed with TensorFlow's own MatMul, which oneDNN runs faster than a custom op's
    contraction could (1.2-1.33x). The bias and activation follow as TensorFlow's BiasAdd and
    activation, fused into oneDNN's _FusedMatMul by grappler, except relu: oneDNN's relu maps NaN
    to 0, so relu runs in the epilogue op Safeops>MaskedDenseOutput, whose one-pass backward also
    sums dbias (benchmarks/RESULTS.md). float16 computes in float32 (see _composite). With an
    indicator_kernel, the epilogue op Safeops>MaskedDenseIndicatorOutput adds its rows where x is
    missing (and the bias, and relu) after the MatMul over K, for K up to
    CPU_INDICATOR_EPILOGUE_MAX_K; above it the prologue also writes the indicators (rows
    [xs, m], 2K wide) and the one MatMul takes [kernel; indicator_kernel].
  * XLA (`jit_compile=True`), which Keras' default jit_compile="auto" turns on where a GPU is
    visible (and no tf.distribute strategy is active): on a GPU the fused op, which XLA compiles
    to one custom call per direction over the same CUDA kernels (csrc/tf/xla); on a CPU, and
    with an indicator_kernel, composite TensorFlow ops (where, reduce_sum, concat, matmul).
    XLA_CUSTOM_CALL below says why. docs/design.md §4 has the table, safeops.explain_paths
    shows the path for a model.
"""

import contextlib

import keras
import tensorflow as tf

from safeops import _activations, _build_info, _checks, _tf_compat, routing
from safeops._loader import ops
from safeops._tf_compat import in_xla_context

_ALIASES = {"swish": "silu"}


def _gelu_exact(z):
    # tf.nn.gelu(approximate=False) rounds 1/sqrt(2) to float32 (errors of 5e-9 in float64).
    return 0.5 * z * (1.0 + tf.math.erf(z * tf.constant(0.7071067811865476, z.dtype)))


@tf.custom_gradient
def _relu(z):
    """relu as csrc/kernels/activations.h defines it, in TensorFlow ops (for XLA, which runs no
    custom op): a NaN z stays NaN; the backward passes g where y > 0, an exact 0 where y <= 0
    (even where g is NaN) and y's NaN where y is NaN."""
    zero = tf.zeros_like(z)
    y = tf.where(z <= 0, zero, z)

    def grad(g):
        return tf.where(y > 0, g, tf.where(y <= 0, zero, y))

    return y, grad


# The fused activations (_activations.NAMES) in TensorFlow ops: the XLA path, and the CPU path
# but for relu.
_TF_ACTIVATIONS = {
    "linear": None,
    "relu": _relu,
    "gelu": _gelu_exact,
    "sigmoid": tf.math.sigmoid,
    "tanh": tf.math.tanh,
    "silu": tf.nn.silu,
}


def _known_callables():
    known = {
        keras.activations.linear: "linear",
        keras.activations.relu: "relu",
        keras.activations.gelu: "gelu",  # exact (erf) by default
        keras.activations.sigmoid: "sigmoid",
        keras.activations.tanh: "tanh",
        keras.activations.silu: "silu",
        tf.nn.relu: "relu",
        tf.nn.gelu: "gelu",  # approximate=False by default
        tf.math.sigmoid: "sigmoid",
        tf.math.tanh: "tanh",
        tf.nn.silu: "silu",
    }
    if hasattr(keras.activations, "swish"):
        known[keras.activations.swish] = "silu"
    return known


_KNOWN_CALLABLES = _known_callables()


def resolve_activation(activation):
    """(fused activation name, callable applied after the op or None)."""
    if activation is None:
        return "linear", None
    if isinstance(activation, str):
        name = _ALIASES.get(activation.lower(), activation.lower())
        if name in _activations.NAMES:
            return name, None
        try:
            return "linear", keras.activations.get(activation)
        except ValueError as e:
            raise ValueError(f"masked_dense: unknown activation {activation!r}") from e
    if callable(activation):
        name = _KNOWN_CALLABLES.get(activation)
        return (name, None) if name else ("linear", activation)
    raise TypeError(f"masked_dense: activation must be a name or a callable, got {activation!r}")


def masked_dense(
    x,
    kernel,
    bias=None,
    activation=None,
    renormalize=False,
    missing="nan",
    indicator_kernel=None,
    name=None,
):
    """A dense layer over inputs whose missing entries (NaN) are treated as absent.

    With m = missing(x), xf = m ? 0 : x, n_obs = K - count(m, axis=-1) and
    s = renormalize ? (n_obs > 0 ? K / n_obs : 0) : 1 per row (partial-convolution scaling)::

        y = act(s * (xf @ kernel) + m @ indicator_kernel + bias)

    (the m term only with an indicator_kernel: the model of concat([xf, m]) @ [kernel;
    indicator_kernel], so the layer learns from which features are missing). A row with every
    feature missing gives act(bias + sum of indicator_kernel's rows). Backward:
    dz = g * act'(z), dbias = sum over rows of dz, dkernel = xf^T @ (s * dz),
    dindicator_kernel = m^T @ dz, dx = m ? 0 : s * (dz @ kernel^T): no gradient is ever NaN
    because of a missing entry.

    Only missing inputs are masked: a NaN in kernel or bias (or one made by the arithmetic, such
    as inf - inf) gives a NaN output for every activation, relu included, and relu's gradient at
    a NaN output is NaN (where y <= 0 it is an exact 0, even for a NaN upstream gradient).

    Args:
      x: [..., K] float16, bfloat16, float32 or float64 tensor (rank >= 2), or a
        tf.SparseTensor, which is densified first: its implicit entries are observed zeros,
        its stored NaN values are missing. (The dense batch is [..., K]: for very wide sparse
        inputs, a plain Dense on the SparseTensor with NaN-free values costs less memory.)
      kernel: [K, N] tensor of x's dtype.
      bias: optional [N] tensor of x's dtype.
      activation: None/"linear", "relu", "gelu" (exact), "sigmoid", "tanh", "silu"/"swish"
        (fused, also as the Keras or tf.nn functions), or any other Keras activation name or
        callable, applied after the op.
      renormalize: scale each row by K / n_obs (0 for a row with nothing observed).
      missing: "nan" or "nonfinite" (NaN and +-Inf).
      indicator_kernel: optional [K, N] tensor of x's dtype, the weights of the missing
        indicators (on every path: on a GPU the fused CUDA kernel takes it for memory-bound
        shapes, the row prologue route for compute-bound ones).
      name: name scope.

    Raises:
      TypeError: non-floating dtypes or dtypes that differ between x, kernel and bias.
      ValueError: ranks or dimensions that do not fit, unknown activation or missing policy.
      tf.errors.InvalidArgumentError: the same problems found only at run time.
    """
    _checks.check_missing(missing, "masked_dense")
    act, post = resolve_activation(activation)
    with tf.name_scope(name or "masked_dense"):
        x, kernel, bias = _validated(x, kernel, bias)
        u = None if indicator_kernel is None else _validated_indicator(indicator_kernel, kernel)
        if in_xla_context():
            if _xla_custom_call(kernel):
                y = _fused(x, kernel, bias, act, renormalize, missing, u)
            else:
                y = _composite(x, kernel, bias, act, renormalize, missing, xla=True, u=u)
        elif _no_outputs(kernel):  # N == 0: an indicator_kernel [K, 0] adds nothing
            y = _fused(x, kernel, bias, act, renormalize, missing)
        elif _runs_on_gpu():
            if _gpu_route(kernel) == routing.PROLOGUE:  # compute-bound: cuBLAS for the GEMM
                y = _composite(x, kernel, bias, act, renormalize, missing, xla=False, u=u, gpu=True)
            else:
                y = _fused(x, kernel, bias, act, renormalize, missing, u)
        else:
            y = _composite(x, kernel, bias, act, renormalize, missing, xla=False, u=u)
        return post(y) if post is not None else y


def _validated(x, kernel, bias):
    if isinstance(x, tf.SparseTensor):
        # The entries a SparseTensor does not store are zeros that were observed, not missing
        # values: densify, and only stored NaN (nonfinite) values are missing.
        x = tf.sparse.to_dense(x)
    x = tf.convert_to_tensor(x)
    if x.dtype not in _checks.KERNEL_DTYPES:
        raise TypeError(
            f"masked_dense: x must be float16, bfloat16, float32 or float64, got {x.dtype.name}"
        )
    kernel = _same_dtype(kernel, x.dtype, "kernel")
    if bias is not None:
        bias = _same_dtype(bias, x.dtype, "bias")
    if x.shape.rank is not None and x.shape.rank < 2:
        raise ValueError(f"masked_dense: x must have rank >= 2, got shape {x.shape}")
    if kernel.shape.rank is not None and kernel.shape.rank != 2:
        raise ValueError(f"masked_dense: kernel must have rank 2, got shape {kernel.shape}")
    k_x = x.shape[-1] if x.shape.rank else None
    k_w, n = (kernel.shape[0], kernel.shape[1]) if kernel.shape.rank == 2 else (None, None)
    if k_x is not None and k_w is not None and k_x != k_w:
        raise ValueError(
            f"masked_dense: x of shape {x.shape} has {k_x} features but kernel of shape "
            f"{kernel.shape} expects {k_w}"
        )
    if bias is not None:
        if bias.shape.rank is not None and bias.shape.rank != 1:
            raise ValueError(f"masked_dense: bias must have rank 1, got shape {bias.shape}")
        if bias.shape.rank == 1 and None not in (bias.shape[0], n) and bias.shape[0] != n:
            raise ValueError(
                f"masked_dense: bias of shape {bias.shape} does not match kernel {kernel.shape}"
            )
    return x, kernel, bias


def _validated_indicator(indicator_kernel, kernel):
    u = _same_dtype(indicator_kernel, kernel.dtype, "indicator_kernel")
    if u.shape.rank is not None and kernel.shape.rank is not None:
        if not u.shape.is_compatible_with(kernel.shape):
            raise ValueError(
                f"masked_dense: indicator_kernel must have the kernel's shape {kernel.shape}, "
                f"got {u.shape}"
            )
    return u


def _same_dtype(value, dtype, what):
    if hasattr(value, "dtype") and tf.as_dtype(value.dtype) != dtype:
        raise TypeError(
            f"masked_dense: {what} has dtype {tf.as_dtype(value.dtype).name} but x has {dtype.name}"
        )
    return tf.convert_to_tensor(value, dtype=dtype)


def _runs_on_gpu():
    """Whether ops created now run on a GPU: an explicit device scope decides, otherwise a
    visible GPU does (TensorFlow's default placement)."""
    if not _build_info.CUDA or not tf.config.list_logical_devices("GPU"):
        return False
    return "CPU" not in _tf_compat.device_scope().upper()


def _gpu_route(kernel):
    """safeops.routing's choice for this kernel's static shape and dtype."""
    K, N = (kernel.shape[0], kernel.shape[1]) if kernel.shape.rank == 2 else (None, None)
    return routing.gpu_route(K, N, kernel.dtype)


# Under XLA, whether masked_dense emits the fused op, which XLA compiles to one custom call per
# direction (csrc/tf/xla), rather than composite TensorFlow ops, per device XLA compiles for.
# Decided by `python -m safeops bench --suite xla` (benchmarks/RESULTS.md): on a CPU XLA's own
# dot on the composite ran 3.2-8.3x faster than the custom call, which runs the fused op's CPU
# layer (its Eigen contraction is the slow part: the fused op without XLA took 197 ms per step
# at 1024^3 where the CPU path took 32 ms). On a GPU the custom calls are the fused kernels the
# op runs without XLA, for the shapes it runs them (not measured against XLA's composite:
# TensorFlow has no GPU here).
XLA_CUSTOM_CALL = {"CPU": False, "GPU": True}

# On a CPU (no XLA), indicator weights with K up to this run in the epilogue op
# Safeops>MaskedDenseIndicatorOutput (a MatMul over K, then the rows of U added where x is
# missing); larger K, or a K unknown when the op is created, run one MatMul over [xs, m] with
# [kernel; U]. The epilogue's additions grow with the missing fraction, the doubled GEMM with K.
# Training step with U over the step without it, both designs in one process (relu, float32,
# benchmarks/RESULTS.md, 2026-12-02): at 16 % missing 1.15 / 1.22 / 1.34x against 1.27 / 1.34 /
# 1.58x at K = 64 / 128 / 256, at 30 % 1.23-1.49x against 1.27-1.59x; at 50 % the epilogue
# is 2-13 % slower there (1.33-1.76x against 1.30-1.62x), and at K = 1024 1.3-1.6x slower
# at any fraction.
CPU_INDICATOR_EPILOGUE_MAX_K = 256


@contextlib.contextmanager
def xla_custom_call_on(device, enabled=True):
    """Within the block, masked_dense traced under XLA for `device` ("CPU" or "GPU") emits the
    custom call if `enabled`, the composite if not: for the benchmark that sets XLA_CUSTOM_CALL
    and for the tests of both implementations."""
    saved = XLA_CUSTOM_CALL[device]
    XLA_CUSTOM_CALL[device] = enabled
    try:
        yield
    finally:
        XLA_CUSTOM_CALL[device] = saved


def _xla_custom_call(kernel):
    """Whether masked_dense, traced now under XLA, emits the fused op (XLA_CUSTOM_CALL). On a
    GPU only for the shapes the fused kernel keeps without XLA (safeops.routing): for the
    compute-bound ones XLA's composite runs its dot on cuBLAS, as the route does."""
    if not _build_info.XLA:
        return False
    if _runs_on_gpu():
        return XLA_CUSTOM_CALL["GPU"] and _gpu_route(kernel) == routing.FUSED
    # A GPU this build has no kernels for: its XLA has no target for the call.
    return XLA_CUSTOM_CALL["CPU"] and not tf.config.list_logical_devices("GPU")


def _no_outputs(kernel):
    """A kernel with no columns (N == 0, known when the op is created). TensorFlow 2.21 aborts
    the process on MatMul + BiasAdd with an empty kernel inside tf.function on CPU (oneDNN's
    _FusedMatMul cannot create its primitive); the fused op's CPU kernel handles it."""
    return kernel.shape.rank == 2 and kernel.shape[1] == 0


def _fused(x, kernel, bias, act, renormalize, missing, u=None):
    if bias is None:
        bias = tf.zeros(tf.shape(kernel)[1:], x.dtype)
    y, _ = ops.safeops_masked_dense(
        x,
        kernel,
        bias,
        [] if u is None else [u],  # the op's `indicators` attribute: 0 or 1
        activation=act,
        renormalize=renormalize,
        missing=missing,
    )
    return y


def _composite(x, kernel, bias, act, renormalize, missing, xla, u=None, gpu=False):
    """The prologue (TensorFlow ops when xla, else the Safeops>MaskedDenseInput op), one MatMul,
    bias and activation. With indicator weights u, either the indicator epilogue op after the
    MatMul (the CPU up to CPU_INDICATOR_EPILOGUE_MAX_K) or prologue rows [xs, m] and a MatMul
    with [kernel; u]: s * (xf @ kernel) + m @ u in one GEMM, whose gradient gives dkernel and
    du (benchmarks/RESULTS.md has what the designs measured). `gpu`: the
    route of compute-bound shapes on a GPU (safeops.routing), the prologue op's CUDA kernel then
    TensorFlow's activations as under XLA (the relu epilogue op is the CPU's answer to oneDNN)."""
    if x.dtype == tf.float16:
        # float16's range (65504) is too narrow for the composite's intermediates: xs = s * xf
        # (s reaches K) and dz (gelu' and silu' exceed 1) could overflow where y and the
        # gradients are representable. The step runs in float32, the accumulation type, with one
        # rounding of y (and of each gradient) to float16. On CPU this also runs faster than
        # TensorFlow's float16 MatMul (benchmarks/RESULTS.md). bfloat16 has float32's range.
        def f32(t):
            return None if t is None else tf.cast(t, tf.float32)

        y = _composite(f32(x), f32(kernel), f32(bias), act, renormalize, missing, xla, f32(u), gpu)
        return tf.cast(y, x.dtype)
    # With indicator weights on the CPU, the epilogue op adds m @ u after a MatMul over K up to
    # CPU_INDICATOR_EPILOGUE_MAX_K; above it, on the GPU route and under XLA the prologue writes
    # [xs, m] for one MatMul with [kernel; u].
    epilogue_u = u is not None and not (xla or gpu) and _cpu_indicator_epilogue(kernel)
    indicator = u is not None and not epilogue_u
    # Run-time shape checks (not under XLA, where shapes are static): they run before the
    # matmul or concat could fail with its own message.
    checks = [] if in_xla_context() else _features_match(x, kernel, u)
    with tf.control_dependencies(checks):
        if xla:
            xs = _masked_input_xla(x, renormalize, missing, indicator)
        else:
            xs = ops.safeops_masked_dense_input(
                x, renormalize=renormalize, missing=missing, indicator=indicator
            )
        if indicator:
            kernel = tf.concat([kernel, u], 0)
    if x.shape.rank == 2:
        z = tf.matmul(xs, kernel)
    else:  # one GEMM over the flattened leading dimensions
        z = tf.matmul(tf.reshape(xs, [-1, tf.shape(kernel)[0]]), kernel)
        z = tf.reshape(z, tf.concat([tf.shape(x)[:-1], tf.shape(kernel)[1:]], 0))
        if x.shape.rank is not None:
            z.set_shape(x.shape[:-1].concatenate(kernel.shape[1:]))
    if epilogue_u:
        return _indicator_epilogue(z, x, u, bias, act, missing)
    if act == "relu" and not (xla or gpu):
        # oneDNN's fused relu maps NaN to 0; the epilogue op keeps it (and its one-pass backward
        # also sums dbias). See benchmarks/RESULTS.md for the measurement behind this choice.
        if bias is None:
            bias = tf.zeros(tf.shape(kernel)[1:], x.dtype)
        y, _ = ops.safeops_masked_dense_output(z, bias, activation="relu")
        return y
    if bias is not None:
        # On a GPU, BiasAdd's gradient (BiasAddGrad) sums with atomics unless op determinism is
        # enabled; the gradient of a broadcast add is a reduce_sum, deterministic there
        # (docs/design.md §5).
        z = z + bias if gpu else tf.nn.bias_add(z, bias)
    f = _TF_ACTIVATIONS[act]
    return f(z) if f is not None else z


def _cpu_indicator_epilogue(kernel):
    K = kernel.shape[0] if kernel.shape.rank == 2 else None
    return K is not None and K <= CPU_INDICATOR_EPILOGUE_MAX_K


def _indicator_epilogue(z, x, u, bias, act, missing):
    """act(z + m @ u + bias) on the CPU: the epilogue op Safeops>MaskedDenseIndicatorOutput adds
    the rows of u where x is missing, the bias and, for linear and relu, the activation in one
    pass over z; its gradient op gives dz, dbias and du = m^T @ dz in one pass. The other
    activations follow as TensorFlow's, which keeps their second derivatives (the epilogue's
    gradient op has one for linear and relu only). docs/design.md §3.2 says where this beats a
    MatMul over [xs, m] with [kernel; u] (CPU_INDICATOR_EPILOGUE_MAX_K)."""
    if bias is None:
        bias = tf.zeros(tf.shape(u)[1:], x.dtype)
    fused = act if act in ("linear", "relu") else "linear"
    y, _ = ops.safeops_masked_dense_indicator_output(
        z, x, u, bias, activation=fused, missing=missing
    )
    if fused == act:
        return y
    return _TF_ACTIVATIONS[act](y)


def _features_match(x, kernel, u=None):
    """Run-time checks of K (and of the indicator_kernel's shape) where the static shapes could
    not tell (tf.function with None)."""
    checks = []
    if not (x.shape.rank and kernel.shape.rank == 2 and None not in (x.shape[-1], kernel.shape[0])):
        checks.append(
            tf.debugging.assert_equal(
                tf.shape(x)[-1],
                tf.shape(kernel)[0],
                message="masked_dense: the last dimension of x must equal the first of kernel",
            )
        )
    if u is not None and not (u.shape.is_fully_defined() and kernel.shape.is_fully_defined()):
        checks.append(
            tf.debugging.assert_equal(
                tf.shape(u),
                tf.shape(kernel),
                message="masked_dense: indicator_kernel must have the kernel's shape",
            )
        )
    return [c for c in checks if c is not None]


def _masked_input_xla(x, renormalize, missing, indicator=False):
    m = _checks.missing_mask(x, missing)
    xs = tf.where(m, tf.zeros_like(x), x)  # a select: the gradient at m is an exact zero
    if renormalize:
        # Counted and scaled in the accumulation type (bfloat16 holds integers only to 256).
        acc = tf.float64 if x.dtype == tf.float64 else tf.float32
        k = tf.cast(tf.shape(x)[-1], acc)
        n_obs = k - tf.reduce_sum(tf.cast(m, acc), axis=-1, keepdims=True)
        s = tf.where(n_obs > 0, k / tf.maximum(n_obs, 1), tf.zeros_like(n_obs))
        xs = tf.cast(tf.cast(xs, acc) * s, x.dtype)
    if indicator:  # the cast of a bool has no gradient: x's is the select's alone
        xs = tf.concat([xs, tf.cast(m, x.dtype)], -1)
    return xs


def _activation_attr(op):
    act = op.get_attr("activation")
    return act.decode() if isinstance(act, bytes) else act


@tf.RegisterGradient("Safeops>MaskedDenseInput")
def _masked_input_grad(op, grad):
    (x,) = op.inputs
    return ops.safeops_masked_dense_input_grad(
        x,
        grad,
        renormalize=op.get_attr("renormalize"),
        missing=op.get_attr("missing"),
        indicator=op.get_attr("indicator"),
    )


@tf.RegisterGradient("Safeops>MaskedDense")
def _masked_dense_grad(op, grad, _grad_pre_activation):
    # Inputs x, kernel, bias and (indicators = 1) indicator_kernel, which the gradient does not
    # read: dU = m^T @ dz. A graph written before the attribute existed gets its default, 0.
    x, kernel = op.inputs[0], op.inputs[1]
    y, z = op.outputs
    act = _activation_attr(op)
    saved = _activations.saved_for_backward(act, y, z)
    dx, dkernel, dbias, dindicator = ops.safeops_masked_dense_grad(
        x,
        kernel,
        saved,
        grad,
        activation=act,
        renormalize=op.get_attr("renormalize"),
        missing=op.get_attr("missing"),
        indicators=op.get_attr("indicators"),
    )
    return [dx, dkernel, dbias, *dindicator]


@tf.RegisterGradient("Safeops>MaskedDenseOutput")
def _masked_output_grad(op, grad, _grad_pre_activation):
    act = _activation_attr(op)
    y, z = op.outputs
    saved = _activations.saved_for_backward(act, y, z)
    return ops.safeops_masked_dense_output_grad(saved, grad, activation=act)


@tf.RegisterGradient("Safeops>MaskedDenseOutputGrad")
def _masked_output_grad_grad(op, grad_dz, grad_db):
    # dz = g * act'(saved) and db = sum_rows(dz) are linear in g: their derivative with respect
    # to g is the same map applied to grad_dz + grad_db. With respect to saved it is
    # g * act''(saved), 0 (almost everywhere) for linear and relu, the only activations the CPU
    # path runs through this op.
    act = _activation_attr(op)
    if act not in ("linear", "relu"):
        raise LookupError(f"masked_dense: no second derivative of the {act} epilogue op")
    saved, g = op.inputs
    upstream = tf.zeros_like(g) if grad_dz is None else grad_dz
    if grad_db is not None:
        upstream = upstream + grad_db  # [N], broadcast over the rows
    dg, _ = ops.safeops_masked_dense_output_grad(saved, upstream, activation=act)
    return [None, dg]


@tf.RegisterGradient("Safeops>MaskedDenseIndicatorOutput")
def _indicator_output_grad(op, grad, _grad_pre_activation):
    # Inputs matmul, x, indicator_kernel, bias. m = missing(x) is constant in x almost
    # everywhere: no gradient to x (the prologue's gradient gives dx).
    x = op.inputs[1]
    act = _activation_attr(op)
    y, z = op.outputs
    saved = _activations.saved_for_backward(act, y, z)
    dz, dbias, du = ops.safeops_masked_dense_indicator_output_grad(
        x, saved, grad, activation=act, missing=op.get_attr("missing")
    )
    return [dz, None, du, dbias]


@tf.RegisterGradient("Safeops>MaskedDenseIndicatorOutputGrad")
def _indicator_output_grad_grad(op, grad_dz, grad_db, grad_du):
    # dz = g * act'(saved), db = sum_rows(dz) and du = m^T @ dz are linear in g: the derivative
    # with respect to g is act'(saved) * (grad_dz + grad_db + m @ grad_du), the forward epilogue
    # (linear) then the epilogue's backward. With respect to saved it is g * act''(saved), 0
    # (almost everywhere) for linear and relu, the only activations the CPU path fuses here.
    act = _activation_attr(op)
    if act not in ("linear", "relu"):
        raise LookupError(f"masked_dense: no second derivative of the {act} indicator epilogue")
    x, saved, g = op.inputs
    n = tf.shape(g)[-1:]
    upstream = tf.zeros_like(g) if grad_dz is None else grad_dz
    if grad_du is None:
        grad_du = tf.zeros(tf.concat([tf.shape(x)[-1:], n], 0), g.dtype)
    if grad_db is None:
        grad_db = tf.zeros(n, g.dtype)
    upstream, _ = ops.safeops_masked_dense_indicator_output(
        upstream, x, grad_du, grad_db, activation="linear", missing=op.get_attr("missing")
    )
    dg, _ = ops.safeops_masked_dense_output_grad(saved, upstream, activation=act)
    return [None, None, dg]


@tf.RegisterGradient("Safeops>MaskedDenseInputGrad")
def _masked_input_grad_grad(op, grad):
    # grad_x = m ? 0 : s * grad is linear in grad: its derivative is the same masked scaling
    # (and zero for the indicator half of grad, which grad_x does not read).
    x, _ = op.inputs
    ggrad = ops.safeops_masked_dense_input_grad(
        x, grad, renormalize=op.get_attr("renormalize"), missing=op.get_attr("missing")
    )
    if op.get_attr("indicator"):
        ggrad = tf.concat([ggrad, tf.zeros_like(ggrad)], -1)
    return [None, ggrad]
