"""The fused activations of masked_dense, as the C++ table in csrc/kernels/activations.h
defines them (read through safeops._native, which every build installs next to the op
library; importing it loads no TensorFlow and no CUDA context)."""

from safeops import _native

# name -> what the backward reads: "none", "output" (y) or "pre_activation" (z).
SAVED = dict(_native.activation_table())
NAMES = tuple(SAVED)


def saved_for_backward(activation, y, z):
    """What the backward op takes as `saved`: y where the table says the output, otherwise z
    (the pre-activation, or for an activation that reads nothing, the op's empty z)."""
    return y if SAVED[activation] == "output" else z
