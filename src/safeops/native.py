"""The safeops kernels without TensorFlow: NumPy arrays run the CPU kernels, torch or CuPy
device arrays run the CUDA kernels (the exact launchers the TensorFlow GPU ops call).

Used by the tests (tests/gpu drive the CUDA kernels through this module on a machine with no
TensorFlow) and by the GPU benchmarks. Every function returns new arrays of the input's kind.

A build with -DSAFEOPS_CUDA_EMULATE=ON (EMULATED) runs the same CUDA kernels on the host
(cuda/emulation): its device memory is host memory, held in EmulatedDeviceArray, and torch or
CuPy arrays are refused there.
"""

import numpy as np

from safeops import _activations, _native

CUDA = bool(_native.cuda)
EMULATED = bool(getattr(_native, "cuda_emulated", False))
_DTYPES = ("float16", "bfloat16", "float32", "float64")


class EmulatedDeviceArray(np.ndarray):
    """Memory of the emulated CUDA device: a NumPy array that the CUDA entry points of an
    emulated build take where a GPU build takes torch or CuPy device arrays (make one with
    `np.asarray(a).view(EmulatedDeviceArray)`; results come back as this type)."""


def _is_torch(a):
    return type(a).__module__.startswith("torch")


def _is_device(a):
    return (
        isinstance(a, EmulatedDeviceArray)
        or hasattr(a, "__cuda_array_interface__")
        or (_is_torch(a) and getattr(a, "is_cuda", False))
    )


def _pointer(a):
    """Device address of the data of a torch tensor, a __cuda_array_interface__ array or an
    EmulatedDeviceArray."""
    if isinstance(a, EmulatedDeviceArray):
        return a.__array_interface__["data"][0]
    return a.data_ptr() if _is_torch(a) else a.__cuda_array_interface__["data"][0]


class _Device:
    """Pointer, shape and dtype name of a device array (torch, __cuda_array_interface__ or,
    in an emulated build, EmulatedDeviceArray), plus an allocator for outputs of the same kind
    on the same device."""

    def __init__(self, a, what):
        self.obj = a
        self._stream = None
        if not _is_device(a):
            raise ValueError(f"safeops.native: {what} must be on a CUDA device, like x")
        if EMULATED != isinstance(a, EmulatedDeviceArray):
            why = (
                "this build emulates CUDA on the host: pass an EmulatedDeviceArray"
                if EMULATED
                else "an EmulatedDeviceArray needs a build with SAFEOPS_CUDA_EMULATE=ON"
            )
            raise ValueError(f"safeops.native: {what}: {why}")
        if isinstance(a, EmulatedDeviceArray):
            if not a.flags.c_contiguous:
                raise ValueError(f"safeops.native: {what} must be contiguous")
            self.ptr, self.shape, self.dtype = _pointer(a), a.shape, str(a.dtype)
            self._empty = lambda shape, dtype: np.empty(
                shape, a.dtype if dtype == self.dtype else dtype
            ).view(EmulatedDeviceArray)
        elif _is_torch(a):
            import torch

            if not a.is_contiguous():
                raise ValueError(f"safeops.native: {what} must be contiguous")
            self.ptr, self.shape = _pointer(a), tuple(a.shape)
            self.dtype = str(a.dtype).replace("torch.", "")
            self._empty = lambda shape, dtype: torch.empty(
                shape, dtype=getattr(torch, dtype), device=a.device
            )
        else:
            import cupy

            iface = a.__cuda_array_interface__
            if iface.get("strides") is not None and not a.flags.c_contiguous:
                raise ValueError(f"safeops.native: {what} must be C-contiguous")
            self.ptr, self.shape = _pointer(a), tuple(iface["shape"])
            self.dtype = "bool" if a.dtype == np.bool_ else str(a.dtype)
            self._empty = lambda shape, dtype: cupy.empty(shape, dtype=dtype)
        if what == "condition" and self.dtype != "bool":
            raise TypeError(f"safeops.native: condition must be bool, got {self.dtype}")
        if what != "condition" and self.dtype not in _DTYPES:
            raise TypeError(f"safeops.native: {what} has unsupported dtype {self.dtype}")

    @property
    def stream(self):
        """The current stream of the array's device (asked once, of the operand that launches:
        each torch.cuda.current_stream costs microseconds of host time)."""
        if self._stream is None:
            a = self.obj
            if isinstance(a, EmulatedDeviceArray):
                self._stream = 0
            elif _is_torch(a):
                import torch

                self._stream = torch.cuda.current_stream(a.device).cuda_stream
            else:
                import cupy

                self._stream = cupy.cuda.get_current_stream().ptr
        return self._stream

    def empty(self, shape, dtype=None):
        """(a new array of `shape` on the same device, its address). Outputs we allocate need
        none of the checks of an operand."""
        out = self._empty(tuple(shape), dtype or self.dtype)
        return out, _Output(_pointer(out))

    def scratch(self, nbytes):
        if nbytes == 0:
            return None, 0
        out = self._empty((nbytes,), "uint8")  # raw bytes: no dtype check
        return out, _pointer(out)


