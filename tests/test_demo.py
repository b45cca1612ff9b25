"""The seed scenario (DESIGN.md) end to end: plain Keras gets NaN weights, MaskedDense trains."""

import subprocess
import sys

import numpy as np
import pytest

from safeops import demo


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_seed_scenario(seed):
    result = demo.run_seed_scenario(epochs=4, seed=seed)
    assert 0.08 < result["missing_fraction"] < 0.3
    assert result["plain_nan_variables"], "plain Dense should be poisoned by the NaN features"
    assert result["safe_nan_variables"] == []
    safe_losses = [loss for loss, _ in result["safe"]]
    assert all(np.isfinite(safe_losses))
    assert all(nan == 0 for _, nan in result["safe"])
    assert safe_losses[-1] < safe_losses[0]


def test_seed_data_is_the_scenario():
    x, y = demo.seed_data(0)
    assert x.shape == (128, 2) and y.shape == (128, 1)
    observed = x[~np.isnan(x)]
    assert (observed >= 0).all()  # max(log(z + 1), 0)


def test_cli_demo_runs(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "safeops", "demo", "--epochs", "2", "--seed", "1"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert "plain TF loss" in out.stdout and "safeops loss" in out.stdout
    assert "every weight finite" in out.stdout


def test_cli_csv(tmp_path):
    rng = np.random.default_rng(0)
    lines = ["a,b,target"]
    for _ in range(64):
        a, b = rng.normal(size=2)
        cells = ["" if rng.random() < 0.2 else f"{a:.3f}", "" if rng.random() < 0.2 else f"{b:.3f}"]
        lines.append(f"{cells[0]},{cells[1]},{a - b:.3f}")
    path = tmp_path / "data.csv"
    path.write_text("\n".join(lines) + "\n")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "safeops",
            "demo",
            "--csv",
            str(path),
            "--target",
            "target",
            "--epochs",
            "3",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert "weights finite: True" in out.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "safeops", "demo", "--csv", str(path), "--target", "nope"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert bad.returncode != 0 and "no column 'nope'" in bad.stderr
