"""The demo's models and training runs (Keras). Everything reported is measured here, per run.

Three ways to train on features with NaN, one architecture:
  * plain: keras.layers.Dense on the raw features (what the user report did);
  * imputed: the usual workaround, each NaN replaced by its column's training mean, then Dense;
  * safeops: safeops.layers.MaskedDense on the raw features.
"""

import keras
import numpy as np
import tensorflow as tf

from safeops.layers import MaskedDense

MODELS = {  # key: (label, first layer, inputs mean-imputed)
    "plain": ("plain Keras Dense", keras.layers.Dense, False),
    "imputed": ("mean imputation + Dense", keras.layers.Dense, True),
    "safeops": ("safeops MaskedDense", MaskedDense, False),
}


class PatchNaN(keras.layers.Layer):
    """where(is_nan(t), 0, t): the user report's patch of the model's output."""

    def call(self, t):
        return tf.where(tf.math.is_nan(t), tf.zeros_like(t), t)


class CheckNumerics(keras.layers.Layer):
    """tf.debugging.check_numerics on the (patched) output, as in the user report."""

    def call(self, t):
        return tf.debugging.check_numerics(t, "model output")


class _Recorder(keras.callbacks.Callback):
    """The held-out MSE after each epoch and the training step after which a weight first
    held a NaN (None if never)."""

    def __init__(self, x_held, y_held):
        super().__init__()
        self.x_held, self.y_held = x_held, y_held
        self.held_out = []
        self.steps = 0
        self.nan_step = None

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        if self.nan_step is None and nan_variables(self.model):
            self.nan_step = self.steps

    def on_epoch_end(self, epoch, logs=None):
        # The compiled predict function, as model.predict runs it, in one batch: Keras'
        # validation_data would build a tf.data iterator per epoch (a third of the run time).
        self.held_out.append(float(np.mean((predict(self.model, self.x_held) - self.y_held) ** 2)))


def nan_variables(model):
    """Paths of the weights that hold a NaN."""
    return [w.path for w in model.weights if np.isnan(w.numpy()).any()]


def column_means(x):
    """Per-column means of the observed entries (0 for a column never observed)."""
    observed = ~np.isnan(x)
    totals = np.where(observed, x, 0.0).sum(axis=0, dtype="float64")
    return (totals / np.maximum(observed.sum(axis=0), 1)).astype(x.dtype)


def mean_imputed(x, means):
    return np.where(np.isnan(x), means, x)


def train_all(train, held_out, model_fn, epochs, batch_size, seed):
    """Trains each of MODELS from the same initial weights on `train`, measuring the loss and
    the held-out MSE after every epoch. Returns {key: run dict}; see `_train`."""
    (x, y), (xh, yh) = train, held_out
    means = column_means(x)
    runs = {}
    for key, (label, first_layer, impute) in MODELS.items():
        keras.utils.set_random_seed(seed)  # the same initial weights and batches for all
        model = model_fn(first_layer)
        xt, xv = (mean_imputed(x, means), mean_imputed(xh, means)) if impute else (x, xh)
        runs[key] = dict(label=label, **_train(model, xt, y, xv, yh, epochs, batch_size))
        runs[key]["model"] = model
    return runs


def _train(model, x, y, xh, yh, epochs, batch_size):
    recorder = _Recorder(xh, yh)
    history = model.fit(x, y, batch_size=batch_size, epochs=epochs, callbacks=[recorder], verbose=0)
    predictions = predict(model, xh)
    return {
        "loss": history.history["loss"],
        "held_out": recorder.held_out,
        "steps_per_epoch": recorder.steps // epochs,
        "nan_step": recorder.nan_step,
        "nan_variables": nan_variables(model),
        "weights": sum(w.numpy().size for w in model.weights),
        "nan_weights": sum(int(np.isnan(w.numpy()).sum()) for w in model.weights),
        "predictions": predictions,
    }


def layer_output(model, index, x):
    """NumPy output of the model's layer `index` for x, computed the way Keras' predict
    computes the whole model (compiled), which is how the held-out error saw it.
    One output per probe: a graph that also returned the layers in between would not fuse
    them as the model's own graph does."""
    return predict(keras.Model(model.inputs, model.layers[index].output), x)


def predict(model, x):
    """model's compiled predict function on x in one batch, as float64. Each model and probe
    of the demo traces its own predict function once, by design: TensorFlow's note about
    frequent retracing is held back here."""
    logger = tf.get_logger()
    level = logger.level
    logger.setLevel("ERROR")
    try:
        return np.asarray(model.predict_on_batch(x), "float64")
    finally:
        logger.setLevel(level)
