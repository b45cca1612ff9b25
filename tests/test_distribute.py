"""tf.distribute: MirroredStrategy over two logical CPU devices trains a MaskedDense model to the
same weights as one device on the same global batch. Runs in a subprocess: logical devices must
be configured before TensorFlow starts its runtime."""

import subprocess
import sys
import textwrap

SCRIPT = """
import json
import keras
import numpy as np
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import safeops

rng = np.random.default_rng(0)
x = rng.normal(size=(256, 6)).astype("float32")
x[rng.random(x.shape) < 0.2] = np.nan
y = (np.nan_to_num(x) @ rng.normal(size=(6, 1))).astype("float32")


def build():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((6,)),
        safeops.layers.MaskedDense(16, activation="relu", renormalize=True),
        keras.layers.Dense(1),
    ])
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
    return model


def train(model):
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)
    history = model.fit(data, epochs=3, verbose=0)
    return [w.numpy() for w in model.weights], history.history["loss"]


single, single_loss = train(build())
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
with strategy.scope():
    mirrored_model = build()
mirrored, mirrored_loss = train(mirrored_model)
print(json.dumps({
    "replicas": strategy.num_replicas_in_sync,
    "max_diff": max(float(np.max(np.abs(a - b))) for a, b in zip(single, mirrored)),
    "finite": all(bool(np.isfinite(w).all()) for w in mirrored),
    "loss_falls": mirrored_loss[-1] < mirrored_loss[0],
}))
"""


def test_mirrored_matches_single_device(tmp_path):
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(SCRIPT)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    import json

    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["replicas"] == 2
    assert result["finite"] and result["loss_falls"]
    assert result["max_diff"] < 1e-5, result
