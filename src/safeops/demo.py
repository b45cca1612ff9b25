"""`python -m safeops demo`: the seed scenario, plain TensorFlow vs safeops, side by side.

A real user report (DESIGN.md): 128 samples, 2 features max(log(z + 1), 0) with z ~ N(0, 1)
(NaN wherever z < -1, about 16 %), labels N(0, 1); Dense(64) -> ReLU -> Dense(1), the output
patched with where(is_nan(t), 0, t) and guarded by check_numerics; SGD, MSE, batch 8. With
plain Keras every weight is NaN after the first epoch and the loss freezes, silently: the
patched forward is finite, so check_numerics never fires. With the first Dense replaced by
safeops.layers.MaskedDense the loss falls and the weights stay finite.

`--csv FILE --target COLUMN` trains a small MaskedDense model on a CSV whose empty cells are
missing values.
"""

import csv
import math

import keras
import numpy as np
import tensorflow as tf

from safeops.layers import MaskedDense


class PatchNaN(keras.layers.Layer):
    """where(is_nan(t), 0, t): the usual patch of a model's output."""

    def call(self, t):
        return tf.where(tf.math.is_nan(t), tf.zeros_like(t), t)


class CheckNumerics(keras.layers.Layer):
    """tf.debugging.check_numerics on the (patched) output."""

    def call(self, t):
        return tf.debugging.check_numerics(t, "model output")


def seed_data(seed, samples=128):
    """The scenario's data, drawn afresh from `seed`."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(samples, 2))
    with np.errstate(invalid="ignore"):
        x = np.maximum(np.log(z + 1.0), 0.0)  # log of a negative number: NaN
    y = rng.normal(size=(samples, 1))
    return x.astype("float32"), y.astype("float32")


def seed_model(first_layer, seed):
    keras.utils.set_random_seed(seed)  # the same initial weights for both models
    model = keras.Sequential(
        [
            keras.Input((2,)),
            first_layer(64),
            keras.layers.ReLU(),
            keras.layers.Dense(1),
            PatchNaN(),
            CheckNumerics(),
        ]
    )
    model.compile(optimizer=keras.optimizers.SGD(), loss="mse")
    return model


def nan_weights(model):
    """(NaN weight entries, all weight entries)."""
    values = [w.numpy() for w in model.weights]
    return sum(int(np.isnan(v).sum()) for v in values), sum(v.size for v in values)


def nan_variables(model):
    """Paths of the weights that hold a NaN."""
    return [w.path for w in model.weights if np.isnan(w.numpy()).any()]


def train(model, x, y, epochs, seed):
    """Per-epoch (loss, NaN weights) of model.fit on the scenario."""
    rows = []
    for _ in range(epochs):
        keras.utils.set_random_seed(seed + len(rows))
        history = model.fit(x, y, batch_size=8, epochs=1, shuffle=True, verbose=0)
        rows.append((history.history["loss"][0], nan_weights(model)[0]))
    return rows


def run_seed_scenario(epochs=4, seed=0):
    """Trains both models; returns the per-epoch rows and the data's missing fraction."""
    x, y = seed_data(seed)
    plain_model = seed_model(keras.layers.Dense, seed)
    plain = train(plain_model, x, y, epochs, seed)
    safe_model = seed_model(MaskedDense, seed)
    safe = train(safe_model, x, y, epochs, seed)
    return {
        "plain": plain,
        "safe": safe,
        "missing_fraction": float(np.isnan(x).mean()),
        "total_weights": nan_weights(plain_model)[1],
        "plain_nan_variables": nan_variables(plain_model),
        "safe_nan_variables": nan_variables(safe_model),
    }


def _fmt_loss(v):
    return "nan" if math.isnan(v) else f"{v:.4f}"


