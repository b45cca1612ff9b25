"""The GPU routing rule of masked_dense (safeops.routing): its boundaries, and the route taken in
the graph masked_dense builds when ops run on a GPU (the device decision injected: this runs on
a CPU, where the graph is only traced)."""

import numpy as np
import pytest
import tensorflow as tf

import safeops
import safeops.dense
from safeops import routing
from safeops.routing import FUSED, PROLOGUE


@pytest.mark.parametrize(
    "K,N,dtype,route",
    [
        (1024, 1024, "bfloat16", PROLOGUE),  # issue 15's compute-bound shape
        (64, 256, "bfloat16", FUSED),  # its memory-bound tabular shape
        (512, 512, "float32", PROLOGUE),  # K*N/(K+N) == THRESHOLD exactly
        (511, 512, "float32", FUSED),
        (320, 1280, "float64", PROLOGUE),  # == THRESHOLD with K != N
        (320, 1279, "float64", FUSED),
        (1280, 320, "bfloat16", PROLOGUE),  # symmetric in K and N
        (256, 1 << 20, "float32", FUSED),  # K == THRESHOLD: h < THRESHOLD for every N
        (1 << 20, 256, "float32", FUSED),
        (4096, 4096, "float16", FUSED),  # float16 stays on the fused kernel
        (None, 1024, "float32", FUSED),  # unknown when the op is created
        (1024, None, "float32", FUSED),
        (0, 1024, "float32", FUSED),
        (1024, 0, "float32", FUSED),
    ],
)
def test_rule_boundaries(K, N, dtype, route):
    assert routing.gpu_route(K, N, dtype) == route
    assert routing.gpu_route(K, N, tf.as_dtype(dtype)) == route  # a tf.DType too


def test_threshold_is_the_only_number():
    """The boundary moves with THRESHOLD (one fact, in one place)."""
    t = routing.THRESHOLD
    assert routing.gpu_route(2 * t, 2 * t, "float32") == PROLOGUE
    assert routing.gpu_route(2 * t - 1, 2 * t, "float32") == FUSED
    assert str(t) in routing.describe()


def _traced_ops(fn, *specs):
    graph = tf.function(fn).get_concrete_function(*specs).graph
    return {op.type for op in graph.get_operations()}, graph


def _step(K, N, dtype, act="relu", indicator=False, batch=None):
    """forward + gradient of masked_dense on a GPU, as traced."""
    rng = np.random.default_rng(0)
    w = tf.constant(rng.normal(size=(K, N)), dtype)
    b = tf.constant(rng.normal(size=N), dtype)
    u = tf.constant(rng.normal(size=(K, N)), dtype) if indicator else None

    def fn(x):
        with tf.GradientTape() as tape:
            tape.watch([x, w])
            y = safeops.masked_dense(x, w, b, act, renormalize=True, indicator_kernel=u)
        return y, tape.gradient(y, [x, w])

    return _traced_ops(fn, tf.TensorSpec([batch, K], dtype))


@pytest.fixture
def on_gpu(monkeypatch):
    monkeypatch.setattr(safeops.dense, "_runs_on_gpu", lambda: True)


@pytest.mark.parametrize("dtype", [tf.bfloat16, tf.float32, tf.float64])
@pytest.mark.parametrize("act", ["relu", "gelu", "linear"])
def test_compute_bound_shape_takes_the_prologue_route(on_gpu, dtype, act):
    types, _ = _step(512, 512, dtype, act)
    assert {"Safeops>MaskedDenseInput", "Safeops>MaskedDenseInputGrad", "MatMul"} <= types
    # no fused op, and no CPU epilogue op (it has no GPU kernel; relu is TensorFlow's select)
    assert not types & {"Safeops>MaskedDense", "Safeops>MaskedDenseOutput"}
    assert "Cast" not in types  # the GEMM runs in the dtype (float16 is never routed)


@pytest.mark.parametrize("K,N,dtype", [(64, 256, tf.bfloat16), (511, 512, tf.float32)])
def test_memory_bound_shape_stays_fused(on_gpu, K, N, dtype):
    types, _ = _step(K, N, dtype)
    assert {"Safeops>MaskedDense", "Safeops>MaskedDenseGrad"} <= types
    assert "Safeops>MaskedDenseInput" not in types and "MatMul" not in types


def test_float16_stays_fused(on_gpu):
    types, _ = _step(1024, 1024, tf.float16)
    assert "Safeops>MaskedDense" in types and "Safeops>MaskedDenseInput" not in types


def test_indicator_on_a_compute_bound_shape(on_gpu):
    """The prologue with its indicator half and one MatMul with [kernel; indicator_kernel]."""
    types, graph = _step(512, 512, tf.float32, indicator=True)
    prologue = [op for op in graph.get_operations() if op.type == "Safeops>MaskedDenseInput"]
    assert [op.get_attr("indicator") for op in prologue] == [True]
    assert "MatMul" in types and "Safeops>MaskedDense" not in types


def test_unknown_batch_routes_by_the_kernel(on_gpu):
    types, _ = _step(512, 512, tf.float32, batch=None)
    assert "Safeops>MaskedDenseInput" in types


def test_on_a_cpu_nothing_changes():
    """Without a GPU the CPU path is taken whatever the shape (the relu epilogue op included)."""
    types, _ = _step(512, 512, tf.float32)
    assert {"Safeops>MaskedDenseInput", "Safeops>MaskedDenseOutput"} <= types


def test_explain_paths_names_the_route(on_gpu):
    w = tf.constant(np.ones((512, 512)), tf.float32)
    report = safeops.explain_paths(lambda a: safeops.masked_dense(a, w), tf.zeros([2, 512]))
    ((_, types, path),) = report.rows
    assert types == ["Safeops>MaskedDenseInput"] and "compute-bound" in path
