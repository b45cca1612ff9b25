"""`demo --csv FILE --target COLUMN`: the three models of the demo on a user's table.

A fifth of the rows (shuffled by --seed) is held out. Features and target are standardized with
the training rows' NaN-aware means and deviations (NaN stays NaN). On standardized features
MaskedDense without renormalize is exactly mean imputation (a missing value becomes 0, the
mean), so MaskedDense runs here with renormalize=True.
"""

import keras
import numpy as np

from safeops.demo import train
from safeops.layers import MaskedDense

HELD_OUT_FRACTION = 0.2
MIN_ROWS = 10
BATCH = 32
UNITS = 32


def split(x, y, seed):
    """(train, held-out) pairs of (x, y), the held-out rows a shuffled fifth."""
    if len(x) < MIN_ROWS:
        raise ValueError(f"needs at least {MIN_ROWS} rows with a target, got {len(x)}")
    order = np.random.default_rng(seed).permutation(len(x))
    n_held = max(1, round(HELD_OUT_FRACTION * len(x)))
    held, kept = order[:n_held], order[n_held:]
    return (x[kept], y[kept]), (x[held], y[held])


def standardizer(x):
    """(mean, std) per column over the observed entries: 0 and 1 for a column never observed,
    1 for a constant one."""
    mean = train.column_means(x)
    observed = ~np.isnan(x)
    squares = np.where(observed, (x - mean) ** 2, 0.0).sum(axis=0, dtype="float64")
    std = np.sqrt(squares / np.maximum(observed.sum(axis=0), 1))
    return mean, np.where(std > 0, std, 1.0).astype(x.dtype)


def run(x, y, epochs, seed):
    (xt, yt), (xh, yh) = split(x, y, seed)
    mx, sx = standardizer(xt)
    my, sy = standardizer(yt)

    def model_fn(first_layer):
        options = {"renormalize": True} if first_layer is MaskedDense else {}
        model = keras.Sequential(
            [
                keras.Input((x.shape[1],)),
                first_layer(UNITS, activation="relu", **options),
                keras.layers.Dense(1),
            ]
        )
        model.compile(optimizer="adam", loss="mse")
        return model

    runs = train.train_all(
        ((xt - mx) / sx, (yt - my) / sy),
        ((xh - mx) / sx, (yh - my) / sy),
        model_fn,
        epochs,
        BATCH,
        seed,
    )
    for r in runs.values():  # errors in the target's units
        for key in ("loss", "held_out"):
            r[key] = [v * float(sy[0]) ** 2 for v in r[key]]
    return {
        "seed": seed,
        "rows": len(xt),
        "held_out_rows": len(xh),
        "epochs": epochs,
        "missing_fraction": float(np.isnan(x).mean()),
        "constant": float(np.mean((yh - yt.mean()) ** 2)),
        "runs": runs,
    }
