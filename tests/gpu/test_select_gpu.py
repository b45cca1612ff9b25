"""The CUDA select kernels (safe_where and fill_missing, forward and fused backward) through
safeops.native on torch CUDA tensors, against float64 NumPy references, on fresh random inputs
with NaN/Inf: every broadcast pattern (flat, scalar, strided condition, general reductions
split into groups or not), every dtype, empty tensors, unaligned pointers, poisoned outputs,
sizes around the vector width, determinism. No TensorFlow (see conftest.py).

Markers (pyproject.toml) select the compute-sanitizer subsets of tools/gpu_check.sh: `large`
(the big tensors), `shared_memory` (the backward, whose scalar reductions sum in shared memory),
`bfloat16`."""

import numpy as np
import pytest
from select_cases import (
    BROADCAST_CASES,
    DTYPES,
    FILL_CASES,
    assert_same,
    assert_sum_close,
    fill_missing_grad_ref,
    fill_missing_ref,
    finite_values,
    missing_ref,
    random_bool,
    size,
    special_values,
    where_grad_ref,
    where_ref,
)

from safeops import _native, native

# Bigger shapes for the kernels' multi-block paths.
GPU_CASES = dict(
    BROADCAST_CASES,
    # flat backward: per-block partial sums of a scalar target, then their sum
    large_scalar_target=(((1 << 22) + 5,), ((1 << 22) + 5,), ()),
    # general reduction, few targets: the reduced range split into groups
    large_rows_grouped=((8, 1 << 17), (8, 1), (8, 1 << 17)),
    large_cols_grouped=((70000, 12), (70000, 12), (1, 12)),
    # general reduction, >= 65536 targets: one group, one thread per target
    large_rows_many=((70000, 12), (70000, 1), ()),
    large_cols_many=((6, 70000), (1, 70000), (6, 1)),
    large_strided_cond=((64, 1, 512), (64, 32, 512), (32, 1)),
    large_3d_mix=((16, 1, 300), (1, 40, 300), (16, 40, 1)),
)
LARGE = pytest.mark.large


def named_cases(named):
    """pytest params of (name, case) pairs; the names that start with "large" marked large."""
    return [pytest.param(v, id=k, marks=LARGE if k.startswith("large") else ()) for k, v in named]


CASES = pytest.mark.parametrize("case", named_cases(GPU_CASES.items()))
FILLS = pytest.mark.parametrize("case", list(FILL_CASES.values()), ids=list(FILL_CASES))
POLICIES = pytest.mark.parametrize("missing", ["nan", "nonfinite"])
SIZES = sorted(set(range(1, 18)) | {2**k + d for k in (5, 8, 12, 16, 20) for d in (-1, 0, 1)})
SIZE_PARAMS = named_cases((f"large_n{n}" if n > 1 << 17 else f"n{n}", n) for n in SIZES)


def out_shape(case):
    return tuple(np.broadcast_shapes(*case))


def where_inputs(arrays, rng, case, dtype, offset=0, values=special_values):
    """Device condition, x, y (at `offset` elements into their storage) and the condition and
    exact float64 values of x and y for the references."""
    cs, xs, ys = case
    c = random_bool(rng, cs)
    x = arrays.put(values(rng, xs, None), dtype, offset)
    y = arrays.put(values(rng, ys, None), dtype, offset)
    return (arrays.put(c, None, offset), x, y), (c, arrays.get(x), arrays.get(y))


def check_grads(arrays, got, refs, shapes, full, dtype):
    for name, g, ref, shape in zip("xy", got, refs, shapes, strict=True):
        assert tuple(g.shape) == tuple(shape), name
        if size(shape) == full:  # no reduction: a select, bit-exact
            assert_same(arrays.get(g), ref.value, f"d/d{name}")
        else:
            assert_sum_close(arrays.get(g), ref, dtype, f"d/d{name}")


