"""The TensorFlow requirement of the built package, written at build time.

A scikit-build-core dynamic-metadata provider (pyproject.toml, [[tool.dynamic-metadata]]). The
op library is compiled against the TensorFlow of the build environment and only loads under
that minor (C++ ABI), so the package requires exactly it: `tensorflow>=2.X,<2.X+1`, naming the
distribution that provides the `tensorflow` module (tensorflow, tensorflow-cpu, ...) so that
pip never installs a second TensorFlow beside it. Outside the supported Pythons and TensorFlow
minors the build stops here, before compiling, saying what is supported and what to install.

The supported minors run from the provider's `oldest` setting to the TensorFlow that isolated
builds install (pyproject.toml's build requirements), the newest.
"""

import importlib.metadata
import platform

try:
    import tomllib
except ImportError:  # Python 3.10; scikit-build-core depends on tomli there
    import tomli as tomllib

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

__all__ = ["dynamic_metadata", "dynamic_wheel"]


def _minor(version):
    return tuple(int(part) for part in str(version).split(".")[:2])


def _tensorflow_distribution():
    names = importlib.metadata.packages_distributions().get("tensorflow", [])
    return names[0] if names else None


def newest_tensorflow(pyproject="pyproject.toml"):
    """The minor ("2.21") of the TensorFlow in the build requirements."""
    with open(pyproject, "rb") as f:
        requires = tomllib.load(f)["build-system"]["requires"]
    for requirement in map(Requirement, requires):
        if requirement.name == "tensorflow":
            lower = [s.version for s in requirement.specifier if s.operator == ">="]
            return ".".join(map(str, _minor(lower[0])))
    raise ValueError("pyproject.toml's build requirements name no tensorflow>=2.X")


def tensorflow_requirement(oldest, newest, requires_python, python=None):
    """`<distribution>>=2.X,<2.X+1` for the installed TensorFlow 2.X; ValueError (saying what
    is supported and what to install) for a Python outside requires_python, or a TensorFlow
    that is missing or outside oldest..newest."""
    python = python or platform.python_version()
    if python not in SpecifierSet(requires_python):
        raise ValueError(
            f"safeops supports Python {requires_python} (the Pythons TensorFlow {newest} has "
            f"wheels for); this is Python {python}. Use one of those Pythons."
        )
    supported = f"TensorFlow {oldest} to {newest}"
    install = f'pip install "tensorflow=={newest}.*"'
    dist = _tensorflow_distribution()
    if dist is None:
        raise ValueError(
            f"safeops compiles its op library against the installed TensorFlow, and this build "
            f"environment has none. Supported: {supported}. Install one first ({install}) and "
            f"build with `pip install --no-build-isolation .`, or use `pip install .`, which "
            f"builds against TensorFlow {newest} in an isolated environment."
        )
    version = importlib.metadata.version(dist)
    major, minor = _minor(version)
    if not _minor(oldest) <= (major, minor) <= _minor(newest):
        raise ValueError(
            f"safeops builds against {supported}; this build environment has {dist} {version}. "
            f"Install a supported TensorFlow ({install}) and build again, or use "
            f"`pip install .`, which builds against TensorFlow {newest} in an isolated "
            f"environment."
        )
    return f"{dist}>={major}.{minor},<{major}.{minor + 1}"


def dynamic_metadata(settings, project):
    requirement = tensorflow_requirement(
        settings["oldest"], newest_tensorflow(), project["requires-python"]
    )
    return {"dependencies": [requirement]}


def dynamic_wheel(settings):
    # The sdist cannot know the TensorFlow of the environment that will build its wheel.
    return {"dependencies": True}
