"""CPU benchmark of masked_dense's two designs for indicator weights U (docs/design.md §3.2): the
training step of the dense suite (forward + backward to kernel, bias and U, relu, float32) with

- epilogue  TensorFlow's MatMul over K, then the op Safeops>MaskedDenseIndicatorOutput adding
            the rows of U where x is missing (what a CPU runs up to
            dense.CPU_INDICATOR_EPILOGUE_MAX_K features);
- matmul    the prologue writing [xs, m] and one MatMul with [kernel; U] (what it runs above);

each over the same step without U, at several missing fractions, all in one process: what
decides dense.CPU_INDICATOR_EPILOGUE_MAX_K.
"""

import contextlib
import os
import sys

import numpy as np

from safeops.bench.timing import (
    add_shape_arguments,
    cpu_report,
    interleaved_medians,
    time_ratio,
)

SHAPES = ((4096, 64, 256), (4096, 128, 256), (2048, 256, 256), (1024, 1024, 1024))
FRACTIONS = (0.16, 0.3, 0.5)
DESIGNS = ("epilogue", "matmul")
# The op that tells the designs apart in a traced step.
_EPILOGUE_OP = "Safeops>MaskedDenseIndicatorOutput"


@contextlib.contextmanager
def _design(dense, name):
    """masked_dense builds `name` for any K while inside (the limit is read when the op is
    created)."""
    saved = dense.CPU_INDICATOR_EPILOGUE_MAX_K
    dense.CPU_INDICATOR_EPILOGUE_MAX_K = sys.maxsize if name == "epilogue" else -1
    try:
        yield
    finally:
        dense.CPU_INDICATOR_EPILOGUE_MAX_K = saved


def _train_step(tf, safeops, with_u):
    @tf.function
    def step(x, *weights):
        with tf.GradientTape() as tape:
            tape.watch(weights)
            u = weights[2] if with_u else None
            y = safeops.masked_dense(x, *weights[:2], activation="relu", indicator_kernel=u)
            loss = tf.reduce_sum(y)
        return tape.gradient(loss, weights)

    return step


def run(shapes=SHAPES, fractions=FRACTIONS, repeats=20, seed=None):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    import safeops
    from safeops import dense

    rng = np.random.default_rng(seed)
    results = []
    for rows, k, n in shapes:
        for fraction in fractions:
            x = rng.normal(size=(rows, k)).astype("float32")
            x[rng.random(x.shape) < fraction] = np.nan
            x = tf.constant(x)
            w = tf.constant((rng.normal(size=(k, n)) / np.sqrt(k)).astype("float32"))
            b = tf.constant(rng.normal(size=n).astype("float32"))
            u = tf.constant((rng.normal(size=(k, n)) / np.sqrt(k)).astype("float32"))
            steps = {"none": _train_step(tf, safeops, False).get_concrete_function(x, w, b)}
            for name in DESIGNS:
                with _design(dense, name):
                    steps[name] = _train_step(tf, safeops, True).get_concrete_function(x, w, b, u)
                ops = {op.type for op in steps[name].graph.get_operations()}
                if (_EPILOGUE_OP in ops) != (name == "epilogue"):
                    raise RuntimeError(f"the {name} step was not built as asked ({sorted(ops)})")
            args = {"none": (x, w, b), "epilogue": (x, w, b, u), "matmul": (x, w, b, u)}
            calls = {
                name: (lambda fn=fn, a=args[name]: [g.numpy() for g in fn(*a)])
                for name, fn in steps.items()
            }
            med = interleaved_medians(calls, repeats)
            results.append(
                {
                    "shape": [rows, k, n],
                    "missing": fraction,
                    "ms": {name: 1e3 * t for name, t in med.items()},
                    **{f"{name}_vs_none": time_ratio(med[name], med["none"]) for name in DESIGNS},
                    "runs": "epilogue" if k <= dense.CPU_INDICATOR_EPILOGUE_MAX_K else "matmul",
                }
            )
    return results


def report(results):
    rows = [
        (
            "x".join(map(str, r["shape"])),
            f"{100 * r['missing']:.0f} %",
            f"{r['ms']['none']:.3f}",
            f"{r['epilogue_vs_none']:.2f}",
            f"{r['matmul_vs_none']:.2f}",
            r["runs"],
        )
        for r in results
    ]
    header = ("B x K x N", "missing", "no U ms", "epilogue vs no U", "matmul vs no U", "runs")
    return cpu_report("masked_dense indicator weights on the CPU (relu, float32)", header, rows)


# --repeats, --seed, --json; benchmarks/bench_indicator_cpu.py runs suite_main on this module.
add_arguments = add_shape_arguments


def run_args(args):
    """Runs the suite for parsed arguments (see add_arguments)."""
    return run(repeats=args.repeats, seed=args.seed)