@CASES
def test_where_forward(case, dtype, arrays, rng):
    dev, (c, x, y) = where_inputs(arrays, rng, case, dtype)
    out = native.where(*dev)
    assert tuple(out.shape) == out_shape(case)
    assert_same(arrays.get(out), where_ref(c, x, y), "where")


@pytest.mark.shared_memory
@CASES
def test_where_backward(case, dtype, arrays, rng):
    cs, xs, ys = case
    dev, (c, _, _) = where_inputs(arrays, rng, case, dtype)
    g = arrays.put(finite_values(rng, out_shape(case), None), dtype)
    got = native.where_grad(dev[0], xs, ys, g)
    refs = where_grad_ref(c, xs, ys, arrays.get(g))
    check_grads(arrays, got, refs, (xs, ys), size(out_shape(case)), dtype)


@pytest.mark.shared_memory
@pytest.mark.parametrize("case", list(BROADCAST_CASES.values()), ids=list(BROADCAST_CASES))
@pytest.mark.parametrize("target", [0, 1], ids=["x", "y"])
def test_where_backward_nan_upstream_where_not_selected(case, target, dtype, arrays, rng):
    """NaN/Inf upstream wherever the target is not selected: its gradient is finite, with
    exact zeros at those positions for a full-shape target."""
    cs, xs, ys = case
    shape = out_shape(case)
    c = random_bool(rng, cs)
    selected = np.broadcast_to(c if target == 0 else ~c, shape)
    bad = special_values(rng, shape, None, nan=0.5, inf=0.5)
    g = arrays.put(np.where(selected, finite_values(rng, shape, None), bad), dtype)
    got = arrays.get(native.where_grad(arrays.put(c), xs, ys, g)[target])
    ref = where_grad_ref(c, xs, ys, arrays.get(g))[target]
    assert np.isfinite(got).all()
    if size((xs, ys)[target]) == size(shape):
        assert_same(got, ref.value)
    else:
        assert_sum_close(got, ref, dtype)


@pytest.mark.shared_memory
@FILLS
@POLICIES
def test_fill_missing_forward_and_backward(case, missing, dtype, arrays, rng):
    xs, vs = case
    x = arrays.put(special_values(rng, xs, None), dtype)
    value = arrays.put(finite_values(rng, vs, None), dtype)
    x64, v64 = arrays.get(x), arrays.get(value)
    out = native.fill_missing(x, value, missing)
    assert_same(arrays.get(out), fill_missing_ref(x64, v64, missing), "fill_missing")

    m = missing_ref(x64, missing)
    bad = special_values(rng, xs, None, nan=0.5, inf=0.5)  # NaN/Inf upstream at missing entries
    g = arrays.put(np.where(m, bad, finite_values(rng, xs, None)), dtype)
    gx, gv = native.fill_missing_grad(x, vs, g, missing)
    want_gx, _ = fill_missing_grad_ref(x64, vs, arrays.get(g), missing)
    assert_same(arrays.get(gx), want_gx, "d/dx (exact zeros at missing entries)")
    assert tuple(gv.shape) == vs

    g = arrays.put(finite_values(rng, xs, None), dtype)  # finite upstream for d/dvalue
    _, gv = native.fill_missing_grad(x, vs, g, missing)
    assert_sum_close(
        arrays.get(gv), fill_missing_grad_ref(x64, vs, arrays.get(g), missing)[1], dtype
    )


@pytest.mark.shared_memory
@pytest.mark.parametrize("offset", [0, 1], ids=["aligned", "odd_offset"])
@pytest.mark.parametrize("n", SIZE_PARAMS)
def test_sizes_around_the_vector_width(n, offset, dtype, arrays, rng):
    """Flat kernels: whole 16-byte groups, a partial last group, and inputs at an odd element
    offset (no vector loads)."""
    for case in (((n,), (n,), (n,)), ((n,), (n,), ())):
        dev, (c, x, y) = where_inputs(arrays, rng, case, dtype, offset)
        assert_same(arrays.get(native.where(*dev)), where_ref(c, x, y), f"where {case}")
        g = arrays.put(finite_values(rng, (n,), None), dtype, offset)
        got = native.where_grad(dev[0], case[1], case[2], g)
        check_grads(arrays, got, where_grad_ref(c, *case[1:], arrays.get(g)), case[1:], n, dtype)
    x = arrays.put(special_values(rng, (n,), None), dtype, offset)
    value = arrays.put(finite_values(rng, (1,), None), dtype, offset)
    out = native.fill_missing(x, value, "nonfinite")
    assert_same(arrays.get(out), fill_missing_ref(arrays.get(x), arrays.get(value), "nonfinite"))


