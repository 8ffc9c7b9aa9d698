"""One generic call path for every kernel of the table: choose the device, validate the arguments by their
roles and kinds, take or allocate the outputs, launch.

``call(kernel, args, out, device)`` is what each public function (``functions.py``) does. The steps, in
order (so that a bad call is refused before anything is written):

1. device: all array arguments on the host (NumPy, or anything ``np.asarray`` takes) or all on a GPU
   (``__cuda_array_interface__``: CuPy, PyTorch CUDA tensors, ...); a mix is a TypeError naming both. On
   the GPU path the CUDA extension and a device must be usable (RuntimeError otherwise), then CuPy.
2. arrays: in-place (``inout``) arrays must be C-contiguous and writable arrays of that device; every
   array must have one of the kernel's dtypes, all the same dtype (no silent casts).
3. shapes: the kernel's logical shape S is its first ``FULL`` array's; the other roles follow from S
   (spec.py). 4. scalars, by kind (validate.scalar), then the stream end (offset + positions <= 2**64).
5. outputs: ``out=`` (one array, or a tuple with one entry per output, None entries allocated) must match
   exactly; otherwise allocated. 6. launch: the backend hands contiguous arrays, the extent ((rows, cols)
   or (n,)) and the C++ scalars to the extension, whose binding checks every size once more.
"""
from __future__ import annotations

import math

import numpy as np

from . import cuda as _cuda
from . import validate as V
from .spec import BATCH, BLOCKS, CREATION, FULL, KEYS, PHILOX, ROWS, SAMPLES, Array

__all__ = ["call", "run", "Plan", "plan", "HOST"]


class Plan:
    """What ``call`` needs of a kernel, computed once from its description (the per-call path only indexes)."""

    def __init__(self, kernel):
        self.kernel = kernel
        params = kernel.params
        # (position in args, name, io, role) of each array parameter, in order
        self.arrays = tuple((i, p.name, p.io, p.role) for i, p in enumerate(params) if isinstance(p, Array))
        self.array_index = tuple(a[0] for a in self.arrays)
        self.scalars = tuple((i, p.name, p.kind, V.scalar_check(p)) for i, p in enumerate(params)
                             if not isinstance(p, Array))
        self.float = kernel.dtypes != ("uint32",)
        roles = [a[3] for a in self.arrays]
        self.ref = roles.index(FULL) if FULL in roles else None             # whose shape is the kernel's
        self.ref_name = self.arrays[self.ref][1] if self.ref is not None else None
        self.full = tuple(j for j, r in enumerate(roles) if r == FULL and j != self.ref)
        self.batch = tuple(j for j, r in enumerate(roles) if r == BATCH)
        self.cpp_scalars = tuple(s.name for s in kernel.cpp_scalars)
        self.n_samples_cpp = "n_samples" in self.cpp_scalars
        self.out_roles = tuple(o.role for o in kernel.outputs)
        self.n_out = len(kernel.outputs)
        self.out_names = ("out",) if self.n_out == 1 else tuple(f"out[{i}]" for i in range(self.n_out))
        self.returns = (None if kernel.returns == "outputs"
                        else next(i for i, p in enumerate(params) if p.name == kernel.returns))
        self.stream = kernel.stream is not None
        self.count_samples = self.stream and kernel.stream.count == "samples"
        self.layout = kernel.layout


_PLANS = {}


def plan(kernel):
    p = _PLANS.get(kernel.name)
    if p is None:
        p = _PLANS[kernel.name] = Plan(kernel)
    return p


def call(kernel, args, out=None, device=None):
    """Run ``kernel`` on ``args`` (its parameters in signature order); see the module docstring."""
    pl = _PLANS.get(kernel.name) or plan(kernel)
    lib = HOST
    if _cuda.wants_device(kernel, pl, args, out, device):
        lib = _cuda.DeviceLib(kernel, pl, args, out, device)
    return _run(pl, lib, args, out)


def run(kernel, lib, args, out=None):
    """``call`` with a given array library ``lib`` (the host's ``HOST``, ``cuda.DeviceLib``, or a framework
    adapter's): the same validation, outputs from ``lib.output``, the launch by ``lib.launch``."""
    return _run(_PLANS.get(kernel.name) or plan(kernel), lib, args, out)


