"""Shared test configuration.

This file imports neither TensorFlow nor safeops at module import time: pytest loads it for
tests/gpu too, which run on a machine without TensorFlow. The TensorFlow tests import
TensorFlow themselves; TF_CPP_MIN_LOG_LEVEL is set here, before any of them does.

The tests run against the installed package (`pip install ".[test]" && pytest tests`). A
safeops without its compiled libraries (e.g. the unbuilt `src/safeops` put on sys.path by
hand) stops the session with a message that says so, instead of failing every test with an
obscure import error.
"""

import glob
import importlib.util
import os
import secrets

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from select_cases import DTYPES  # noqa: E402


def _load_file(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _check_compiled_safeops():
    """The imported safeops must carry its build: _build_info, the native module and, when it
    was built with TensorFlow, the op library. Reads files only (importing safeops would
    import TensorFlow)."""
    spec = importlib.util.find_spec("safeops")
    if spec is None or not spec.submodule_search_locations:
        return 'safeops is not installed: run `pip install ".[test]"` first'
    where = list(spec.submodule_search_locations)[0]
    hint = (
        f"the safeops imported from {where} is not a built package; install it with "
        '`pip install ".[test]"` and run `pytest tests` without the unbuilt src/ on sys.path'
    )
    info_path = os.path.join(where, "_build_info.py")
    if not os.path.exists(info_path) or not glob.glob(os.path.join(where, "_native*.so")):
        return hint + ": _build_info.py or the _native module is missing"
    info = _load_file("_safeops_build_info_check", info_path)
    if info.TF_VERSION and not os.path.exists(os.path.join(where, "_safeops_ops.so")):
        return hint + ": the TensorFlow op library _safeops_ops.so is missing"
    return None


def pytest_sessionstart(session):
    problem = _check_compiled_safeops()
    if problem:
        pytest.exit(problem, returncode=pytest.ExitCode.USAGE_ERROR)


@pytest.fixture(
    params=[
        pytest.param(d, id=d.name, marks=pytest.mark.bfloat16 if d.name == "bfloat16" else ())
        for d in DTYPES
    ]
)
def dtype(request):
    """Each kernel dtype (select_cases.DType: name, NumPy dtype, reduction tolerances)."""
    return request.param


@pytest.fixture
def rng():
    """A generator with a fresh seed per test (SAFEOPS_TEST_SEED fixes it); the seed is printed
    so that a failure can be replayed."""
    seed = int(os.environ.get("SAFEOPS_TEST_SEED", secrets.randbits(32)))
    print(f"SAFEOPS_TEST_SEED={seed}")
    return np.random.default_rng(seed)
