#!/usr/bin/env bash
# The GPU check: the one script for a lent GPU machine (Python, torch, CuPy, pybind11, CMake,
# ninja, nvcc; no TensorFlow, no network). From the repository root:
#
#   tools/gpu_check.sh            # logs and reports under $OUT (default ./gpu_check_out)
#
# 1. configure + build the kernels and the native module for sm_90 without TensorFlow,
#    install them with the package's Python files into a staging directory;
# 2. pytest tests/gpu against that staging install;
# 3. the GPU benchmarks (bench_where_gpu.py, gpu_masked_dense.py: kernel times from CUDA graphs
#    and host-inclusive times, and the routing rule against the measured winner);
# 4. tests/gpu again under compute-sanitizer memcheck and racecheck, on subsets chosen by the
#    pytest markers of pyproject.toml (see below); any report fails the check.
# Without a GPU the build still runs (a check of the build), and steps 2-4 report a skip.
# Budget: about 8 minutes on an H200 (each sanitizer run is cut at SANITIZER_TIMEOUT, 150 s,
# which fails the check). Environment: PYTHON (python3), OUT, BUILD (build/gpu_check), JOBS
# (all cores).
set -euo pipefail

cd "$(dirname "$0")/.."
repo=$(pwd)
python=${PYTHON:-python3}
out=$(mkdir -p "${OUT:-gpu_check_out}" && cd "${OUT:-gpu_check_out}" && pwd)
build=${BUILD:-build/gpu_check}
stage="$repo/$build/stage"
jobs=${JOBS:-$(nproc)}
summary=()
status=0

note() { summary+=("$1"); echo "== $1"; }
fail() { note "FAILED: $1"; status=1; }
step() { # step NAME LOGFILE CMD...: runs CMD with its output in $out/LOGFILE and on screen
  local name=$1 log=$out/$2
  shift 2
  echo "== $name (log: $log)"
  local start=$SECONDS
  if "$@" > >(tee "$log") 2>&1; then
    note "$name: ok ($((SECONDS - start)) s)"
  else
    fail "$name (exit $?, $((SECONDS - start)) s; see $log)"
    return 1
  fi
}

# ---- 1. build and stage ----------------------------------------------------------------
version=$("$python" -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
configure=(cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release
  "-DPython_EXECUTABLE=$(command -v "$python")"
  "-Dpybind11_DIR=$("$python" -m pybind11 --cmakedir)"
  -DSAFEOPS_TF=OFF -DSAFEOPS_CUDA=ON -DSAFEOPS_CUDA_ARCHITECTURES=90
  "-DSKBUILD_PROJECT_VERSION=$version")
step "configure" configure.log "${configure[@]}"
step "build" build.log cmake --build "$build" -j "$jobs"
rm -rf "$stage"
step "install" install.log cmake --install "$build" --prefix "$stage"
# The package's Python files next to the compiled ones (the generated _build_info.py wins).
(cd src/safeops && find . -name '*.py' ! -name '_build_info.py' -exec cp --parents {} "$stage/safeops/" \;)

# ---- 2-4 need a GPU ------------------------------------------------------------------------
# pytest runs from the staging directory, so `import safeops` finds the staged build (never
# the source tree); rootdir and tests/conftest.py come from the repository.
in_stage() { (cd "$stage" && PYTHONPATH="$stage${PYTHONPATH:+:$PYTHONPATH}" "$@"); }
pytest_gpu=("$python" -m pytest "$repo/tests/gpu" -p no:cacheprovider -q -rs)

if ! in_stage "$python" -c 'import torch, sys; sys.exit(not torch.cuda.is_available())' \
  >/dev/null 2>&1; then
  note "no CUDA device (or no torch): tests, benchmarks and sanitizers skipped"
  in_stage "${pytest_gpu[@]}" >"$out/pytest_gpu.log" 2>&1 || fail "pytest tests/gpu without a GPU"
  in_stage "$python" "$repo/benchmarks/gpu_masked_dense.py" --dry-run >"$out/gpu_masked_dense.log" 2>&1 \
    || fail "gpu_masked_dense.py --dry-run"
else
  in_stage "$python" -c 'import safeops.native as n, torch; print("safeops.native CUDA:", n.CUDA, "|", torch.cuda.get_device_name())' \
    | tee "$out/device.log"
  step "pytest tests/gpu" pytest_gpu.log in_stage "${pytest_gpu[@]}" "--junitxml=$out/pytest_gpu.xml" || true
  if [ -f "$out/pytest_gpu.xml" ]; then
    counts=$("$python" -c 'import sys, xml.etree.ElementTree as E
s = E.parse(sys.argv[1]).getroot(); s = s if s.tag == "testsuite" else s[0]
t, f, e, k = (int(s.get(a, 0)) for a in ("tests", "failures", "errors", "skipped"))
print(t - f - e - k, f + e, k)' "$out/pytest_gpu.xml")
    read -r passed failed skipped <<<"$counts"
    note "tests/gpu: $passed passed, $failed failed, $skipped skipped"
    [ "$passed" -gt 0 ] || fail "no GPU test ran on a machine with a GPU"
  fi

  step "bench_where_gpu" bench_where_gpu.log \
    in_stage "$python" "$repo/benchmarks/bench_where_gpu.py" --json "$out/bench_where_gpu.json" || true
  step "gpu_masked_dense" gpu_masked_dense.log \
    in_stage "$python" "$repo/benchmarks/gpu_masked_dense.py" --json "$out/gpu_masked_dense.json" \
    || true

  if command -v compute-sanitizer >/dev/null 2>&1; then
    # Subsets by marker, not by test name: memcheck, every kernel path (the big tensors and
    # the bfloat16 variants, which index memory exactly as float16 does, left out); racecheck,
    # the kernels with shared memory and barriers (masked_dense's GEMM main loop and epilogue,
    # its dz_kernel, select's backward block sums).
    for run in "memcheck|not large and not bfloat16" \
      "racecheck|shared_memory and not large and not bfloat16"; do
      tool=${run%%|*}
      step "compute-sanitizer $tool" "sanitizer_$tool.log" \
        in_stage timeout "${SANITIZER_TIMEOUT:-150}" compute-sanitizer --tool "$tool" \
        --error-exitcode 97 --target-processes all "${pytest_gpu[@]}" -x -m "${run#*|}" || true
    done
  else
    fail "compute-sanitizer not found (CUDA toolkit bin/ not on PATH)"
  fi
fi

echo
echo "== summary (logs in $out)"
printf '  %s\n' "${summary[@]}"
exit "$status"
