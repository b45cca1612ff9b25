"""Fixtures of the CUDA tests: safeops.native on the device _backend.py chooses from the
installed build (torch CUDA tensors on a GPU, or NumPy buffers of the emulated device in a
SAFEOPS_CUDA_EMULATE build), without TensorFlow.

They run on the GPU machine (Python, torch, CuPy, no TensorFlow): tools/gpu_check.sh builds
safeops with -DSAFEOPS_TF=OFF and runs `pytest tests/gpu` against that build; and anywhere
through the emulation: tools/emulation_check.py builds the same kernels for the host and runs
the same tests. pytest loads tests/conftest.py for these tests too; it imports neither
TensorFlow nor safeops, so nothing on this path imports TensorFlow. (Where TensorFlow is
installed, `import safeops` registers its ops, as the package always does; these tests never
use them.)
"""

import pytest
from _backend import current


@pytest.fixture(scope="session")
def arrays():
    """The backend (_backend.py), or a skip saying what is missing."""
    backend, reason = current()
    if backend is None:
        pytest.skip(reason)
    return backend


@pytest.fixture
def raw(arrays):
    """The backend, for the tests that pass raw pointers to safeops._native."""
    return arrays