def print_table(r):
    plain, safe, total = r["plain"], r["safe"], r["total_weights"]
    print(
        f"Seed scenario: 128 samples, 2 features, {100 * r['missing_fraction']:.1f} % missing "
        "(NaN); Dense(64)-ReLU-Dense(1), where(is_nan) patch + check_numerics, SGD, MSE, "
        "batch 8\n"
    )
    print(
        f"{'epoch':>5} | {'plain TF loss':>13} {'NaN weights':>13} | "
        f"{'safeops loss':>12} {'NaN weights':>13}"
    )
    print("-" * 66)
    for i, ((pl, pn), (sl, sn)) in enumerate(zip(plain, safe, strict=True), 1):
        print(
            f"{i:>5} | {_fmt_loss(pl):>13} {f'{pn}/{total}':>13} | "
            f"{_fmt_loss(sl):>12} {f'{sn}/{total}':>13}"
        )
    print()
    if r["plain_nan_variables"]:
        print(
            "plain TF:  NaN in " + ", ".join(r["plain_nan_variables"]) + "; nothing raised "
            "(the patched output is finite, so check_numerics stays silent)"
        )
    else:
        print("plain TF:  weights stayed finite in this run")
    if r["safe_nan_variables"]:
        print("safeops:   NaN in " + ", ".join(r["safe_nan_variables"]))
    else:
        trend = "falling" if safe[-1][0] < safe[0][0] else "not falling"
        print(f"safeops:   every weight finite, loss {trend}")


def save_plot(plain, safe, path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise SystemExit("--plot needs matplotlib: pip install 'safeops[plot]'") from e
    epochs = range(1, len(plain) + 1)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(epochs, [r[0] for r in plain], "o-", label="plain TensorFlow (Dense)")
    ax.plot(epochs, [r[0] for r in safe], "s-", label="safeops (MaskedDense)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss (MSE)")
    ax.set_title("NaN features: plain Dense vs MaskedDense")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"saved the loss curves to {path}")


def read_csv(path, target):
    """(features, target) of a numeric CSV; empty cells and unparsable numbers are NaN."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        raise SystemExit(f"{path}: empty file")
    header, body = rows[0], rows[1:]
    if target not in header:
        raise SystemExit(f"{path}: no column {target!r}; columns are {', '.join(header)}")

    def number(cell):
        try:
            return float(cell) if cell.strip() else math.nan
        except ValueError:
            return math.nan

    data = np.array([[number(c) for c in row] for row in body], dtype="float32")
    t = header.index(target)
    y = data[:, t : t + 1]
    x = np.delete(data, t, axis=1)
    keep = ~np.isnan(y[:, 0])
    if not keep.any():
        raise SystemExit(f"{path}: column {target!r} has no numeric values")
    return x[keep], y[keep], int((~keep).sum()), [h for i, h in enumerate(header) if i != t]


def run_csv(path, target, epochs, seed):
    x, y, dropped, features = read_csv(path, target)
    print(
        f"{path}: {x.shape[0]} rows, {x.shape[1]} features ({', '.join(features)}), "
        f"{100 * np.isnan(x).mean():.1f} % missing; target {target!r}"
        + (f" ({dropped} rows without a target dropped)" if dropped else "")
    )
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((x.shape[1],)),
            MaskedDense(32, activation="relu", renormalize=True),
            keras.layers.Dense(1),
        ]
    )
    model.compile(optimizer="adam", loss="mse")
    history = model.fit(x, y, batch_size=32, epochs=epochs, verbose=1)
    losses = history.history["loss"]
    print(
        f"loss: {losses[0]:.4f} after epoch 1, {losses[-1]:.4f} after epoch {len(losses)}; "
        f"weights finite: {nan_weights(model)[0] == 0}"
    )


def add_arguments(p):
    p.add_argument("--epochs", type=int, default=None, help="epochs (default 4; CSV: 20)")
    p.add_argument("--seed", type=int, default=0, help="random seed of data and weights")
    p.add_argument("--plot", metavar="FILE.png", help="save the two loss curves")
    p.add_argument("--csv", metavar="FILE", help="train a MaskedDense model on this CSV")
    p.add_argument("--target", metavar="COLUMN", help="the CSV column to predict")


def main(args):
    if args.csv:
        if not args.target:
            raise SystemExit("--csv needs --target COLUMN")
        return run_csv(args.csv, args.target, args.epochs or 20, args.seed)
    result = run_seed_scenario(args.epochs or 4, args.seed)
    print_table(result)
    if args.plot:
        save_plot(result["plain"], result["safe"], args.plot)
