"""SavedModel: a module using every safeops op is exported, reloaded in a fresh process after
`import safeops`, and gives the same outputs and gradients; without the import, TensorFlow
refuses with its "Op type not registered" message (README explains it)."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import tensorflow as tf

import safeops
from safeops._loader import ops


class EveryOp(tf.Module):
    """Uses safe_where (both forms), fill_missing, masked_dense (CPU path) and the fused op."""

    def __init__(self):
        super().__init__()
        rng = np.random.default_rng(0)
        self.w = tf.Variable(rng.normal(size=(4, 3)))
        self.b = tf.Variable(rng.normal(size=3))
        self.fill = tf.Variable(np.full(4, 0.5))

    @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float64)])
    def __call__(self, x):
        filled = safeops.fill_missing(x, self.fill)
        logs = safeops.safe_where(filled > 0, tf.math.log, 0.0, filled)
        h = safeops.masked_dense(x, self.w, self.b, activation="gelu", renormalize=True)
        fused, _ = ops.safeops_masked_dense(x, self.w, self.b, [], activation="tanh")
        return tf.reduce_sum(logs, axis=-1, keepdims=True) + h + fused

    @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float64)])
    def gradients(self, x):
        with tf.GradientTape() as tape:
            y = tf.reduce_sum(self(x) ** 2)
        return tape.gradient(y, [self.w, self.b, self.fill])


def inputs():
    x = np.random.default_rng(1).normal(size=(6, 4))
    x[0, 1] = x[3, 0] = x[4, 2] = np.nan
    return x


def run_python(code, cwd):
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
    )


def test_reload_in_fresh_process(tmp_path):
    module = EveryOp()
    x = inputs()
    expected = [module(x).numpy(), *[g.numpy() for g in module.gradients(x)]]
    assert all(np.isfinite(e).all() for e in expected)
    tf.saved_model.save(module, str(tmp_path / "model"))
    np.save(tmp_path / "x.npy", x)

    out = run_python(
        """
        import json, numpy as np, safeops, tensorflow as tf
        m = tf.saved_model.load("model")
        x = np.load("x.npy")
        print(json.dumps([m(x).numpy().tolist()] + [g.numpy().tolist() for g in m.gradients(x)]))
        """,
        tmp_path,
    )
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_allclose(np.array(g), e, rtol=1e-12, atol=1e-12)


def test_load_without_import_names_the_op(tmp_path):
    tf.saved_model.save(EveryOp(), str(tmp_path / "model"))
    out = run_python(
        """
        import tensorflow as tf
        tf.saved_model.load("model")
        """,
        tmp_path,
    )
    assert out.returncode != 0
    assert "Op type not registered 'Safeops>" in out.stderr
