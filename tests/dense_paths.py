"""masked_dense through each of its TensorFlow paths, for the tests (NumPy in, NumPy out).

Paths: "eager" and "graph" are what masked_dense runs on a CPU (row prologue op + TensorFlow's
MatMul + bias/activation), eagerly and inside tf.function, where grappler fuses MatMul, BiasAdd
and the activation into oneDNN's _FusedMatMul; "fused" is the Safeops>MaskedDense op's CPU
kernel (what a GPU-traced graph runs on a CPU) with its registered gradient; "xla" is
masked_dense under tf.function(jit_compile=True), where it emits composite ops on a CPU;
"xla_custom_call" the same with the fused op emitted instead, which XLA compiles to custom calls
(what it emits under XLA on a GPU; docs/design.md §4); "gpu_route" is the graph a GPU builds
for a compute-bound shape (safeops.routing: the prologue op, then TensorFlow's MatMul, BiasAdd
and activation), built here with the device decision and the route injected and run on the CPU
kernels, which compute what the CUDA kernels do (tests/gpu checks those).
"""

import contextlib
from unittest import mock

import numpy as np
import pytest
import tensorflow as tf

import safeops
from safeops import _build_info, dense
from safeops._loader import ops

PATHS = ("eager", "graph", "fused", "xla", "xla_custom_call", "gpu_route")


def quantize(a, dtype):
    """The values a tensor of `dtype` holds, back in float64 (so the reference sees them)."""
    return tf.cast(tf.constant(a, dtype), tf.float64).numpy()


def tensor(a, dtype):
    """`a` as a tensor of `dtype`: NumPy arrays of that dtype keep their bits (NaN payloads,
    signalling NaNs); anything else is converted."""
    if isinstance(a, np.ndarray) and a.dtype == dtype.as_numpy_dtype:
        return tf.constant(a)
    return tf.constant(a, dtype)


def run(path, x, w, b, act, renormalize, missing, upstream, dtype, raw=False):
    """[y, dx, dw, db] of one path (db None without a bias), as float64 NumPy, or as arrays of
    `dtype` (bit patterns kept) when raw."""
    xt, wt, gt = tensor(x, dtype), tensor(w, dtype), tensor(upstream, dtype)
    bt = None if b is None else tensor(b, dtype)

    def forward(xt, wt, bt):
        if path == "fused":
            bias = bt if bt is not None else tf.zeros([wt.shape[1]], dtype)
            y, _ = ops.safeops_masked_dense(
                xt, wt, bias, [], activation=act, renormalize=renormalize, missing=missing
            )
            return y
        return safeops.masked_dense(
            xt, wt, bt, activation=act, renormalize=renormalize, missing=missing
        )

    def step(xt, wt, bt):
        watched = [xt, wt] + ([bt] if bt is not None else [])
        with tf.GradientTape() as tape:
            tape.watch(watched)
            y = forward(xt, wt, bt)
        grads = tape.gradient(y, watched, output_gradients=gt)
        return [y, *grads]

    if path == "xla_custom_call" and not _build_info.XLA:
        pytest.skip("this build has no XLA kernels (python -m safeops info)")
    if path != "eager":
        step = tf.function(step, jit_compile=path.startswith("xla"))
    route = gpu_route() if path == "gpu_route" else contextlib.nullcontext()
    with route, dense.xla_custom_call_on("CPU", path == "xla_custom_call"):  # traced here
        outs = step(xt, wt, bt)
    out = [t.numpy() if raw else t.numpy().astype(np.float64) for t in outs]
    if b is None:
        out.append(None)
    return out


def gpu_route():
    """A context in which masked_dense builds what a GPU builds for a compute-bound shape."""
    return mock.patch.multiple(
        safeops.dense,
        _runs_on_gpu=lambda: True,
        _gpu_route=lambda kernel: safeops.routing.PROLOGUE,
    )
