"""masked_dense and imputation, measured: the numbers behind README's "Missing values" section.

1. On standardized features, MaskedDense without renormalize is mean imputation: a missing
   value becomes 0, which is the column's mean. The same model trained both ways from the same
   initial weights (MaskedDense on the features with NaN; Dense on the features with each NaN
   replaced by its column's training mean, then standardized) ends with the same weights.
2. renormalize (scale each row by K / n_observed) helps when the features are interchangeable
   readings of one quantity, and hurts when they are distinct: held-out MSE of both settings on
   each kind of data, half the entries missing at random.

Accuracy, not speed: nothing here is timed. Run against the installed safeops:
    python benchmarks/imputation.py [--seeds 3] [--epochs 30]
"""

import argparse

import keras
import numpy as np

from safeops.layers import MaskedDense

ROWS, HELD_OUT, FEATURES, MISSING = 2000, 1000, 16, 0.5


def repeated_readings(rng, n):
    """FEATURES noisy readings of one hidden quantity; the target is the quantity."""
    t = rng.normal(size=(n, 1))
    return t + 0.5 * rng.normal(size=(n, FEATURES)), t


def distinct_features(rng, n):
    """FEATURES independent features; the target is a fixed linear combination plus noise."""
    x = rng.normal(size=(n, FEATURES))
    w = np.random.default_rng(12345).normal(size=(FEATURES, 1)) / np.sqrt(FEATURES)
    return x, x @ w + 0.1 * rng.normal(size=(n, 1))


def split_standardized(make, seed):
    """Training and held-out rows with MISSING of the entries NaN, standardized with the
    training rows' NaN-aware mean and deviation; also the raw means (for imputation)."""
    rng = np.random.default_rng(seed)
    x, y = make(rng, ROWS + HELD_OUT)
    x[rng.random(x.shape) < MISSING] = np.nan
    mean, std = np.nanmean(x[:ROWS], axis=0), np.nanstd(x[:ROWS], axis=0)
    x = ((x - mean) / std).astype("float32")
    y = y.astype("float32")
    return (x[:ROWS], y[:ROWS]), (x[ROWS:], y[ROWS:])


def model(first_layer, seed, **options):
    keras.utils.set_random_seed(seed)
    m = keras.Sequential(
        [
            keras.Input((FEATURES,)),
            first_layer(32, activation="relu", **options),
            keras.layers.Dense(1),
        ]
    )
    m.compile(optimizer="adam", loss="mse")
    return m


def fit(m, x, y, epochs, seed):
    keras.utils.set_random_seed(seed)  # the same batches for every model
    m.fit(x, y, batch_size=32, epochs=epochs, verbose=0)
    return m


def held_out_mse(m, x, y):
    return float(np.mean((m.predict(x, verbose=0) - y) ** 2))


def mean_imputation_gap(seed, epochs):
    """Largest difference between the weights of MaskedDense (renormalize=False) on
    standardized features with NaN and Dense on the same features mean-imputed, after the same
    training; and the two held-out MSE."""
    (x, y), (xh, yh) = split_standardized(distinct_features, seed)
    imputed, imputed_h = np.nan_to_num(x, nan=0.0), np.nan_to_num(xh, nan=0.0)  # the mean is 0
    masked = fit(model(MaskedDense, seed), x, y, epochs, seed)
    dense = fit(model(keras.layers.Dense, seed), imputed, y, epochs, seed)
    gap = max(
        float(np.max(np.abs(a.numpy() - b.numpy())))
        for a, b in zip(masked.weights, dense.weights, strict=True)
    )
    return gap, held_out_mse(masked, xh, yh), held_out_mse(dense, imputed_h, yh)


def renormalize_effect(make, seed, epochs):
    """Held-out MSE of MaskedDense with renormalize False and True."""
    (x, y), (xh, yh) = split_standardized(make, seed)
    return [
        held_out_mse(fit(model(MaskedDense, seed, renormalize=r), x, y, epochs, seed), xh, yh)
        for r in (False, True)
    ]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args()
    seeds = range(args.seeds)
    print(
        f"{ROWS} training rows, {HELD_OUT} held out, {FEATURES} features, "
        f"{100 * MISSING:.0f} % missing at random, Adam, {args.epochs} epochs, seeds {list(seeds)}"
    )
    gaps = [mean_imputation_gap(s, args.epochs) for s in seeds]
    print("1. MaskedDense(renormalize=False) vs mean imputation + Dense, standardized features:")
    print(f"   largest weight difference after training: {max(g[0] for g in gaps):.3g}")
    print(
        f"   held-out MSE (mean over seeds): {np.mean([g[1] for g in gaps]):.4f} vs "
        f"{np.mean([g[2] for g in gaps]):.4f}"
    )
    print("2. held-out MSE, renormalize False vs True (mean over seeds):")
    for name, make in (
        ("repeated readings", repeated_readings),
        ("distinct features", distinct_features),
    ):
        off, on = np.mean([renormalize_effect(make, s, args.epochs) for s in seeds], axis=0)
        print(f"   {name:<18} {off:.4f} vs {on:.4f}")


if __name__ == "__main__":
    main()
