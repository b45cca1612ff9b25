"""safeops.layers.Normalization: keras.layers.Normalization for data with missing values.

`keras.layers.Normalization().adapt(x)` on data with NaN gives a NaN mean and variance for every
column that holds one NaN, so the whole column is NaN forever, observed values included. This
layer adapts with the mean and variance of the *observed* values of each column (NumPy's
nanmean / nanvar, accumulated batch by batch in float64) and, like Keras' layer, computes
`(x - mean) / sqrt(variance)`, which keeps a missing entry missing (NaN stays NaN), so the
MaskedDense after it still sees what is missing.
"""

import keras
import numpy as np
import tensorflow as tf

from safeops import _checks

# Rows per chunk when adapt() gets one large array: bounds the float64 copies it makes.
_ADAPT_CHUNK_ROWS = 1 << 16
# Batch size for a tf.data.Dataset of single rows (what keras.layers.Normalization uses).
_DATASET_BATCH = 128


@keras.saving.register_keras_serializable(package="safeops")
class Normalization(keras.layers.Normalization):
    """`keras.layers.Normalization` whose `adapt()` ignores missing values.

    Same arguments as `keras.layers.Normalization` (axis, mean, variance, invert), plus:

    Args:
      missing: "nan" (NaN entries are missing) or "nonfinite" (NaN and +-Inf): the entries
        adapt() leaves out. They come out of the layer as they went in (NaN stays NaN, +-Inf
        stays +-Inf), for a following `MaskedDense(missing=...)` with the same policy.

    `adapt(data)` takes what Keras' adapt takes: a NumPy array or tensor, a `tf.data.Dataset`
    (batched; a dataset of rank-1 elements is batched by 128 as Keras does), a
    `keras.utils.PyDataset`, or an iterable of batches; (x, y) elements use x. For each index of
    the kept axes it computes the mean and the (population) variance of the observed values,
    exactly NumPy's nanmean and nanvar up to rounding. An index with no observed value raises a
    ValueError naming it: there is nothing to standardize it with (drop that column, or pass
    mean and variance).
    """

    def __init__(self, axis=-1, mean=None, variance=None, invert=False, missing="nan", **kwargs):
        _checks.check_missing(missing, "Normalization")
        super().__init__(axis=axis, mean=mean, variance=variance, invert=invert, **kwargs)
        self.missing = missing

    def adapt(self, data):
        if self.input_mean is not None:
            raise ValueError(
                "Normalization: adapt() is for a layer built without mean and variance; this "
                "one was given them"
            )
        batches = _batches(data)
        first = next(batches, None)
        if first is None:
            raise ValueError("Normalization.adapt: the data has no batches")
        if not self.built:
            self.build(first.shape)
        moments = _NanMoments(self._mean_and_var_shape)
        for batch in _chain(first, batches):
            self._check_batch_shape(batch.shape)
            for chunk in _row_chunks(batch, self._reduce_axis):
                moments.add(chunk, self._reduce_axis, self.missing)
        mean, variance = moments.result(self._keep_axis)
        self.adapt_mean.assign(mean)
        self.adapt_variance.assign(variance)
        self.finalize_state()

    def _check_batch_shape(self, shape):
        if len(shape) != len(self._build_input_shape) or any(
            shape[d] != self._build_input_shape[d] for d in self._keep_axis
        ):
            raise ValueError(
                f"Normalization.adapt: a batch of shape {tuple(shape)} does not fit the layer "
                f"built for inputs of shape {tuple(self._build_input_shape)} (axis={self.axis})"
            )

    def get_config(self):
        config = super().get_config()
        config.update(missing=self.missing)
        return config


class _NanMoments:
    """Count, mean and sum of squared deviations of the observed values per kept index,
    merged batch by batch (Chan et al.'s pairwise update), in float64."""

    def __init__(self, shape):
        self.count = np.zeros(shape)
        self.mean = np.zeros(shape)
        self.m2 = np.zeros(shape)

    def add(self, batch, reduce_axis, missing):
        x = np.asarray(batch, dtype=np.float64)
        observed = ~np.isnan(x) if missing == "nan" else np.isfinite(x)
        count = observed.sum(axis=reduce_axis, keepdims=True)
        total = np.where(observed, x, 0.0).sum(axis=reduce_axis, keepdims=True)
        mean = total / np.maximum(count, 1)
        with np.errstate(invalid="ignore", over="ignore"):  # at missing entries, selected away
            m2 = np.where(observed, (x - mean) ** 2, 0.0).sum(axis=reduce_axis)
        count, mean = np.squeeze(count, reduce_axis), np.squeeze(mean, reduce_axis)
        n = self.count + count
        weight = np.divide(count, n, out=np.zeros_like(n), where=n > 0)
        with np.errstate(invalid="ignore"):  # an observed Inf: NaN variance, as np.nanvar
            delta = mean - self.mean
            self.mean = self.mean + delta * weight
            self.m2 = self.m2 + m2 + delta**2 * self.count * weight
        self.count = n

    def result(self, keep_axis):
        never = np.argwhere(self.count == 0)
        if never.size:
            where = ", ".join(str(tuple(int(i) for i in idx)) for idx in never[:10])
            more = f" and {len(never) - 10} more" if len(never) > 10 else ""
            raise ValueError(
                f"Normalization.adapt: no observed value at index {where}{more} of the kept "
                f"axes {keep_axis}: every value there is missing, so there is no mean or "
                "variance to standardize it with (drop that feature, or pass mean and variance)"
            )
        return self.mean, self.m2 / self.count


def _batches(data):
    """An iterator of the batches (x only) in any input keras.layers.Normalization.adapt
    accepts."""
    if isinstance(data, np.ndarray) or tf.is_tensor(data):
        return iter([data])
    if isinstance(data, tf.data.Dataset):
        spec = data.element_spec
        spec = spec[0] if isinstance(spec, tuple) else spec
        if spec.shape.rank == 1:
            data = data.batch(_DATASET_BATCH)
        return (_x_of(b) for b in data)
    if isinstance(data, keras.utils.PyDataset):
        return (_x_of(data[i]) for i in range(len(data)))
    if hasattr(data, "__iter__"):
        return (_x_of(b) for b in data)
    raise TypeError(
        f"Normalization.adapt: unsupported data of type {type(data).__name__}; expected a "
        "NumPy array, a tensor, a tf.data.Dataset, a keras.utils.PyDataset or an iterable of "
        "batches"
    )


def _x_of(batch):
    batch = batch[0] if isinstance(batch, tuple) else batch
    if not hasattr(batch, "shape"):
        raise TypeError(
            f"Normalization.adapt: a batch must be an array or a tensor, got {type(batch).__name__}"
        )
    return batch


def _chain(first, rest):
    yield first
    yield from rest


def _row_chunks(batch, reduce_axis):
    """Slices along axis 0 when it is reduced (the statistics merge exactly across them)."""
    rows = batch.shape[0] if len(batch.shape) else 0
    if 0 not in reduce_axis or rows is None or rows <= _ADAPT_CHUNK_ROWS:
        return [batch]
    return (batch[i : i + _ADAPT_CHUNK_ROWS] for i in range(0, rows, _ADAPT_CHUNK_ROWS))
