"""The missing-values benchmark: its data (missingness rates, the closed-form Bayes predictor
against per-pattern least squares on a large sample) and a tiny end-to-end run."""

import sys

import numpy as np
import pytest

from safeops.bench import missing, missing_data


def _pattern_features(x_obs, outcome):
    """Features in which E[y | x_obs, pattern] is linear: affine for the linear outcome,
    quadratic (all products) for the bowl."""
    cols = [np.ones(len(x_obs)), *x_obs.T]
    if outcome == "bowl":
        k = x_obs.shape[1]
        cols += [x_obs[:, i] * x_obs[:, j] for i in range(k) for j in range(i, k)]
    return np.stack(cols, axis=1)


@pytest.mark.parametrize("outcome", missing_data.OUTCOMES)
@pytest.mark.parametrize("mechanism", missing_data.MECHANISMS)
def test_bayes_predictor_is_the_per_pattern_regression(outcome, mechanism):
    """Within a missingness pattern, E[y | x_obs, m] is affine (linear outcome) or quadratic
    (bowl) in x_obs for both mechanisms, so least squares per pattern on a large sample
    converges to it: the closed form must agree with it, pattern by pattern."""
    rng = np.random.default_rng(0)
    problem = missing_data.GaussianProblem(3, outcome, mechanism, rng)
    x, y, _ = problem.sample(300_000, rng)
    x_test, _, _ = problem.sample(400, rng)
    want = problem.bayes_predict(x_test)
    patterns = np.isnan(x)
    checked = 0
    for pattern in np.unique(patterns, axis=0):
        rows = np.all(patterns == pattern, axis=1)
        test_rows = np.all(np.isnan(x_test) == pattern, axis=1)
        if rows.sum() < 5000 or not test_rows.any():
            continue
        obs = ~pattern
        design = _pattern_features(x[rows][:, obs], outcome)
        coef, *_ = np.linalg.lstsq(design, y[rows], rcond=None)
        fitted = _pattern_features(x_test[test_rows][:, obs], outcome) @ coef
        # Sampling error of the fit: small against sd(y); a wrong conditional law (the masking
        # factors or the bowl's conditional variance left out) shifts whole patterns by more.
        diff = (fitted - want[test_rows]) / np.std(y)
        assert np.sqrt(np.mean(diff**2)) < 0.025 and abs(np.mean(diff)) < 0.015, str(pattern)
        checked += 1
    assert checked >= 4


def test_bayes_beats_what_ignores_the_mechanism():
    """Under self-masking, the MCAR formula (conditional Gaussian mean, no masking factor)
    predicts worse than the Bayes predictor on held-out data."""
    rng = np.random.default_rng(1)
    problem = missing_data.GaussianProblem(10, "linear", "mnar", rng)
    x, y, x_complete = problem.sample(3000, rng)
    bayes = missing_data.r2_score(y, problem.bayes_predict(x))
    problem.mechanism = "mcar"  # the same parameters, the wrong conditional law
    naive = missing_data.r2_score(y, problem.bayes_predict(x))
    complete = missing_data.r2_score(y, problem.complete_predict(x_complete))
    assert naive < bayes < complete
    assert abs(complete - missing_data.SNR / (1 + missing_data.SNR)) < 0.02


@pytest.mark.parametrize("mechanism", missing_data.MECHANISMS)
def test_gaussian_missingness(mechanism):
    rng = np.random.default_rng(2)
    problem = missing_data.GaussianProblem(10, "linear", mechanism, rng)
    x, _, x_complete = problem.sample(20000, rng)
    holes = np.isnan(x)
    assert abs(holes.mean() - 0.5) < 0.02
    centred = x_complete - problem.mean
    large = centred > 0
    gap = holes[large].mean() - holes[~large].mean()  # self-masking hides large values
    assert gap > 0.3 if mechanism == "mnar" else abs(gap) < 0.02


def test_punched_holes():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(20000, 4))
    mcar = np.isnan(missing_data.punch_holes(x, "mcar", rng))
    mnar = np.isnan(missing_data.punch_holes(x, "mnar", rng))
    assert abs(mcar.mean() - 0.3) < 0.01 and abs(mnar.mean() - 0.35) < 0.01
    above = x > np.median(x, axis=0)
    assert abs(mnar[above].mean() - 0.6) < 0.02 and abs(mnar[~above].mean() - 0.1) < 0.02
    with pytest.raises(ValueError, match="mechanism"):
        missing_data.punch_holes(x, "mar", rng)


def test_r2_of_a_non_finite_prediction_is_nan():
    assert np.isnan(missing_data.r2_score(np.arange(3.0), np.array([0.0, np.nan, 1.0])))


def test_without_sklearn_the_suite_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    with pytest.raises(SystemExit, match=r"pip install \"safeops\[bench\]\""):
        missing.run(seeds=1)


def test_tiny_run(monkeypatch, tmp_path):
    pytest.importorskip("sklearn")
    monkeypatch.setattr(missing, "GAUSSIAN_TRAIN", 400)
    monkeypatch.setattr(missing, "GAUSSIAN_TEST", 200)
    results = missing.run(seeds=2, epochs=3, only=["d=10 linear mcar", "wine mnar"])
    assert list(results["settings"]) == ["gaussian d=10 linear mcar", "wine mnar"]
    gaussian, wine = results["settings"].values()
    for entry in (gaussian, wine):
        assert all(len(entry[m]) == 2 for m in missing.METHODS)
        assert entry["nan_weights"] == ["dense_nan", "dense_nan"]  # what fails, every seed
    assert gaussian["task"] == "regression" and wine["task"] == "classification"
    assert all(0 < b < c < 1 for b, c in zip(gaussian["bayes"], gaussian["complete"], strict=True))
    assert all(0 <= a <= 1 for m in missing.METHODS for a in wine[m])
    first_row = missing.report(results).splitlines()[3]
    assert first_row.lstrip().startswith("gaussian d=10 linear mcar") and "†" in first_row
    table = missing.markdown(results)
    assert table.count("\n") == 3 and "MaskedDense + indicators" in table
