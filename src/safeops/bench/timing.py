"""Timing and reporting shared by the benchmark suites (no TensorFlow, no torch)."""

import argparse
import json
import os
import platform
import statistics
import time


def interleaved_medians(candidates, repeats, warmup=3, timer=None):
    """Median seconds of each callable in `candidates` (name -> fn), the candidates run in turn
    in every round so that a noisy machine slows them alike. `timer(fn)` times one call
    (default: wall clock, for code that is finished when it returns)."""
    timer = timer or wall_time
    for fn in candidates.values():
        for _ in range(warmup):
            fn()
    samples = {name: [] for name in candidates}
    for _ in range(repeats):
        for name, fn in candidates.items():
            samples[name].append(timer(fn))
    return {name: statistics.median(ts) for name, ts in samples.items()}


def wall_time(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def cpu_description():
    """'model name, N cores' of this machine (Linux /proc/cpuinfo; platform info elsewhere)."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} logical CPUs"


# Every suite reports its ratios one way, this one.
RATIO_NOTE = "time ratio = safeops time / baseline time: below 1.00 safeops is faster"


def time_ratio(safeops_s, baseline_s):
    """safeops time over baseline time (see RATIO_NOTE)."""
    return safeops_s / baseline_s


def format_table(header, rows):
    """A plain-text table, columns padded to their widest cell."""
    cells = [list(map(str, header))] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def cpu_report(title, header, rows):
    """A CPU suite's report: its title with this machine's CPU, RATIO_NOTE and the table."""
    return "\n".join([f"{title}, {cpu_description()}", RATIO_NOTE, format_table(header, rows)])


def add_shape_arguments(parser):
    """--repeats, --seed and --json of the suites timed over (B, K, N) shapes."""
    parser.add_argument("--repeats", type=int, default=20, help="timed rounds per case")
    parser.add_argument("--seed", type=int, help="random seed (default: fresh)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")


def human_count(n):
    """1e7 for 10_000_000, else the number."""
    exp = len(str(n)) - 1
    return f"1e{exp}" if n == 10**exp else str(n)


def suite_main(suite, argv=None):
    """Command line of a benchmark suite module: its add_arguments(parser), run_args(args) ->
    results and report(results); prints the report, writes --json when given."""
    parser = argparse.ArgumentParser(description=suite.__doc__.splitlines()[0])
    suite.add_arguments(parser)
    args = parser.parse_args(argv)
    results = suite.run_args(args)
    print(suite.report(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0
