"""Which implementation runs under each setting that runs here (docs/design.md §4), read from
what TensorFlow really traced and compiled: the op types of the traced graphs (Keras fit: the
function graphs `tf.summary.trace_on(graph=True)` records while fit runs, which hold the train
step Keras built), and under XLA the HLO of the compiled function."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import safeops

CPU_PATH = {"Safeops>MaskedDenseInput", "Safeops>MaskedDenseOutput"}
CPU_GRADS = {"Safeops>MaskedDenseOutputGrad"}  # x is not differentiated: no InputGrad


def _x():
    x = np.random.default_rng(0).normal(size=(8, 4)).astype(np.float32)
    x[0, 1] = np.nan
    return x


def _step(x, w, b):
    with tf.GradientTape() as tape:
        tape.watch([w, b])
        y = safeops.masked_dense(x, w, b, activation="relu")
    return y, tape.gradient(y, [w, b])


def _safeops_types(ops):
    return {op.type for op in ops if op.type.startswith("Safeops>")}


def _args():
    return tf.constant(_x()), tf.ones([4, 3]), tf.zeros([3])


def test_eager_runs_the_cpu_ops():
    seen = []

    # Eager ops leave no graph: TensorFlow's op callbacks see each op as it executes.
    from tensorflow.python.framework import op_callbacks

    def record(op_type, *args, **kwargs):
        seen.append(op_type.decode() if isinstance(op_type, bytes) else op_type)

    op_callbacks.add_op_callback(record)
    try:
        _step(*_args())
    finally:
        op_callbacks.remove_op_callback(record)
    assert CPU_PATH | CPU_GRADS <= set(seen)


def test_tf_function_traces_the_cpu_ops():
    graph = tf.function(_step).get_concrete_function(*_args()).graph
    assert _safeops_types(graph.get_operations()) == CPU_PATH | CPU_GRADS


def test_jit_compile_traces_no_safeops_op_and_compiles_no_custom_call():
    fn = tf.function(_step, jit_compile=True)
    concrete = fn.get_concrete_function(*_args())
    assert concrete.function_def.attr["_XlaMustCompile"].b
    types = {op.type for op in concrete.graph.get_operations()}
    assert not _safeops_types(concrete.graph.get_operations())
    assert "SelectV2" in types  # the composite's masking select
    hlo = fn.experimental_get_compiler_ir(*_args())(stage="hlo")
    assert "custom-call" not in hlo and " select(" in hlo


def _model(jit_compile):
    model = keras.Sequential(
        [
            keras.Input((4,)),
            safeops.layers.MaskedDense(3, activation="relu"),
            keras.layers.Dense(1),
        ]
    )
    model.compile("sgd", "mse", jit_compile=jit_compile)
    return model


def _recorded_functions(run, tmp_path):
    """(XLA-compiled, safeops op types, all op types) of each function that ran in `run()`,
    from the graphs tf.summary records while it runs."""
    writer = tf.summary.create_file_writer(str(tmp_path))
    tf.summary.trace_on(graph=True)
    run()
    with writer.as_default():
        tf.summary.trace_export("run", step=0)
    writer.flush()
    found = []
    for f in tmp_path.iterdir():
        for event in tf.compat.v1.train.summary_iterator(str(f)):
            for value in event.summary.value:
                meta = tf.compat.v1.RunMetadata.FromString(value.tensor.string_val[0])
                for fg in meta.function_graphs:
                    graph = fg.pre_optimization_graph
                    found.append(("(called)", False, {n.op for n in graph.node}))
                    for fn in graph.library.function:
                        types = {n.op for n in fn.node_def}
                        xla = fn.attr["_XlaMustCompile"].b
                        found.append((fn.signature.name, xla, types))
    return found


@pytest.mark.parametrize("jit_compile", ["auto", True, False])
@pytest.mark.parametrize("what", ["fit", "predict"])
def test_keras(jit_compile, what, tmp_path):
    model = _model(jit_compile)
    # "auto" without a GPU visible resolves to no XLA (Keras' rule); this test runs without one.
    assert not tf.config.list_physical_devices("GPU")
    xla = jit_compile is True
    assert model.jit_compile == xla
    x, y = _x(), np.zeros((8, 1), np.float32)
    if what == "fit":
        run = lambda: model.fit(x, y, batch_size=8, epochs=1, verbose=0)  # noqa: E731
    else:
        run = lambda: model.predict(x, batch_size=8, verbose=0)  # noqa: E731
    # The step: the function holding the model's MatMul (the called function or one it calls).
    steps = [f for f in _recorded_functions(run, tmp_path) if "MatMul" in f[2]]
    assert steps, "Keras' step function was not recorded"
    for _, compiled, types in steps:
        assert compiled == xla
        expected = CPU_PATH | (CPU_GRADS if what == "fit" else set())
        assert {t for t in types if t.startswith("Safeops>")} == (set() if xla else expected)
        if xla:
            assert "SelectV2" in types


@pytest.mark.parametrize("jit_compile", ["auto", True, False])
def test_explain_paths_reports_what_was_traced(jit_compile):
    report = safeops.explain_paths(_model(jit_compile), _x())
    xla = jit_compile is True
    assert report.xla == xla
    ((call, types, path),) = report.rows
    assert call.endswith("/masked_dense")
    if xla:
        assert types == [] and path == "composite TensorFlow ops"
        assert "custom-call" not in report.hlo
    else:
        assert set(types) == CPU_PATH | CPU_GRADS and "CPU path" in path
    text = str(report)
    assert "on a GPU (the rule, not observed)" in text and call in text


def test_explain_paths_names_the_indicator_epilogue():
    model = keras.Sequential(
        [keras.Input((4,)), safeops.layers.MaskedDense(3, activation="relu", indicator=True)]
    )
    report = safeops.explain_paths(model, _x())
    ((_, types, path),) = report.rows
    assert "Safeops>MaskedDenseIndicatorOutput" in types and "indicator epilogue" in path
    assert "with or without indicator weights" in str(report)


def test_explain_paths_of_functions():
    x = _x()
    fn = tf.function(lambda a: safeops.fill_missing(a), jit_compile=True)
    jitted = safeops.explain_paths(fn, x)
    assert jitted.xla and jitted.rows == [("fill_missing", [], "composite TensorFlow ops")]
    plain = safeops.explain_paths(lambda a: safeops.safe_where(a > 0, a, 0.0), x)
    assert not plain.xla and plain.rows == [("safe_where", ["Safeops>SafeWhere"], "safeops op")]
