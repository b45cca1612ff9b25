"""The device tests/gpu run the CUDA kernels on, chosen once, from the installed build:

* a GPU build (SAFEOPS_CUDA=ON) with torch and a CUDA device: torch CUDA tensors;
* an emulated build (SAFEOPS_CUDA_EMULATE=ON): the same kernels compiled for the host
  (cuda/emulation), on NumPy buffers of the emulated device (safeops.native.EmulatedDeviceArray).

Both backends have the interface below, so every test runs unchanged on either; everything
device-specific the tests need lives here. Without either, the tests skip with the reason.
No TensorFlow (see conftest.py).
"""

import numpy as np

POISON = 0x5A  # byte of unwritten outputs: finite in every dtype, never a test value
GUARD_BYTES = 64  # poisoned bytes after each `poisoned` output (stray writes past its end)
_INTS = {1: np.int8, 2: np.int16, 4: np.int32, 8: np.int64}  # bit patterns by item size


def _name(dtype):
    """A select_cases.DType, a dtype name, or None (bool)."""
    return "bool" if dtype is None else getattr(dtype, "name", dtype)


def np_dtype(dtype):
    """The NumPy dtype of a kernel dtype (ml_dtypes.bfloat16 for bfloat16)."""
    if _name(dtype) == "bfloat16":
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(_name(dtype))


class _Arrays:
    """What both backends share: exact bit patterns into a device array."""

    def put_bits(self, bits, dtype=None, offset=0):
        """A device array of `dtype` holding exactly `bits` (integers of its width, e.g. uint16
        for float16, uint8 for bool; `offset` as in put): NaN payloads, signalling NaNs, -0.0
        and bool bytes other than 0 and 1 survive no conversion, so they travel as integers."""
        ints = np.asarray(bits)
        ints = ints.view(_INTS[ints.itemsize])
        return self.put(ints, ints.dtype.name, offset).view(self._dtype(dtype))


class TorchArrays(_Arrays):
    """NumPy float64/bool data as torch CUDA tensors of a kernel dtype, and back (exactly)."""

    name = "cuda"

    def __init__(self, torch):
        self.torch = torch
        self.device = torch.device("cuda")

    def _dtype(self, dtype):
        return getattr(self.torch, _name(dtype))

    def put(self, a, dtype=None, offset=0):
        """`a` as a tensor of `dtype` that starts `offset` elements into a larger allocation
        (offset 1: a pointer not aligned for 16-byte vectors)."""
        host = np.array(a, order="C")  # a writable copy; keeps 0-d arrays 0-d
        t = self.torch.from_numpy(host).to(self.device, self._dtype(dtype))
        if offset == 0:
            return t
        storage = self.torch.empty(t.numel() + offset, dtype=t.dtype, device=self.device)
        view = storage[offset:].view(t.shape)
        view.copy_(t)
        return view

    def get(self, t):
        return t.detach().to("cpu", self.torch.float64).numpy()

    def full(self, n, value, dtype):
        return self.torch.full((n,), value, dtype=self._dtype(dtype), device=self.device)

    def poisoned(self, shape, dtype, offset=0):
        """An output buffer of `shape` filled with POISON bytes (`offset` as in put), followed
        by a guard zone of GUARD_BYTES more (see guard_intact)."""
        size = int(np.prod(shape, dtype=np.int64))
        itemsize = self.torch.empty(0, dtype=self._dtype(dtype)).element_size()
        raw = self.workspace((size + offset) * itemsize + GUARD_BYTES)
        return raw[: (size + offset) * itemsize].view(self._dtype(dtype))[offset:].view(shape)

    def guard_intact(self, t):
        """No write past the end of a `poisoned` buffer."""
        raw = t._base  # the uint8 allocation
        end = t.data_ptr() - raw.data_ptr() + t.numel() * t.element_size()
        return bool((raw[end:] == POISON).all())

    def workspace(self, nbytes, fill=POISON):
        """Scratch of `nbytes` (at least 1) filled with `fill` bytes: kernels must not rely on
        its contents."""
        return self.torch.full((max(nbytes, 1),), fill, dtype=self.torch.uint8, device=self.device)

    def host(self, t):
        """The same data in host memory (not a device array)."""
        return t.cpu()

    def ptr(self, t):
        return t.data_ptr()

    def dtype_name(self, t):
        return str(t.dtype).replace("torch.", "")

    def stream(self):
        return self.torch.cuda.current_stream().cuda_stream

    def bits(self, t):
        """The tensor's bit patterns as signed integers of its width (for bit-identical
        comparisons, NaN payloads and bool bytes included)."""
        ints = self._dtype(np.dtype(_INTS[t.element_size()]).name)
        return t.contiguous().view(ints).cpu().numpy()

    def sync(self):
        self.torch.cuda.synchronize()

    def free_bytes(self):
        return self.torch.cuda.mem_get_info()[0]

    def relu_addmm(self, b, x, w, tf32):
        """relu(b + x @ w) by the peer library (cuBLAS through torch) with float32
        accumulation and TF32 as asked, as float64 NumPy; None where no peer runs."""
        mm = self.torch.backends.cuda.matmul
        names = ("allow_tf32", "allow_fp16_reduced_precision_reduction",
                 "allow_bf16_reduced_precision_reduction")  # fmt: skip
        prev = {n: getattr(mm, n) for n in names}
        try:
            mm.allow_tf32 = tf32
            mm.allow_fp16_reduced_precision_reduction = False
            mm.allow_bf16_reduced_precision_reduction = False
            return self.get(self.torch.relu(self.torch.addmm(b, x, w)))
        finally:
            for n, v in prev.items():
                setattr(mm, n, v)

    def cupy(self):
        import pytest

        return pytest.importorskip("cupy")

    def random_bool(self, n, seed):
        gen = self.torch.Generator(device="cuda").manual_seed(seed)
        out = self.torch.empty(n, dtype=self.torch.uint8, device=self.device)
        return out.random_(0, 2, generator=gen).bool()

    def random_normal(self, shape, dtype, seed, nan_frac=0.0):
        gen = self.torch.Generator(device="cuda").manual_seed(seed)
        t = self.torch.empty(shape, dtype=self._dtype(dtype), device=self.device)
        t.normal_(generator=gen)
        if nan_frac:
            t[self.torch.rand(shape, device=self.device, generator=gen) < nan_frac] = float("nan")
        return t