class _Output:
    """The address of an output _Device.empty allocated."""

    __slots__ = ("ptr",)

    def __init__(self, ptr):
        self.ptr = ptr


def _same_dtype(a, b, an, bn):
    if a.dtype != b.dtype:
        raise TypeError(f"safeops.native: {an} ({a.dtype}) and {bn} ({b.dtype}) differ in dtype")


def _need_cuda():
    if not CUDA:
        raise RuntimeError("safeops.native: this build has no CUDA kernels")


def where(condition, x, y):
    """condition ? x : y with numpy broadcasting."""
    if not _is_device(x):
        return _native.where(condition, x, y)
    _need_cuda()
    c, a, b = _Device(condition, "condition"), _Device(x, "x"), _Device(y, "y")
    _same_dtype(a, b, "x", "y")
    shape = _native.broadcast_shape(c.shape, a.shape, b.shape)
    out, o = a.empty(shape)
    _native.cuda_where(c.ptr, c.shape, a.ptr, a.shape, b.ptr, b.shape, o.ptr, a.dtype, a.stream)
    return out


def where_grad(condition, x_shape, y_shape, grad):
    """(condition ? grad : 0, condition ? 0 : grad), each summed to x_shape / y_shape."""
    x_shape, y_shape = tuple(x_shape), tuple(y_shape)
    if not _is_device(grad):
        return _native.where_grad(condition, x_shape, y_shape, grad)
    _need_cuda()
    c, g = _Device(condition, "condition"), _Device(grad, "grad")
    gx, ox = g.empty(x_shape)
    gy, oy = g.empty(y_shape)
    _keep, ws = g.scratch(_native.cuda_where_grad_workspace(c.shape, x_shape, y_shape, g.dtype))
    _native.cuda_where_grad(
        c.ptr, c.shape, x_shape, y_shape, g.ptr, g.shape, ox.ptr, oy.ptr, ws, g.dtype, g.stream
    )
    return gx, gy


def fill_missing(x, value, missing="nan"):
    """missing(x) ? value : x, value broadcast to x's shape."""
    if not _is_device(x):
        return _native.fill_missing(x, value, missing)
    _need_cuda()
    a, v = _Device(x, "x"), _Device(value, "value")
    _same_dtype(a, v, "x", "value")
    out, o = a.empty(a.shape)
    _native.cuda_fill_missing(a.ptr, a.shape, v.ptr, v.shape, o.ptr, missing, a.dtype, a.stream)
    return out


def fill_missing_grad(x, value_shape, grad, missing="nan"):
    """(missing(x) ? 0 : grad, sum of grad over the missing entries reduced to value_shape)."""
    value_shape = tuple(value_shape)
    if not _is_device(x):
        return _native.fill_missing_grad(x, value_shape, grad, missing)
    _need_cuda()
    a, g = _Device(x, "x"), _Device(grad, "grad")
    _same_dtype(a, g, "x", "grad")
    gx, ox = a.empty(a.shape)
    gv, ov = a.empty(value_shape)
    _keep, ws = a.scratch(_native.cuda_fill_missing_grad_workspace(a.shape, value_shape, a.dtype))
    _native.cuda_fill_missing_grad(
        a.ptr, a.shape, value_shape, g.ptr, g.shape, ox.ptr, ov.ptr, ws, missing, a.dtype, a.stream
    )
    return gx, gv


