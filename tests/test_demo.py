"""The demo tells what happens, for every seed: plain Keras Dense gets NaN weights and predicts no
better than a constant, safeops MaskedDense stays finite and learns; the command line around it
(plot, CSV) fails early and clearly."""

import os
import subprocess
import sys

import numpy as np
import pytest

from safeops.demo import data, scenario


@pytest.fixture(scope="module", params=range(10), ids=lambda s: f"seed{s}")
def result(request):
    return scenario.run(seed=request.param)


def test_scenario_data(result):
    (x, y), (xh, yh) = data.seed_data(result["seed"])
    assert x.shape == (128, 2) and y.shape == (128, 1) and xh.shape == (1024, 2)
    assert 0.08 < result["missing_fraction"] < 0.3
    assert (x[~np.isnan(x)] >= 0).all()  # max(log(z + 1), 0)
    # The target depends on the features: a least-squares fit on the observed rows explains
    # a good part of it.
    rows = ~np.isnan(x).any(axis=1)
    a = np.c_[x[rows], np.ones(rows.sum())]
    residual = y[rows] - a @ np.linalg.lstsq(a, y[rows], rcond=None)[0]
    assert residual.var() < 0.6 * y[rows].var()


def test_plain_dense_is_poisoned_and_no_better_than_a_constant(result):
    plain = result["runs"]["plain"]
    assert plain["nan_variables"] and plain["nan_step"] is not None
    assert len(np.unique(plain["predictions"])) == 1  # one value for every held-out row
    # No constant beats the held-out rows' own mean, whose MSE is their variance.
    assert plain["held_out"][-1] >= result["best_constant"] * (1 - 1e-6)


def test_safeops_stays_finite_and_learns(result):
    safe = result["runs"]["safeops"]
    assert safe["nan_variables"] == [] and safe["nan_step"] is None
    assert np.isfinite(safe["loss"]).all() and np.isfinite(safe["held_out"]).all()
    assert safe["held_out"][-1] < 0.5 * result["constant"]
    assert safe["loss"][-1] < 0.5 * safe["loss"][0]


def test_mean_imputation_learns_too(result):
    imputed = result["runs"]["imputed"]
    assert imputed["nan_variables"] == []
    assert imputed["held_out"][-1] < 0.8 * result["constant"]


def test_report_states_what_was_measured(result):
    from safeops.demo import report

    text = " ".join(report.scenario_text(result).split())  # prose wraps anywhere
    plain = result["runs"]["plain"]
    assert f"{plain['nan_weights']} of {plain['weights']} weights NaN" in text
    assert "no better than the constant" in text
    assert f"predicts {np.unique(plain['predictions'])[0]:.4f} for every row" in text
    assert text.count("every weight finite") == 2


def cli(*args, cwd, env=None):
    return subprocess.run(
        [sys.executable, "-m", "safeops", *args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=cwd,
        env=env,
    )


def test_cli_demo_output_is_clean(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    out = cli("demo", "--epochs", "2", "--seed", "1", cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr
    assert "plain Keras Dense" in out.stdout and "safeops MaskedDense" in out.stdout
    assert "held-out MSE after 2 epochs" in out.stdout
    # TensorFlow's start-up notes (absl banner, I/W lines, the cuInit error) are held back,
    # and so is its note on the retracing of the demo's several predict functions.
    assert out.stderr == ""


def test_cli_plot(tmp_path):
    pytest.importorskip("matplotlib")
    out = cli("demo", "--epochs", "2", "--plot", "curves.png", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_plot_without_matplotlib_fails_before_training(tmp_path):
    # A matplotlib that cannot be found: a package directory shadowing it with a broken spec
    # is fragile, so hide it with a sitecustomize that removes it from the import system.
    (tmp_path / "sitecustomize.py").write_text(
        "import sys\nclass _Hide:\n    def find_spec(self, name, *a):\n"
        "        if name == 'matplotlib' or name.startswith('matplotlib.'):\n"
        "            raise ModuleNotFoundError(name)\n"
        "sys.meta_path.insert(0, _Hide())\n"
    )
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    out = cli("demo", "--plot", "x.png", cwd=tmp_path, env=env)
    assert out.returncode != 0
    assert "--plot needs matplotlib" in out.stderr
    assert "Seed scenario" not in out.stdout  # nothing trained


def write_csv(path, rows=80, seed=0, text_column=False):
    rng = np.random.default_rng(seed)
    lines = ["a,b,city,target" if text_column else "a,b,target"]
    for _ in range(rows):
        a, b = rng.normal(size=2)
        cells = [
            "" if rng.random() < 0.2 else f"{a:.3f}",
            "NA" if rng.random() < 0.2 else f"{b:.3f}",
        ]
        if text_column:
            cells.append(rng.choice(["Paris", "Lyon", ""]))
        lines.append(",".join([*cells, f"{2 * a - b + 0.1 * rng.normal():.3f}"]))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_read_csv_missing_cells_and_target(tmp_path):
    path = write_csv(tmp_path / "t.csv", rows=30)
    x, y, features, dropped = data.read_csv(str(path), "target")
    assert features == ["a", "b"] and x.shape == (30, 2) and y.shape == (30, 1)
    assert np.isnan(x).any() and not np.isnan(y).any() and dropped == 0


def test_cli_csv_held_out_error_beside_mean_imputation(tmp_path):
    path = write_csv(tmp_path / "data.csv")
    out = cli("demo", "--csv", str(path), "--target", "target", "--epochs", "3", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "mean imputation + Dense" in out.stdout and "safeops MaskedDense" in out.stdout
    assert "16 rows held out" in out.stdout
    assert "held-out MSE after 3 epochs, 16 rows" in out.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["--target", "target"], "--csv FILE and --target COLUMN go together"),
        (["--csv", "{dir}/missing.csv", "--target", "t"], "cannot read {dir}/missing.csv"),
        (["--csv", "{dir}/data.csv", "--target", "nope"], "no column 'nope'"),
        (["--csv", "{dir}/text.csv", "--target", "target"], "column 'city' holds text"),
    ],
    ids=["target_alone", "missing_file", "unknown_column", "text_column"],
)
def test_cli_csv_errors_are_one_line(tmp_path, args, message):
    write_csv(tmp_path / "data.csv")
    write_csv(tmp_path / "text.csv", text_column=True)
    out = cli("demo", *[a.format(dir=tmp_path) for a in args], cwd=tmp_path)
    assert out.returncode != 0
    assert message.format(dir=tmp_path) in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
