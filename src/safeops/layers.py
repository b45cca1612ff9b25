"""safeops.layers: Keras layers for data with missing values (NaN).

- MaskedDense: keras.layers.Dense over inputs with missing values, optionally learning from
  which values are missing (indicator weights).
- Normalization: keras.layers.Normalization whose adapt() ignores missing values and whose
  output keeps them missing (safeops.normalization).
"""

import keras

from safeops import _checks
from safeops.dense import masked_dense
from safeops.normalization import Normalization

__all__ = ["MaskedDense", "Normalization"]


@keras.saving.register_keras_serializable(package="safeops")
class MaskedDense(keras.layers.Dense):
    """A drop-in for `keras.layers.Dense` that treats NaN inputs as missing.

    Runs masked_dense: which implementation depends on the device and on the jit_compile Keras
    resolves (on a GPU, "auto" means XLA and the composite ops); see docs/design.md §4, and
    safeops.explain_paths(model, x) for a model's own.

    Same constructor arguments as `keras.layers.Dense` (units, activation, use_bias,
    initializers, regularizers, constraints), plus:

    Args:
      renormalize: scale each row by K / n_obs, the number of features over the number
        observed (partial-convolution scaling); a row with nothing observed gives
        activation(bias).
      missing: "nan" (NaN entries are missing) or "nonfinite" (NaN and +-Inf).
      indicator: also learn from *which* features are missing: a weight "indicator_kernel"
        U [K, units] adds m @ U to the pre-activation (m = 1 where a feature is missing), the
        model of a Dense over concat([x filled with 0, m]) without building the concatenation.
      indicator_initializer, indicator_regularizer, indicator_constraint: for U, like
        kernel_initializer, ... for the kernel. U starts at zeros: the layer starts as the one
        without indicators and learns what missingness adds (on the benchmark's Gaussian tables
        this matched or beat a glorot-initialized U, by up to 0.01 R² at d = 50; see
        benchmarks/RESULTS.md).

    A tf.SparseTensor input is densified first: the entries it does not store are observed
    zeros, its stored NaN values are missing.

    Missing inputs are replaced by 0 inside the fused op, with an exact zero gradient, so the
    kernel and bias gradients stay finite whatever the data holds. The activations linear,
    relu, gelu, sigmoid, tanh and silu are fused; others are applied after the op. Use it as a
    model's first layer, where the raw features (and their NaN) come in::

        model = keras.Sequential([
            keras.Input((n_features,)),
            safeops.layers.Normalization(),  # adapt() on the training data first
            safeops.layers.MaskedDense(64, activation="relu", indicator=True),
            keras.layers.Dense(1),
        ])

    indicator=True runs on every path of safeops.masked_dense: on a GPU the fused CUDA kernel
    for memory-bound shapes, the row prologue + TensorFlow's MatMul for compute-bound ones
    (safeops.routing).
    """

    def __init__(
        self,
        units,
        renormalize=False,
        missing="nan",
        indicator=False,
        indicator_initializer="zeros",
        indicator_regularizer=None,
        indicator_constraint=None,
        **kwargs,
    ):
        _checks.check_missing(missing, "MaskedDense")
        for name, value in (("renormalize", renormalize), ("indicator", indicator)):
            if not isinstance(value, bool):
                raise TypeError(f"MaskedDense: {name} must be a bool, got {value!r}")
        super().__init__(units, **kwargs)
        self.renormalize = renormalize
        self.missing = missing
        self.indicator = indicator
        self.indicator_initializer = keras.initializers.get(indicator_initializer)
        self.indicator_regularizer = keras.regularizers.get(indicator_regularizer)
        self.indicator_constraint = keras.constraints.get(indicator_constraint)
        self.indicator_kernel = None

    def build(self, input_shape):
        super().build(input_shape)
        if self.indicator:
            self.indicator_kernel = self.add_weight(
                name="indicator_kernel",
                shape=(input_shape[-1], self.units),
                initializer=self.indicator_initializer,
                regularizer=self.indicator_regularizer,
                constraint=self.indicator_constraint,
            )

    @property
    def variable_serialization_spec(self):
        # Dense saves its weights by this list; U goes after kernel and bias, so a file saved
        # without indicators loads as before.
        spec = dict(super().variable_serialization_spec)
        if self.indicator:
            spec[None] = [*spec[None], "indicator_kernel"]
        return spec

    def call(self, inputs, training=None):
        return masked_dense(
            inputs,
            self.kernel,
            self.bias if self.use_bias else None,
            activation=self.activation,
            renormalize=self.renormalize,
            missing=self.missing,
            indicator_kernel=self.indicator_kernel,
        )

    def get_config(self):
        config = super().get_config()
        config.update(renormalize=self.renormalize, missing=self.missing)
        if self.indicator:  # absent otherwise: a layer without indicators saves what it did
            config.update(
                indicator=True,
                indicator_initializer=keras.initializers.serialize(self.indicator_initializer),
                indicator_regularizer=keras.regularizers.serialize(self.indicator_regularizer),
                indicator_constraint=keras.constraints.serialize(self.indicator_constraint),
            )
        return config
