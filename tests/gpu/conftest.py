"""Fixtures of the CUDA tests: safeops.native on torch CUDA tensors, without TensorFlow.

They run on the GPU machine (Python, torch, CuPy, no TensorFlow): tools/gpu_check.sh builds
safeops with -DSAFEOPS_TF=OFF and runs `pytest tests/gpu` against that build. pytest loads
tests/conftest.py for these tests too; it imports neither TensorFlow nor safeops, so nothing
on this path imports TensorFlow. (Where TensorFlow is installed, `import safeops` registers
its ops, as the package always does; these tests never use them.)

The tests skip without torch, without a CUDA device, or with a safeops built without CUDA.
SAFEOPS_GPU_TESTS_ON_CPU=1 runs the same checks with NumPy arrays through the CPU kernels
instead (the tests that need raw device pointers skip): a check of the tests themselves on a
machine without a GPU.
"""

import os

import numpy as np
import pytest

ON_CPU = os.environ.get("SAFEOPS_GPU_TESTS_ON_CPU") == "1"
POISON = 0x5A  # byte of unwritten outputs: finite in every dtype, never a test value


class CudaArrays:
    """NumPy float64/bool data as torch CUDA tensors of a kernel dtype, and back (exactly)."""

    raw = True  # raw device pointers: poisoned and unaligned outputs can be passed

    def __init__(self, torch):
        self.torch = torch
        self.device = torch.device("cuda")

    def dtype(self, dtype):
        return self.torch.bool if dtype is None else getattr(self.torch, dtype.name)

    def put(self, a, dtype=None, offset=0):
        """`a` as a tensor of `dtype` (a select_cases.DType; None: bool) that starts `offset`
        elements into a larger allocation (offset 1: an unaligned pointer)."""
        host = np.array(a, order="C")  # a writable copy; keeps 0-d arrays 0-d
        t = self.torch.from_numpy(host).to(self.device, self.dtype(dtype))
        if offset == 0:
            return t
        storage = self.torch.empty(t.numel() + offset, dtype=t.dtype, device=self.device)
        view = storage[offset:].view(t.shape)
        view.copy_(t)
        return view

    def get(self, t):
        return t.detach().to("cpu", self.torch.float64).numpy()

    def poisoned(self, shape, dtype, offset=0):
        """An output buffer of `shape` filled with POISON bytes (`offset` as in put)."""
        size = int(np.prod(shape, dtype=np.int64))
        itemsize = self.torch.empty(0, dtype=self.dtype(dtype)).element_size()
        raw = self.torch.full(
            ((size + offset) * itemsize,), POISON, dtype=self.torch.uint8, device=self.device
        )
        return raw.view(self.dtype(dtype))[offset:].view(shape)

    def workspace(self, nbytes):
        """Scratch of `nbytes` (at least 1) filled with POISON bytes: kernels must not rely on
        its contents."""
        return self.torch.full(
            (max(nbytes, 1),), POISON, dtype=self.torch.uint8, device=self.device
        )

    def stream(self):
        return self.torch.cuda.current_stream().cuda_stream

    def bits(self, t):
        """The tensor's bit patterns (for bit-identical comparisons, NaN payloads included)."""
        ints = {2: self.torch.int16, 4: self.torch.int32, 8: self.torch.int64}
        return t.contiguous().view(ints[t.element_size()]).cpu().numpy()

    def sync(self):
        self.torch.cuda.synchronize()


class CpuArrays:
    """The same interface on NumPy arrays: the native module then runs its CPU kernels."""

    raw = False

    def put(self, a, dtype=None, offset=0):
        return np.asarray(a, bool) if dtype is None else np.asarray(a).astype(dtype.np)

    def get(self, a):
        return np.asarray(a).astype(np.float64)

    def bits(self, a):
        return np.asarray(a).view({2: np.int16, 4: np.int32, 8: np.int64}[a.itemsize])

    def sync(self):
        pass


@pytest.fixture(scope="session")
def arrays():
    """CudaArrays, or a skip saying what is missing (CpuArrays under SAFEOPS_GPU_TESTS_ON_CPU)."""
    if ON_CPU:
        return CpuArrays()
    torch = pytest.importorskip("torch", reason="tests/gpu need torch")
    if not torch.cuda.is_available():
        pytest.skip("tests/gpu need a CUDA device")
    from safeops import native

    if not native.CUDA:
        pytest.skip("safeops was built without CUDA kernels (SAFEOPS_CUDA=OFF)")
    return CudaArrays(torch)


@pytest.fixture
def raw(arrays):
    """CudaArrays for the tests that pass raw device pointers to safeops._native."""
    if not arrays.raw:
        pytest.skip("needs raw device pointers (CUDA)")
    return arrays
