"""Does a model learn better from data with missing values? Held-out R^2 / accuracy of the ways
to feed NaN data to a Keras MLP, with sklearn's HistGradientBoosting as the anchor.

Methods (the same MLP and training budget for every network: first layer of 64 units (relu),
Dense(64, relu), output; Adam 1e-3, batch 128, at most `epochs` epochs with early stopping on a
20 % validation split (patience 10, best weights restored); inputs standardized by
safeops.layers.Normalization adapted on the training rows):

- dense_nan      keras Dense on the NaN data: what fails. The first layer's kernel turns NaN at
                 the first step (NaN * 0 in its gradient); the relu after it outputs 0 there,
                 so the loss stays finite and the network predicts a constant;
- impute         mean imputation (0 after standardization) + MLP;
- impute_mask    mean imputation with the missing mask concatenated (2K inputs) + MLP;
- masked         safeops.layers.MaskedDense as the first layer;
- masked_ind     MaskedDense(indicator=True): the model class of impute_mask, in one layer;
- hgb            sklearn HistGradientBoostingRegressor/Classifier (native NaN support).

Data: see safeops.bench.missing_data (Gaussian tables d = 10 and 50, linear and quadratic
outcomes, MCAR 50 % and Gaussian self-masking MNAR, with the Bayes-optimal R^2; sklearn's
diabetes, breast cancer and wine with MCAR and MNAR holes). Needs scikit-learn
(`pip install "safeops[bench]"`); `--plot` needs matplotlib.
"""

import os
import statistics
import sys
import time

import numpy as np

from safeops.bench import missing_data as data
from safeops.bench.timing import cpu_description, format_table, suite_main

METHODS = ("dense_nan", "impute", "impute_mask", "masked", "masked_ind", "hgb")
LABELS = {
    "dense_nan": "Dense on NaN",
    "impute": "mean impute + MLP",
    "impute_mask": "impute + mask + MLP",
    "masked": "MaskedDense",
    "masked_ind": "MaskedDense + indicators",
    "hgb": "HistGradientBoosting",
    "bayes": "Bayes optimum",
    "complete": "complete-data bound",
}
GAUSSIAN_DIMS = (10, 50)
GAUSSIAN_TRAIN, GAUSSIAN_TEST = 4000, 2000
UNITS, BATCH, LEARNING_RATE, PATIENCE = 64, 128, 1e-3, 10
EPOCHS = 150
INSTALL_HINT = 'the missing-values benchmark needs scikit-learn: pip install "safeops[bench]"'


def settings():
    """(name, kind, parameters) of every data set and missingness, in table order."""
    out = []
    for d in GAUSSIAN_DIMS:
        for outcome in data.OUTCOMES:
            for mechanism in data.MECHANISMS:
                name = f"gaussian d={d} {outcome} {mechanism}"
                out.append((name, "gaussian", (d, outcome, mechanism)))
    for set_name in data.SKLEARN_SETS:
        for mechanism in data.MECHANISMS:
            out.append((f"{set_name} {mechanism}", "sklearn", (set_name, mechanism)))
    return out


def make_split(kind, params, seed):
    """A dict: x_train, y_train, x_test, y_test (NaN = missing), task, n_classes, and for the
    Gaussian tables the Bayes and complete-data R^2 on the test rows."""
    rng = np.random.default_rng(seed)
    if kind == "gaussian":
        problem = data.GaussianProblem(*params, rng)
        x_train, y_train, _ = problem.sample(GAUSSIAN_TRAIN, rng)
        x_test, y_test, x_complete = problem.sample(GAUSSIAN_TEST, rng)
        return {
            "x_train": x_train,
            "y_train": y_train,
            "x_test": x_test,
            "y_test": y_test,
            "task": "regression",
            "bayes": data.r2_score(y_test, problem.bayes_predict(x_test)),
            "complete": data.r2_score(y_test, problem.complete_predict(x_complete)),
        }
    set_name, mechanism = params
    x, y, task = data.sklearn_dataset(set_name)
    x = data.punch_holes(x, mechanism, rng)
    order = rng.permutation(len(x))
    n_test = len(x) // 4
    test, train = order[:n_test], order[n_test:]
    out = {"x_train": x[train], "y_train": y[train], "x_test": x[test], "y_test": y[test]}
    out["task"] = task
    if task == "classification":
        out["n_classes"] = int(y.max()) + 1
    return out


