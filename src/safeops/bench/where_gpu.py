"""GPU benchmark of the CUDA select kernels through safeops.native (torch, no TensorFlow).

For each size (elements) it times with CUDA events, interleaved, medians after warm-up:

- copy: a device-to-device copy of x (torch copy_), the bandwidth reference;
- safeops where forward (native.where) and fused backward (native.where_grad), and
  fill_missing forward, each as achieved bandwidth (bytes it must move / time) and as % of the
  copy's bandwidth (docs/design.md §8);
- torch.where forward + autograd backward against safeops forward + backward, as a time ratio
  (timing.RATIO_NOTE).

Bytes moved: where forward reads the condition (1 byte/element), x and y and writes the output;
the backward reads the condition and the upstream gradient and writes both gradients;
fill_missing reads x and writes the output; the copy reads and writes x.
"""

import functools
import sys

from safeops.bench.timing import (
    RATIO_NOTE,
    format_table,
    human_count,
    interleaved_medians,
    suite_main,
    time_ratio,
)

SIZES = (10**6, 10**7, 10**8, 10**9)


def _cuda_timer(torch):
    def timer(fn):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3

    return timer


def run(sizes=SIZES, dtype="float32", repeats=20):
    """One dict per (case, size): case, dtype, n, ms, bytes, GB/s, pct_of_copy, and for the
    torch comparison torch_ms and time_ratio (safeops time / torch time)."""
    import torch

    from safeops import native

    if not torch.cuda.is_available() or not native.CUDA:
        raise SystemExit("bench_where_gpu: needs a CUDA device and a safeops built with CUDA")
    dt = getattr(torch, dtype)
    itemsize = torch.empty(0, dtype=dt).element_size()
    timer = _cuda_timer(torch)
    results = []
    for n in sizes:
        gen = torch.Generator(device="cuda")
        gen.seed()  # fresh inputs

        def values(gen=gen, n=n):
            return (torch.randn(n, device="cuda", generator=gen) + 2.0).to(dt)

        c = torch.rand(n, device="cuda", generator=gen) < 0.5
        x, y, g = values(), values(), values()
        xn = torch.where(torch.rand(n, device="cuda", generator=gen) < 0.1, float("nan"), x)
        dst = torch.empty_like(x)
        fns = {
            "copy": functools.partial(dst.copy_, x),
            "where fwd": functools.partial(native.where, c, x, y),
            "where bwd (fused)": functools.partial(native.where_grad, c, (n,), (n,), g),
            "fill_missing fwd": functools.partial(native.fill_missing, xn, x[:1], "nan"),
        }
        reps = repeats if n < 10**9 else max(5, repeats // 4)
        t = interleaved_medians(fns, reps, timer=timer)
        moved = {
            "copy": 2 * n * itemsize,
            "where fwd": n * (1 + 3 * itemsize),
            "where bwd (fused)": n * (1 + 3 * itemsize),
            "fill_missing fwd": 2 * n * itemsize,
        }
        copy_bw = moved["copy"] / t["copy"]
        for case, seconds in t.items():
            bw = moved[case] / seconds
            results.append(
                {
                    "case": case,
                    "dtype": dtype,
                    "n": n,
                    "ms": seconds * 1e3,
                    "bytes": moved[case],
                    "GB/s": bw / 1e9,
                    "pct_of_copy": 100 * bw / copy_bw,
                }
            )
        results.append(_versus_torch(torch, native, c, x, y, g, n, reps, timer) | {"dtype": dtype})
        del c, x, y, g, xn, dst
        torch.cuda.empty_cache()
    return results


def _versus_torch(torch, native, c, x, y, g, n, reps, timer):
    """safeops forward + fused backward vs torch.where + autograd on the same data."""
    xr, yr = x.detach().requires_grad_(), y.detach().requires_grad_()

    def torch_step():
        out = torch.where(c, xr, yr)
        return torch.autograd.grad(out, (xr, yr), g)

    def safeops_step():
        return native.where(c, x, y), native.where_grad(c, (n,), (n,), g)

    t = interleaved_medians({"safeops": safeops_step, "torch": torch_step}, reps, timer=timer)
    return {
        "case": "where fwd+bwd vs torch",
        "n": n,
        "ms": t["safeops"] * 1e3,
        "torch_ms": t["torch"] * 1e3,
        "time_ratio": time_ratio(t["safeops"], t["torch"]),
    }


def report(results):
    import torch

    rows = []
    for r in results:
        if "time_ratio" in r:
            extra = f"torch {r['torch_ms']:.3f} ms, time ratio {r['time_ratio']:.2f}"
            rows.append((r["case"], human_count(r["n"]), f"{r['ms']:.3f}", "", "", extra))
        else:
            rows.append(
                (
                    r["case"],
                    human_count(r["n"]),
                    f"{r['ms']:.3f}",
                    f"{r['GB/s']:.0f}",
                    f"{r['pct_of_copy']:.1f} %",
                    "",
                )
            )
    lines = [
        f"{torch.cuda.get_device_name()}, torch {torch.__version__}, {results[0]['dtype']}",
        RATIO_NOTE,
        format_table(("case", "n", "ms", "GB/s", "% of copy", "vs torch"), rows),
    ]
    return "\n".join(lines)


def add_arguments(parser):
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES), help="elements")
    parser.add_argument("--dtype", default="float32", choices=["float16", "bfloat16", "float32"])
    parser.add_argument("--repeats", type=int, default=20, help="timed rounds per case")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")


def run_args(args):
    """Runs the suite for parsed arguments (see add_arguments)."""
    return run(args.sizes, args.dtype, args.repeats)


def main(argv=None):
    return suite_main(sys.modules[__name__], argv)


if __name__ == "__main__":
    sys.exit(main())