@pytest.mark.shared_memory
@pytest.mark.parametrize("offset", [0, 1], ids=["aligned", "odd_offset"])
@CASES
def test_every_output_element_is_written(case, offset, dtype, raw, rng):
    """Outputs and workspace pre-filled with POISON bytes (at an odd element offset too),
    through the raw pointer entry points the wrapper uses."""
    cs, xs, ys = case
    shape = out_shape(case)
    (cd, xd, yd), (c, x, y) = where_inputs(raw, rng, case, dtype)
    stream = raw.stream()
    out = raw.poisoned(shape, dtype, offset)
    _native.cuda_where(
        raw.ptr(cd), cs, raw.ptr(xd), xs, raw.ptr(yd), ys, raw.ptr(out), dtype.name, stream
    )
    assert_same(raw.get(out), where_ref(c, x, y), "where")
    assert raw.guard_intact(out), "where: write past the end of the output"

    g = raw.put(finite_values(rng, shape, None), dtype)
    gx, gy = raw.poisoned(xs, dtype, offset), raw.poisoned(ys, dtype, offset)
    ws = raw.workspace(_native.cuda_where_grad_workspace(cs, xs, ys, dtype.name))
    _native.cuda_where_grad(
        raw.ptr(cd), cs, xs, ys, raw.ptr(g), shape, raw.ptr(gx), raw.ptr(gy),
        raw.ptr(ws), dtype.name, stream,
    )  # fmt: skip
    check_grads(raw, (gx, gy), where_grad_ref(c, xs, ys, raw.get(g)), (xs, ys), size(shape), dtype)
    assert raw.guard_intact(gx) and raw.guard_intact(gy), "where_grad: write past the end"


@pytest.mark.shared_memory
@pytest.mark.parametrize("offset", [0, 1], ids=["aligned", "odd_offset"])
@FILLS
def test_every_fill_missing_output_element_is_written(case, offset, dtype, raw, rng):
    xs, vs = case
    x = raw.put(special_values(rng, xs, None), dtype)
    value = raw.put(finite_values(rng, vs, None), dtype)
    x64 = raw.get(x)
    stream = raw.stream()
    out = raw.poisoned(xs, dtype, offset)
    _native.cuda_fill_missing(
        raw.ptr(x), xs, raw.ptr(value), vs, raw.ptr(out), "nan", dtype.name, stream
    )
    assert_same(raw.get(out), fill_missing_ref(x64, raw.get(value), "nan"))
    assert raw.guard_intact(out), "fill_missing: write past the end of the output"
    g = raw.put(finite_values(rng, xs, None), dtype)
    gx, gv = raw.poisoned(xs, dtype, offset), raw.poisoned(vs, dtype, offset)
    ws = raw.workspace(_native.cuda_fill_missing_grad_workspace(xs, vs, dtype.name))
    _native.cuda_fill_missing_grad(
        raw.ptr(x), xs, vs, raw.ptr(g), xs, raw.ptr(gx), raw.ptr(gv), raw.ptr(ws),
        "nan", dtype.name, stream,
    )  # fmt: skip
    want_gx, want_gv = fill_missing_grad_ref(x64, vs, raw.get(g), "nan")
    assert_same(raw.get(gx), want_gx, "d/dx")
    assert_sum_close(raw.get(gv), want_gv, dtype, "d/dvalue")
    assert raw.guard_intact(gx) and raw.guard_intact(gv), "fill_missing_grad: write past the end"


