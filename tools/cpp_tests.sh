#!/usr/bin/env bash
# The C++ kernel tests (csrc/kernels/tests): plans, reduction layouts and the CPU kernels against
# independent references, without TensorFlow or a GPU. Configures the project with
# -DSAFEOPS_TF=OFF -DSAFEOPS_CUDA=OFF -DSAFEOPS_CPP_TESTS=ON, builds only the test program and
# runs it through ctest. From the repository root:
#
#   tools/cpp_tests.sh [BUILD_DIR]      (default build/cpp-tests)
#
# Needs CMake, Ninja, a C++17 compiler and a Python with pybind11 (the project's configure step
# finds the native module's dependencies even though only the tests are built); PYTHON picks the
# interpreter (default python3).
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build/cpp-tests}"
python="${PYTHON:-python3}"
if ! "$python" -c "import pybind11" 2>/dev/null; then
  "$python" -m pip install --quiet "pybind11>=2.12"
fi
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DPython_EXECUTABLE="$(command -v "$python")" -Dpybind11_DIR="$("$python" -m pybind11 --cmakedir)" \
  -DSAFEOPS_TF=OFF -DSAFEOPS_CUDA=OFF -DSAFEOPS_CPP_TESTS=ON
cmake --build "$build" --target safeops_cpp_tests
ctest --test-dir "$build" --output-on-failure
