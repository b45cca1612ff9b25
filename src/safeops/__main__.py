"""Command line: `python -m safeops <command>` (also installed as `safeops`).

Each command is a function registered in COMMANDS with its help text and an optional
`configure(parser)` for its own arguments; adding one is adding an entry. Building the parser
imports no TensorFlow, so `--help` and `--version` are fast; the commands that run TensorFlow
start it through safeops._startup, which holds back its start-up notes.
"""

import argparse
import sys


def _info(args):
    from safeops import _build_info, _native

    lines = [
        ("safeops", _build_info.VERSION),
        ("TensorFlow built against", _build_info.TF_VERSION or "none (SAFEOPS_TF=OFF)"),
        *_tensorflow_lines(),
        ("XLA kernels (custom calls)", _xla_line(_build_info)),
        ("CUDA kernels", "yes" if _build_info.CUDA else _cuda_emulated(_native)),
    ]
    if _build_info.CUDA:
        from safeops import routing

        lines.append(("masked_dense on a GPU", routing.describe()))
    if _build_info.CUDA:
        lines += [
            ("CUDA toolkit", _native.cuda_toolkit or _build_info.CUDA_VERSION),
            ("CUDA architectures", _build_info.CUDA_ARCHITECTURES),
            ("device code in the library", " ".join(_device_code())),
            ("NVIDIA driver needed", f"R{_native.cuda_required_driver} or newer"),
        ]
    width = max(len(k) for k, _ in lines)
    for key, value in lines:
        print(f"{key.ljust(width)}  {value}")
    return 0


def _tensorflow_lines():
    """(key, value) lines on the running TensorFlow and the GPUs it sees."""
    import importlib.util

    if importlib.util.find_spec("tensorflow") is None:
        return [("TensorFlow running", "not installed")]
    from safeops import _startup

    no_gpu = _startup.start_tensorflow()
    import tensorflow as tf

    gpus = len(tf.config.list_physical_devices("GPU"))
    why = f" ({no_gpu[0]})" if no_gpu and not gpus else ""
    return [("TensorFlow running", tf.__version__), ("GPUs TensorFlow sees", f"{gpus}{why}")]


def _xla_line(build_info):
    if not build_info.XLA:
        return "no: masked_dense runs composite TensorFlow ops under XLA"
    from safeops.dense import XLA_CUSTOM_CALL

    used = [device for device, on in XLA_CUSTOM_CALL.items() if on] or ["no device"]
    return f"masked_dense forward and backward; emitted under XLA on {', '.join(used)}"


def _cuda_emulated(native):
    if getattr(native, "cuda_emulated", False):
        return "emulated on the host (SAFEOPS_CUDA_EMULATE: tests without a GPU)"
    return "no"


def _device_code():
    """Targets found in the installed library's fatbinaries (sm_XX machine code, compute_XX
    PTX): what the build really carries, not what it was asked for."""

    from safeops import _fatbin, _native

    return _fatbin.device_code(_native.__file__)


def _bench(args):
    import json

    from safeops import _startup
    from safeops.bench import dense_cpu, dense_xla, indicator_cpu, missing, where_cpu

    _startup.start_tensorflow()
    results = {}
    if args.suite in ("where", "all"):
        results["where"] = where_cpu.run(args.sizes, args.repeats, args.seed)
        print(where_cpu.report(results["where"]), end="\n\n")
    if args.suite in ("dense", "all"):
        results["dense"] = dense_cpu.run(repeats=args.repeats or 20, seed=args.seed)
        print(dense_cpu.report(results["dense"]))
    if args.suite == "xla":  # needs a build with XLA kernels: not part of "all"
        results["xla"] = dense_xla.run(repeats=args.repeats or 20, seed=args.seed)
        print(dense_xla.report(results["xla"]))
    if args.suite == "indicator":  # minutes at K = 1024: not part of "all"
        results["indicator"] = indicator_cpu.run(repeats=args.repeats or 20, seed=args.seed)
        print(indicator_cpu.report(results["indicator"]))
    if args.suite == "missing":  # minutes, and needs scikit-learn: not part of "all"
        results["missing"] = missing.run_args(args)
        print(missing.report(results["missing"]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


def _bench_args(parser):
    from safeops.bench import missing, where_cpu

    parser.add_argument(
        "--suite",
        choices=("where", "dense", "all", "xla", "indicator", "missing"),
        default="all",
        help="which suite to run (all: where and dense; xla: masked_dense's custom call against "
        "its composite under XLA; indicator: the CPU's two designs for indicator weights; "
        "missing: does a model learn better from data with missing values, needs scikit-learn)",
    )
    where_cpu.add_arguments(parser)  # --sizes (where only), --repeats, --seed, --json
    missing.add_suite_arguments(parser)  # --seeds, --epochs, --only, --plot (missing only)


def _demo(args):
    from safeops import demo

    return demo.main(args)


def _demo_args(parser):
    from safeops import demo

    demo.add_arguments(parser)


# name -> (function(args) -> exit status, help, configure(parser) or None)
COMMANDS = {
    "info": (_info, "versions, TensorFlow ABI, CUDA build facts", None),
    "demo": (
        _demo,
        "NaN features trained three ways: plain Dense, imputation, safeops",
        _demo_args,
    ),
    "bench": (_bench, "CPU benchmarks: safe_where/fill_missing and masked_dense", _bench_args),
}


def build_parser():
    from safeops import _build_info

    parser = argparse.ArgumentParser(prog="safeops", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--version",
        action="version",
        version=f"safeops {_build_info.VERSION} (built against TensorFlow "
        f"{_build_info.TF_VERSION or 'none'})",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")
    for name, (_, help_text, configure) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if configure:
            configure(p)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    return COMMANDS[args.command][0](args)


if __name__ == "__main__":
    sys.exit(main())
