"""NaN encodings of the kernel dtypes as bit patterns: quiet and signalling, either sign, small
and large payloads. NumPy only (shared by the TensorFlow tests and tests/gpu).

docs/design.md: every NaN encoding counts as missing. A kernel that tests only the quiet bit, or
only positive NaNs, or converts before testing, misses some of these.
"""

import numpy as np

# dtype name -> (bits, explicit mantissa bits)
_LAYOUT = {"float16": (16, 10), "bfloat16": (16, 7), "float32": (32, 23), "float64": (64, 52)}
_UINT = {16: np.uint16, 32: np.uint32, 64: np.uint64}


def nan_bits(name):
    """Every kind of NaN of the dtype: for each sign, the canonical quiet NaN, quiet NaNs with
    payloads, and signalling NaNs (quiet bit clear) with the smallest and largest payloads."""
    width, man = _LAYOUT[name]
    exponent = ((1 << (width - 1 - man)) - 1) << man
    quiet = 1 << (man - 1)
    payloads = (quiet, quiet | 1, quiet | (quiet - 1), 1, quiet >> 1, quiet - 1)
    bits = [sign | exponent | p for sign in (0, 1 << (width - 1)) for p in payloads]
    return np.array(bits, dtype=_UINT[width])


def random_nan_bits(rng, name, shape):
    """NaNs with random sign and random non-zero mantissa (quiet or signalling)."""
    width, man = _LAYOUT[name]
    exponent = ((1 << (width - 1 - man)) - 1) << man
    mantissa = rng.integers(1, 1 << man, size=shape, dtype=np.uint64)
    sign = rng.integers(0, 2, size=shape, dtype=np.uint64) << np.uint64(width - 1)
    return (sign | np.uint64(exponent) | mantissa).astype(_UINT[width])


def with_nans(values, mask, bits):
    """values (an array of the dtype) with the entries at `mask` replaced by NaN bit patterns
    taken in turn from `bits`."""
    out = np.array(values)
    raw = out.view(_UINT[out.dtype.itemsize * 8])
    raw[mask] = np.resize(bits, int(mask.sum()))
    return out


def bits_of(a):
    """The bit patterns of a float array, as unsigned integers of its width."""
    a = np.asarray(a)
    return a.view({2: np.uint16, 4: np.uint32, 8: np.uint64}[a.itemsize])
