"""GPU benchmark of safeops' masked_dense routes against torch on the same data.

    python benchmarks/gpu_masked_dense.py [--json results.json] [--repeats 15] [--no-tf32]
    python benchmarks/gpu_masked_dense.py --dry-run     # the plan, no GPU needed

For each shape (rows, K, N) and dtype it times:

  cublas_fwd       torch.relu(torch.addmm(b, x_clean, W))                   (clean data)
  fused_fwd        the fused kernel, safeops.native.masked_dense(..., "relu") (x with ~15% NaN)
  route_fwd        the prologue route: safeops.native.masked_input -> addmm -> relu, what
                   TensorFlow runs for compute-bound shapes (safeops.routing)
  composite_fwd    torch.where(torch.isnan(x), 0, x) -> addmm -> relu
  fused_step       masked_dense + masked_dense_grad
  route_step       route_fwd, then relu's select, the two GEMMs and masked_input_grad
  composite_step   forward + backward of the composite through torch autograd

Two times per case, so that the small shapes do not measure Python:
  kernel   the calls captured once in a CUDA graph (torch.cuda.CUDAGraph) and replayed: GPU
           time only. Where capture fails: `inner` back-to-back calls minus the measured host
           cost of issuing them (marked ~).
  host     `inner` back-to-back calls timed with CUDA events: what a Python caller gets
           (the larger of GPU time and the host's launch cost).
and `issue_us`, the host time to issue one call. Each time is the median of `repeats`
samples after a warm-up. Inputs are random normal with NaN, never zeros. Before timing, one
correctness run per route writes into NaN-poisoned outputs (every output here is finite) and
is compared with a float64 reference.

The ratios: fused/cublas (docs/design.md §8: <= 1.2 at 65536x64x256 bf16),
composite/fused (>= 2.5 there), and fused/route, the measurement behind the routing rule:
above 1 the route is faster. `rule` is what safeops.routing chooses (from static analysis),
`faster` what was measured; a disagreement is a reason to adjust routing.THRESHOLD. Needs torch
with CUDA and a CUDA build of safeops.native; no TensorFlow.
"""

import argparse
import json
import math
import statistics
import sys
import time

# The memory-bound tabular shape, shapes across the routing threshold (K*N/(K+N) = 51, 128,
# 256, 512), and issue 15's compute-bound shape.
SHAPES = [(65536, 64, 256), (32768, 256, 256), (16384, 512, 512), (16384, 1024, 1024)]
DTYPES = ["bfloat16", "float32"]
CASES = (
    "cublas_fwd",
    "fused_fwd",
    "route_fwd",
    "composite_fwd",
    "fused_step",
    "route_step",
    "composite_step",
)


def plan(shapes, dtypes):
    """[(rows, K, N, dtype, h, rule)]: the cases and the route safeops.routing chooses."""
    from safeops import routing

    return [
        (rows, K, N, dtype, K * N / (K + N), routing.gpu_route(K, N, dtype))
        for rows, K, N in shapes
        for dtype in dtypes
    ]


def ratios(kernel_ms):
    """The ratios of one case's kernel times (None where a time is missing)."""

    def q(a, b):
        x, y = kernel_ms.get(a), kernel_ms.get(b)
        return x / y if x and y else None

    return {
        "fused/cublas": q("fused_fwd", "cublas_fwd"),
        "route/cublas": q("route_fwd", "cublas_fwd"),
        "composite/fused": q("composite_fwd", "fused_fwd"),
        "fused/route": q("fused_fwd", "route_fwd"),
        "fused/route step": q("fused_step", "route_step"),
    }


def faster(r):
    """The measured faster route of a result ("fused" or "prologue"), by the training step."""
    q = r["ratios"]["fused/route step"] or r["ratios"]["fused/route"]
    return None if q is None else ("prologue" if q > 1 else "fused")


def _f(v, fmt):
    return "-" if v is None else format(v, fmt)


