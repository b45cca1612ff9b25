"""safeops.layers.Normalization: adapt() with NumPy's nanmean / nanvar on every kind of input
keras.layers.Normalization.adapt takes, NaN passed through, serialization, errors."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import safeops
from safeops.layers import MaskedDense, Normalization


def data_with_nan(seed, shape=(300, 4), fraction=0.3):
    rng = np.random.default_rng(seed)
    x = rng.normal(loc=[3.0, -1.0, 10.0, 0.0], scale=[1.0, 2.0, 5.0, 0.1], size=shape)
    x[rng.random(shape) < fraction] = np.nan
    return x.astype("float32")


def assert_standardized(layer, x, axis=0):
    mean = np.nanmean(x.astype(np.float64), axis=axis)
    var = np.nanvar(x.astype(np.float64), axis=axis)
    np.testing.assert_allclose(layer.adapt_mean.numpy(), mean, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(layer.adapt_variance.numpy(), var, rtol=1e-5, atol=1e-7)
    out = layer(x).numpy()
    np.testing.assert_array_equal(np.isnan(out), np.isnan(x))  # missing stays missing
    want = (x - mean) / np.sqrt(var)
    np.testing.assert_allclose(out[~np.isnan(x)], want[~np.isnan(x)], rtol=1e-4, atol=1e-5)


def test_keras_normalization_is_poisoned_by_one_nan():
    """The trap this layer removes: Keras' adapt gives NaN statistics for a column with a NaN."""
    x = data_with_nan(0)
    layer = keras.layers.Normalization()
    layer.adapt(x)
    assert np.isnan(layer(x).numpy()).all()


def test_adapt_array():
    x = data_with_nan(1)
    layer = Normalization()
    layer.adapt(x)
    assert_standardized(layer, x)


def test_adapt_tensor_and_float64():
    x = data_with_nan(2).astype(np.float64)
    layer = Normalization(dtype="float64")
    layer.adapt(tf.constant(x))
    assert_standardized(layer, x)


@pytest.mark.parametrize(
    "make",
    [
        lambda x: tf.data.Dataset.from_tensor_slices(x).batch(37),
        lambda x: tf.data.Dataset.from_tensor_slices(x),  # rows: batched by 128 as Keras does
        lambda x: tf.data.Dataset.from_tensor_slices((x, np.zeros(len(x)))).batch(50),
        lambda x: [x[:100], x[100:101], x[101:]],
        lambda x: (x[i : i + 64] for i in range(0, len(x), 64)),
    ],
    ids=["dataset", "unbatched", "x-y pairs", "list", "generator"],
)
def test_adapt_in_batches(make):
    x = data_with_nan(3)
    layer = Normalization()
    layer.adapt(make(x))
    assert_standardized(layer, x)


def test_adapt_py_dataset():
    x = data_with_nan(4)

    class Batches(keras.utils.PyDataset):
        def __len__(self):
            return 3

        def __getitem__(self, i):
            return x[i * 100 : (i + 1) * 100], np.zeros(100)

    layer = Normalization()
    layer.adapt(Batches())
    assert_standardized(layer, x)


def test_large_array_in_chunks(monkeypatch):
    import safeops.normalization as normalization

    monkeypatch.setattr(normalization, "_ADAPT_CHUNK_ROWS", 7)  # many chunks, a ragged last one
    x = data_with_nan(5, shape=(100, 4))
    layer = Normalization()
    layer.adapt(x)
    assert_standardized(layer, x)


def test_axis_none_and_rank3():
    x = data_with_nan(6)
    scalar = Normalization(axis=None)
    scalar.adapt(x)
    np.testing.assert_allclose(scalar.adapt_mean.numpy(), np.nanmean(x.astype(np.float64)), 1e-6)
    np.testing.assert_allclose(scalar.adapt_variance.numpy(), np.nanvar(x.astype(np.float64)), 1e-5)
    x3 = data_with_nan(7, shape=(50, 3, 4))
    layer = Normalization(axis=-1)
    layer.adapt(x3)
    np.testing.assert_allclose(
        layer.adapt_mean.numpy(), np.nanmean(x3.astype(np.float64), axis=(0, 1)), rtol=1e-6
    )
    both = Normalization(axis=(1, 2))
    both.adapt(x3)
    np.testing.assert_allclose(
        both.adapt_variance.numpy(), np.nanvar(x3.astype(np.float64), axis=0), rtol=1e-5
    )


