"""masked_dense's XLA kernels (csrc/tf/xla; docs/design.md §4): under jit_compile the fused op
compiles to one custom call per direction, which runs the op's own kernel. Here on the host
("Host" targets, the fused op's CPU layer); the CUDA targets are the same adapter over the CUDA
launchers, which no test here can run. The values against the float64 reference are checked
with every other path (dense_paths.PATHS, path "xla_custom_call")."""

import json
from unittest import mock

import keras
import numpy as np
import pytest
import tensorflow as tf
from dense_paths import run
from nan_bits import bits_of
from select_cases import DTYPES
from test_saved_model import run_python

import safeops
from safeops import _build_info, dense, routing

pytestmark = pytest.mark.skipif(
    not _build_info.XLA, reason="this build has no XLA kernels (python -m safeops info)"
)

TARGETS = ('custom_call_target="safeops_masked_dense_forward"',
           'custom_call_target="safeops_masked_dense_backward"')  # fmt: skip


def _case(rng, rows=37, k=21, n=13):
    x = rng.normal(size=(rows, k))
    x[rng.random(x.shape) < 0.25] = np.nan
    x[3] = np.nan  # a row with nothing observed
    return x, rng.normal(size=(k, n)) / np.sqrt(k), rng.normal(size=n), rng.normal(size=(rows, n))


@pytest.mark.parametrize("act", ["linear", "relu", "gelu", "tanh"])
@pytest.mark.parametrize("renormalize", [False, True])
@pytest.mark.parametrize("dtype", [tf.as_dtype(d.name) for d in DTYPES], ids=str)
def test_custom_call_runs_the_fused_ops_kernel(act, renormalize, dtype):
    """y, dx, dW and db under XLA are the fused op's, bit for bit: one kernel, two adapters."""
    x, w, b, g = _case(np.random.default_rng(0))
    fused = run("fused", x, w, b, act, renormalize, "nan", g, dtype, raw=True)
    xla = run("xla_custom_call", x, w, b, act, renormalize, "nan", g, dtype, raw=True)
    for name, a, c in zip(("y", "dx", "dw", "db"), fused, xla, strict=True):
        np.testing.assert_array_equal(bits_of(a), bits_of(c), err_msg=name)


@pytest.mark.parametrize("renormalize", [False, True])
@pytest.mark.parametrize("dtype", [tf.as_dtype(d.name) for d in DTYPES], ids=str)
def test_custom_call_with_indicator_weights_runs_the_fused_ops_kernel(renormalize, dtype):
    x, w, b, g = _case(np.random.default_rng(5))
    u = np.random.default_rng(6).normal(size=w.shape)
    args = [tf.constant(a, dtype) for a in (x, w, u, b)]

    def step(x, w, u, b):
        with tf.GradientTape() as tape:
            tape.watch([x, w, u, b])
            y = safeops.masked_dense(
                x, w, b, activation="silu", renormalize=renormalize, indicator_kernel=u
            )
        return [y, *tape.gradient(y, [x, w, u, b], output_gradients=tf.constant(g, dtype))]

    with mock.patch.object(dense, "_runs_on_gpu", lambda: True):  # the fused op, on its CPU kernel
        fused = step(*args)
    jit = tf.function(step, jit_compile=True)
    with dense.xla_custom_call_on("CPU"):
        hlo = jit.experimental_get_compiler_ir(*args)(stage="hlo")
        xla = jit(*args)
    assert all(hlo.count(target) == 1 for target in TARGETS) and " dot(" not in hlo
    for name, a, c in zip(("y", "dx", "dw", "du", "db"), fused, xla, strict=True):
        np.testing.assert_array_equal(bits_of(a.numpy()), bits_of(c.numpy()), err_msg=name)


def _train_step(x, w, b):
    with tf.GradientTape() as tape:
        tape.watch([x, w, b])
        loss = tf.reduce_sum(safeops.masked_dense(x, w, b, activation="gelu") ** 2)
    return tape.gradient(loss, [x, w, b])


def _args(rank=2):
    x, w, b, _ = _case(np.random.default_rng(1))
    x = x.reshape((1,) * (rank - 2) + x.shape)
    return tf.constant(x, tf.float32), tf.constant(w, tf.float32), tf.constant(b, tf.float32)


@pytest.mark.parametrize("rank", [2, 3])
def test_hlo_holds_the_custom_calls_and_no_composite(rank):
    fn = tf.function(_train_step, jit_compile=True)
    with dense.xla_custom_call_on("CPU"):
        hlo = fn.experimental_get_compiler_ir(*_args(rank))(stage="hlo")
    for target in TARGETS:
        assert hlo.count(target) == 1, target
    assert " dot(" not in hlo  # the composite's matmul is gone, forward and backward


