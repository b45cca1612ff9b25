"""safeops.layers.MaskedDense: keras.layers.Dense over inputs with missing values (NaN)."""

import keras

from safeops import _checks
from safeops.dense import masked_dense


@keras.saving.register_keras_serializable(package="safeops")
class MaskedDense(keras.layers.Dense):
    """A drop-in for `keras.layers.Dense` that treats NaN inputs as missing.

    Same constructor arguments as `keras.layers.Dense` (units, activation, use_bias,
    initializers, regularizers, constraints), plus:

    Args:
      renormalize: scale each row by K / n_obs, the number of features over the number
        observed (partial-convolution scaling); a row with nothing observed gives
        activation(bias).
      missing: "nan" (NaN entries are missing) or "nonfinite" (NaN and +-Inf).

    A tf.SparseTensor input is densified first: the entries it does not store are observed
    zeros, its stored NaN values are missing.

    Missing inputs are replaced by 0 inside the fused op, with an exact zero gradient, so the
    kernel and bias gradients stay finite whatever the data holds. The activations linear,
    relu, gelu, sigmoid, tanh and silu are fused; others are applied after the op. Use it as a
    model's first layer, where the raw features (and their NaN) come in::

        model = keras.Sequential([
            keras.Input((n_features,)),
            safeops.layers.MaskedDense(64, activation="relu"),
            keras.layers.Dense(1),
        ])
    """

    def __init__(self, units, renormalize=False, missing="nan", **kwargs):
        _checks.check_missing(missing, "MaskedDense")
        if not isinstance(renormalize, bool):
            raise TypeError(f"MaskedDense: renormalize must be a bool, got {renormalize!r}")
        super().__init__(units, **kwargs)
        self.renormalize = renormalize
        self.missing = missing

    def call(self, inputs, training=None):
        return masked_dense(
            inputs,
            self.kernel,
            self.bias if self.use_bias else None,
            activation=self.activation,
            renormalize=self.renormalize,
            missing=self.missing,
        )

    def get_config(self):
        config = super().get_config()
        config.update(renormalize=self.renormalize, missing=self.missing)
        return config