class EmulatedArrays(_Arrays):
    """The same interface on NumPy buffers of the emulated CUDA device."""

    name = "emulated"

    def __init__(self, native):
        self.device_array = native.EmulatedDeviceArray

    _dtype = staticmethod(np_dtype)

    def put(self, a, dtype=None, offset=0):
        host = np.asarray(a).astype(self._dtype(dtype))
        storage = np.empty(host.size + offset, host.dtype).view(self.device_array)
        view = storage[offset:].reshape(host.shape)
        view[...] = host
        return view

    def get(self, t):
        # A signalling NaN (put_bits) converts to a quiet one, as on the GPU; the FPU's
        # invalid flag that NumPy turns into a warning says nothing here.
        with np.errstate(invalid="ignore"):
            return np.asarray(t).astype(np.float64)

    def full(self, n, value, dtype):
        return np.full(n, value, self._dtype(dtype)).view(self.device_array)

    def poisoned(self, shape, dtype, offset=0):
        size = int(np.prod(shape, dtype=np.int64))
        nbytes = (size + offset) * self._dtype(dtype).itemsize
        raw = np.full(nbytes + GUARD_BYTES, POISON, np.uint8)
        return raw[:nbytes].view(self._dtype(dtype))[offset:].reshape(shape).view(self.device_array)

    def guard_intact(self, t):
        raw = t
        while raw.base is not None:
            raw = raw.base
        end = self.ptr(t) - raw.__array_interface__["data"][0] + t.nbytes
        return bool((raw[end:] == POISON).all())

    def workspace(self, nbytes, fill=POISON):
        return np.full(max(nbytes, 1), fill, np.uint8).view(self.device_array)

    def host(self, t):
        return np.asarray(t)

    def ptr(self, t):
        return t.__array_interface__["data"][0]

    def dtype_name(self, t):
        return str(t.dtype)

    def stream(self):
        return 0

    def bits(self, t):
        return np.asarray(t).view(_INTS[t.itemsize])

    def sync(self):
        pass  # emulated launches finish before they return

    def free_bytes(self):
        with open("/proc/meminfo") as f:
            info = dict(line.split(":", 1) for line in f)
        return int(info["MemAvailable"].split()[0]) * 1024

    def relu_addmm(self, b, x, w, tf32):
        return None

    def cupy(self):
        import pytest

        pytest.skip("CuPy arrays live on a GPU; the emulated device has NumPy buffers")

    # Big random arrays are made in chunks: no float64 temporary of their size.
    def random_bool(self, n, seed):
        rng = np.random.default_rng(seed)
        out = np.empty(n, np.uint8)
        for s in chunks(n):
            out[s] = rng.integers(0, 2, s.stop - s.start, dtype=np.uint8)
        return out.view(np.bool_).view(self.device_array)

    def random_normal(self, shape, dtype, seed, nan_frac=0.0):
        rng = np.random.default_rng(seed)
        out = np.empty(shape, self._dtype(dtype))
        flat = out.reshape(-1)
        for s in chunks(flat.size):
            v = rng.standard_normal(s.stop - s.start, dtype=np.float32)
            if nan_frac:
                v[rng.random(v.size, dtype=np.float32) < nan_frac] = np.nan
            flat[s] = v.astype(out.dtype)
        return out.view(self.device_array)


def chunks(n, size=1 << 26):
    """Slices of [0, n) of `size` elements (the last one shorter)."""
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


def _select():
    """(backend, None) or (None, why the GPU tests skip)."""
    from safeops import native

    if native.EMULATED:
        return EmulatedArrays(native), None
    try:
        import torch
    except ImportError:
        return None, "tests/gpu need torch and a GPU, or an emulated build (SAFEOPS_CUDA_EMULATE)"
    if not torch.cuda.is_available():
        return None, "tests/gpu need a CUDA device, or an emulated build (SAFEOPS_CUDA_EMULATE)"
    if not native.CUDA:
        return None, "safeops was built without CUDA kernels (SAFEOPS_CUDA=OFF)"
    return TorchArrays(torch), None


_chosen = []


def current():
    """(backend, None) or (None, why the GPU tests skip); chosen on first use (after
    tests/conftest.py has checked that a built safeops is installed)."""
    if not _chosen:
        _chosen.append(_select())
    return _chosen[0]


def require():
    """The backend, or a skip of the calling test module with the reason."""
    backend, reason = current()
    if backend is None:
        import pytest

        pytest.skip(reason, allow_module_level=True)
    return backend