def _activation_name(activation):
    name = "linear" if activation is None else activation
    if name not in _activations.NAMES:
        raise ValueError(
            f"safeops.native: unknown activation {activation!r}; expected one of "
            f"{_activations.NAMES}"
        )
    return name


def _dense_operands(x, kernel, what):
    if not _is_device(x):
        raise TypeError(
            f"safeops.native.{what} runs the CUDA kernels on device arrays (torch, CuPy); "
            "on CPU use the TensorFlow op safeops.masked_dense"
        )
    _need_cuda()
    a, w = _Device(x, "x"), _Device(kernel, "kernel")
    _same_dtype(a, w, "x", "kernel")
    if len(a.shape) < 2:
        raise ValueError(f"safeops.native: x must have rank >= 2, got shape {a.shape}")
    if len(w.shape) != 2 or w.shape[0] != a.shape[-1]:
        raise ValueError(
            f"safeops.native: kernel must have shape [K, N] with K = x.shape[-1] = "
            f"{a.shape[-1]}, got {w.shape}"
        )
    rows = 1
    for d in a.shape[:-1]:
        rows *= d
    return a, w, rows, w.shape[0], w.shape[1]


def _indicator_operand(a, u, K, N):
    """Device pointer of the indicator weights u ([K, N], x's dtype), 0 for None."""
    if u is None:
        return 0
    d = _Device(u, "indicator_kernel")
    _same_dtype(a, d, "x", "indicator_kernel")
    if d.shape != (K, N):
        raise ValueError(
            f"safeops.native: indicator_kernel must have shape ({K}, {N}) like kernel, "
            f"got {d.shape}"
        )
    return d.ptr


def masked_dense(
    x,
    kernel,
    bias=None,
    activation="linear",
    renormalize=False,
    missing="nan",
    allow_tf32=True,
    indicator_kernel=None,
):
    """(y, z) of the fused masked dense layer on device arrays (docs/design.md):
    m = missing(x), xf = m ? 0 : x, s = renormalize ? K / n_obs (0 if none observed) : 1,
    z = s * (xf @ kernel) + m @ indicator_kernel + bias, y = act(z). x is [..., K], kernel and
    indicator_kernel [K, N] (indicator_kernel None: no m @ U term), bias [N] or None.
    z is returned where the backward reads it (the activations that _activations.SAVED marks
    "pre_activation": gelu, silu), None otherwise."""
    act = _activation_name(activation)
    a, w, rows, K, N = _dense_operands(x, kernel, "masked_dense")
    u_ptr = _indicator_operand(a, indicator_kernel, K, N)
    b_ptr = 0
    if bias is not None:
        b = _Device(bias, "bias")
        _same_dtype(a, b, "x", "bias")
        if b.shape != (N,):
            raise ValueError(f"safeops.native: bias must have shape ({N},), got {b.shape}")
        b_ptr = b.ptr
    shape = a.shape[:-1] + (N,)
    y, oy = a.empty(shape)
    z, z_ptr = None, 0
    if _activations.SAVED[act] == "pre_activation":
        z, oz = a.empty(shape)
        z_ptr = oz.ptr
    flags = (a.dtype, act, bool(renormalize), missing, bool(allow_tf32))
    indicator = indicator_kernel is not None
    _keep, ws = a.scratch(_native.cuda_masked_dense_workspace(rows, K, N, *flags, indicator))
    _native.cuda_masked_dense(
        a.ptr, w.ptr, b_ptr, oy.ptr, z_ptr, ws, rows, K, N, *flags, a.stream, u_ptr
    )
    return y, z


