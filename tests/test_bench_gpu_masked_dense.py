"""The parts of benchmarks/gpu_masked_dense.py that run without a GPU: the plan (with the
routing rule's choice), the ratios, the measured winner and the report table."""

import importlib.util
import pathlib

import pytest

from safeops.routing import FUSED, PROLOGUE

_PATH = pathlib.Path(__file__).resolve().parent.parent / "benchmarks" / "gpu_masked_dense.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("gpu_masked_dense", _PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _result(bench, kernel, subtracted=False):
    return {
        "rows": 16384, "K": 1024, "N": 1024, "dtype": "bfloat16", "h": 512.0, "rule": PROLOGUE,
        "kernel_ms": kernel, "host_ms": {c: 0.5 for c in bench.CASES},
        "issue_us": {c: 12.0 for c in bench.CASES}, "kernel_from_subtraction": subtracted,
        "ratios": bench.ratios(kernel), "errors": {"fused": 1e-3, "route": 2e-3},
    }  # fmt: skip


def test_dry_run_plan(bench, capsys):
    cases = bench.main(["--dry-run"])
    assert len(cases) == len(bench.SHAPES) * len(bench.DTYPES)
    rules = {(rows, K, N, dtype): rule for rows, K, N, dtype, _, rule in cases}
    assert rules[(65536, 64, 256, "bfloat16")] == FUSED
    assert rules[(16384, 1024, 1024, "bfloat16")] == PROLOGUE
    assert rules[(16384, 512, 512, "float32")] == PROLOGUE  # on the threshold
    assert rules[(32768, 256, 256, "float32")] == FUSED
    assert "rule: prologue" in capsys.readouterr().out


def test_ratios_and_winner(bench):
    kernel = {
        "cublas_fwd": 0.072, "fused_fwd": 0.16, "route_fwd": 0.09, "composite_fwd": 0.2,
        "fused_step": 0.5, "route_step": 0.3, "composite_step": 0.6,
    }  # fmt: skip
    q = bench.ratios(kernel)
    assert q["fused/cublas"] == pytest.approx(0.16 / 0.072)
    assert q["route/cublas"] == pytest.approx(0.09 / 0.072)
    assert q["composite/fused"] == pytest.approx(0.2 / 0.16)
    assert q["fused/route"] == pytest.approx(0.16 / 0.09)
    assert q["fused/route step"] == pytest.approx(0.5 / 0.3)
    assert bench.faster(_result(bench, kernel)) == PROLOGUE
    kernel["fused_step"] = 0.2  # the step decides, not the forward
    assert bench.faster(_result(bench, kernel)) == FUSED
    assert bench.ratios({"fused_fwd": 0.1})["fused/cublas"] is None
    assert bench.faster(_result(bench, {})) is None


def test_table(bench):
    kernel = {c: 0.1 for c in bench.CASES}
    kernel["route_step"] = None  # a time that could not be taken shows as "-"
    lines = bench.table([_result(bench, kernel, subtracted=True)])
    assert len(lines) == 1 + 4  # header; kernel, host, issue and error lines
    assert "16384x1024x1024" in lines[1] and "~|" in lines[1] and " - " in lines[1]
    assert "host-inclusive" in lines[2] and "0.5000" in lines[2]
    assert "issue_us" in lines[3] and "max rel err" in lines[4]
