"""The TensorFlow requirement of the built package, written at build time.

A scikit-build-core dynamic-metadata provider (pyproject.toml, [[tool.dynamic-metadata]]). The
op library is compiled against the TensorFlow of the build environment and only loads under
that minor (C++ ABI), so the package requires exactly it: `tensorflow>=2.X,<2.X+1`, naming the
distribution that provides the `tensorflow` module (tensorflow, tensorflow-cpu, ...) so that
pip never installs a second TensorFlow beside it. Outside the supported minors the build stops
here, before compiling, with what to install instead.
"""

import importlib.metadata

__all__ = ["dynamic_metadata", "dynamic_wheel"]


def _minor(version):
    return tuple(int(part) for part in version.split(".")[:2])


def _tensorflow_distribution():
    names = importlib.metadata.packages_distributions().get("tensorflow", [])
    return names[0] if names else None


def tensorflow_requirement(oldest, newest):
    """`<distribution>>=2.X,<2.X+1` for the installed TensorFlow 2.X; ValueError (saying what
    is supported and what to install) when it is missing or outside oldest..newest."""
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
    return {"dependencies": [tensorflow_requirement(settings["oldest"], settings["newest"])]}


def dynamic_wheel(settings):
    # The sdist cannot know the TensorFlow of the environment that will build its wheel.
    return {"dependencies": True}
