"""The seed scenario (docs/design.md), trained three ways from what each run measures.

A real user report: 128 rows, 2 features max(log(z + 1), 0) (NaN wherever z < -1, ~16 %),
Dense(64) -> ReLU -> Dense(1), the output patched with where(is_nan(t), 0, t) and guarded by
check_numerics; SGD (its default rate), MSE, batch 8. Here the target depends on the features
(z1 - z2 plus noise, see data.seed_data), so there is something to learn, and the error is
measured on held-out rows.
"""

import keras
import numpy as np

from safeops.demo import EPOCHS, data, train

BATCH = 8


def seed_model(first_layer):
    model = keras.Sequential(
        [
            keras.Input((2,)),
            first_layer(64),
            keras.layers.ReLU(),
            keras.layers.Dense(1),
            train.PatchNaN(),
            train.CheckNumerics(),
        ]
    )
    model.compile(optimizer=keras.optimizers.SGD(), loss="mse")
    return model


def run(epochs=EPOCHS, seed=0):
    """The three runs of the scenario at `seed`, and what they are compared against."""
    (x, y), (xh, yh) = data.seed_data(seed)
    runs = train.train_all((x, y), (xh, yh), seed_model, epochs, BATCH, seed)
    return {
        "seed": seed,
        "epochs": epochs,
        "rows": len(x),
        "held_out_rows": len(xh),
        "missing_fraction": float(np.isnan(x).mean()),
        # Predicting the training mean for every held-out row; no constant does better than
        # the held-out rows' own mean, whose MSE is their variance.
        "constant": float(np.mean((yh - y.mean()) ** 2)),
        "best_constant": float(np.var(yh)),
        "runs": runs,
        "plain": plain_diagnosis(runs["plain"]["model"], xh),
    }


def plain_diagnosis(model, xh):
    """What the plain model does with the held-out rows after training: the fraction of NaN
    in its first layer's output, in the ReLU's and in the output before the patch."""
    first, relu, raw = (train.layer_output(model, i, xh) for i in range(3))
    return {
        "first_nan": float(np.isnan(first).mean()),
        "relu_nan": float(np.isnan(relu).mean()),
        "relu_zero_for_nan": bool((relu[np.isnan(first)] == 0).all()),
        "raw_nan": float(np.isnan(raw).mean()),
    }
