"""The command line: `python -m safeops` from the checkout root runs the installed package,
--help and --version import no TensorFlow, TensorFlow's start-up notes are held back unless
TF_CPP_MIN_LOG_LEVEL is set, bench prints its ratios one way; the installed `safeops` script is as
fast as `python -m safeops` for --help and --version."""

import os
import re
import shutil
import subprocess
import sys

import pytest

from safeops import _build_info, _startup
from safeops.bench import timing

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def safeops_cli(*args, env=None, python_flags=()):
    return subprocess.run(
        [sys.executable, *python_flags, "-m", "safeops", *args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,  # the checkout root, where a user who just cloned runs it
        env=env,
    )


def imported_modules(importtime_stderr):
    """Top-level names of the modules `python -X importtime` reports."""
    names = re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s+(\S+)", importtime_stderr, re.M)
    return {n.split(".")[0] for n in names}


@pytest.mark.parametrize("flag", ["--help", "--version"])
def test_help_and_version_import_no_tensorflow(flag):
    out = safeops_cli(flag, python_flags=("-X", "importtime"))
    assert out.returncode == 0, out.stderr
    modules = imported_modules(out.stderr)
    assert "safeops" in modules  # the installed package ran
    assert not modules & {"tensorflow", "keras"}, sorted(modules)
    if flag == "--help":
        assert out.stdout.startswith("usage: safeops")
        assert all(command in out.stdout for command in ("info", "demo", "bench"))
    else:
        assert out.stdout.strip() == (
            f"safeops {_build_info.VERSION} (built against TensorFlow "
            f"{_build_info.TF_VERSION or 'none'})"
        )


def test_installed_script_help_and_version_import_no_tensorflow():
    """The `safeops` console script (pyproject.toml, [project.scripts]) next to this Python."""
    script = shutil.which("safeops", path=os.path.dirname(sys.executable))
    assert script, "the safeops console script is not installed next to " + sys.executable
    for flag in ("--help", "--version"):
        out = subprocess.run(
            [script, flag],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=ROOT,
            env=dict(os.environ, PYTHONPROFILEIMPORTTIME="1"),
        )
        assert out.returncode == 0, out.stderr
        modules = imported_modules(out.stderr)
        assert "safeops" in modules
        assert not modules & {"tensorflow", "keras"}, sorted(modules)
        assert out.stdout.startswith("usage: safeops" if flag == "--help" else "safeops ")


def test_subcommand_help_imports_no_tensorflow():
    out = safeops_cli("demo", "--help", python_flags=("-X", "importtime"))
    assert out.returncode == 0, out.stderr
    assert "--csv" in out.stdout and "--plot" in out.stdout
    assert "tensorflow" not in imported_modules(out.stderr)


def without_log_level():
    return {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}


def test_info_holds_back_tensorflow_start_up_notes():
    out = safeops_cli("info", env=without_log_level())
    assert out.returncode == 0, out.stderr
    assert re.search(r"^TensorFlow running\s+2\.", out.stdout, re.M)
    assert re.search(r"^GPUs TensorFlow sees\s+\d", out.stdout, re.M)
    for note in ("absl::InitializeLog", "I0000", "W0000", "E0000", "cuInit"):
        assert note not in out.stderr, out.stderr
    assert _startup._filter(out.stderr)[0] == out.stderr  # no note in any TF's log format


def test_explicit_log_level_wins():
    """With TF_CPP_MIN_LOG_LEVEL=0 in the environment nothing is held back: the start-up notes
    TensorFlow prints on every start (absl's banner and INFO lines in 2.21, its own logger's
    INFO lines in 2.16 to 2.19) reach stderr."""
    out = safeops_cli("info", env=dict(without_log_level(), TF_CPP_MIN_LOG_LEVEL="0"))
    assert out.returncode == 0, out.stderr
    assert _startup._filter(out.stderr)[0] != out.stderr, out.stderr


def test_filter_keeps_what_is_not_a_start_up_note():
    text = (
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
        "I0000 00:00:1796096700.336056   13441 port.cc:153] oneDNN custom operations are on.\n"
        "W0000 00:00:1796096700.336057   13441 some.cc:1] a warning\n"
        "E0000 00:00:1796096705.996286   13441 cuda_platform.cc:52] failed call to cuInit: "
        "INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)\n"
        "E0000 00:00:1796096705.996287   13441 other.cc:7] a real error\n"
        "/path/module.py:3: UserWarning: something a user should see\n"
    )
    kept, notes = _startup._filter(text)
    assert kept == (
        "E0000 00:00:1796096705.996287   13441 other.cc:7] a real error\n"
        "/path/module.py:3: UserWarning: something a user should see\n"
    )
    assert notes == [
        "failed call to cuInit: INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)"
    ]


def test_filter_reads_the_log_lines_of_tensorflow_2_16_to_2_19():
    text = (
        "2026-12-01 07:13:39.845602: I tensorflow/core/platform/cpu_feature_guard.cc:210] This "
        "TensorFlow binary is optimized to use available CPU instructions.\n"
        "To enable the following instructions: AVX2 FMA, in other operations, rebuild.\n"
        "2026-12-01 07:13:45.694334: E external/local_xla/xla/stream_executor/cuda/cuda_fft.cc:"
        "477] Unable to register cuFFT factory: Attempting to register factory for plugin cuFFT "
        "when one has already been registered\n"
        "E0000 00:00:1796109225.714690   15557 cuda_dnn.cc:8310] Unable to register cuDNN "
        "factory: Attempting to register factory for plugin cuDNN when one has already been "
        "registered\n"
        "2026-12-01 07:13:44.046855: E external/local_xla/xla/stream_executor/cuda/cuda_driver.cc:"
        "152] failed call to cuInit: INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR "
        "(303)\n"
        "2026-12-01 07:13:44.046856: E tensorflow/core/other.cc:7] a real error\n"
    )
    kept, notes = _startup._filter(text)
    assert kept == "2026-12-01 07:13:44.046856: E tensorflow/core/other.cc:7] a real error\n"
    assert notes == [
        "failed call to cuInit: INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)"
    ]


def test_bench_ratios_one_way():
    out = safeops_cli(
        "bench", "--suite", "where", "--sizes", "1000", "--repeats", "3", env=without_log_level()
    )
    assert out.returncode == 0, out.stderr
    assert timing.RATIO_NOTE in out.stdout
    assert "goal" not in out.stdout.lower()
    assert "x\n" not in out.stdout  # no "1.23x" cells whose direction is left to guess
    assert out.stderr == ""
