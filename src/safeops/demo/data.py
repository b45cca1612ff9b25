"""The demo's data: the seed scenario's draws and the rows of a user's CSV (NumPy only)."""

import csv
import math

import numpy as np

SAMPLES = 128  # training rows, as in the user report
HELD_OUT = 1024  # fresh rows the held-out error is measured on
NOISE = 0.3


def seed_data(seed, samples=SAMPLES, held_out=HELD_OUT):
    """(x, y) for training and (x, y) held out, drawn from `seed`.

    The user report's features: 2 columns max(log(z + 1), 0) with z ~ N(0, 1), NaN wherever
    z < -1 (about 16 %). The target is z1 - z2 + N(0, 0.3^2) noise: the observed features carry
    it (log(1 + z) for z > 0), the noise and the hidden z below 0 set a floor.
    """
    rng = np.random.default_rng(seed)
    return _draw(rng, samples), _draw(rng, held_out)


def _draw(rng, n):
    z = rng.normal(size=(n, 2))
    with np.errstate(invalid="ignore"):
        x = np.maximum(np.log(z + 1.0), 0.0)  # log of a negative number: NaN
    y = z[:, :1] - z[:, 1:] + NOISE * rng.normal(size=(n, 1))
    return x.astype("float32"), y.astype("float32")


# Cells that mean "missing" besides an empty one (compared in lower case).
MISSING_CELLS = ("", "na", "n/a", "nan", "null", "none", "?")


class CsvError(ValueError):
    """A CSV the demo cannot use, with a one-line reason."""


def read_csv(path, target):
    """(x [rows, features], y [rows, 1], feature names, rows dropped for a missing target) of a
    numeric CSV whose missing cells are empty or one of MISSING_CELLS. A text column is
    refused: it would become a feature that is always missing."""
    try:
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
    except OSError as e:
        raise CsvError(f"cannot read {path}: {e.strerror}") from e
    except (UnicodeDecodeError, csv.Error) as e:
        raise CsvError(f"{path} is not a readable CSV file: {e}") from e
    if not rows:
        raise CsvError(f"{path}: empty file")
    header, body = [h.strip() for h in rows[0]], rows[1:]
    if target not in header:
        raise CsvError(f"{path}: no column {target!r}; columns are {', '.join(header)}")
    short = [i for i, row in enumerate(body, 2) if len(row) != len(header)]
    if short:
        raise CsvError(
            f"{path}: line {short[0]} has a different number of cells than the header "
            f"({len(header)})"
        )
    data = np.array([[_number(c) for c in row] for row in body], dtype="float64")
    text = np.isnan(data) & ~np.array([[_is_missing(c) for c in row] for row in body], bool)
    if text.any():
        names = [header[j] for j in np.flatnonzero(text.any(axis=0))]
        i, j = np.argwhere(text)[0]
        raise CsvError(
            f"{path}: column{'s' if len(names) > 1 else ''} {', '.join(map(repr, names))} "
            f"hold{'' if len(names) > 1 else 's'} text (e.g. {body[i][j]!r} on line {i + 2}); "
            "the demo takes numeric columns only: encode them as numbers or drop them"
        )
    t = header.index(target)
    y, x = data[:, t : t + 1], np.delete(data, t, axis=1)
    keep = ~np.isnan(y[:, 0])
    if not keep.any():
        raise CsvError(f"{path}: column {target!r} has no values")
    features = [h for i, h in enumerate(header) if i != t]
    return x[keep].astype("float32"), y[keep].astype("float32"), features, int((~keep).sum())


def _is_missing(cell):
    return cell.strip().lower() in MISSING_CELLS


def _number(cell):
    if _is_missing(cell):
        return math.nan
    try:
        value = float(cell)
    except ValueError:
        return math.nan  # text: read_csv tells it from a missing cell
    return value
