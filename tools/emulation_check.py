"""The emulated GPU check: cuda/*.cu compiled unmodified for the host against the CUDA
emulation (cuda/emulation) and driven by tests/gpu, without a GPU. CI runs it on every change
(.ci/run). From the repository root:

    python tools/emulation_check.py [--work DIR] [--steps build,selftest,orders,asan,mutations]

  build      the emulated native module (-DSAFEOPS_CUDA_EMULATE=ON, no TensorFlow) from an
             exact copy of cuda/ (so that the mutations rebuild only what they change),
             installed with the package's Python files into a staging directory
  selftest   the emulation's own test (barriers, collectives, wmma, the failures it reports)
  orders     pytest tests/gpu in two resume orders: forward, then warp by warp without the
             `large` cases; a result that changes with the order is a missing barrier
  asan       a second build, its kernels and runtime under AddressSanitizer and UBSan's
             alignment check: the self-test, and tests/gpu in the reverse order on the subset
             compute-sanitizer memcheck runs on a GPU (no `large`, no `bfloat16` cases)
  mutations  seeded bugs (tools/emulation_mutations.py), one at a time in the copy of cuda/:
             each must make the tests it is aimed at fail (the unmutated copy passed them all
             in `orders`)

Cases marked `gigabytes` (2^31+ elements) are left out: the emulated device is host memory.
Needs Python with numpy, ml_dtypes, pytest, pybind11 (installed when missing), CMake, Ninja, a
C++17 compiler and the CUDA toolkit's headers. Environment: JOBS (compile jobs, default 2).
"""

import argparse
import os
import pathlib
import re
import shutil
import subprocess
import sys
import time

import emulation_mutations

REPO = pathlib.Path(__file__).resolve().parent.parent
STEPS = ("build", "selftest", "orders", "asan", "mutations")
# (order, pytest marker expression)
ORDERS = (("forward", "not gigabytes"), ("warps", "not gigabytes and not large"))
ASAN = ("reverse", "not large and not bfloat16")
LIBS = ("libasan.so", "libstdc++.so")  # preloaded into the uninstrumented Python


