"""GPU benchmark of safeops' fused masked_dense against torch on the same data.

    python benchmarks/gpu_masked_dense.py [--json results.json] [--repeats 25] [--no-tf32]

For each shape (rows, K, N) and dtype it times, with CUDA events (warm-up, then the median of
`repeats` samples, each sample a batch of calls long enough to dwarf launch overhead):

  cublas_fwd        torch.relu(torch.addmm(b, x_clean, W))              (clean data)
  safeops_fwd       safeops masked_dense(..., "relu") on the same clean x
  composite_fwd     torch.where(torch.isnan(x), 0, x) -> addmm -> relu  (x with ~15% NaN)
  safeops_fwd_nan   safeops masked_dense on that x
  composite_step    forward + backward of the composite through torch autograd
  safeops_step      masked_dense + masked_dense_grad on that x

and reports safeops_fwd / cublas_fwd (docs/design.md §8: <= 1.2 at 65536x64x256 bf16),
composite_fwd / safeops_fwd_nan (>= 2.5 there) and composite_step / safeops_step. Inputs are
random normal, never zeros. float32 runs TF32 on both sides unless --no-tf32. Needs torch with
CUDA and a CUDA build of safeops.native; no TensorFlow.
"""

import argparse
import json
import math
import statistics
import sys

SHAPES = [(65536, 64, 256), (16384, 1024, 1024)]
DTYPES = ["bfloat16", "float32"]


def timed(torch, fn, warmup, repeats):
    """Median milliseconds per call of fn()."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    fn()
    end.record()
    end.synchronize()
    inner = max(1, min(200, int(2.0 / max(start.elapsed_time(end), 1e-3))))  # ~2 ms a sample
    samples = []
    for _ in range(repeats):
        start.record()
        for _ in range(inner):
            fn()
        end.record()
        end.synchronize()
        samples.append(start.elapsed_time(end) / inner)
    return statistics.median(samples)


def bench_case(torch, native, rows, K, N, dtype, tf32, warmup, repeats):
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

    def composite(xx, ww, bb):
        return torch.relu(torch.addmm(bb, torch.where(torch.isnan(xx), 0, xx), ww))

    xg, wg, bg = (t.clone().requires_grad_(True) for t in (x_nan, w, b))

    def composite_step():
        y = composite(xg, wg, bg)
        return torch.autograd.grad(y, (xg, wg, bg), g)

    def safeops_step():
        y, _ = native.masked_dense(x_nan, w, b, activation="relu", allow_tf32=tf32)
        return native.masked_dense_grad(x_nan, w, y, g, activation="relu", allow_tf32=tf32)

    cases = {
        "cublas_fwd": lambda: torch.relu(torch.addmm(b, x, w)),
        "safeops_fwd": lambda: native.masked_dense(x, w, b, activation="relu", allow_tf32=tf32),
        "composite_fwd": lambda: composite(x_nan, w, b),
        "safeops_fwd_nan": lambda: native.masked_dense(
            x_nan, w, b, activation="relu", allow_tf32=tf32
        ),
        "composite_step": composite_step,
        "safeops_step": safeops_step,
    }
    ms = {name: timed(torch, fn, warmup, repeats) for name, fn in cases.items()}

    # Sanity: on clean data safeops and cuBLAS agree to the dtype's precision.
    want = torch.relu(torch.addmm(b, x, w)).double()
    got = native.masked_dense(x, w, b, activation="relu", allow_tf32=tf32)[0].double()
    rel_err = ((got - want).abs().max() / want.abs().max()).item()

    size = torch.finfo(td).bits // 8
    fwd_bytes = (rows * K + K * N + N + rows * N) * size
    t = ms["safeops_fwd"] * 1e-3
    return {
        "rows": rows,
        "K": K,
        "N": N,
        "dtype": dtype,
        "tf32": tf32 if dtype == "float32" else None,
        "ms": ms,
        "ratios": {
            "safeops_fwd/cublas_fwd": ms["safeops_fwd"] / ms["cublas_fwd"],
            "composite_fwd/safeops_fwd_nan": ms["composite_fwd"] / ms["safeops_fwd_nan"],
            "composite_step/safeops_step": ms["composite_step"] / ms["safeops_step"],
        },
        "safeops_fwd_TBps": fwd_bytes / t / 1e12,
        "safeops_fwd_TFLOPs": 2.0 * rows * K * N / t / 1e12,
        "max_rel_err_vs_cublas": rel_err,
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--json", help="also write the results to this file")
    p.add_argument("--repeats", type=int, default=25)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--no-tf32", dest="tf32", action="store_false", help="exact float32 GEMMs")
    p.add_argument("--dtypes", nargs="+", default=DTYPES)
    args = p.parse_args(argv)

    import torch

    if not torch.cuda.is_available():
        sys.exit("gpu_masked_dense: no CUDA device")
    from safeops import native

    if not native.CUDA:
        sys.exit("gpu_masked_dense: safeops was built without CUDA")
    torch.backends.cuda.matmul.allow_tf32 = args.tf32

    results = []
    head = (
        f"{'shape':>18} {'dtype':>8} {'cublas':>8} {'safeops':>8} {'compos.':>8} {'sfo-nan':>8}"
        f" {'c-step':>8} {'s-step':>8} | {'s/cublas':>8} {'comp/s':>7} {'step':>6}"
        f" {'TB/s':>5} {'TFLOP/s':>7}"
    )
    print(f"# {torch.cuda.get_device_name()}, torch {torch.__version__}, times in ms (median)")
    print(head)
    for rows, K, N in SHAPES:
        for dtype in args.dtypes:
            r = bench_case(torch, native, rows, K, N, dtype, args.tf32, args.warmup, args.repeats)
            results.append(r)
            ms, q = r["ms"], r["ratios"]
            print(
                f"{f'{rows}x{K}x{N}':>18} {dtype:>8} {ms['cublas_fwd']:8.4f}"
                f" {ms['safeops_fwd']:8.4f} {ms['composite_fwd']:8.4f}"
                f" {ms['safeops_fwd_nan']:8.4f} {ms['composite_step']:8.4f}"
                f" {ms['safeops_step']:8.4f} | {q['safeops_fwd/cublas_fwd']:8.3f}"
                f" {q['composite_fwd/safeops_fwd_nan']:7.2f}"
                f" {q['composite_step/safeops_step']:6.2f}"
                f" {r['safeops_fwd_TBps']:5.2f} {r['safeops_fwd_TFLOPs']:7.1f}"
                f"   (max rel err vs cuBLAS {r['max_rel_err_vs_cublas']:.2e})"
            )
    if args.json:
        env = {"device": torch.cuda.get_device_name(), "torch": torch.__version__}
        with open(args.json, "w") as f:
            json.dump({"env": env, "results": results}, f, indent=2)
    return results


if __name__ == "__main__":
    main()