def table(results):
    """The report's lines: one per (shape, dtype), kernel and host-inclusive times in ms."""
    names = " ".join(f"{c.split('_')[0][:6]:>7}" for c in CASES)  # forward cases, then steps
    lines = [
        f"{'shape':>18} {'dtype':>8} {'h':>5} {'rule':>8} {'faster':>8} | {names}  "
        "| fused/cublas route/cublas comp/fused fused/route(fwd,step)"
    ]
    for r in results:
        shape = f"{r['rows']}x{r['K']}x{r['N']}"
        q = r["ratios"]
        for kind in ("kernel", "host"):
            ms = r[f"{kind}_ms"]
            mark = "~" if kind == "kernel" and r.get("kernel_from_subtraction") else " "
            head = (
                f"{shape:>18} {r['dtype']:>8} {r['h']:5.0f} {r['rule']:>8} {_f(faster(r), '>8')} |"
                if kind == "kernel"
                else f"{'(host-inclusive)':>18} {'':>8} {'':>5} {'':>8} {'':>8} |"
            )
            times = " ".join(f"{_f(ms.get(c), '7.4f')}" for c in CASES)
            tail = (
                f"{mark}| {_f(q['fused/cublas'], '12.3f')} {_f(q['route/cublas'], '12.3f')}"
                f" {_f(q['composite/fused'], '10.2f')} {_f(q['fused/route'], '8.3f')},"
                f"{_f(q['fused/route step'], '.3f')}"
                if kind == "kernel"
                else " |"
            )
            lines.append(f"{head} {times} {tail}")
        issue = " ".join(f"{c}={r['issue_us'][c]:.1f}" for c in CASES if c in r["issue_us"])
        lines.append(f"{'':>18} issue_us: {issue}")
        lines.append(f"{'':>18} max rel err vs float64: {r['errors']}")
    return lines


# ---- timing ------------------------------------------------------------------------------


def _events(torch):
    return torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)


def inner_count(torch, fn):
    """Calls per sample: ~2 ms of GPU work, at most 200."""
    start, end = _events(torch)
    start.record()
    fn()
    end.record()
    end.synchronize()
    return max(1, min(200, int(2.0 / max(start.elapsed_time(end), 1e-3))))


def host_ms(torch, fn, inner, repeats):
    """Median ms per call of `inner` back-to-back calls (host launch cost included)."""
    start, end = _events(torch)
    samples = []
    for _ in range(repeats):
        start.record()
        for _ in range(inner):
            fn()
        end.record()
        end.synchronize()
        samples.append(start.elapsed_time(end) / inner)
    return statistics.median(samples)


def issue_us(torch, fn, inner):
    """Host microseconds to issue one call (GPU idle at the start, synchronized after)."""
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(inner):
        fn()
    t1 = time.perf_counter()
    torch.cuda.synchronize()
    return (t1 - t0) / inner * 1e6


def graph_ms(torch, fn, inner, repeats):
    """Median ms per call with `inner` calls captured in one CUDA graph and replayed (no host
    cost); None where the calls cannot be captured."""
    try:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up on a side stream, as capture requires
            fn()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            for _ in range(inner):
                fn()
    except Exception as e:  # noqa: BLE001 - any capture failure falls back to subtraction
        print(f"  (CUDA graph capture failed: {type(e).__name__}: {e})", file=sys.stderr)
        return None
    graph.replay()
    torch.cuda.synchronize()
    start, end = _events(torch)
    samples = []
    for _ in range(repeats):
        start.record()
        graph.replay()
        end.record()
        end.synchronize()
        samples.append(start.elapsed_time(end) / inner)
    return statistics.median(samples)


# ---- the cases ---------------------------------------------------------------------------


