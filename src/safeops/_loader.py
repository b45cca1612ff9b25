"""Loads the TensorFlow op library once, after checking the TensorFlow it was built for."""

import os

import tensorflow as tf

from safeops import _build_info

_LIBRARY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_safeops_ops.so")


def _minor(version):
    return tuple(version.split(".")[:2])


def _check_tensorflow():
    built, running = _build_info.TF_VERSION, tf.__version__
    if not built:
        raise ImportError(
            "safeops was built without TensorFlow (SAFEOPS_TF=OFF): only safeops.native is "
            "available; reinstall with `pip install safeops` to get the TensorFlow ops"
        )
    if _minor(built) != _minor(running):
        raise ImportError(
            f"safeops was built against TensorFlow {built} but TensorFlow {running} is "
            f"installed; the op library's C++ ABI only matches TensorFlow "
            f"{'.'.join(_minor(built))}.x. Install tensorflow=={'.'.join(_minor(built))}.* "
            "or rebuild safeops against the installed TensorFlow (from its source: "
            "`pip install --no-build-isolation .`, see README.md, Building)"
        )


_check_tensorflow()
ops = tf.load_op_library(_LIBRARY)
