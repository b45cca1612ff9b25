#!/usr/bin/env bash
# A source build against one TensorFlow minor and one Python, checked in a fresh virtualenv:
#
#   tools/check_source_build.sh TF_MINOR PYTHON_VERSION [full|quick] [VENV_DIR]
#   e.g. tools/check_source_build.sh 2.16 3.10 full
#
# Installs tensorflow==TF_MINOR.* (with the Keras pip picks for it) and the build requirements
# of pyproject.toml other than TensorFlow, then `pip install --no-build-isolation ".[test]"`
# (README.md, Building), and checks that the installed safeops requires exactly that minor.
# Then `safeops info`, the demo, and the test suite: all of it (full, the default) or the tests
# that meet TensorFlow's and Keras' APIs most (quick). SAFEOPS_PIP_ARGS adds pip options, e.g.
# "-Ccmake.define.SAFEOPS_CUDA=OFF". The interpreter is found by tools/find_python.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
tf_minor="$1"
python_version="$2"
scope="${3:-full}"
venv="${4:-$(mktemp -d)/venv}"

"$(tools/find_python.sh "$python_version")" -m venv "$venv"
# shellcheck disable=SC1091
. "$venv/bin/activate"
python -m pip install --quiet --upgrade pip
mapfile -t build_requires < <(python - <<'EOF'
import re

text = open("pyproject.toml").read()
requires = re.search(r"^requires = \[(.*?)\]", text, re.S | re.M).group(1)
for requirement in re.findall(r'"([^"]+)"', requires):
    if not requirement.startswith("tensorflow"):
        print(requirement)
EOF
)
python -m pip install --quiet "tensorflow==$tf_minor.*" "${build_requires[@]}"
# shellcheck disable=SC2086
python -m pip install --quiet --no-build-isolation ${SAFEOPS_PIP_ARGS:-} ".[test]"

python - "$tf_minor" <<'EOF'
import importlib.metadata
import sys

import keras
import tensorflow as tf
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

major, minor = (int(part) for part in sys.argv[1].split("."))
print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}, Python {sys.version.split()[0]}")
found = [Requirement(r) for r in importlib.metadata.requires("safeops")]
found = [r for r in found if r.name == "tensorflow"]
print("safeops requires", [str(r) for r in found])
assert [r.specifier for r in found] == [SpecifierSet(f">={major}.{minor},<{major}.{minor + 1}")]
EOF
safeops info
python -m safeops demo
if [ "$scope" = full ]; then
  pytest -q tests
else
  pytest -q tests/test_build.py tests/test_layers.py tests/test_saved_model.py
fi
