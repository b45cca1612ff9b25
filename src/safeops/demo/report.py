"""The demo's output: tables and sentences from what a run measured, and the plot."""

import textwrap

import numpy as np

WIDTH = 92  # prose wraps here, the tables are about this wide
# How much below the constant predictor's error a model must be to count as better than it.
BETTER_BY = 0.05
COLORS = {"plain": "tab:red", "imputed": "tab:orange", "safeops": "tab:green"}
MARKERS = {"plain": "o", "imputed": "^", "safeops": "s"}


def check_plot_support():
    """SystemExit with what to install, before any training, when matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as e:
        raise SystemExit(
            f"--plot needs matplotlib ({e}): pip install matplotlib (or 'safeops[plot]')"
        ) from None


def epochs_shown(epochs):
    """The first three epochs, every fifth and the last."""
    return sorted({e for e in range(1, epochs + 1) if e <= 3 or e % 5 == 0} | {epochs})


def epoch_table(runs, epochs):
    """Training loss and held-out MSE per epoch, a column pair per model."""
    width = max(19, *(len(r["label"]) for r in runs.values()))

    def pair(a, b):
        return f"  {a:>{width // 2}}{b:>{width - width // 2}}"

    lines = [
        "      " + "".join(f"  {r['label']:^{width}}" for r in runs.values()),
        "epoch " + "".join(pair("loss", "held-out") for _ in runs),
    ]
    lines.append("-" * len(lines[1]))
    for e in epochs_shown(epochs):
        cells = (pair(_num(r["loss"][e - 1]), _num(r["held_out"][e - 1])) for r in runs.values())
        lines.append(f"{e:>5} " + "".join(cells))
    return "\n".join(line.rstrip() for line in lines)


def summary(result):
    """Held-out MSE of each model after training, against the constant predictor."""
    runs, constant = result["runs"], result["constant"]
    reference = "a constant: the training mean"
    width = max(len(reference), *(len(r["label"]) for r in runs.values()))
    lines = [
        f"held-out MSE after {result['epochs']} epochs, {result['held_out_rows']} rows",
        f"  {reference:<{width}}  {_num(constant):>9}",
    ]
    for r in runs.values():
        mse = r["held_out"][-1]
        lines.append(f"  {r['label']:<{width}}  {_num(mse):>9}  {_versus(mse, constant)}")
    return "\n".join(lines)


def _versus(mse, constant):
    if not np.isfinite(mse):
        return "no error to report: the predictions are not finite"
    gain = 1.0 - mse / constant
    if gain < BETTER_BY:
        return "no better than the constant"
    return f"{100 * gain:.0f} % below the constant"


def weights_line(run):
    """Which weights went NaN, and when."""
    if not run["nan_variables"]:
        return f"{run['label']}: every weight finite"
    epoch, step = divmod(run["nan_step"] - 1, run["steps_per_epoch"])
    return (
        f"{run['label']}: {run['nan_weights']} of {run['weights']} weights NaN "
        f"({', '.join(run['nan_variables'])}) from training step {run['nan_step']} "
        f"(epoch {epoch + 1}, batch {step + 1}) on; nothing was raised"
    )


def plain_story(run, diagnosis):
    """What the plain model does with the held-out rows, as measured."""
    said = []
    if diagnosis["first_nan"] == 1.0:
        said.append("its first layer outputs NaN for every held-out row")
    elif diagnosis["first_nan"] > 0:
        said.append(f"its first layer outputs NaN in {100 * diagnosis['first_nan']:.0f} % of cells")
    if diagnosis["first_nan"] > 0:
        if diagnosis["relu_nan"] == 0 and diagnosis["relu_zero_for_nan"]:
            said.append("the ReLU, as TensorFlow runs the compiled model here, turns NaN into 0")
        elif diagnosis["relu_nan"] > 0:
            said.append("the ReLU passes the NaN on")
    if diagnosis["raw_nan"] > 0:
        said.append(
            f"the output is NaN for {100 * diagnosis['raw_nan']:.0f} % of rows, which the "
            "where(is_nan) patch turns into 0 (so check_numerics never fires)"
        )
    distinct = np.unique(run["predictions"])
    if distinct.size == 1:
        said.append(f"so it predicts {distinct[0]:.4f} for every row: a constant")
    if not said:
        return ""
    return f"{run['label']}: " + "; ".join(said) + "."


def safeops_story(runs):
    safe, imputed = runs["safeops"]["held_out"][-1], runs["imputed"]["held_out"][-1]
    comparison = (
        "Here the missing values are the smallest ones (z below -1), so 0, the bottom of the "
        "observed range, stands in for them better than the mean"
        if safe < imputed
        else "Here the mean stands in for the missing values better than 0"
    )
    return (
        "safeops MaskedDense (renormalize=False) computes what Dense computes on zero-filled "
        f"features, with no preprocessing step. {comparison}: held-out MSE {safe:.4f} against "
        f"{imputed:.4f} with mean imputation."
    )


def scenario_text(result):
    runs = result["runs"]
    parts = [
        f"Seed scenario, seed {result['seed']}: {result['rows']} training rows, 2 features "
        f"max(log(z + 1), 0)\nwith {100 * result['missing_fraction']:.1f} % NaN, target "
        "z1 - z2 + noise. Dense(64)-ReLU-Dense(1), output patched\nwith where(is_nan) and "
        "guarded by check_numerics; SGD, MSE, batch 8.\nloss: training MSE of the epoch; "
        f"held-out: MSE on {result['held_out_rows']} new rows.",
        epoch_table(runs, result["epochs"]),
        summary(result),
        "\n".join(_wrap(weights_line(r)) for r in runs.values()),
        _wrap(plain_story(runs["plain"], result["plain"])),
        _wrap(safeops_story(runs)),
    ]
    return "\n\n".join(p for p in parts if p)


def csv_text(path, target, features, dropped, result):
    runs = result["runs"]
    header = (
        f"{path}: {result['rows'] + result['held_out_rows']} rows"
        + (f" ({dropped} more without a target dropped)" if dropped else "")
        + f", {len(features)} features ({', '.join(features)}), "
        f"{100 * result['missing_fraction']:.1f} % missing; target {target!r}. Features and "
        "target standardized with the training rows' NaN-aware mean and deviation; "
        f"{result['held_out_rows']} rows held out. Dense or MaskedDense(32, relu), Dense(1), "
        "Adam, MSE (in the target's units). MaskedDense runs with renormalize=True: without it, "
        "on standardized features it equals mean imputation exactly."
    )
    parts = [
        textwrap.fill(header, WIDTH),
        epoch_table(runs, result["epochs"]),
        summary(result),
        "\n".join(_wrap(weights_line(r)) for r in runs.values()),
    ]
    return "\n\n".join(parts)


def _wrap(text):
    return textwrap.fill(text, WIDTH, subsequent_indent="  ", break_on_hyphens=False)


def _num(v):
    return "nan" if not np.isfinite(v) else f"{v:.4f}"


def save_plot(result, path):
    """Training loss and held-out MSE of the three models per epoch, the constant predictor's
    error, and the step at which the plain model's weights went NaN."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    runs, epochs = result["runs"], result["epochs"]
    x = np.arange(1, epochs + 1)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6), sharex=True)
    panels = (("loss", "training loss (MSE)"), ("held_out", "held-out MSE"))
    for ax, (key, ylabel) in zip(axes, panels, strict=True):
        for name, r in runs.items():
            ax.plot(x, r[key], marker=MARKERS[name], ms=4, color=COLORS[name], label=r["label"])
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.set_xlim(-0.4, epochs + 0.5)  # the start of training (0) clear of the frame
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 5, 10]))
        ax.grid(alpha=0.3)
    axes[1].axhline(result["constant"], color="gray", ls="--", label="constant: the training mean")
    plain = runs["plain"]
    top = 1.1 * max(np.nanmax(r[k]) for r in runs.values() for k in ("loss", "held_out"))
    for ax in axes:
        ax.set_ylim(0, max(top, 1.1 * result["constant"]))
        if plain["nan_step"] is not None:
            at = plain["nan_step"] / plain["steps_per_epoch"]
            ax.axvline(at, color=COLORS["plain"], ls=":", lw=1.5)
            ax.annotate(
                f"plain Dense weights NaN\nafter step {plain['nan_step']} "
                f"(of {plain['steps_per_epoch']} per epoch)",
                (at, 0.25 * ax.get_ylim()[1]),
                xytext=(0.12 * epochs, 0.1 * ax.get_ylim()[1]),
                arrowprops={"arrowstyle": "->", "color": COLORS["plain"]},
                color=COLORS["plain"],
                fontsize=8,
            )
    handles, labels = axes[1].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=9, frameon=False)
    fig.suptitle(
        f"Features with {100 * result['missing_fraction']:.0f} % NaN (seed {result['seed']}): "
        "plain Dense, mean imputation + Dense, safeops MaskedDense"
    )
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
