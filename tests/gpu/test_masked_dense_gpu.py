"""GPU tests of the masked_dense CUDA kernels (forward and backward), through safeops.native on
the device of _backend.py (torch CUDA tensors, or the emulated device); no TensorFlow. Every
result is compared with the float64 reference of _reference.py within error bounds derived from
the dtype (see there).

The kernels are driven through the raw bindings with outputs and workspace poisoned (NaN, 0xFF
bytes) and guard zones around the outputs, so unwritten elements, stray writes and reads of
unwritten workspace all show; the public wrappers are tested on top. Every kernel here uses
shared memory (marker `shared_memory`); `large` and `bfloat16` mark what the compute-sanitizer
runs of tools/gpu_check.sh leave out.
"""

import math

import _reference as ref
import numpy as np
import pytest
from _backend import require

from safeops import native

DEV = require()
pytestmark = pytest.mark.shared_memory
# (dtype, allow_tf32): float32 runs on TF32 tensor cores or on the exact SIMT path.
VARIANTS = [
    ("float16", True),
    pytest.param("bfloat16", True, marks=pytest.mark.bfloat16),
    ("float32", False),
    ("float32", True),
    ("float64", True),
]
VARIANT_IDS = ["f16", "bf16", "f32", "tf32", "f64"]
# (rows, K, N): K and N off the tile sizes (K=1, 3, 17, 130; N=1, 5, 257), several row and
# column tiles, K tails, the 64-wide tiles (N or K <= 64) and the 128-wide ones.
SHAPES = [(1, 1, 1), (37, 1, 5), (50, 3, 1), (300, 17, 64), (129, 64, 257), (200, 130, 16)]
GUARD = 64  # poisoned elements before/after each output