def test_column_without_an_observed_value():
    x = data_with_nan(8)
    x[:, 2] = np.nan
    with pytest.raises(ValueError, match=r"no observed value at index \(2,\)"):
        Normalization().adapt(x)


def test_nonfinite_policy():
    x = data_with_nan(9)
    x[5, 0], x[7, 1] = np.inf, -np.inf
    layer = Normalization(missing="nonfinite")
    layer.adapt(x)
    finite = np.where(np.isfinite(x), x, np.nan).astype(np.float64)
    np.testing.assert_allclose(layer.adapt_mean.numpy(), np.nanmean(finite, axis=0), rtol=1e-6)
    out = layer(x).numpy()
    assert out[5, 0] == np.inf and out[7, 1] == -np.inf  # passed through, still missing
    observed_inf = Normalization()  # under "nan" an Inf is an observed value, as for nanmean
    observed_inf.adapt(x)
    np.testing.assert_array_equal(observed_inf.adapt_mean.numpy()[:2], [np.inf, -np.inf])
    with pytest.raises(ValueError, match="missing"):
        Normalization(missing="zero")


def test_given_mean_and_variance():
    layer = Normalization(mean=[1.0, 2.0], variance=[4.0, 1.0])
    out = layer(np.array([[3.0, np.nan]], "float32")).numpy()
    np.testing.assert_allclose(out[0, 0], 1.0)
    assert np.isnan(out[0, 1])
    with pytest.raises(ValueError, match="adapt"):
        layer.adapt(np.ones((3, 2), "float32"))


def test_invert():
    x = data_with_nan(10)
    forward, inverse = Normalization(), Normalization(invert=True)
    forward.adapt(x)
    inverse.adapt(x)
    back = inverse(forward(x)).numpy()
    np.testing.assert_array_equal(np.isnan(back), np.isnan(x))
    np.testing.assert_allclose(back[~np.isnan(x)], x[~np.isnan(x)], rtol=1e-4, atol=1e-4)


def test_batch_of_another_width():
    layer = Normalization()
    layer.adapt(data_with_nan(11))
    with pytest.raises(ValueError, match="does not fit"):
        layer.adapt([np.ones((5, 3), "float32")])


def test_config_and_keras_file(tmp_path):
    x = data_with_nan(12)
    layer = Normalization(missing="nonfinite", name="norm")
    config = layer.get_config()
    assert config["missing"] == "nonfinite"
    assert Normalization.from_config(config).get_config() == config
    assert keras.saving.get_registered_name(Normalization) == "safeops>Normalization"
    norm = Normalization()
    norm.adapt(x)
    model = keras.Sequential(
        [
            keras.Input((4,)),
            norm,
            MaskedDense(8, activation="relu", indicator=True),
            keras.layers.Dense(1),
        ]
    )
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded.layers[0], Normalization)
    np.testing.assert_array_equal(loaded.layers[0](x).numpy(), norm(x).numpy())
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_in_front_of_masked_dense_trains():
    x = data_with_nan(13, shape=(256, 4))
    y = np.nan_to_num(x) @ np.array([[1.0], [0.5], [0.1], [2.0]], "float32")
    norm = Normalization()
    norm.adapt(x)
    keras.utils.set_random_seed(13)
    model = keras.Sequential(
        [keras.Input((4,)), norm, MaskedDense(16, activation="relu"), keras.layers.Dense(1)]
    )
    model.compile(optimizer="adam", loss="mse")
    losses = model.fit(x, y, batch_size=32, epochs=5, verbose=0).history["loss"]
    assert all(np.isfinite(w.numpy()).all() for w in model.weights)
    assert losses[-1] < losses[0]


def test_public_name():
    assert safeops.layers.Normalization is Normalization
