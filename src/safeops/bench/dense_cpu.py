"""CPU benchmark of masked_dense: a training step (forward + backward to kernel and bias,
relu) at the tabular shapes of docs/design.md, float32, each candidate inside tf.function:

- plain      relu(x @ W + b) on clean data (TensorFlow's own, fused by grappler/oneDNN);
- composite  the usual workaround on NaN data: is_nan -> where -> matmul -> bias -> relu;
- safeops    safeops.masked_dense(x, W, b, activation="relu") on NaN data (16 % missing);
- indicator  the same with indicator weights U (indicator_kernel=U; gradient to U too).

Every ratio is safeops' time over the baseline's (timing.RATIO_NOTE); the indicator column is
the indicator option's time over safeops' without it.
"""

import os
import sys

import numpy as np

from safeops.bench.timing import (
    add_shape_arguments,
    cpu_report,
    interleaved_medians,
    suite_main,
    time_ratio,
)

SHAPES = ((4096, 2, 64), (4096, 64, 256), (2048, 256, 256), (1024, 1024, 1024))


def _candidates(tf, safeops):
    def plain(x, w, b):
        return tf.nn.relu(tf.matmul(x, w) + b)

    def composite(x, w, b):
        xf = tf.where(tf.math.is_nan(x), tf.zeros_like(x), x)
        return tf.nn.relu(tf.nn.bias_add(tf.matmul(xf, w), b))

    def masked(x, w, b):
        return safeops.masked_dense(x, w, b, activation="relu")

    def indicator(x, w, b, u):
        return safeops.masked_dense(x, w, b, activation="relu", indicator_kernel=u)

    def step(forward):
        @tf.function
        def train_step(x, *weights):
            with tf.GradientTape() as tape:
                tape.watch(weights)
                loss = tf.reduce_sum(forward(x, *weights))
            return tape.gradient(loss, weights)

        return train_step

    return {
        "plain": step(plain),
        "composite": step(composite),
        "safeops": step(masked),
        "indicator": step(indicator),
    }


def run(shapes=SHAPES, repeats=20, seed=None):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    import safeops

    rng = np.random.default_rng(seed)
    steps = _candidates(tf, safeops)
    results = []
    for rows, k, n in shapes:
        clean = rng.normal(size=(rows, k)).astype("float32")
        nan = clean.copy()
        nan[rng.random(nan.shape) < 0.16] = np.nan
        w = tf.constant((rng.normal(size=(k, n)) / np.sqrt(k)).astype("float32"))
        b = tf.constant(rng.normal(size=n).astype("float32"))
        u = tf.constant((rng.normal(size=(k, n)) / np.sqrt(k)).astype("float32"))
        args = {
            "plain": (tf.constant(clean), w, b),
            "composite": (tf.constant(nan), w, b),
            "safeops": (tf.constant(nan), w, b),
            "indicator": (tf.constant(nan), w, b, u),
        }
        calls = {
            name: (lambda fn=fn, a=args[name]: [g.numpy() for g in fn(*a)])
            for name, fn in steps.items()
        }
        med = interleaved_medians(calls, repeats)
        results.append(
            {
                "shape": [rows, k, n],
                "ms": {name: 1e3 * t for name, t in med.items()},
                "vs_plain": time_ratio(med["safeops"], med["plain"]),
                "vs_composite": time_ratio(med["safeops"], med["composite"]),
                "indicator_vs_safeops": time_ratio(med["indicator"], med["safeops"]),
            }
        )
    return results


def report(results):
    rows = [
        (
            "x".join(map(str, r["shape"])),
            f"{r['ms']['plain']:.3f}",
            f"{r['ms']['composite']:.3f}",
            f"{r['ms']['safeops']:.3f}",
            f"{r['vs_plain']:.2f}",
            f"{r['vs_composite']:.2f}",
            f"{r['ms']['indicator']:.3f}",
            f"{r['indicator_vs_safeops']:.2f}",
        )
        for r in results
    ]
    header = (
        "B x K x N",
        "plain ms",
        "composite ms",
        "safeops ms",
        "time ratio vs plain",
        "vs composite",
        "indicator ms",
        "indicator vs safeops",
    )
    return cpu_report("masked_dense training step (relu, float32)", header, rows)


def add_arguments(parser):
    add_shape_arguments(parser)


def run_args(args):
    """Runs the suite for parsed arguments (see add_arguments)."""
    return run(repeats=args.repeats, seed=args.seed)


def main(argv=None):
    return suite_main(sys.modules[__name__], argv)