def test_cpu_default_is_the_composite():
    """On a CPU XLA's own dot on the composite measured faster (benchmarks/RESULTS.md)."""
    assert dense.XLA_CUSTOM_CALL == {"CPU": False, "GPU": True}
    hlo = tf.function(_train_step, jit_compile=True).experimental_get_compiler_ir(*_args())(
        stage="hlo"
    )
    assert "custom-call" not in hlo and " dot(" in hlo


@pytest.mark.parametrize("route", [routing.FUSED, routing.PROLOGUE])
def test_on_a_gpu_xla_gets_the_custom_calls_where_the_fused_kernel_runs(route):
    """Traced (not run) as for a GPU: the custom calls for the shapes the fused kernel keeps
    without XLA, the composite (XLA's dot on cuBLAS) for the compute-bound ones."""
    with mock.patch.multiple(dense, _runs_on_gpu=lambda: True, _gpu_route=lambda kernel: route):
        graph = tf.function(_train_step, jit_compile=True).get_concrete_function(*_args()).graph
    types = {op.type for op in graph.get_operations() if op.type.startswith("Safeops>")}
    fused = {"Safeops>MaskedDense", "Safeops>MaskedDenseGrad"}
    assert types == (fused if route == routing.FUSED else set())


def test_keras_fit_with_jit_compile_trains_through_the_custom_calls():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(256, 6)).astype(np.float32)
    y = (x @ rng.normal(size=(6, 1))).astype(np.float32)
    x[rng.random(x.shape) < 0.3] = np.nan
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((6,)),
            safeops.layers.MaskedDense(16, activation="relu"),
            keras.layers.Dense(1),
        ]
    )
    model.compile(keras.optimizers.Adam(0.01), "mse", jit_compile=True)
    with dense.xla_custom_call_on("CPU"):
        report = safeops.explain_paths(model, x[:8])
        history = model.fit(x, y, batch_size=32, epochs=5, verbose=0)
    ((_, types, path),) = report.rows
    assert types == ["Safeops>MaskedDense", "Safeops>MaskedDenseGrad"]
    assert path == "fused Safeops>MaskedDense, compiled to XLA custom calls"
    assert report.xla and all(target in report.hlo for target in TARGETS)
    assert all(np.isfinite(w).all() for w in model.get_weights())
    losses = history.history["loss"]
    assert np.isfinite(losses).all() and losses[-1] < 0.5 * losses[0]


class JitModule(tf.Module):
    def __init__(self):
        super().__init__()
        _, w, b, _ = _case(np.random.default_rng(3), k=4, n=3)
        self.w, self.b = tf.Variable(w), tf.Variable(b)

    @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float64)], jit_compile=True)
    def __call__(self, x):
        with tf.GradientTape() as tape:
            y = safeops.masked_dense(x, self.w, self.b, activation="silu", renormalize=True)
            loss = tf.reduce_sum(y**2)
        return [y, *tape.gradient(loss, [self.w, self.b])]


def test_saved_model_of_a_jit_compiled_function_reloads(tmp_path):
    module = JitModule()
    x, *_ = _case(np.random.default_rng(4), rows=6, k=4, n=3)
    with dense.xla_custom_call_on("CPU"):
        concrete = module.__call__.get_concrete_function()
        expected = [t.numpy() for t in module(x)]
        tf.saved_model.save(module, str(tmp_path / "model"))
    assert "Safeops>MaskedDense" in {op.type for op in concrete.graph.get_operations()}
    np.save(tmp_path / "x.npy", x)
    out = run_python(
        """
        import json, numpy as np, safeops, tensorflow as tf
        m = tf.saved_model.load("model")
        print(json.dumps([t.numpy().tolist() for t in m(np.load("x.npy"))]))
        """,
        tmp_path,
    )
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_array_equal(np.array(g), e)


def test_kernels_register_after_tensorflow_set_up_xla(tmp_path):
    """XLA turns its op registry into kernels once per process; safeops' XLA kernels are
    registered directly (csrc/tf/xla), so importing safeops after XLA has compiled works."""
    out = run_python(
        """
        import numpy as np, tensorflow as tf
        tf.function(lambda v: v * 2.0, jit_compile=True)(tf.ones([2]))  # XLA is set up
        import safeops
        from safeops import dense
        x = np.array([[1.0, np.nan], [0.5, 2.0]], np.float32)
        f = tf.function(lambda x: safeops.masked_dense(x, tf.ones([2, 3]), tf.zeros([3])),
                        jit_compile=True)
        with dense.xla_custom_call_on("CPU"):
            assert "safeops_masked_dense_forward" in f.experimental_get_compiler_ir(x)(stage="hlo")
            print(f(x).numpy().tolist())
        """,
        tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [[1.0] * 3, [2.5] * 3]
