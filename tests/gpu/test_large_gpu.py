"""int64-safe indexing: tensors of more than 2^31 elements through safeops.native, on a GPU (the
H200 has the memory) or on the emulated device, whose memory is the host's (about 11 GB for the
where cases, 6 GB and some minutes of emulated GEMM for masked_dense). Every result is checked
in chunks on the host, the elements past 2^31 included. Marked `large` (left out of the
compute-sanitizer runs) and `gigabytes` (left out of the emulated CI run); each test skips
where the device lacks the memory."""

import numpy as np
import pytest
from _backend import chunks, require

from safeops import native

DEV = require()
pytestmark = [pytest.mark.large, pytest.mark.gigabytes]

N = (1 << 31) + (1 << 20) + 3  # past int32 indexing, not a multiple of any vector width
GIB = 1 << 30


def _need(bytes_needed):
    if DEV.free_bytes() < bytes_needed:
        pytest.skip(f"needs {bytes_needed / GIB:.0f} GiB of free {DEV.name} memory")


def _rows(t, idx):
    return np.concatenate([DEV.get(t[i : i + 1]) for i in idx])


@pytest.fixture(scope="module")
def big():
    _need(N * 5 + 2 * GIB)  # condition, x and one float16 output
    return DEV.random_bool(N, seed=0), DEV.random_normal((N,), "float16", seed=0)


def test_large_where_forward(big):
    c, x = big
    out = native.where(c, x, DEV.put(np.float64(-7.0), "float16"))
    DEV.sync()
    assert tuple(out.shape) == (N,)
    for s in chunks(N):  # the last chunk lives past 2^31
        want = np.where(DEV.get(c[s]) != 0, DEV.get(x[s]), -7.0)
        assert np.array_equal(DEV.get(out[s]), want), f"elements {s.start}..{s.stop}"


def test_large_where_backward_full_and_scalar_targets(big):
    c, g = big
    gx, gy = native.where_grad(c, (N,), (), g)
    DEV.sync()
    # gy = sum of g where the condition is false, against a float64 sum in chunks
    want, scale = 0.0, 0.0
    for s in chunks(N):
        cs, gs = DEV.get(c[s]) != 0, DEV.get(g[s])
        assert np.array_equal(DEV.get(gx[s]), np.where(cs, gs, 0.0)), f"gx {s.start}..{s.stop}"
        want += float(gs[~cs].sum())
        scale += float(np.abs(gs).sum())
    assert abs(float(DEV.get(gy)) - want) <= 1e-4 * scale + 0.5  # fp16 result of a float32 sum


def test_large_masked_dense_rows_times_k_past_2_31():
    rows, k, n = (1 << 25) + 3, 65, 16  # rows * K > 2^31
    _need(20 * GIB if DEV.name == "cuda" else rows * (k + n) * 2 + 2 * GIB)
    x = DEV.random_normal((rows, k), "bfloat16", seed=1, nan_frac=0.15)
    rng = np.random.default_rng(1)
    w = DEV.put(rng.standard_normal((k, n)), "bfloat16")
    b = DEV.put(rng.standard_normal(n), "bfloat16")
    y, _ = native.masked_dense(x, w, b, activation="relu", renormalize=True)
    DEV.sync()
    sample = [*range(64), *range(rows - 64, rows), *rng.integers(0, rows, 256)]
    xs = _rows(x, sample)
    wd, bd = DEV.get(w), DEV.get(b)
    m = np.isnan(xs)
    n_obs = k - m.sum(axis=1, keepdims=True)
    s = np.where(n_obs > 0, k / np.maximum(n_obs, 1), 0.0)
    want = np.maximum(s * (np.where(m, 0.0, xs) @ wd) + bd, 0.0)
    got = _rows(y, sample)
    bound = 2e-2 * (s * (np.abs(np.where(m, 0.0, xs)) @ np.abs(wd)) + np.abs(bd)) + 1e-2
    assert np.all(np.abs(got - want) <= bound)
    for part in chunks(rows):
        assert np.isfinite(DEV.get(y[part])).all()