@pytest.mark.shared_memory
@pytest.mark.parametrize("case", named_cases((k, v) for k, v in GPU_CASES.items() if "large" in k))
def test_determinism(case, arrays, rng):
    """The same inputs give bit-identical results, reductions included."""
    dtype = DTYPES[2]
    cs, xs, ys = case
    dev, _ = where_inputs(arrays, rng, case, dtype)
    g = arrays.put(finite_values(rng, out_shape(case), None), dtype)
    runs = [[arrays.bits(t) for t in native.where_grad(dev[0], xs, ys, g)] for _ in range(3)]
    runs.append([arrays.bits(native.where(*dev))])
    runs.append([arrays.bits(native.where(*dev))])
    for again in runs[1:3]:
        for a, b in zip(runs[0], again, strict=True):
            np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(runs[3][0], runs[4][0])


def test_grad_of_the_wrong_shape_is_refused(arrays, rng, dtype):
    c = arrays.put(random_bool(rng, (3, 4)))
    g = arrays.put(finite_values(rng, (3, 3), None), dtype)
    with pytest.raises(ValueError, match=r"grad has shape \[3,3\], expected \[3,4\]"):
        native.where_grad(c, (3, 4), (), g)
    x = arrays.put(finite_values(rng, (3, 4), None), dtype)
    with pytest.raises(ValueError, match=r"grad has shape \[3,3\], expected \[3,4\]"):
        native.fill_missing_grad(x, (), g)


def test_bad_device_arguments(raw, rng, dtype):
    c = raw.put(random_bool(rng, (4, 6)))
    x = raw.put(finite_values(rng, (4, 6), None), dtype)
    with pytest.raises(ValueError, match="contiguous"):
        native.where(c, x.T, x.T)
    with pytest.raises(ValueError, match=r"\[4,6\] \(condition\), \[5\] \(x\)"):
        native.where(c, x[0, :5], x[0, :5])
    with pytest.raises(TypeError, match="condition must be bool"):
        native.where(x, x, x)
    other = raw.put(raw.get(x), DTYPES[3] if dtype.name != "float64" else DTYPES[2])
    with pytest.raises(TypeError, match="differ in dtype"):
        native.where(c, x, other)
    with pytest.raises(ValueError, match="condition must be on a CUDA device"):
        native.where(raw.host(c), x, x)


def test_cupy_arrays(raw, rng):
    """The __cuda_array_interface__ path (CuPy) runs the same kernels."""
    cupy = raw.cupy()
    for dtype in (DTYPES[0], DTYPES[2]):
        c = random_bool(rng, (5, 1))
        x = special_values(rng, (5, 7), dtype)
        y = special_values(rng, (7,), dtype)
        out = native.where(cupy.asarray(c), cupy.asarray(x), cupy.asarray(y))
        assert isinstance(out, cupy.ndarray)
        assert_same(cupy.asnumpy(out), where_ref(c, x, y))
        g = finite_values(rng, (5, 7), dtype)
        gx, gy = native.where_grad(cupy.asarray(c), (5, 7), (7,), cupy.asarray(g))
        refs = where_grad_ref(c, (5, 7), (7,), g)
        assert_same(cupy.asnumpy(gx), refs[0].value)
        assert_sum_close(cupy.asnumpy(gy), refs[1], dtype)
        value = finite_values(rng, (7,), dtype)
        out = native.fill_missing(cupy.asarray(x), cupy.asarray(value), "nonfinite")
        assert_same(cupy.asnumpy(out), fill_missing_ref(x, value, "nonfinite"))


def test_no_tensorflow_imported():
    """tests/gpu never import TensorFlow: a SAFEOPS_TF=OFF build (the GPU check's) does not
    even where TensorFlow is installed (conftest.py imports neither TF nor safeops)."""
    import sys

    from safeops import _build_info

    if _build_info.TF_VERSION:
        pytest.skip("this safeops is built with TensorFlow, which it imports")
    assert "tensorflow" not in sys.modules
