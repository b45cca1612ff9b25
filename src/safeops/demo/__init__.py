"""`python -m safeops demo`: features with NaN, trained three ways, from what each run measures.

The seed scenario (scenario.py): plain Keras Dense on the raw features, mean imputation + Dense
(the usual workaround) and safeops MaskedDense, side by side: training loss and held-out error
per epoch, when the plain model's weights turned NaN and what it predicts afterwards.
`--csv FILE --target COLUMN` runs the same three models on a user's table (tabular.py).

This module only reads arguments and files: TensorFlow starts once they are known to be usable.
"""

from safeops.demo import data, report

# SGD at its default rate needs about this many epochs over the scenario's 128 rows to pass
# mean imputation's held-out error; a CSV gets the same.
EPOCHS = 20


def add_arguments(p):
    p.add_argument("--epochs", type=int, default=EPOCHS, help=f"epochs (default {EPOCHS})")
    p.add_argument("--seed", type=int, default=0, help="random seed of data, weights, batches")
    p.add_argument("--plot", metavar="FILE.png", help="save loss and held-out error curves")
    p.add_argument("--csv", metavar="FILE", help="train on this CSV (empty cells are missing)")
    p.add_argument("--target", metavar="COLUMN", help="the CSV column to predict")


def main(args):
    from safeops import _startup

    if args.epochs < 1:
        raise SystemExit("--epochs must be at least 1")
    if args.plot:
        report.check_plot_support()
    if args.csv or args.target:
        if not (args.csv and args.target):
            raise SystemExit("--csv FILE and --target COLUMN go together")
        try:
            x, y, features, dropped = data.read_csv(args.csv, args.target)
        except data.CsvError as e:
            raise SystemExit(str(e)) from None
        _startup.start_tensorflow()
        from safeops.demo import tabular

        try:
            result = tabular.run(x, y, args.epochs, args.seed)
        except ValueError as e:
            raise SystemExit(f"{args.csv}: {e}") from None
        print(report.csv_text(args.csv, args.target, features, dropped, result))
    else:
        _startup.start_tensorflow()
        from safeops.demo import scenario

        result = scenario.run(args.epochs, args.seed)
        print(report.scenario_text(result))
    if args.plot:
        print(f"\nsaved the curves to {report.save_plot(result, args.plot)}")
    return 0
