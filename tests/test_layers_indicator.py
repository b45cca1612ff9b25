"""safeops.layers.MaskedDense(indicator=True): the weight indicator_kernel, serialization
(.keras, SavedModel, files without it), and that it learns from missingness (fit under
jit_compile and mixed precision: tests/test_layers.py, parametrized over indicator)."""

import json

import keras
import numpy as np
import pytest
from dense_reference import masked_dense as reference
from test_saved_model import run_python

from safeops.layers import MaskedDense


def nan_data(seed, rows=64, features=5, fraction=0.3):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, features)).astype("float32")
    x[rng.random(x.shape) < fraction] = np.nan
    y = (np.nan_to_num(x) @ rng.normal(size=(features, 1))).astype("float32")
    return x, y


def model_with(layer, features=5):
    return keras.Sequential([keras.Input((features,)), layer, keras.layers.Dense(1)])


def test_weights_and_their_names():
    layer = MaskedDense(4, activation="relu", indicator=True)
    layer.build((None, 3))
    assert [w.path.split("/")[-1] for w in layer.weights] == ["kernel", "bias", "indicator_kernel"]
    assert layer.indicator_kernel.shape == (3, 4) and layer.indicator_kernel.trainable
    np.testing.assert_array_equal(layer.indicator_kernel.numpy(), 0.0)  # starts as without U
    plain = MaskedDense(4)
    plain.build((None, 3))
    assert plain.indicator_kernel is None and len(plain.weights) == 2


def test_forward_matches_reference():
    x, _ = nan_data(0)
    layer = MaskedDense(3, activation="tanh", renormalize=True, indicator=True)
    y = layer(x).numpy()
    w, b, u = (v.numpy() for v in layer.weights)
    want = reference(x, w, b, "tanh", True, indicator_kernel=u)["y"]
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-6)


def test_config_round_trip():
    layer = MaskedDense(
        7,
        activation="silu",
        indicator=True,
        indicator_initializer="ones",
        indicator_regularizer="l2",
        indicator_constraint="non_neg",
        name="md",
    )
    config = layer.get_config()
    assert config["indicator"] is True
    clone = MaskedDense.from_config(config)
    assert clone.get_config() == config
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert isinstance(restored, MaskedDense) and restored.get_config() == config
    clone.build((None, 3))
    np.testing.assert_array_equal(clone.indicator_kernel.numpy(), 1.0)
    assert len(clone.losses) == 1  # the l2 regularizer of U (the kernel has none)
    assert isinstance(clone.indicator_kernel.constraint, keras.constraints.NonNeg)


def test_config_without_indicator_is_unchanged():
    """A layer without indicators writes the config it wrote before the option existed, and
    such a config (an old file's) builds a layer without indicator weights."""
    config = MaskedDense(3).get_config()
    assert not any(key.startswith("indicator") for key in config)
    layer = MaskedDense.from_config(config)
    layer.build((None, 2))
    assert not layer.indicator and len(layer.weights) == 2


def test_keras_file_round_trip(tmp_path):
    x, y = nan_data(2)
    model = model_with(MaskedDense(8, activation="relu", indicator=True))
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, y, epochs=2, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.layers[0].indicator
    np.testing.assert_array_equal(
        loaded.layers[0].indicator_kernel.numpy(), model.layers[0].indicator_kernel.numpy()
    )
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_keras_file_without_indicators_loads(tmp_path):
    x, y = nan_data(3)
    model = model_with(MaskedDense(8, activation="relu"))
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, y, epochs=1, verbose=0)
    path = tmp_path / "plain.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert not loaded.layers[0].indicator and len(loaded.layers[0].weights) == 2
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_saved_model_round_trip_in_fresh_process(tmp_path):
    x, y = nan_data(4)
    model = model_with(MaskedDense(8, activation="gelu", indicator=True, renormalize=True))
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, y, epochs=2, verbose=0)
    model.export(str(tmp_path / "exported"), format="tf_saved_model", verbose=False)
    np.save(tmp_path / "x.npy", x)
    out = run_python(
        """
        import json, numpy as np, safeops, tensorflow as tf
        served = tf.saved_model.load("exported")
        print(json.dumps(served.serve(np.load("x.npy")).numpy().tolist()))
        """,
        tmp_path,
    )
    assert out.returncode == 0, out.stderr
    got = np.array(json.loads(out.stdout.strip().splitlines()[-1]))
    np.testing.assert_allclose(got, model.predict(x, verbose=0), rtol=1e-6, atol=1e-6)


def test_learns_what_missingness_says():
    """A target that is the missingness of feature 0: with indicators a one-layer model fits it;
    without, the layer sees a 0 where the value is missing, which a standard normal feature
    also takes, and cannot."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=(512, 3)).astype("float32")
    x[rng.random(512) < 0.5, 0] = np.nan
    y = (2.0 * np.isnan(x[:, 0]) - 1.0).astype("float32")[:, None]
    losses = {}
    for indicator in (False, True):
        keras.utils.set_random_seed(7)
        model = keras.Sequential([keras.Input((3,)), MaskedDense(1, indicator=indicator)])
        model.compile(optimizer=keras.optimizers.Adam(0.05), loss="mse")
        losses[indicator] = model.fit(x, y, batch_size=64, epochs=30, verbose=0).history["loss"][-1]
    assert losses[True] < 1e-3 and losses[False] > 0.5


@pytest.mark.parametrize("kwargs,error", [({"indicator": "yes"}, TypeError)])
def test_bad_arguments(kwargs, error):
    with pytest.raises(error, match="indicator"):
        MaskedDense(3, **kwargs)
