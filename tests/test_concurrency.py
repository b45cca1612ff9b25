"""The ops called from 8 Python threads at once (eager and tf.function) give the same results as
serial calls: no global mutable state in kernels or wrappers."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import tensorflow as tf

import safeops

THREADS = 8


def workload(seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(64, 12))
    x[rng.random(x.shape) < 0.2] = np.nan
    w = rng.normal(size=(12, 7))
    b = rng.normal(size=7)
    return tf.constant(x), tf.constant(w), tf.constant(b)


def step(x, w, b):
    with tf.GradientTape() as tape:
        tape.watch([x, w, b])
        filled = safeops.fill_missing(x, 0.25)
        a = safeops.safe_where(filled > 0, tf.math.sqrt, -1.0, filled)
        h = safeops.masked_dense(x, w, b, activation="silu", renormalize=True)
        loss = tf.reduce_sum(a) + tf.reduce_sum(h * h)
    return [loss, *tape.gradient(loss, [x, w, b])]


def run_concurrently(fn, inputs):
    with ThreadPoolExecutor(THREADS) as pool:
        return list(pool.map(lambda args: [t.numpy() for t in fn(*args)], inputs))


def check(fn):
    inputs = [workload(seed) for seed in range(THREADS * 3)]
    serial = [[t.numpy() for t in fn(*args)] for args in inputs]
    for _ in range(2):
        concurrent = run_concurrently(fn, inputs)
        for s, c in zip(serial, concurrent, strict=True):
            for a, b in zip(s, c, strict=True):
                np.testing.assert_array_equal(a, b)


def test_threads_eager():
    check(step)


def test_threads_tf_function():
    check(tf.function(step))