def _run(pl, lib, args, out):
    kernel = pl.kernel

    # ---- arrays: type, dtype ----------------------------------------------------------------------
    arrays = []
    dtype = first = None
    for i, name, io, _ in pl.arrays:
        a = lib.inout(name, args[i]) if io == "inout" else lib.array(name, args[i])
        if pl.float:
            if a.dtype not in V.FLOAT_DTYPES:
                raise TypeError(f"{name} must have dtype float32 or float64, got {a.dtype}")
        elif a.dtype != np.uint32:
            raise TypeError(f"{name} must have dtype uint32, got {a.dtype}")
        if dtype is None:
            dtype, first = a.dtype, name
        elif a.dtype != dtype:
            raise TypeError(f"{name} has dtype {a.dtype} but {first} has dtype {dtype}; mixed dtypes are not "
                            f"cast silently (convert with .astype first)")
        arrays.append(a)

    # ---- scalars ------------------------------------------------------------------------------------
    # A library may take some scalars as traced values (JAX: seeds and offsets inside jit); those are
    # checked where their value exists (the XLA FFI handler), the rest here.
    traced = getattr(lib, "traced", None)
    values = {name: (args[i] if traced is not None and traced(kind, args[i]) else check(args[i]))
              for i, name, kind, check in pl.scalars}

    # ---- shapes -------------------------------------------------------------------------------------
    layout = pl.layout
    if layout == CREATION:
        shape, dtype = values["shape"], values["dtype"]
        n = math.prod(shape)
        extent = (n,)
    elif layout == PHILOX:
        counters, keys = arrays
        if counters.ndim != 2 or counters.shape[1] != 4:
            raise ValueError(f"counters must have shape (N, 4), got {counters.shape}")
        if keys.shape != (counters.shape[0], 2):
            raise ValueError(f"keys must have shape ({counters.shape[0]}, 2), got {keys.shape}")
        shape = counters.shape
        n = shape[0]
        extent = (n,)
    else:
        ref = arrays[pl.ref]
        shape = ref.shape
        for j in pl.full:
            if arrays[j].shape != shape:
                V.same_shape(pl.ref_name, ref, pl.arrays[j][1], arrays[j])
        n = ref.size
        if layout == ROWS:
            if not shape:
                raise ValueError(f"{pl.ref_name} must have at least one dimension (the reduced last axis), "
                                 f"got a scalar")
            batch = shape[:-1]
            for j in pl.batch:
                if arrays[j].shape != batch:
                    raise ValueError(f"{pl.arrays[j][1]} must have shape {batch} ({pl.ref_name}'s shape without "
                                     f"its last axis), got {arrays[j].shape}")
            extent = (math.prod(batch), shape[-1])
        else:
            extent = (n,)

    # ---- stream -------------------------------------------------------------------------------------
    n_samples = values.get("n_samples")
    if pl.stream and isinstance(values["offset"], int):
        V.check_stream_end(values["offset"], n * n_samples if pl.count_samples and n_samples else n)

    # ---- outputs ------------------------------------------------------------------------------------
    outs = ()
    if pl.n_out:
        if pl.n_out == 1:
            given = (out,)
        elif out is None:
            given = (None,) * pl.n_out
        elif not isinstance(out, (tuple, list)) or len(out) != pl.n_out:
            raise TypeError(f"out must be a tuple of {pl.n_out} arrays, got {type(out).__name__}")
        else:
            given = out
        outs = tuple(lib.output(nm, o, _role_shape(r, shape, n_samples), dtype)
                     for nm, o, r in zip(pl.out_names, given, pl.out_roles))

    # ---- launch -------------------------------------------------------------------------------------
    scalars = tuple(values[s] for s in pl.cpp_scalars)
    if pl.n_samples_cpp and n_samples is None:
        scalars = tuple(1 if s == "n_samples" else values[s] for s in pl.cpp_scalars)
    arrays.extend(outs)
    lib.launch(kernel, dtype, arrays, extent, scalars)
    if pl.returns is not None:
        return args[pl.returns]
    return outs[0] if pl.n_out == 1 else outs


