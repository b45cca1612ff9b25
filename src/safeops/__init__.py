"""safeops: train TensorFlow models on data with missing values (NaN) without NaN gradients.

- `safe_where`: tf.where whose gradient is an exact zero in the branch not taken, with the
  "double where" automated for callable branches.
- `fill_missing`: replace NaN (or non-finite) entries, with an exact-zero gradient there.
- `masked_dense` / `layers.MaskedDense`: a dense layer that treats NaN inputs as missing,
  forward and backward.

Importing safeops registers its TensorFlow ops (needed before loading a SavedModel that uses
them). Without TensorFlow installed, or in a build without it (SAFEOPS_TF=OFF), only
`safeops.native` (the kernels on NumPy arrays and CUDA device arrays) is available.
"""

import importlib.util

from safeops._build_info import TF_VERSION as _BUILT_WITH_TF
from safeops._build_info import VERSION as __version__

_TF_API = ("safe_where", "fill_missing", "masked_dense", "layers")

if _BUILT_WITH_TF and importlib.util.find_spec("tensorflow") is not None:
    from safeops import layers
    from safeops.dense import masked_dense
    from safeops.missing import fill_missing
    from safeops.where import safe_where
else:

    def __getattr__(name):
        if name in _TF_API:
            why = (
                "needs TensorFlow, which is not installed"
                if _BUILT_WITH_TF
                else "is not in this build of safeops (built with SAFEOPS_TF=OFF)"
            )
            raise ImportError(f"safeops.{name} {why}")
        raise AttributeError(f"module 'safeops' has no attribute {name!r}")


__all__ = ["__version__", "fill_missing", "layers", "masked_dense", "safe_where"]
