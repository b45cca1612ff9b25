"""int64-safe indexing on the GPU: tensors of more than 2^31 elements through safeops.native
(the H200 has the memory: these need about 20 GB). Test names contain "large": the
compute-sanitizer runs of tools/gpu_check.sh leave them out."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("no CUDA device", allow_module_level=True)
native = pytest.importorskip("safeops.native")
if not native.CUDA:
    pytest.skip("safeops was built without CUDA", allow_module_level=True)

N = (1 << 31) + (1 << 20) + 3  # past int32 indexing, not a multiple of any vector width
GIB = 1 << 30


def _need(bytes_needed):
    free, _ = torch.cuda.mem_get_info()
    if free < bytes_needed:
        pytest.skip(f"needs {bytes_needed / GIB:.0f} GiB of free GPU memory")


@pytest.fixture(scope="module")
def big():
    _need(24 * GIB)
    gen = torch.Generator(device="cuda").manual_seed(0)
    c = torch.empty(N, dtype=torch.uint8, device="cuda").random_(0, 2, generator=gen).bool()
    x = torch.empty(N, dtype=torch.float16, device="cuda").normal_(generator=gen)
    return c, x


def test_large_where_forward(big):
    c, x = big
    y = torch.tensor(-7.0, dtype=torch.float16, device="cuda")
    out = native.where(c, x, y)
    torch.cuda.synchronize()
    assert out.shape == (N,)
    assert torch.equal(out, torch.where(c, x, y))
    tail = slice(N - 1000, N)  # the last elements live past 2^31
    assert torch.equal(out[tail], torch.where(c[tail], x[tail], y))


def test_large_where_backward_full_and_scalar_targets(big):
    c, g = big
    gx, gy = native.where_grad(c, (N,), (), g)
    torch.cuda.synchronize()
    assert torch.equal(gx, torch.where(c, g, torch.zeros((), dtype=g.dtype, device="cuda")))
    # gy = sum of g where the condition is false, against a float64 sum in chunks
    want, scale = 0.0, 0.0
    for start in range(0, N, 1 << 28):
        part = g[start : start + (1 << 28)].double()
        keep = ~c[start : start + (1 << 28)]
        want += float(part[keep].sum())
        scale += float(part.abs().sum())
    assert abs(float(gy) - want) <= 1e-4 * scale + 0.5  # fp16 result of a float32 sum


def test_large_masked_dense_rows_times_k_past_2_31():
    rows, k, n = (1 << 25) + 3, 65, 16  # rows * K > 2^31
    _need(20 * GIB)
    gen = torch.Generator(device="cuda").manual_seed(1)
    x = torch.empty((rows, k), dtype=torch.bfloat16, device="cuda").normal_(generator=gen)
    x[torch.rand((rows, k), device="cuda", generator=gen) < 0.15] = float("nan")
    w = torch.randn((k, n), dtype=torch.float64).to("cuda", torch.bfloat16)
    b = torch.randn(n, dtype=torch.float64).to("cuda", torch.bfloat16)
    y, _ = native.masked_dense(x, w, b, activation="relu", renormalize=True)
    torch.cuda.synchronize()
    sample = torch.cat(
        [torch.arange(0, 64), torch.arange(rows - 64, rows), torch.randint(0, rows, (256,))]
    ).to("cuda")
    xs = x[sample].double().cpu().numpy()
    wd, bd = w.double().cpu().numpy(), b.double().cpu().numpy()
    m = np.isnan(xs)
    n_obs = k - m.sum(axis=1, keepdims=True)
    s = np.where(n_obs > 0, k / np.maximum(n_obs, 1), 0.0)
    want = np.maximum(s * (np.where(m, 0.0, xs) @ wd) + bd, 0.0)
    got = y[sample].double().cpu().numpy()
    bound = 2e-2 * (s * (np.abs(np.where(m, 0.0, xs)) @ np.abs(wd)) + np.abs(bd)) + 1e-2
    assert np.all(np.abs(got - want) <= bound)
    assert torch.isfinite(y).all()