def make_inputs(rows, K, N, seed, nan_frac=0.15, inf_frac=0.0):
    """float64 x, w, b, g: ~nan_frac NaN in x, rows 1 and rows-1 fully missing, feature K // 2
    never observed, and optionally +-Inf entries."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, K))
    x[rng.random((rows, K)) < nan_frac] = np.nan
    if inf_frac:
        sel = rng.random((rows, K)) < inf_frac
        x[sel] = np.where(rng.random(int(sel.sum())) < 0.5, np.inf, -np.inf)
    if rows >= 3:
        x[1, :] = np.nan
        x[rows - 1, :] = np.nan
    if K >= 2 and rows >= 2:
        x[:, K // 2] = np.nan
    w = rng.standard_normal((K, N)) / math.sqrt(K)
    b = 0.5 * rng.standard_normal(N)
    g = rng.standard_normal((rows, N))
    return x, w, b, g


class Buf:
    """A device tensor at `offset` elements into a NaN-poisoned buffer with GUARD elements
    either side (offset 1 makes the pointer misaligned for 16-byte vectors)."""

    def __init__(self, shape, dtype, offset=0, data=None):
        self.n = int(np.prod(shape)) if len(shape) else 1
        self.offset = offset
        self.buf = DEV.full(GUARD + offset + self.n + GUARD, float("nan"), dtype)
        self.t = self.buf[GUARD + offset : GUARD + offset + self.n].reshape(shape)
        if data is not None:
            self.t[...] = DEV.put(data, dtype)

    @property
    def ptr(self):
        return DEV.ptr(self.t) if self.n else 0

    def check_guards(self, what):
        lo = DEV.get(self.buf[: GUARD + self.offset])
        hi = DEV.get(self.buf[GUARD + self.offset + self.n :])
        assert np.isnan(lo).all() and np.isnan(hi).all(), f"{what}: write outside the output"

    def numpy(self):
        return DEV.get(self.t)


def workspace(nbytes):
    # 0xFF bytes read as NaN in every float type: reading unwritten workspace poisons results.
    return DEV.workspace(nbytes, fill=255)


def run_forward(x, w, b, act, renorm, missing, dtype, tf32, offset=0, u=None):
    """x, w, b, u (indicator weights): Buf or None. Returns (y, z) Bufs (z None unless
    gelu/silu)."""
    rows, K = x.t.shape
    N = w.t.shape[1]
    y = Buf((rows, N), dtype, offset)
    z = Buf((rows, N), dtype, offset) if act in ref.SAVES_Z else None
    flags = (dtype, act, renorm, missing, tf32)
    nbytes = native._native.cuda_masked_dense_workspace(rows, K, N, *flags, u is not None)
    ws = workspace(nbytes)
    native._native.cuda_masked_dense(
        x.ptr, w.ptr, b.ptr if b is not None else 0, y.ptr, z.ptr if z is not None else 0,
        DEV.ptr(ws), rows, K, N, *flags, DEV.stream(), u.ptr if u is not None else 0,
    )  # fmt: skip
    DEV.sync()
    y.check_guards("y")
    if z is not None:
        z.check_guards("z")
    return y, z


def run_backward(x, w, saved, g, act, renorm, missing, dtype, tf32, offset=0, with_db=True,
                 with_du=False):  # fmt: skip
    """(dx, dw, db) Bufs, and du (the indicator weights' gradient) after them with with_du."""
    rows, K = x.t.shape
    N = w.t.shape[1]
    dx = Buf((rows, K), dtype, offset)
    dw = Buf((K, N), dtype, offset)
    db = Buf((N,), dtype, offset) if with_db else None
    du = Buf((K, N), dtype, offset) if with_du else None
    flags = (dtype, act, renorm, missing, tf32)
    ws = workspace(native._native.cuda_masked_dense_grad_workspace(rows, K, N, *flags, with_du))
    native._native.cuda_masked_dense_grad(
        x.ptr, w.ptr, saved.ptr if saved is not None else 0, g.ptr, dx.ptr, dw.ptr,
        db.ptr if db is not None else 0, DEV.ptr(ws), rows, K, N, *flags, DEV.stream(),
        du.ptr if du is not None else 0,
    )  # fmt: skip
    DEV.sync()
    for name, o in (("dx", dx), ("dw", dw), ("db", db), ("du", du)):
        if o is not None:
            o.check_guards(name)
    return (dx, dw, db, du) if with_du else (dx, dw, db)


def check_case(rows, K, N, dtype, tf32, act, renorm, missing="nan", seed=0, offset=0,
               nan_frac=0.15, inf_frac=0.0, backward=True):  # fmt: skip
    """Forward and backward of one case against the reference."""
    x64, w64, b64, g64 = make_inputs(rows, K, N, seed, nan_frac, inf_frac)
    x = Buf((rows, K), dtype, offset, x64)
    w = Buf((K, N), dtype, offset, w64)
    b = Buf((N,), dtype, offset, b64)
    xr, wr, br = x.numpy(), w.numpy(), b.numpy()  # the inputs as rounded to the dtype
    where = f"{dtype}{'/tf32' if tf32 else ''} {act} renorm={renorm} {missing} {(rows, K, N)}"

    y, z = run_forward(x, w, b, act, renorm, missing, dtype, tf32, offset)
    yr, zr = ref.forward(xr, wr, br, act, renorm, missing)
    ty, tz = ref.forward_bounds(xr, wr, br, act, renorm, missing, dtype, tf32)
    ref.check_close(y.numpy(), yr, ty, f"y {where}")
    if z is not None:
        ref.check_close(z.numpy(), zr, tz, f"z {where}")
    if not backward:
        return

    # The backward gets the saved tensor as the forward would have stored it (in the dtype).
    saved = None
    if act != "linear":
        saved = Buf((rows, N), dtype, offset, zr if act in ref.SAVES_Z else yr)
    g = Buf((rows, N), dtype, offset, g64)
    sr = saved.numpy() if saved is not None else None
    gr = g.numpy()
    dx, dw, db = run_backward(x, w, saved, g, act, renorm, missing, dtype, tf32, offset)
    want = ref.backward(xr, wr, sr, gr, act, renorm, missing)
    tols = ref.backward_bounds(xr, wr, sr, gr, act, renorm, missing, dtype, tf32)
    got = (dx.numpy(), dw.numpy(), db.numpy())
    for name, out, wv, tol in zip(("dx", "dw", "db"), got, want, tols, strict=True):
        ref.check_close(out, wv, tol, f"{name} {where}")
    if inf_frac == 0.0 or missing == "nonfinite":
        # Missing entries never make a gradient NaN; they get an exact +0 in dx.
        for name, out in zip(("dx", "dw", "db"), got, strict=True):
            assert np.all(np.isfinite(out)), f"{name} {where}: non-finite gradient"
        m = ref.missing_mask(xr, missing)
        assert np.all(got[0][m] == 0) and not np.signbit(got[0][m]).any()
    return got


# ---- forward and backward against the reference ------------------------------------------------


@pytest.mark.parametrize("renorm", [False, True], ids=["plain", "renorm"])
@pytest.mark.parametrize("act", ref.ACTIVATIONS)
@pytest.mark.parametrize("dtype,tf32", VARIANTS, ids=VARIANT_IDS)
def test_matches_reference(dtype, tf32, act, renorm):
    for i, (rows, K, N) in enumerate(SHAPES):
        check_case(rows, K, N, dtype, tf32, act, renorm, seed=100 + i)


@pytest.mark.parametrize("dtype,tf32", VARIANTS, ids=VARIANT_IDS)
def test_multi_chunk_reduction(dtype, tf32):
    # Enough rows for several dW row chunks and many db chunks; K > 128 and N > 128 tiles.
    check_case(3000, 300, 200, dtype, tf32, "gelu", True, seed=7)


@pytest.mark.parametrize("missing", ["nan", "nonfinite"])
@pytest.mark.parametrize("act", ref.ACTIVATIONS)
@pytest.mark.parametrize("dtype,tf32", VARIANTS, ids=VARIANT_IDS)
def test_inf_is_missing_only_under_nonfinite(dtype, tf32, act, missing):
    # Under "nan", +-Inf is data and propagates (the reference follows IEEE: inf * 0 = nan);
    # under "nonfinite" it is missing. The Inf backward is compared where it is well defined:
    # linear and relu, whose dz is g or an exact 0 (a tiny dz rounded to 0 would turn
    # inf * dz from Inf into NaN).
    backward = missing == "nonfinite" or act in ("linear", "relu")
    check_case(64, 17, 33, dtype, tf32, act, True, missing, seed=11, inf_frac=0.05,
               backward=backward)  # fmt: skip
    if missing == "nonfinite":
        check_case(64, 17, 33, dtype, tf32, act, False, missing, seed=12, inf_frac=0.05)


@pytest.mark.parametrize("offset", [1, 3])
@pytest.mark.parametrize("dtype,tf32", VARIANTS, ids=VARIANT_IDS)
def test_unaligned_pointers(dtype, tf32, offset):
    # Every input and output starts `offset` elements past an aligned address: the kernels
    # must fall back to element loads and stores (also with K, N multiples of the vectors).
    for rows, K, N in [(70, 64, 128), (33, 17, 65)]:
        check_case(rows, K, N, dtype, tf32, "silu", True, seed=13, offset=offset)
        check_case(rows, K, N, dtype, tf32, "relu", False, seed=14, offset=offset)


@pytest.mark.parametrize("dtype,tf32", VARIANTS, ids=VARIANT_IDS)
def test_no_bias_and_clean_rows(dtype, tf32):
    rows, K, N = 40, 9, 12
    x64, w64, _, g64 = make_inputs(rows, K, N, seed=15, nan_frac=0.0)
    x = Buf((rows, K), dtype, 0, x64)
    w = Buf((K, N), dtype, 0, w64)
    y, _ = run_forward(x, w, None, "tanh", False, "nan", dtype, tf32)
    yr, _ = ref.forward(x.numpy(), w.numpy(), None, "tanh", False, "nan")
    ty, _ = ref.forward_bounds(x.numpy(), w.numpy(), None, "tanh", False, "nan", dtype, tf32)
    ref.check_close(y.numpy(), yr, ty, "y without bias")
    g = Buf((rows, N), dtype, 0, g64)
    saved = Buf((rows, N), dtype, 0, yr)
    dx, dw, db = run_backward(x, w, saved, g, "tanh", False, "nan", dtype, tf32, with_db=False)
    assert db is None
    want = ref.backward(x.numpy(), w.numpy(), saved.numpy(), g.numpy(), "tanh", False, "nan")
    tols = ref.backward_bounds(
        x.numpy(), w.numpy(), saved.numpy(), g.numpy(), "tanh", False, "nan", dtype, tf32
    )
    ref.check_close(dx.numpy(), want[0], tols[0], "dx without bias")
    ref.check_close(dw.numpy(), want[1], tols[1], "dw without bias")


@pytest.mark.parametrize("dtype,tf32", VARIANTS, ids=VARIANT_IDS)
def test_fully_missing_rows_and_never_observed_feature(dtype, tf32):
    rows, K, N = 20, 6, 10
    for renorm in (False, True):
        dx, dw, _ = check_case(rows, K, N, dtype, tf32, "sigmoid", renorm, seed=16)
        assert np.all(dx[1] == 0) and np.all(dx[rows - 1] == 0)
        assert np.all(dw[K // 2] == 0)  # feature K // 2 is never observed


@pytest.mark.parametrize("dtype,tf32", VARIANTS, ids=VARIANT_IDS)
def test_zero_rows(dtype, tf32):
    K, N = 5, 7
    x = Buf((0, K), dtype)
    w = Buf((K, N), dtype, 0, np.ones((K, N)))
    b = Buf((N,), dtype, 0, np.ones(N))
    y, z = run_forward(x, w, b, "gelu", True, "nan", dtype, tf32)
    assert y.t.shape == (0, N) and z.t.shape == (0, N)
    g = Buf((0, N), dtype)
    saved = Buf((0, N), dtype)
    dx, dw, db = run_backward(x, w, saved, g, "gelu", True, "nan", dtype, tf32)
    assert dx.t.shape == (0, K)
    assert np.all(dw.numpy() == 0) and np.all(db.numpy() == 0)  # written, not left poisoned


@pytest.mark.large
@pytest.mark.parametrize("dtype,tf32", VARIANTS, ids=VARIANT_IDS)
def test_deterministic(dtype, tf32):
    rows, K, N = 6000, 96, 200
    x64, w64, b64, g64 = make_inputs(rows, K, N, seed=17)
    x, w, b = (Buf(a.shape, dtype, 0, a) for a in (x64, w64, b64))
    g = Buf((rows, N), dtype, 0, g64)
    runs = []
    for _ in range(2):
        y, z = run_forward(x, w, b, "gelu", True, "nan", dtype, tf32)
        dx, dw, db = run_backward(x, w, z, g, "gelu", True, "nan", dtype, tf32)
        runs.append([DEV.bits(o.t) for o in (y, z, dx, dw, db)])
    for name, a, c in zip(("y", "z", "dx", "dw", "db"), runs[0], runs[1], strict=True):
        assert np.array_equal(a, c), f"{name}: runs differ"


# ---- clean data: the same as torch (cuBLAS) ------------------------------------------------------


@pytest.mark.large
@pytest.mark.parametrize("dtype,tf32", VARIANTS, ids=VARIANT_IDS)
@pytest.mark.parametrize("shape", [(4096, 256, 512), (1000, 1024, 300)])
def test_clean_data_equals_torch_relu_addmm(dtype, tf32, shape):
    rows, K, N = shape
    rng = np.random.default_rng(18)
    x = DEV.put(rng.standard_normal((rows, K)), dtype)
    w = DEV.put(rng.standard_normal((K, N)) / math.sqrt(K), dtype)
    b = DEV.put(0.5 * rng.standard_normal(N), dtype)
    y, z = native.masked_dense(x, w, b, activation="relu", allow_tf32=tf32)
    assert z is None
    y, (xd, wd, bd) = DEV.get(y), (DEV.get(t) for t in (x, w, b))
    truth = np.maximum(bd + xd @ wd, 0.0)
    bound = np.abs(bd) + np.abs(xd) @ np.abs(wd)
    ro, rg = ref.r_out(dtype), ref.r_gemm(dtype, K, tf32)
    tol = ro * np.abs(truth) + rg * bound
    assert (np.abs(y - truth) <= tol).all(), "safeops vs float64"
    # cuBLAS (float32 accumulation, TF32 as asked) has its own rounding: allow both errors.
    want = DEV.relu_addmm(b, x, w, tf32)
    if want is not None:  # the emulated device has no cuBLAS
        assert (np.abs(y - want) <= 2 * tol + ro * np.abs(want)).all()


# ---- the public wrappers ---------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["bfloat16", "float32"])
def test_wrappers_rank3_input(dtype):
    x64, w64, b64, g64 = make_inputs(3 * 41, 19, 23, seed=19)
    x = DEV.put(x64.reshape(3, 41, 19), dtype)
    w = DEV.put(w64, dtype)
    b = DEV.put(b64, dtype)
    g = DEV.put(g64.reshape(3, 41, 23), dtype)
    y, z = native.masked_dense(x, w, b, activation="gelu", renormalize=True)
    assert y.shape == (3, 41, 23) and z.shape == (3, 41, 23) and DEV.dtype_name(y) == dtype
    xr, wr, br = (DEV.get(t) for t in (x.reshape(-1, 19), w, b))
    yr, zr = ref.forward(xr, wr, br, "gelu", True, "nan")
    ty, tz = ref.forward_bounds(xr, wr, br, "gelu", True, "nan", dtype, True)
    ref.check_close(DEV.get(y).reshape(-1, 23), yr, ty, "y rank 3")
    dx, dw, db = native.masked_dense_grad(x, w, z, g, activation="gelu", renormalize=True)
    assert dx.shape == x.shape and dw.shape == w.shape and db.shape == b.shape
    sr, gr = DEV.get(z).reshape(-1, 23), DEV.get(g).reshape(-1, 23)
    want = ref.backward(xr, wr, sr, gr, "gelu", True, "nan")
    tols = ref.backward_bounds(xr, wr, sr, gr, "gelu", True, "nan", dtype, True)
    got = (DEV.get(dx).reshape(-1, 19), DEV.get(dw), DEV.get(db))
    for name, out, wv, tol in zip(("dx", "dw", "db"), got, want, tols, strict=True):
        ref.check_close(out, wv, tol, f"{name} rank 3")
    _, _, no_db = native.masked_dense_grad(x, w, z, g, activation="gelu", has_bias=False)
    assert no_db is None


def test_wrapper_errors():
    def zeros(*shape, dtype="float32"):
        return DEV.put(np.zeros(shape), dtype)

    x = zeros(4, 3)
    w = zeros(3, 2)
    with pytest.raises(TypeError, match="TensorFlow op"):
        native.masked_dense(np.zeros((4, 3), np.float32), np.zeros((3, 2), np.float32))
    with pytest.raises(ValueError, match="activation"):
        native.masked_dense(x, w, activation="elu")
    with pytest.raises(ValueError, match="missing"):
        native.masked_dense(x, w, missing="inf")
    with pytest.raises(ValueError, match="kernel"):
        native.masked_dense(x, zeros(4, 2))
    with pytest.raises(ValueError, match="rank"):
        native.masked_dense(zeros(3), w)
    with pytest.raises(ValueError, match="bias"):
        native.masked_dense(x, w, zeros(3))
    with pytest.raises(TypeError, match="dtype"):
        native.masked_dense(x, zeros(3, 2, dtype="float64"))
    with pytest.raises(ValueError, match="saved"):
        native.masked_dense_grad(x, w, None, zeros(4, 2), activation="relu")
    with pytest.raises(ValueError, match="grad"):
        native.masked_dense_grad(x, w, None, zeros(4, 3))


def test_cupy_arrays():
    cupy = DEV.cupy()
    x64, w64, b64, _ = make_inputs(50, 10, 20, seed=20)
    for dtype in ("float16", "float32"):
        x, w, b = (cupy.asarray(a.astype(dtype)) for a in (x64, w64, b64))
        y, _ = native.masked_dense(x, w, b, activation="relu", renormalize=True)
        assert isinstance(y, cupy.ndarray) and y.dtype == dtype
        xr, wr, br = (cupy.asnumpy(a).astype(np.float64) for a in (x, w, b))
        yr, _ = ref.forward(xr, wr, br, "relu", True, "nan")
        ty, _ = ref.forward_bounds(xr, wr, br, "relu", True, "nan", dtype, True)
        ref.check_close(cupy.asnumpy(y), yr, ty, f"cupy {dtype}")
