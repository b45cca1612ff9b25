"""safeops.explain_paths: which implementation each safeops layer runs, observed, not assumed.

The dispatch rules are docs/design.md §4 ("Dispatch: which implementation runs"). This module
traces a Keras model (or a function) the way it will run here and reads the ops in the traced
graph: no per-call logging, nothing changes in the model.
"""

import keras
import tensorflow as tf

from safeops import _build_info

# What the ops of a traced graph say about masked_dense's path (docs/design.md §4).
_FUSED = "Safeops>MaskedDense"
_CPU_PROLOGUE = "Safeops>MaskedDenseInput"
_CPU_INDICATOR_EPILOGUE = "Safeops>MaskedDenseIndicatorOutput"


def explain_paths(model_or_function, *example_inputs):
    """Traces `model_or_function` as it runs on this machine and reports the implementation each
    safeops layer (each safeops op, for a function) takes.

    A Keras model: its training step (forward with training=True, gradient to the trainable
    weights) under the `jit_compile` Keras resolved for it (`model.jit_compile`: "auto" is off
    on a machine without a GPU, on with one). A
    `tf.function` is traced as declared (its own `jit_compile`), a plain function as
    `tf.function` traces it (eagerly it takes the same paths). Under XLA the step is also
    compiled and the HLO searched for custom calls.

    Returns a PathReport: `str()` gives a table; `.xla` says whether the traced function is
    XLA-compiled, `.rows` holds (name, safeops op types in the traced graph, path). The line
    "on a GPU" states the rule of docs/design.md §4, not an observation.
    """
    if not example_inputs:
        raise ValueError("explain_paths: give example inputs (a batch the model takes)")
    inputs = [tf.convert_to_tensor(x) for x in example_inputs]
    if isinstance(model_or_function, keras.Model):
        model = model_or_function
        fn = tf.function(_train_step(model), jit_compile=bool(model.jit_compile))
    else:
        model = None
        fn = model_or_function
        if not isinstance(fn, tf.types.experimental.PolymorphicFunction):
            fn = tf.function(fn)
    concrete = fn.get_concrete_function(*inputs)
    xla = concrete.function_def.attr["_XlaMustCompile"].b
    hlo = fn.experimental_get_compiler_ir(*inputs)(stage="hlo") if xla else None
    return PathReport(xla, _rows(concrete.graph, xla), hlo, model)


def _train_step(model):
    """The forward pass with training=True and the gradient to the trainable weights: the
    gradient's ops (under "gradient_tape/") are reported with the call they differentiate."""

    def step(*inputs):
        with tf.GradientTape() as tape:
            outputs = tf.nest.flatten(model(*inputs, training=True))
            loss = tf.add_n([tf.reduce_sum(tf.cast(o, tf.float32)) for o in outputs])
        return tape.gradient(loss, model.trainable_variables)

    return step


# The name scopes the wrappers open (their default `name`): a call's ops, forward and gradient
# (under "gradient_tape/"), carry its scope, whichever path it took.
_SCOPES = ("masked_dense", "safe_where", "fill_missing")


def _rows(graph, xla):
    """(call, safeops op types, path), one per wrapper call in the traced graph, named by its
    name scope (a MaskedDense layer's is `model/layer/masked_dense`)."""
    calls = {}
    for op in graph.get_operations():
        parts = op.name.removeprefix("gradient_tape/").split("/")
        for i in reversed(range(len(parts) - 1)):  # innermost: a layer may be named like one
            if _wrapper(parts[i]):
                types = calls.setdefault("/".join(parts[: i + 1]), set())
                if op.type.startswith("Safeops>"):
                    types.add(op.type)
                break
    return [(call, sorted(types), _path(types, xla)) for call, types in sorted(calls.items())]


def _wrapper(scope):
    """A scope a wrapper opened: its name, or its name made unique (`masked_dense_1`)."""
    base, _, n = scope.rpartition("_")
    return scope in _SCOPES or (base in _SCOPES and n.isdigit())


def _path(types, xla):
    if _FUSED in types:
        return "fused Safeops>MaskedDense" + (", compiled to XLA custom calls" if xla else "")
    if _CPU_INDICATOR_EPILOGUE in types:
        return "row prologue op + TensorFlow MatMul + indicator epilogue op (the CPU path)"
    if _CPU_PROLOGUE in types:
        return "row prologue op + TensorFlow MatMul (the CPU path; on a GPU, compute-bound shapes)"
    if types:
        return "safeops op"
    return "composite TensorFlow ops"


_GPU_RULE = {
    False: "safeops' CUDA kernels; masked_dense the fused Safeops>MaskedDense (with or without "
    "indicator weights) or, for compute-bound shapes, the row prologue op + TensorFlow MatMul "
    "(safeops.routing)",
    True: (
        "masked_dense the fused CUDA kernels as XLA custom calls (composite TensorFlow ops for "
        "compute-bound shapes, safeops.routing); safe_where and fill_missing composite "
        "TensorFlow ops, fused by XLA"
        if _build_info.XLA
        else "composite TensorFlow ops compiled by XLA (no safeops kernel: this build has no "
        "XLA kernels)"
    ),
}


class PathReport:
    """What explain_paths found: XLA or not, one row per safeops layer, the HLO under XLA."""

    def __init__(self, xla, rows, hlo, model):
        self.xla = xla
        self.rows = rows
        self.hlo = hlo
        self.model = model

    def __str__(self):
        gpu = _build_info.CUDA and tf.config.list_logical_devices("GPU")
        how = "XLA (jit_compile=True)" if self.xla else "no XLA (eager or tf.function)"
        lines = [f"traced on this machine: {'GPU' if gpu else 'CPU'}, {how}"]
        if self.hlo is not None:
            lines.append(f"XLA HLO: {self.hlo.count('custom-call(')} custom calls")
        if not self.rows:
            lines.append("no safeops call traced")
        width = max((len(name) for name, _, _ in self.rows), default=0)
        for name, types, path in self.rows:
            lines.append(f"{name.ljust(width)}  {path} [{', '.join(types) or 'no safeops op'}]")
        lines.append(f"on a GPU (the rule, not observed): {_GPU_RULE[self.xla]}")
        if self.model is not None and not self.xla:
            lines.append(
                "  but Keras' default jit_compile='auto' turns XLA on where a GPU is visible "
                f"and no tf.distribute strategy is active: {_GPU_RULE[True]}"
            )
        return "\n".join(lines)