def make_case(torch, native, rows, K, N, dtype, tf32):
    """(callables by case name, correctness check)."""
    from safeops import _native

    td = getattr(torch, dtype)
    gen = torch.Generator(device="cuda").manual_seed(0)

    def randn(*shape, scale=1.0):
        return (scale * torch.randn(*shape, device="cuda", generator=gen)).to(td)

    x = randn(rows, K)
    w = randn(K, N, scale=1.0 / math.sqrt(K))
    b = randn(N, scale=0.5)
    g = randn(rows, N)
    x_nan = x.clone()
    x_nan[torch.rand(rows, K, device="cuda", generator=gen) < 0.15] = float("nan")

    def route_fwd(xx=x_nan):
        xs = native.masked_input(xx)
        return xs, torch.relu(torch.addmm(b, xs, w))

    def route_step():
        xs, y = route_fwd()
        dz = torch.where(y > 0, g, 0)  # relu's backward on the saved output
        dw, db = xs.t() @ dz, dz.sum(0)
        return native.masked_input_grad(x_nan, dz @ w.t()), dw, db

    def fused_step():
        y, _ = native.masked_dense(x_nan, w, b, activation="relu", allow_tf32=tf32)
        return native.masked_dense_grad(x_nan, w, y, g, activation="relu", allow_tf32=tf32)

    def composite(xx, ww, bb):
        return torch.relu(torch.addmm(bb, torch.where(torch.isnan(xx), 0, xx), ww))

    xg, wg, bg = (t.clone().requires_grad_(True) for t in (x_nan, w, b))

    def composite_step():
        return torch.autograd.grad(composite(xg, wg, bg), (xg, wg, bg), g)

    cases = {
        "cublas_fwd": lambda: torch.relu(torch.addmm(b, x, w)),
        "fused_fwd": lambda: native.masked_dense(x_nan, w, b, activation="relu", allow_tf32=tf32),
        "route_fwd": route_fwd,
        "composite_fwd": lambda: composite(x_nan, w, b),
        "fused_step": fused_step,
        "route_step": route_step,
        "composite_step": composite_step,
    }

    def check():
        """Max relative error of each route's y against float64, outputs poisoned first."""
        xd = x_nan.double()
        want = torch.relu(torch.where(torch.isnan(xd), 0, xd) @ w.double() + b.double())
        scale = want.abs().max().item() or 1.0
        stream = torch.cuda.current_stream().cuda_stream
        y = torch.full((rows, N), float("nan"), dtype=td, device="cuda")
        flags = (dtype, "relu", False, "nan", tf32)
        ws = torch.empty(max(1, _native.cuda_masked_dense_workspace(rows, K, N, *flags)),
                         dtype=torch.uint8, device="cuda")  # fmt: skip
        _native.cuda_masked_dense(x_nan.data_ptr(), w.data_ptr(), b.data_ptr(), y.data_ptr(), 0,
                                  ws.data_ptr(), rows, K, N, *flags, stream)  # fmt: skip
        xs = torch.full((rows, K), float("nan"), dtype=td, device="cuda")
        _native.cuda_masked_input(x_nan.data_ptr(), xs.data_ptr(), rows, K, dtype, False, "nan",
                                  False, stream)  # fmt: skip
        y_route = torch.relu(torch.addmm(b, xs, w))
        errors = {}
        for name, got in (("fused", y), ("route", y_route)):
            if not torch.isfinite(got).all():
                raise SystemExit(f"gpu_masked_dense: {name} left outputs unwritten (NaN poison)")
            errors[name] = float(f"{((got.double() - want).abs().max().item() / scale):.2e}")
        return errors

    return cases, check


def bench_case(torch, native, rows, K, N, dtype, rule, tf32, warmup, repeats):
    cases, check = make_case(torch, native, rows, K, N, dtype, tf32)
    errors = check()
    kernel, host, issue, subtracted = {}, {}, {}, False
    for name, fn in cases.items():
        for _ in range(warmup):
            fn()
        torch.cuda.synchronize()
        inner = inner_count(torch, fn)
        host[name] = host_ms(torch, fn, inner, repeats)
        issue[name] = issue_us(torch, fn, inner)
        kernel[name] = graph_ms(torch, fn, inner, repeats)
        if kernel[name] is None:  # back-to-back time minus the host's share where it dominates
            subtracted = True
            kernel[name] = max(host[name] - issue[name] * 1e-3, 0.0) or None
    return {
        "rows": rows,
        "K": K,
        "N": N,
        "dtype": dtype,
        "h": K * N / (K + N),
        "rule": rule,
        "tf32": tf32 if dtype == "float32" else None,
        "kernel_ms": kernel,
        "host_ms": host,
        "issue_us": issue,
        "kernel_from_subtraction": subtracted,
        "ratios": ratios(kernel),
        "errors": errors,
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--json", help="also write the results to this file")
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--no-tf32", dest="tf32", action="store_false", help="exact float32 GEMMs")
    p.add_argument("--dtypes", nargs="+", default=DTYPES)
    p.add_argument("--dry-run", action="store_true", help="print the plan; no GPU needed")
    args = p.parse_args(argv)
    cases = plan(SHAPES, args.dtypes)
    if args.dry_run:
        for rows, K, N, dtype, h, rule in cases:
            print(f"{rows}x{K}x{N} {dtype}: K*N/(K+N) = {h:.0f}, rule: {rule}; {', '.join(CASES)}")
        return cases

    import torch

    if not torch.cuda.is_available():
        sys.exit("gpu_masked_dense: no CUDA device")
    from safeops import native

    if not native.CUDA:
        sys.exit("gpu_masked_dense: safeops was built without CUDA")
    torch.backends.cuda.matmul.allow_tf32 = args.tf32

    print(f"# {torch.cuda.get_device_name()}, torch {torch.__version__}, ms per call (median)")
    results = []
    for rows, K, N, dtype, _, rule in cases:
        r = bench_case(torch, native, rows, K, N, dtype, rule, args.tf32, args.warmup, args.repeats)
        results.append(r)
        print("\n".join(table([r])[0 if len(results) == 1 else 1 :]), flush=True)
    if args.json:
        env = {"device": torch.cuda.get_device_name(), "torch": torch.__version__}
        with open(args.json, "w") as f:
            json.dump({"env": env, "results": results}, f, indent=2)
    return results


if __name__ == "__main__":
    main()
