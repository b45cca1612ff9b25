"""Command line: `python -m safeops <command>` (also installed as `safeops`).

Each command is a function registered in COMMANDS with its help text and an optional
`configure(parser)` for its own arguments; adding one is adding an entry.
"""

import argparse
import sys


def _info(args):
    from safeops import _build_info, _native

    lines = [
        ("safeops", _build_info.VERSION),
        ("TensorFlow built against", _build_info.TF_VERSION or "none (SAFEOPS_TF=OFF)"),
        ("TensorFlow running", _running_tensorflow()),
        ("CUDA kernels", "yes" if _build_info.CUDA else "no"),
    ]
    if _build_info.CUDA:
        lines += [
            ("CUDA toolkit", _native.cuda_toolkit or _build_info.CUDA_VERSION),
            ("CUDA architectures", _build_info.CUDA_ARCHITECTURES),
            ("NVIDIA driver needed", f"R{_native.cuda_required_driver} or newer"),
        ]
    width = max(len(k) for k, _ in lines)
    for key, value in lines:
        print(f"{key.ljust(width)}  {value}")
    return 0


def _running_tensorflow():
    import importlib.util

    if importlib.util.find_spec("tensorflow") is None:
        return "not installed"
    import tensorflow as tf

    return tf.__version__


def _bench(args):
    from safeops.bench import where_cpu

    return where_cpu.run_cli(args)


def _bench_args(parser):
    from safeops.bench import where_cpu

    where_cpu.add_arguments(parser)


# name -> (function(args) -> exit status, help, configure(parser) or None)
COMMANDS = {
    "info": (_info, "versions, TensorFlow ABI, CUDA build facts", None),
    "bench": (_bench, "CPU benchmark: safe_where and fill_missing vs tf.where", _bench_args),
}


def build_parser():
    parser = argparse.ArgumentParser(prog="safeops", description=__doc__.splitlines()[0])
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