def _network(method, n_features, n_classes, seed):
    import keras

    import safeops

    keras.utils.set_random_seed(seed)
    width = 2 * n_features if method == "impute_mask" else n_features  # the mask: K inputs
    first = {
        "dense_nan": lambda: keras.layers.Dense(UNITS, activation="relu"),
        "impute": lambda: keras.layers.Dense(UNITS, activation="relu"),
        "impute_mask": lambda: keras.layers.Dense(UNITS, activation="relu"),
        "masked": lambda: safeops.layers.MaskedDense(UNITS, activation="relu"),
        "masked_ind": lambda: safeops.layers.MaskedDense(UNITS, activation="relu", indicator=True),
    }[method]()
    return keras.Sequential(
        [
            keras.Input((width,)),
            first,
            keras.layers.Dense(UNITS, activation="relu"),
            keras.layers.Dense(n_classes or 1),
        ]
    )


def _epoch_function(model, loss_fn, optimizer):
    """One compiled call per epoch: the shuffled mini-batch steps, then the validation loss.
    (Keras' fit costs 30-60 ms of CPU per epoch beyond the steps for models this small, more
    than the steps themselves.)"""
    import tensorflow as tf

    optimizer.build(model.trainable_variables)

    @tf.function(autograph=True)
    def epoch(x, y, order, x_val, y_val):
        n = tf.shape(order)[0]
        for i in tf.range((n + BATCH - 1) // BATCH):
            idx = order[i * BATCH : tf.minimum(n, (i + 1) * BATCH)]
            with tf.GradientTape() as tape:
                loss = loss_fn(tf.gather(y, idx), model(tf.gather(x, idx), training=True))
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return loss_fn(y_val, model(x_val, training=False))

    return epoch


def _inputs(method, x_std):
    """What each network is fed: x standardized, NaN kept or imputed (and the mask)."""
    if method in ("dense_nan", "masked", "masked_ind"):
        return x_std
    imputed = np.where(np.isnan(x_std), 0.0, x_std)  # the training mean, after standardizing
    if method == "impute":
        return imputed
    return np.concatenate([imputed, np.isnan(x_std).astype(x_std.dtype)], axis=1)


def _score(split, prediction):
    if split["task"] == "classification":
        return float(np.mean(prediction == split["y_test"]))
    return data.r2_score(split["y_test"], prediction)


def fit_network(method, split, seed, epochs):
    """(held-out score, whether the weights became NaN) of one network."""
    import keras
    import tensorflow as tf

    import safeops

    norm = safeops.layers.Normalization()
    norm.adapt(split["x_train"].astype("float32"))
    x_train = _inputs(method, norm(split["x_train"].astype("float32")).numpy())
    x_test = _inputs(method, norm(split["x_test"].astype("float32")).numpy())
    y_train = split["y_train"]
    n_classes = split.get("n_classes")
    if n_classes:
        loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        y_fit = y_train.astype("int32")
    else:  # standardized targets: one learning rate fits every data set
        y_shift, y_scale = float(np.mean(y_train)), float(np.std(y_train))
        loss_fn = keras.losses.MeanSquaredError()
        y_fit = ((y_train - y_shift) / y_scale).astype("float32")
    model = _network(method, split["x_train"].shape[1], n_classes, seed)
    epoch = _epoch_function(model, loss_fn, keras.optimizers.Adam(LEARNING_RATE))
    n_fit = int(0.8 * len(x_train))
    fit_x, fit_y = tf.constant(x_train[:n_fit]), tf.constant(y_fit[:n_fit])
    val_x, val_y = tf.constant(x_train[n_fit:]), tf.constant(y_fit[n_fit:])
    rng = np.random.default_rng(seed)
    best, best_weights, waited = np.inf, model.get_weights(), 0
    for _ in range(epochs):  # early stopping on the validation loss, best weights kept
        val_loss = float(epoch(fit_x, fit_y, tf.constant(rng.permutation(n_fit)), val_x, val_y))
        if not np.isfinite(val_loss):
            break
        if val_loss < best:
            best, best_weights, waited = val_loss, model.get_weights(), 0
        else:
            waited += 1
            if waited >= PATIENCE:
                break
    nan_weights = any(not np.isfinite(w).all() for w in model.get_weights())
    model.set_weights(best_weights)
    out = model.predict(x_test, batch_size=4096, verbose=0)
    if n_classes:
        score = _score(split, np.argmax(out, axis=1)) if np.isfinite(out).all() else np.nan
    else:
        score = _score(split, out[:, 0] * y_scale + y_shift)
    return score, nan_weights


def fit_boosting(split, seed):
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    cls = (
        HistGradientBoostingClassifier
        if split["task"] == "classification"
        else HistGradientBoostingRegressor
    )
    model = cls(random_state=seed).fit(split["x_train"], split["y_train"])
    return _score(split, model.predict(split["x_test"]))


def _check_sklearn():
    try:
        import sklearn  # noqa: F401
    except ImportError as e:
        raise SystemExit(INSTALL_HINT) from e


def run(seeds=5, base_seed=0, epochs=EPOCHS, only=None, progress=None):
    """{setting: {method: [score per seed], "bayes"/"complete": [...], "task": ...}}."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    _check_sklearn()
    results = {"settings": {}, "seeds": seeds, "epochs": epochs, "machine": cpu_description()}
    start = time.perf_counter()
    for name, kind, params in settings():
        if only and not any(part in name for part in only):
            continue
        entry = {"task": "regression" if kind == "gaussian" else data.SKLEARN_SETS[params[0]]}
        for s in range(seeds):
            seed = base_seed + s
            split = make_split(kind, params, seed)
            for key in ("bayes", "complete"):
                if key in split:
                    entry.setdefault(key, []).append(split[key])
            for method in METHODS:
                if method == "hgb":
                    score, nan_weights = fit_boosting(split, seed), False
                else:
                    score, nan_weights = fit_network(method, split, seed, epochs)
                entry.setdefault(method, []).append(score)
                if nan_weights:
                    entry.setdefault("nan_weights", []).append(method)
        results["settings"][name] = entry
        if progress:
            progress(f"{name}: done at {time.perf_counter() - start:.0f} s")
    results["seconds"] = time.perf_counter() - start
    return results


def _mean_sd(scores):
    finite = [s for s in scores if np.isfinite(s)]
    if len(finite) < len(scores):
        return "fails (NaN)" if not finite else f"NaN in {len(scores) - len(finite)} runs"
    sd = statistics.stdev(finite) if len(finite) > 1 else 0.0
    return f"{statistics.mean(finite):.3f} ± {sd:.3f}"


def table_rows(results):
    """(header, rows) of the results table: one row per setting, one column per method."""
    header = ("data set / missingness", "metric", *(LABELS[m] for m in METHODS))
    header += (LABELS["bayes"], LABELS["complete"])
    rows = []
    for name, entry in results["settings"].items():
        metric = "accuracy" if entry["task"] == "classification" else "R²"
        nan_runs = entry.get("nan_weights", [])
        cells = [_mean_sd(entry[m]) + (" †" if m in nan_runs else "") for m in METHODS]
        extra = [_mean_sd(entry[k]) if k in entry else "" for k in ("bayes", "complete")]
        rows.append((name, metric, *cells, *extra))
    return header, rows


NAN_NOTE = "†: the network's weights became NaN during training (in at least one run)."


def report(results):
    header, rows = table_rows(results)
    return "\n".join(
        [
            f"Held-out score, mean ± sd over {results['seeds']} seeds "
            f"(at most {results['epochs']} epochs, early stopping), {results['machine']}, "
            f"{results['seconds']:.0f} s",
            format_table(header, rows),
            NAN_NOTE,
        ]
    )


def markdown(results):
    """The table as Markdown (for benchmarks/RESULTS.md)."""
    header, rows = table_rows(results)
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def plot(results, path):
    """Bars of the mean score per method (error bars: sd), one panel per setting."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise SystemExit('--plot needs matplotlib: pip install "safeops[plot]"') from e
    names = list(results["settings"])
    cols = 4
    rows = -(-len(names) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names, strict=False):
        entry = results["settings"][name]
        means = [np.nanmean(entry[m]) if np.isfinite(entry[m]).any() else 0.0 for m in METHODS]
        sds = [np.nanstd(entry[m]) if np.isfinite(entry[m]).any() else 0.0 for m in METHODS]
        ax.bar(range(len(METHODS)), means, yerr=sds, color=[f"C{i}" for i in range(6)])
        if "bayes" in entry:
            ax.axhline(np.mean(entry["bayes"]), color="k", linestyle="--", linewidth=1)
        ax.set_title(name, fontsize=9)
        ax.set_xticks(range(len(METHODS)), METHODS, rotation=45, fontsize=7)
        ax.set_ylim(bottom=0.0)
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    fig.suptitle("held-out R² / accuracy (dashed: Bayes optimum)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def add_suite_arguments(parser):
    """The options of this suite beyond --seed and --json (for `python -m safeops bench`)."""
    parser.add_argument("--seeds", type=int, default=5, help="seeds per setting (missing suite)")
    parser.add_argument("--epochs", type=int, default=EPOCHS, help="at most this many epochs")
    parser.add_argument(
        "--only", nargs="+", metavar="TEXT", help="settings whose name contains one of these"
    )
    parser.add_argument("--plot", metavar="FILE.png", help="also plot the table (matplotlib)")


def add_arguments(parser):
    parser.add_argument("--seed", type=int, default=0, help="first seed")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    add_suite_arguments(parser)


def run_args(args):
    """Runs the suite for parsed arguments (see add_arguments)."""
    seed = 0 if args.seed is None else args.seed
    results = run(
        args.seeds, seed, args.epochs, args.only, lambda s: print(s, file=sys.stderr, flush=True)
    )
    if args.plot:
        plot(results, args.plot)
    return results


def main(argv=None):
    return suite_main(sys.modules[__name__], argv)
