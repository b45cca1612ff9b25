"""The installed build: the TensorFlow it was built for, and the device code it really carries
(read from the libraries' fatbinaries) for every architecture the build lists."""

import os

import pytest
import tensorflow as tf

import safeops
from safeops import _build_info, _fatbin, _native

PACKAGE = os.path.dirname(safeops.__file__)
LIBRARIES = ["_safeops_ops.so", _native.__file__]


def expected_targets(architectures):
    """CMake's CUDA_ARCHITECTURES ("75-real;...;90") as fatbinary targets."""
    targets = set()
    for entry in architectures.split(";"):
        arch, _, kind = entry.partition("-")
        if kind in ("", "real"):
            targets.add(f"sm_{arch}")
        if kind in ("", "virtual"):
            targets.add(f"compute_{arch}")
    return targets


def test_built_against_the_running_tensorflow_minor():
    assert _build_info.TF_VERSION.split(".")[:2] == tf.__version__.split(".")[:2]


def test_cpu_only_tensorflow_loads_the_library():
    # This suite runs on CPU-only machines: the op library (CUDA kernels included when built)
    # must load and its CPU kernels run there.
    if tf.config.list_physical_devices("GPU"):
        pytest.skip("a GPU is visible")
    assert float(safeops.safe_where(True, 1.0, 2.0)) == 1.0


@pytest.mark.skipif(not _build_info.CUDA, reason="built without CUDA kernels")
@pytest.mark.parametrize("library", LIBRARIES, ids=os.path.basename)
def test_device_code_for_every_listed_architecture(library):
    path = library if os.path.isabs(library) else os.path.join(PACKAGE, library)
    found = set(_fatbin.device_code(path))
    missing = expected_targets(_build_info.CUDA_ARCHITECTURES) - found
    assert not missing, f"{os.path.basename(path)} lacks {sorted(missing)} (has {sorted(found)})"


@pytest.mark.skipif(not _build_info.CUDA, reason="built without CUDA kernels")
def test_native_module_reports_the_toolkit():
    assert _native.cuda
    assert _build_info.CUDA_VERSION.startswith(_native.cuda_toolkit)


def test_expected_targets_parser():
    assert expected_targets("75-real;90") == {"sm_75", "sm_90", "compute_90"}
    assert expected_targets("80-virtual") == {"compute_80"}


@pytest.mark.skipif(not _build_info.CUDA, reason="built without CUDA kernels")
def test_too_old_driver_message_says_what_is_needed():
    insufficient_driver = 35  # cudaErrorInsufficientDriver
    message = _native.cuda_error_string(insufficient_driver)
    assert "cudaErrorInsufficientDriver" in message
    assert f"R{_native.cuda_required_driver} or newer" in message
    assert _native.cuda_toolkit in message
    for arch in _build_info.CUDA_ARCHITECTURES.split(";"):
        assert arch in message


def test_another_tensorflow_minor_is_refused_with_what_to_install(monkeypatch):
    # An op library loaded under another TensorFlow minor would fail with undefined symbols
    # (or worse); the import refuses first and says what to install.
    from safeops import _loader

    major, minor = (int(part) for part in tf.__version__.split(".")[:2])
    other = f"{major}.{minor - 1}.0"
    monkeypatch.setattr(_build_info, "TF_VERSION", other)
    with pytest.raises(ImportError) as info:
        _loader._check_tensorflow()
    message = str(info.value)
    assert f"built against TensorFlow {other}" in message
    assert f"TensorFlow {tf.__version__} is installed" in message
    assert f"tensorflow=={major}.{minor - 1}.*" in message
    assert "pip install --no-build-isolation ." in message
