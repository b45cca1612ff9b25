"""safeops.layers.MaskedDense as a Keras 3 layer: drop-in for Dense, serialization, training."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from dense_reference import masked_dense as reference

import safeops
from safeops.layers import MaskedDense


def nan_data(seed, rows=64, features=5, fraction=0.2):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, features)).astype("float32")
    x[rng.random(x.shape) < fraction] = np.nan
    y = (np.nan_to_num(x) @ rng.normal(size=(features, 1))).astype("float32")
    return x, y


def test_is_a_dense_with_the_same_weights():
    layer = MaskedDense(4, activation="relu")
    layer.build((None, 3))
    dense = keras.layers.Dense(4, activation="relu")
    dense.build((None, 3))
    assert isinstance(layer, keras.layers.Dense)
    assert [w.shape for w in layer.weights] == [w.shape for w in dense.weights]
    assert [w.path.split("/")[-1] for w in layer.weights] == ["kernel", "bias"]


def test_forward_matches_reference():
    x, _ = nan_data(0)
    layer = MaskedDense(3, activation="tanh", renormalize=True)
    y = layer(x).numpy()
    w, b = (v.numpy() for v in layer.weights)
    np.testing.assert_allclose(y, reference(x, w, b, "tanh", True)["y"], rtol=1e-5, atol=1e-6)


def test_clean_data_equals_dense():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(16, 4)).astype("float32")
    layer, dense = MaskedDense(3, activation="gelu"), keras.layers.Dense(3, activation="gelu")
    layer.build(x.shape)
    dense.build(x.shape)
    dense.set_weights(layer.get_weights())
    np.testing.assert_allclose(layer(x).numpy(), dense(x).numpy(), rtol=1e-5, atol=1e-6)


def test_config_round_trip():
    layer = MaskedDense(
        7,
        activation="silu",
        use_bias=False,
        kernel_initializer="he_normal",
        kernel_regularizer="l2",
        renormalize=True,
        missing="nonfinite",
        name="md",
    )
    config = layer.get_config()
    assert config["renormalize"] is True and config["missing"] == "nonfinite"
    clone = MaskedDense.from_config(config)
    assert clone.get_config() == config
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert isinstance(restored, MaskedDense) and restored.get_config() == config
    assert keras.saving.get_registered_name(MaskedDense) == "safeops>MaskedDense"


def test_keras_file_round_trip(tmp_path):
    x, y = nan_data(2)
    model = keras.Sequential(
        [
            keras.Input((5,)),
            MaskedDense(8, activation="relu", renormalize=True),
            keras.layers.Dense(1),
        ]
    )
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, y, epochs=1, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded.layers[0], MaskedDense)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


@pytest.mark.parametrize("indicator", [False, True], ids=["plain", "indicator"])
@pytest.mark.parametrize("jit_compile", [False, True, "auto"], ids=str)
def test_fit_keeps_weights_finite(jit_compile, indicator):
    x, y = nan_data(3, rows=128)
    keras.utils.set_random_seed(3)
    model = keras.Sequential(
        [
            keras.Input((5,)),
            MaskedDense(16, activation="relu", indicator=indicator),
            keras.layers.Dense(1),
        ]
    )
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse", jit_compile=jit_compile)
    losses = model.fit(x, y, batch_size=16, epochs=5, verbose=0).history["loss"]
    assert all(np.isfinite(w.numpy()).all() for w in model.weights)
    assert losses[-1] < losses[0]


def test_plain_dense_fails_where_masked_dense_does_not():
    """The control: the same model with keras Dense gets NaN weights (the bug safeops fixes)."""
    x, y = nan_data(4, rows=64)
    keras.utils.set_random_seed(4)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert any(np.isnan(w.numpy()).any() for w in model.weights)


def test_equals_mean_imputation_on_standardized_features():
    """Without renormalize MaskedDense zero-fills inside the matmul; on standardized features 0
    is the mean, so training it on features with NaN is training Dense on mean-imputed ones
    (README, "Missing values")."""
    x, y = nan_data(7, rows=128, features=6, fraction=0.3)
    x = (x - np.nanmean(x, axis=0)) / np.nanstd(x, axis=0)
    imputed = np.where(np.isnan(x), 0.0, x).astype("float32")
    weights = []
    for first, data in ((MaskedDense, x), (keras.layers.Dense, imputed)):
        keras.utils.set_random_seed(7)
        model = keras.Sequential(
            [keras.Input((6,)), first(16, activation="relu"), keras.layers.Dense(1)]
        )
        model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
        keras.utils.set_random_seed(7)
        model.fit(data, y, batch_size=16, epochs=3, verbose=0)
        weights.append([w.numpy() for w in model.weights])
    for masked, dense in zip(*weights, strict=True):
        np.testing.assert_allclose(masked, dense, rtol=1e-6, atol=1e-7)


def sparse_nan_data(seed, rows=32, features=6):
    """A SparseTensor storing a third of the entries, some of them NaN: (sparse, the dense
    matrix it means, with its implicit entries as observed zeros)."""
    rng = np.random.default_rng(seed)
    dense = np.zeros((rows, features), "float32")
    stored = rng.random(dense.shape) < 0.35
    dense[stored] = rng.normal(size=stored.sum())
    dense[stored & (rng.random(dense.shape) < 0.3)] = np.nan
    indices = np.argwhere(stored)
    sparse = tf.SparseTensor(indices, dense[stored], dense.shape)
    return sparse, dense


@pytest.mark.parametrize("renormalize", [False, True])
def test_sparse_input_implicit_entries_are_observed_zeros(renormalize):
    sparse, dense = sparse_nan_data(5)
    assert np.isnan(dense).any() and (dense == 0).any()
    layer = MaskedDense(3, activation="relu", renormalize=renormalize)
    with tf.GradientTape() as tape:
        y = layer(sparse)
    dw, db = tape.gradient(y, layer.weights)
    w, b = (v.numpy() for v in layer.weights)
    # Reference: the dense matrix, where only the stored NaN are missing (for renormalize:
    # n_obs counts the implicit zeros as observed).
    want = reference(dense, w, b, "relu", renormalize, upstream=np.ones((32, 3)))
    np.testing.assert_allclose(y.numpy(), want["y"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dw.numpy(), want["dw"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(db.numpy(), want["db"], rtol=1e-5, atol=1e-5)


def test_sparse_input_trains_from_a_sparse_keras_input():
    sparse, dense = sparse_nan_data(6, rows=64)
    target = np.nan_to_num(dense) @ np.linspace(-1.0, 1.0, 6)[:, None].astype("float32")
    keras.utils.set_random_seed(6)
    model = keras.Sequential(
        [
            keras.Input((6,), sparse=True),
            MaskedDense(16, activation="relu"),
            keras.layers.Dense(1),
        ]
    )
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
    data = tf.data.Dataset.from_tensor_slices((sparse, target)).batch(8)
    losses = model.fit(data, epochs=5, shuffle=False, verbose=0).history["loss"]
    assert all(np.isfinite(w.numpy()).all() for w in model.weights)
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("indicator", [False, True], ids=["plain", "indicator"])
@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision(policy, indicator):
    x, y = nan_data(5, rows=128)
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        keras.utils.set_random_seed(5)
        model = keras.Sequential(
            [
                keras.Input((5,)),
                MaskedDense(16, activation="relu", indicator=indicator),
                keras.layers.Dense(1, dtype="float32"),
            ]
        )
        assert model.layers[0].compute_dtype == policy.split("_")[1]
        assert all(w.dtype == "float32" for w in model.layers[0].weights)
        before = [w.numpy().copy() for w in model.layers[0].weights]
        optimizer = keras.optimizers.SGD(0.05)
        if policy == "mixed_float16":
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        model.compile(optimizer=optimizer, loss="mse")
        losses = model.fit(x, y, batch_size=16, epochs=5, verbose=0).history["loss"]
    finally:
        keras.config.set_dtype_policy(previous)
    assert all(np.isfinite(w.numpy()).all() for w in model.weights)
    assert losses[-1] < losses[0]
    for old, new in zip(before, model.layers[0].weights, strict=True):
        assert not np.array_equal(old, new.numpy()), f"{new.path} did not train"


def test_unfused_activation_applied_after():
    x, _ = nan_data(6)
    layer = MaskedDense(3, activation="softplus")
    y = layer(x).numpy()
    w, b = (v.numpy() for v in layer.weights)
    np.testing.assert_allclose(y, np.log1p(np.exp(reference(x, w, b)["z"])), rtol=1e-5)


def test_rank3_input():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(2, 3, 4)).astype("float32")
    x[0, 1, 2] = np.nan
    layer = MaskedDense(5)
    y = layer(x)
    assert y.shape == (2, 3, 5)
    w, b = (v.numpy() for v in layer.weights)
    np.testing.assert_allclose(y.numpy(), reference(x, w, b)["y"], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "kwargs,error",
    [({"missing": "zero"}, ValueError), ({"renormalize": "yes"}, TypeError)],
)
def test_bad_arguments(kwargs, error):
    with pytest.raises(error):
        MaskedDense(3, **kwargs)


def test_public_names():
    assert safeops.layers.MaskedDense is MaskedDense
    assert safeops.masked_dense is safeops.dense.masked_dense