def run(cmd, env=None, cwd=None, check=True, log=None):
    """Runs cmd (output to `log` if given); returns (returncode, output)."""
    out = subprocess.run(
        [str(c) for c in cmd], env=env, cwd=cwd, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    if log is not None:
        pathlib.Path(log).write_text(out.stdout)
    if check and out.returncode != 0:
        sys.stdout.write(out.stdout[-6000:])
        raise SystemExit(f"failed ({out.returncode}): {' '.join(map(str, cmd))}")
    return out.returncode, out.stdout


def build(build_dir, stage, extra=()):
    """Configures, builds and stages the emulated native module."""
    pyproject = (REPO / "pyproject.toml").read_text()
    version = re.search(r'^version = "([^"]+)"', pyproject, re.M).group(1)
    _, pybind11_dir = run([sys.executable, "-m", "pybind11", "--cmakedir"])
    run(["cmake", "-S", REPO, "-B", build_dir, "-G", "Ninja", "-DCMAKE_BUILD_TYPE=Release",
         f"-DPython_EXECUTABLE={sys.executable}", f"-Dpybind11_DIR={pybind11_dir.strip()}",
         "-DSAFEOPS_TF=OFF", "-DSAFEOPS_CUDA_EMULATE=ON", f"-DSKBUILD_PROJECT_VERSION={version}",
         *extra])  # fmt: skip
    run(["cmake", "--build", build_dir, "-j", os.environ.get("JOBS", "2")])
    shutil.rmtree(stage, ignore_errors=True)
    run(["cmake", "--install", build_dir, "--prefix", stage])
    package = REPO / "src" / "safeops"
    for py in package.rglob("*.py"):  # the generated _build_info.py is already staged
        if py.name != "_build_info.py":
            target = pathlib.Path(stage) / "safeops" / py.relative_to(package)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(py, target)


def pytest(stage, args, order, env=None, log=None):
    """pytest on tests/gpu (args relative to it) against the staged build, in `order`; returns
    (returncode, summary line, first failure line)."""
    env = dict(os.environ if env is None else env, SAFEOPS_EMU_ORDER=order)
    env["PYTHONPATH"] = str(stage)
    tests = REPO / "tests" / "gpu"
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--tb=line", "-rfE"]
    # pytest runs from the staging directory, so `import safeops` finds the staged build.
    files = [str(tests / a) for a in args if a.endswith(".py")] or [str(tests)]
    args = [a for a in args if not a.endswith(".py")] + files
    code, out = run(cmd + args, env=env, cwd=stage, check=False, log=log)
    lines = out.strip().splitlines()
    failure = next((ln for ln in lines if ln.startswith(("FAILED", "ERROR", "E "))), "")
    failure = failure or next((ln for ln in lines if "Error" in ln), "")
    return code, (lines[-1] if lines else ""), failure


def build_copy(work, stage, mutation=None):
    """The emulated build of work/cuda, a copy of cuda/ with `mutation` applied (or none)."""
    emulation_mutations.write_sources(REPO / "cuda", work / "cuda", mutation)
    build(work / "build", stage, [f"-DSAFEOPS_CUDA_EMULATE_SOURCES={work / 'cuda'}"])


def step_build(work):
    build_copy(work, work / "stage")


def step_selftest(work, build_dir="build", env=None):
    code, out = run([work / build_dir / "cuda" / "emulation" / "emulation_selftest"], env=env,
                    check=False)  # fmt: skip
    print(out.strip().splitlines()[-1])
    if code != 0:
        sys.stdout.write(out)
        raise SystemExit("the emulation's self-test failed")


def step_orders(work):
    for order, markers in ORDERS:
        code, summary, failure = pytest(work / "stage", ["-m", markers], order,
                                        log=work / f"pytest_{order}.log")  # fmt: skip
        print(f"  {order} ({markers}): {summary}")
        if code != 0:
            raise SystemExit(f"tests/gpu failed in the {order} order: {failure}")


def step_asan(work):
    build(work / "asan", work / "asan-stage", ["-DSAFEOPS_CUDA_EMULATE_SANITIZE=address,alignment"])
    # Python is not instrumented: the runtime is preloaded, with libstdc++ (whose exceptions
    # it intercepts). Leak checks are off: Python's own allocations outlive the process, and
    # a failed launch abandons its threads' frames on purpose (the self-test fails some).
    cxx = os.environ.get("CXX", "c++")
    preload = [run([cxx, f"-print-file-name={lib}"])[1].strip() for lib in LIBS]
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=0", UBSAN_OPTIONS="print_stacktrace=1")
    step_selftest(work, "asan", env)
    env["LD_PRELOAD"] = " ".join(preload)
    order, markers = ASAN
    code, summary, failure = pytest(work / "asan-stage", ["-m", markers], order, env,
                                    log=work / "pytest_asan.log")  # fmt: skip
    print(f"  {order} ({markers}), AddressSanitizer: {summary}")
    if code != 0:
        raise SystemExit(f"tests/gpu failed under AddressSanitizer: {failure}")


def step_mutations(work):
    for mutation in emulation_mutations.MUTATIONS:
        build_copy(work, work / "mutant-stage", mutation)
        code, summary, failure = pytest(work / "mutant-stage", ["-x", *mutation.tests], "forward",
                                        log=work / f"mutant_{mutation.name}.log")  # fmt: skip
        if code != 1:
            raise SystemExit(f"mutation {mutation.name} was not caught: {summary}")
        caught = re.sub(r"\s+", " ", failure)[:400]
        print(f"  {mutation.name} ({mutation.why}):\n    {caught}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=pathlib.Path, default=REPO / "build" / "emulation")
    parser.add_argument("--steps", default=",".join(STEPS))
    args = parser.parse_args()
    steps = args.steps.split(",")
    unknown = set(steps) - set(STEPS)
    if unknown:
        parser.error(f"unknown steps {sorted(unknown)}; choose from {STEPS}")
    args.work.mkdir(parents=True, exist_ok=True)
    if subprocess.run([sys.executable, "-c", "import pybind11, ml_dtypes, pytest"]).returncode:
        run([sys.executable, "-m", "pip", "install", "--quiet", "pybind11>=2.12", "ml_dtypes",
             "pytest>=8"])  # fmt: skip
    timings = []
    for name in steps:
        print(f"== emulation: {name}", flush=True)
        start = time.monotonic()
        globals()[f"step_{name}"](args.work.resolve())
        timings.append(f"{name} {time.monotonic() - start:.0f} s")
        print(f"   {timings[-1]}", flush=True)
    print("== emulation: passed (" + ", ".join(timings) + ")")


if __name__ == "__main__":
    main()
