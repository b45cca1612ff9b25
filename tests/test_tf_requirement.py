"""tools/tf_requirement.py, the build-time TensorFlow requirement: exactly the minor built
against, and a message that says what is supported and what to install otherwise."""

import importlib.util
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def provider():
    spec = importlib.util.spec_from_file_location(
        "tf_requirement", os.path.join(ROOT, "tools", "tf_requirement.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def installed(monkeypatch, provider, dist, version):
    monkeypatch.setattr(provider, "_tensorflow_distribution", lambda: dist)
    monkeypatch.setattr(provider.importlib.metadata, "version", lambda name: version)


@pytest.mark.parametrize(
    "dist, version, expected",
    [
        ("tensorflow", "2.16.2", "tensorflow>=2.16,<2.17"),
        ("tensorflow", "2.21.0", "tensorflow>=2.21,<2.22"),
        ("tensorflow-cpu", "2.19.1", "tensorflow-cpu>=2.19,<2.20"),
    ],
)
def test_requires_exactly_the_minor_built_against(monkeypatch, provider, dist, version, expected):
    installed(monkeypatch, provider, dist, version)
    assert provider.tensorflow_requirement("2.16", "2.21", ">=3.10,<3.14", "3.12.1") == expected


@pytest.mark.parametrize("version", ["2.15.1", "2.22.0", "3.0.0"])
def test_unsupported_tensorflow_says_what_is_supported(monkeypatch, provider, version):
    installed(monkeypatch, provider, "tensorflow", version)
    with pytest.raises(ValueError) as info:
        provider.tensorflow_requirement("2.16", "2.21", ">=3.10,<3.14", "3.12.1")
    message = str(info.value)
    assert f"tensorflow {version}" in message
    assert "TensorFlow 2.16 to 2.21" in message
    assert 'pip install "tensorflow==2.21.*"' in message


def test_no_tensorflow_says_what_to_install(monkeypatch, provider):
    installed(monkeypatch, provider, None, None)
    with pytest.raises(ValueError, match=r"has none\. Supported: TensorFlow 2\.16 to 2\.21"):
        provider.tensorflow_requirement("2.16", "2.21", ">=3.10,<3.14", "3.12.1")


@pytest.mark.parametrize("python", ["3.9.18", "3.14.0"])
def test_unsupported_python_says_which_are_supported(monkeypatch, provider, python):
    installed(monkeypatch, provider, "tensorflow", "2.21.0")
    with pytest.raises(ValueError, match=rf"Python >=3\.10,<3\.14 .*this is Python {python}"):
        provider.tensorflow_requirement("2.16", "2.21", ">=3.10,<3.14", python)


def test_newest_is_the_build_requirement(provider):
    assert provider.newest_tensorflow(os.path.join(ROOT, "pyproject.toml")) == "2.21"
