"""CPU benchmark of masked_dense under XLA (`jit_compile=True`): the training step of the dense
suite (forward + backward to kernel and bias, relu, float32, 16 % NaN) with each of the two
implementations masked_dense can emit under XLA (docs/design.md §4):

- composite    TensorFlow ops (where, matmul, bias, relu) that XLA fuses and compiles;
- custom call  the fused op, one XLA custom call per direction running safeops' CPU layer
               (csrc/tf/xla; dense.XLA_CUSTOM_CALL chooses it per device);
- no XLA       for reference, the same step without jit_compile (safeops' CPU path).

The ratio is the custom call's time over the composite's (timing.RATIO_NOTE): what decides
dense.XLA_CUSTOM_CALL["CPU"].
"""

import os

import numpy as np

from safeops.bench.dense_cpu import SHAPES
from safeops.bench.timing import (
    cpu_report,
    interleaved_medians,
    time_ratio,
)


def _train_step(tf, safeops, jit_compile):
    @tf.function(jit_compile=jit_compile)
    def step(x, w, b):
        with tf.GradientTape() as tape:
            tape.watch((w, b))
            loss = tf.reduce_sum(safeops.masked_dense(x, w, b, activation="relu"))
        return tape.gradient(loss, (w, b))

    return step


def _hlo_custom_calls(step, args):
    return step.experimental_get_compiler_ir(*args)(stage="hlo").count("custom-call(")


def run(shapes=SHAPES, repeats=20, seed=None):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    import safeops
    from safeops import _build_info, dense

    if not _build_info.XLA:
        raise RuntimeError("this safeops build has no XLA kernels (python -m safeops info)")
    rng = np.random.default_rng(seed)
    results = []
    for rows, k, n in shapes:
        x = rng.normal(size=(rows, k)).astype("float32")
        x[rng.random(x.shape) < 0.16] = np.nan
        args = (
            tf.constant(x),
            tf.constant((rng.normal(size=(k, n)) / np.sqrt(k)).astype("float32")),
            tf.constant(rng.normal(size=n).astype("float32")),
        )
        steps = {}
        for name, custom_call in (("composite", False), ("custom call", True)):
            with dense.xla_custom_call_on("CPU", custom_call):
                step = _train_step(tf, safeops, jit_compile=True)
                step.get_concrete_function(*args)  # traced now, with this choice
                calls = _hlo_custom_calls(step, args)
            if (calls > 0) != custom_call:
                raise RuntimeError(f"{name}: the compiled step has {calls} custom calls")
            steps[name] = step
        steps["no XLA"] = _train_step(tf, safeops, jit_compile=False)
        timed = {
            name: (lambda fn=fn, args=args: [g.numpy() for g in fn(*args)])
            for name, fn in steps.items()
        }
        med = interleaved_medians(timed, repeats)
        results.append(
            {
                "shape": [rows, k, n],
                "ms": {name: 1e3 * t for name, t in med.items()},
                "custom_call_vs_composite": time_ratio(med["custom call"], med["composite"]),
            }
        )
    return results


def report(results):
    rows = [
        (
            "x".join(map(str, r["shape"])),
            f"{r['ms']['composite']:.3f}",
            f"{r['ms']['custom call']:.3f}",
            f"{r['custom_call_vs_composite']:.2f}",
            f"{r['ms']['no XLA']:.3f}",
        )
        for r in results
    ]
    header = ("B x K x N", "composite ms", "custom call ms", "custom call / composite", "no XLA ms")
    return cpu_report("masked_dense training step under XLA (relu, float32)", header, rows)
