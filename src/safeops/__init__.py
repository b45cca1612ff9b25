"""safeops: train TensorFlow models on data with missing values (NaN) without NaN gradients.

- `safe_where`: tf.where whose gradient is an exact zero in the branch not taken, with the
  "double where" automated for callable branches.
- `fill_missing`: replace NaN (or non-finite) entries, with an exact-zero gradient there.
- `masked_dense` / `layers.MaskedDense`: a dense layer that treats NaN inputs as missing,
  forward and backward.
- `explain_paths`: which implementation each safeops layer runs under a model's settings.

Importing safeops registers its TensorFlow ops (needed before loading a SavedModel that uses
them). Without TensorFlow installed, or in a build without it (SAFEOPS_TF=OFF), only
`safeops.native` (the kernels on NumPy arrays and CUDA device arrays) is available.
"""

import importlib
import importlib.util
import os
import sys

from safeops._build_info import TF_VERSION as _BUILT_WITH_TF
from safeops._build_info import VERSION as __version__

_TF_API = ("safe_where", "fill_missing", "masked_dense", "layers", "explain_paths")

# The command line imports this package before safeops/__main__.py reads its arguments: as
# `python -m safeops`, sys.argv[0] is "-m" while runpy locates that module; as the installed
# `safeops` script (pyproject.toml, [project.scripts]), it is that script's path. The command
# line then imports TensorFlow only for the commands that run it, so `--help` and `--version`
# take a fraction of a second instead of TensorFlow's start-up (7.6 s measured on a 2-core
# machine).
_DEFERRED = sys.argv[:1] == ["-m"] or os.path.basename(sys.argv[0] if sys.argv else "") == "safeops"


def _tf_api():
    # import_module, not `from safeops import layers`: that form looks the name up on this
    # package first, which would call __getattr__ again.
    layers = importlib.import_module("safeops.layers")
    from safeops.dense import masked_dense
    from safeops.missing import fill_missing
    from safeops.paths import explain_paths
    from safeops.where import safe_where

    return {
        "safe_where": safe_where,
        "fill_missing": fill_missing,
        "masked_dense": masked_dense,
        "layers": layers,
        "explain_paths": explain_paths,
    }


_HAVE_TF = bool(_BUILT_WITH_TF) and importlib.util.find_spec("tensorflow") is not None

if _HAVE_TF and not _DEFERRED:
    globals().update(_tf_api())
else:

    def __getattr__(name):
        if name in _TF_API:
            if _HAVE_TF:  # deferred by the command line: load on first use
                globals().update(_tf_api())
                return globals()[name]
            why = (
                "needs TensorFlow, which is not installed"
                if _BUILT_WITH_TF
                else "is not in this build of safeops (built with SAFEOPS_TF=OFF)"
            )
            raise ImportError(f"safeops.{name} {why}")
        raise AttributeError(f"module 'safeops' has no attribute {name!r}")


__all__ = ["__version__", "explain_paths", "fill_missing", "layers", "masked_dense", "safe_where"]