def _role_shape(role, shape, n_samples):
    if role == FULL or role == BLOCKS:
        return shape
    if role == BATCH:
        return shape[:-1]
    if role == SAMPLES:
        return shape if n_samples is None else (n_samples,) + tuple(shape)
    if role == KEYS:
        return (shape[0], 2)
    raise AssertionError(role)


# -------------------------------------------------------------------------------------------------
# The host: NumPy arrays and the _core extension
# -------------------------------------------------------------------------------------------------
class HostLib:
    """Host arrays for ``_run``: NumPy, inputs made C-contiguous (copied once if they are not)."""

    def __init__(self):
        self._fns = {}

    @staticmethod
    def array(name, a):
        if type(a) is not np.ndarray and hasattr(a, "__dlpack__"):
            a = _from_dlpack(name, a)     # any CPU array library, zero-copy (PyTorch, JAX, ...)
        a = np.asarray(a, order="C")  # not ascontiguousarray: it turns 0-d arrays into shape (1,)
        if not (a.flags.aligned and a.dtype.isnative):
            # misaligned or byte-swapped buffers are copied once too: the kernels load whole native elements
            a = np.array(a, dtype=a.dtype.newbyteorder("="), order="C")
        return a

    @staticmethod
    def inout(name, a):
        if not isinstance(a, np.ndarray):
            raise TypeError(f"{name} must be a NumPy array (it is updated in place), got {type(a).__name__}")
        if not a.flags.c_contiguous or not a.flags.writeable or not a.flags.aligned:
            raise ValueError(f"{name} must be C-contiguous, aligned and writable (it is updated in place)")
        return a

    output = staticmethod(V.host_output)

    def launch(self, kernel, dtype, arrays, extent, scalars):
        key = (kernel.name, dtype)
        fn = self._fns.get(key)
        if fn is None:
            from .. import _core
            fn = self._fns[key] = getattr(getattr(_core, _SUBMODULE[dtype.name]), kernel.name)
        fn(tuple(arrays), extent, scalars)


def _from_dlpack(name, a):
    """A CPU array of another library as a NumPy array on the same memory (DLPack)."""
    try:
        return np.from_dlpack(a)
    except (RuntimeError, BufferError, TypeError, ValueError) as e:
        # e.g. a PyTorch tensor that requires grad refuses to export its memory
        try:
            return np.asarray(a)
        except Exception:  # noqa: BLE001  (report the DLPack refusal, which says why)
            raise TypeError(f"{name} cannot be read as an array ({type(a).__name__}: {e}); for tensors that "
                            f"require grad use vaekernels.torch, or pass tensor.detach()") from e


_SUBMODULE = {"float32": "f32", "float64": "f64", "uint32": "u32"}
HOST = HostLib()


# -------------------------------------------------------------------------------------------------
# Prepared calls: validate once, repeat without checks (training loops on buffers they own)
# -------------------------------------------------------------------------------------------------
class _Capture(HostLib):
    """A host library that records the launch instead of running it."""

    def launch(self, kernel, dtype, arrays, extent, scalars):
        from .. import _core
        self.fn = getattr(getattr(_core, _SUBMODULE[dtype.name]), kernel.name)
        self.arrays, self.extent = tuple(arrays), extent


class Prepared:
    """One kernel call validated completely (arrays, shapes, dtypes, outputs given in ``out``) by the same
    path as the public function, then repeatable with new scalar values and no checks at all:
    ``p(seed, offset, ...)`` takes the C++ scalars in the order ``p.scalars`` names them. The caller keeps
    the arrays alive and unchanged in shape, dtype and layout (the Workspace of a VAE does), and keeps
    offset + the number of draws <= 2**64 (``fit`` checks its step counter once)."""

    __slots__ = ("fn", "arrays", "extent", "scalars")

    def __init__(self, kernel_name, args, out):
        from .table import BY_NAME
        kernel = BY_NAME[kernel_name]
        lib = _Capture()
        _run(plan(kernel), lib, args, out)
        self.fn, self.arrays, self.extent = lib.fn, lib.arrays, lib.extent
        self.scalars = plan(kernel).cpp_scalars

    def __call__(self, *scalars):
        self.fn(self.arrays, self.extent, scalars)
