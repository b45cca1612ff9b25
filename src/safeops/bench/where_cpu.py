"""CPU benchmark of safe_where and fill_missing against TensorFlow (float32, tf.function).

For each size it times, interleaved in one process (medians of fresh random inputs, never
zeros):

- safe_where forward+backward vs tf.where forward+backward (x, y, condition of one shape);
- safe_where forward vs tf.where forward, and vs a plain elementwise copy of x (x + zero);
- the common broadcast where(c, x, 0.0), forward+backward;
- fill_missing forward+backward vs the composite tf.where(tf.math.is_nan(x), 0.0, x).

Every ratio is safeops' time over the baseline's (timing.RATIO_NOTE).
"""

import functools
import os
import sys

import numpy as np

from safeops.bench.timing import (
    RATIO_NOTE,
    cpu_description,
    format_table,
    human_count,
    interleaved_medians,
    suite_main,
    time_ratio,
)

SIZES = (10**5, 10**6, 10**7)


def _tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    return tf


def _fwd_bwd(tf, where_fn):
    """tf.function: where_fn's output and its gradients for an upstream gradient g."""

    def step(c, x, y, g):
        with tf.GradientTape() as tape:
            tape.watch([x, y])
            out = where_fn(c, x, y)
        return (out, *tape.gradient(out, [x, y], output_gradients=g))

    return tf.function(step, autograph=False)


def _fill_fwd_bwd(tf, fill_fn):
    def step(x, g):
        with tf.GradientTape() as tape:
            tape.watch(x)
            out = fill_fn(x)
        return out, tape.gradient(out, x, output_gradients=g)

    return tf.function(step, autograph=False)


def _inputs(tf, rng, n):
    """Condition (half true), x, y and the upstream gradient: normal values, never zero."""

    def values():
        return tf.constant((rng.standard_normal(n) + 2.0).astype(np.float32))

    return tf.constant(rng.random(n) < 0.5), values(), values(), values()


def run(sizes=SIZES, repeats=None, seed=None):
    """Returns one dict per (case, size): case, n, safeops_ms, baseline, baseline_ms,
    time_ratio (safeops time / baseline time; the baseline of the copy row is x + 0)."""
    tf = _tf()
    import safeops

    rng = np.random.default_rng(seed)
    scalar_zero = tf.constant(0.0)
    cases = {
        "where fwd+bwd": (_fwd_bwd(tf, safeops.safe_where), _fwd_bwd(tf, tf.where), "tf.where"),
        "where fwd": (
            tf.function(safeops.safe_where, autograph=False),
            tf.function(tf.where, autograph=False),
            "tf.where",
        ),
        "where(c, x, 0.0) fwd+bwd": (
            _fwd_bwd(tf, lambda c, x, y: safeops.safe_where(c, x, 0.0)),
            _fwd_bwd(tf, lambda c, x, y: tf.where(c, x, 0.0)),
            "tf.where",
        ),
    }
    copy = tf.function(lambda x, zero: x + zero, autograph=False)
    fill = _fill_fwd_bwd(tf, safeops.fill_missing)
    composite = _fill_fwd_bwd(tf, lambda x: tf.where(tf.math.is_nan(x), 0.0, x))
    results = []
    for n in sizes:
        reps = repeats or max(7, min(41, 2 * 10**8 // (n * 10)))
        for case, (ours, theirs, baseline) in cases.items():
            c, x, y, g = _inputs(tf, rng, n)
            args = (c, x, y, g) if "bwd" in case else (c, x, y)
            t = interleaved_medians(
                {"ours": functools.partial(ours, *args), "base": functools.partial(theirs, *args)},
                reps,
            )
            results.append(_row(case, n, t["ours"], baseline, t["base"]))
            if case == "where fwd":
                t = interleaved_medians(
                    {
                        "ours": functools.partial(ours, *args),
                        "copy": functools.partial(copy, x, scalar_zero),
                    },
                    reps,
                )
                results.append(_row("where fwd vs copy", n, t["ours"], "x + 0", t["copy"]))
        _, x, _, g = _inputs(tf, rng, n)
        x = tf.where(tf.constant(rng.random(n) < 0.1), float("nan"), x)
        t = interleaved_medians(
            {"ours": functools.partial(fill, x, g), "base": functools.partial(composite, x, g)},
            reps,
        )
        results.append(_row("fill_missing fwd+bwd", n, t["ours"], "where(is_nan)", t["base"]))
    return results


def _row(case, n, ours_s, baseline, base_s):
    return {
        "case": case,
        "n": n,
        "safeops_ms": ours_s * 1e3,
        "baseline": baseline,
        "baseline_ms": base_s * 1e3,
        "time_ratio": time_ratio(ours_s, base_s),
    }


def report(results):
    tf = _tf()
    import safeops

    rows = [
        (
            r["case"],
            human_count(r["n"]),
            f"{r['safeops_ms']:.3f}",
            r["baseline"],
            f"{r['baseline_ms']:.3f}",
            f"{r['time_ratio']:.2f}",
        )
        for r in results
    ]
    header = ("case", "n", "safeops ms", "baseline", "baseline ms", "time ratio")
    lines = [
        f"safeops {safeops.__version__}, TensorFlow {tf.__version__}, float32, "
        f"{cpu_description()}, intra-op threads: TensorFlow default",
        RATIO_NOTE,
        format_table(header, rows),
    ]
    return "\n".join(lines)


def add_arguments(parser):
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES), help="element counts")
    parser.add_argument("--repeats", type=int, help="timed rounds per case (default by size)")
    parser.add_argument("--seed", type=int, help="random seed (default: fresh)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")


def run_args(args):
    """Runs the suite for parsed arguments (see add_arguments)."""
    return run(args.sizes, args.repeats, args.seed)


def main(argv=None):
    return suite_main(sys.modules[__name__], argv)


if __name__ == "__main__":
    sys.exit(main())
