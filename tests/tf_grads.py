"""Gradient helpers of the TensorFlow tests (tests/gpu never import this module)."""

import tensorflow as tf


def value_and_grads(fn, inputs, upstream, jit_compile=None):
    """[fn(*inputs), d/d each input] as NumPy arrays, for the given upstream gradient.
    jit_compile None runs eagerly; False in tf.function; True under XLA. Non-tensor inputs
    (e.g. a bool condition) are passed through and not differentiated."""

    def run(upstream, *tensors):
        with tf.GradientTape() as tape:
            tape.watch(tensors)
            out = fn(*tensors)
        return (out, *tape.gradient(out, tensors, output_gradients=upstream))

    if jit_compile is not None:
        run = tf.function(run, jit_compile=jit_compile, autograph=False)
    return [t.numpy() for t in run(tf.constant(upstream), *(tf.constant(a) for a in inputs))]


def upstream_second_order(fn, inputs, upstream, combine):
    """d/d(upstream) of combine(inputs, grads), grads = the gradients of fn(*inputs) for that
    upstream: differentiates a fused gradient op with respect to its incoming gradient."""
    inputs = [tf.constant(a) for a in inputs]
    upstream = tf.constant(upstream)
    with tf.GradientTape() as outer:
        outer.watch(upstream)
        with tf.GradientTape() as inner:
            inner.watch(inputs)
            out = fn(*inputs)
        z = combine(inputs, inner.gradient(out, inputs, output_gradients=upstream))
    return outer.gradient(z, upstream).numpy()