def masked_dense_grad(
    x,
    kernel,
    saved,
    grad,
    activation="linear",
    renormalize=False,
    missing="nan",
    has_bias=True,
    allow_tf32=True,
    indicator=False,
):
    """(dx, dkernel, dbias) of masked_dense given grad = dL/dy, or (dx, dkernel, dbias,
    dindicator_kernel) with `indicator` (the layer had indicator weights; their value is not
    needed). `saved` is what the backward reads for act' (y or z as _activations.SAVED says;
    ignored, may be None, for linear). dz = grad * act', db = sum over rows of dz,
    dkernel = xf^T @ (s * dz), dx = m ? 0 : s * (dz @ kernel^T), dindicator_kernel = m^T @ dz;
    dbias is None when has_bias is False."""
    act = _activation_name(activation)
    a, w, rows, K, N = _dense_operands(x, kernel, "masked_dense_grad")
    shape = a.shape[:-1] + (N,)
    g = _Device(grad, "grad")
    _same_dtype(a, g, "x", "grad")
    if g.shape != shape:
        raise ValueError(f"safeops.native: grad must have shape {shape}, got {g.shape}")
    s_ptr = 0
    if _activations.SAVED[act] != "none":
        if saved is None:
            raise ValueError(f"safeops.native: activation {act!r} needs `saved`")
        s = _Device(saved, "saved")
        _same_dtype(a, s, "x", "saved")
        if s.shape != shape:
            raise ValueError(f"safeops.native: saved must have shape {shape}, got {s.shape}")
        s_ptr = s.ptr
    dx, odx = a.empty(a.shape)
    dw, odw = a.empty((K, N))
    db, db_ptr = None, 0
    if has_bias:
        db, odb = a.empty((N,))
        db_ptr = odb.ptr
    du, du_ptr = None, 0
    if indicator:
        du, odu = a.empty((K, N))
        du_ptr = odu.ptr
    flags = (a.dtype, act, bool(renormalize), missing, bool(allow_tf32))
    _keep, ws = a.scratch(
        _native.cuda_masked_dense_grad_workspace(rows, K, N, *flags, bool(indicator))
    )
    _native.cuda_masked_dense_grad(
        a.ptr, w.ptr, s_ptr, g.ptr, odx.ptr, odw.ptr, db_ptr, ws, rows, K, N, *flags, a.stream,
        du_ptr,
    )  # fmt: skip
    return (dx, dw, db, du) if indicator else (dx, dw, db)


def masked_input(x, renormalize=False, missing="nan", indicator=False):
    """The row prologue of masked_dense on a device array x [..., K] (docs/design.md, 3.2):
    xs = m ? 0 : s * x with m = missing(x), s = renormalize ? K / n_obs (0 if none observed) : 1
    per row; with `indicator` each row continues with m ? 1 : 0 ([..., 2K]). What the GPU runs
    before the platform's GEMM for compute-bound shapes (safeops.routing)."""
    a = _input_operand(x, "masked_input")
    rows, K = _rows_k(a.shape)
    out, o = a.empty(a.shape[:-1] + ((2 * K if indicator else K),))
    _native.cuda_masked_input(
        a.ptr, o.ptr, rows, K, a.dtype, bool(renormalize), missing, bool(indicator), a.stream
    )
    return out


def masked_input_grad(x, grad, renormalize=False, missing="nan", indicator=False):
    """dx = m ? 0 : s * grad (an exact 0 at a missing entry whatever grad holds there); grad has
    xs's shape (with `indicator` its second half is not read)."""
    a = _input_operand(x, "masked_input_grad")
    rows, K = _rows_k(a.shape)
    g = _Device(grad, "grad")
    _same_dtype(a, g, "x", "grad")
    shape = a.shape[:-1] + ((2 * K if indicator else K),)
    if g.shape != shape:
        raise ValueError(f"safeops.native: grad must have shape {shape}, got {g.shape}")
    dx, odx = a.empty(a.shape)
    _native.cuda_masked_input_grad(
        a.ptr, g.ptr, odx.ptr, rows, K, a.dtype, bool(renormalize), missing, bool(indicator),
        a.stream,
    )  # fmt: skip
    return dx


def _input_operand(x, what):
    if not _is_device(x):
        raise TypeError(
            f"safeops.native.{what} runs the CUDA kernel on device arrays (torch, CuPy); on CPU "
            "use the TensorFlow op"
        )
    _need_cuda()
    a = _Device(x, "x")
    if len(a.shape) < 1:
        raise ValueError(f"safeops.native: x must have rank >= 1, got shape {a.shape}")
    return a


def _rows_k(shape):
    rows = 1
    for d in shape[:-1]:
        rows *= d
    return rows, shape[-1]
