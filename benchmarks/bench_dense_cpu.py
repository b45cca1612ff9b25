"""CPU training step of a dense layer (forward + backward to kernel and bias, relu), as ratios.

Candidates, each inside tf.function, on the same fresh random data:
  plain      relu(x @ W + b) on clean data (TensorFlow's own, fused by grappler/oneDNN)
  composite  the usual workaround on NaN data: is_nan -> where -> matmul -> bias -> relu
  safeops    safeops.masked_dense(x, W, b, "relu") on NaN data (~16 % missing)
Timings are interleaved round-robin (median of repeats) so that machine noise hits every
candidate alike. Goals (DESIGN.md): safeops <= 1.10x plain, and never slower than composite.

    python benchmarks/bench_dense_cpu.py [--repeats 30] [--json out.json]
"""

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import safeops  # noqa: E402

SHAPES = ((4096, 2, 64), (4096, 64, 256), (2048, 256, 256), (1024, 1024, 1024))


def _step(forward):
    @tf.function
    def step(x, w, b):
        with tf.GradientTape() as tape:
            tape.watch([w, b])
            loss = tf.reduce_sum(forward(x, w, b))
        return tape.gradient(loss, [w, b])

    return step


def plain(x, w, b):
    return tf.nn.relu(tf.matmul(x, w) + b)


def composite(x, w, b):
    xf = tf.where(tf.math.is_nan(x), tf.zeros_like(x), x)
    return tf.nn.relu(tf.nn.bias_add(tf.matmul(xf, w), b))


def masked(x, w, b):
    return safeops.masked_dense(x, w, b, activation="relu")


def measure(shape, repeats, seed=0):
    rows, k, n = shape
    rng = np.random.default_rng(seed)
    clean = rng.normal(size=(rows, k)).astype("float32")
    nan = clean.copy()
    nan[rng.random(nan.shape) < 0.16] = np.nan
    w = tf.constant((rng.normal(size=(k, n)) / np.sqrt(k)).astype("float32"))
    b = tf.constant(rng.normal(size=n).astype("float32"))
    candidates = {
        "plain": (_step(plain), tf.constant(clean)),
        "composite": (_step(composite), tf.constant(nan)),
        "safeops": (_step(masked), tf.constant(nan)),
    }
    for fn, x in candidates.values():  # trace and warm up
        for _ in range(3):
            [g.numpy() for g in fn(x, w, b)]
    times = {name: [] for name in candidates}
    for _ in range(repeats):
        for name, (fn, x) in candidates.items():
            start = time.perf_counter()
            [g.numpy() for g in fn(x, w, b)]
            times[name].append(time.perf_counter() - start)
    med = {name: float(np.median(t)) for name, t in times.items()}
    return {
        "shape": list(shape),
        "ms": {name: 1e3 * t for name, t in med.items()},
        "safeops_vs_plain": med["safeops"] / med["plain"],
        "safeops_vs_composite": med["safeops"] / med["composite"],
    }


def run(repeats=30, shapes=SHAPES):
    results = []
    print(
        f"{'B,K,N':>16} | {'plain ms':>9} {'composite':>10} {'safeops':>9} | "
        f"{'vs plain':>8} {'vs composite':>12}"
    )
    for shape in shapes:
        r = measure(shape, repeats)
        ms = r["ms"]
        print(
            f"{str(tuple(shape)):>16} | {ms['plain']:>9.3f} {ms['composite']:>10.3f} "
            f"{ms['safeops']:>9.3f} | {r['safeops_vs_plain']:>7.2f}x "
            f"{r['safeops_vs_composite']:>11.2f}x"
        )
        results.append(r)
    return results


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--json", help="write the results here")
    args = p.parse_args()
    results = run(args.repeats)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
