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

from . import validate as V
from .spec import BATCH, BLOCKS, CREATION, FULL, KEYS, PHILOX, ROWS, SAMPLES, Array

__all__ = ["call", "Plan", "plan"]


class Plan:
    """What ``call`` needs of a kernel, computed once from its description."""

    def __init__(self, kernel):
        self.kernel = kernel
        self.array_index = tuple(i for i, p in enumerate(kernel.params) if isinstance(p, Array))
        self.scalar_index = tuple(i for i, p in enumerate(kernel.params) if not isinstance(p, Array))
        self.float = kernel.dtypes != ("uint32",)
        self.ref = next((p.name for p in kernel.arrays if p.role == FULL), None)
        self.n_out = len(kernel.outputs)
        self.returns = (None if kernel.returns == "outputs"
                        else next(i for i, p in enumerate(kernel.params) if p.name == kernel.returns))
        self.count_samples = kernel.stream is not None and kernel.stream.count == "samples"


_PLANS = {}


def plan(kernel):
    p = _PLANS.get(kernel.name)
    if p is None:
        p = _PLANS[kernel.name] = Plan(kernel)
    return p


def call(kernel, args, out=None, device=None):
    """Run ``kernel`` on ``args`` (its parameters in signature order); see the module docstring."""
    pl = plan(kernel)
    from . import cuda  # noqa: PLC0415  (cheap after the first call; keeps CuPy out of host-only calls)
    on_device = cuda.wants_device(kernel, pl, args, out, device)
    lib = cuda.DeviceLib(kernel, pl, args, out, device) if on_device else HOST
    return _run(pl, lib, args, out)


def _run(pl, lib, args, out):
    kernel = pl.kernel
    params = kernel.params

    # ---- arrays: type, dtype ----------------------------------------------------------------------
    arrays = []
    dtype = first = None
    for i in pl.array_index:
        p, a = params[i], args[i]
        a = lib.inout(p.name, a) if p.io == "inout" else lib.array(p.name, a)
        if pl.float:
            if a.dtype not in V.FLOAT_DTYPES:
                raise TypeError(f"{p.name} must have dtype float32 or float64, got {a.dtype}")
        elif a.dtype != np.uint32:
            raise TypeError(f"{p.name} must have dtype uint32, got {a.dtype}")
        if dtype is None:
            dtype, first = a.dtype, p.name
        elif a.dtype != dtype:
            raise TypeError(f"{p.name} has dtype {a.dtype} but {first} has dtype {dtype}; mixed dtypes are not "
                            f"cast silently (convert with .astype first)")
        arrays.append(a)
    lib.same_device(kernel, arrays)

    # ---- scalars ------------------------------------------------------------------------------------
    values = {params[i].name: V.scalar(params[i], args[i]) for i in pl.scalar_index}

    # ---- shapes -------------------------------------------------------------------------------------
    layout = kernel.layout
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
        ref = arrays[kernel.arrays.index(kernel.param(pl.ref))]
        shape = ref.shape
        for p, a in zip(kernel.arrays, arrays):
            if p.role == FULL and a.shape != shape:
                V.same_shape(pl.ref, ref, p.name, a)
        n = math.prod(shape)
        if layout == ROWS:
            if not shape:
                raise ValueError(f"{pl.ref} must have at least one dimension (the reduced last axis), got a scalar")
            batch = shape[:-1]
            for p, a in zip(kernel.arrays, arrays):
                if p.role == BATCH and a.shape != batch:
                    raise ValueError(f"{p.name} must have shape {batch} ({pl.ref}'s shape without its last axis), "
                                     f"got {a.shape}")
            extent = (math.prod(batch), shape[-1])
        else:
            extent = (n,)

    # ---- stream -------------------------------------------------------------------------------------
    n_samples = values.get("n_samples")
    if kernel.stream is not None:
        V.check_stream_end(values["offset"], n * (n_samples or 1) if pl.count_samples else n)

    # ---- outputs ------------------------------------------------------------------------------------
    outs = ()
    if pl.n_out:
        if pl.n_out == 1:
            given = (out,)
            names = ("out",)
        else:
            if out is None:
                given = (None,) * pl.n_out
            elif not isinstance(out, (tuple, list)) or len(out) != pl.n_out:
                raise TypeError(f"out must be a tuple of {pl.n_out} arrays, got {type(out).__name__}")
            else:
                given = tuple(out)
            names = tuple(f"out[{i}]" for i in range(pl.n_out))
        outs = tuple(lib.output(nm, o, _role_shape(p.role, shape, n_samples), dtype)
                     for nm, o, p in zip(names, given, kernel.outputs))

    # ---- launch -------------------------------------------------------------------------------------
    scalars = tuple(_cpp_value(s, values[s.name]) for s in kernel.cpp_scalars)
    lib.launch(kernel, dtype, arrays + list(outs), extent, scalars)
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


def _cpp_value(spec, value):
    if spec.kind == "n_samples":
        return 1 if value is None else value
    return value


# -------------------------------------------------------------------------------------------------
# The host: NumPy arrays and the _core extension
# -------------------------------------------------------------------------------------------------
class HostLib:
    """Host arrays for ``_run``: NumPy, inputs made C-contiguous (copied once if they are not)."""

    def __init__(self):
        self._fns = {}

    @staticmethod
    def array(name, a):
        return np.asarray(a, order="C")  # not ascontiguousarray: it turns 0-d arrays into shape (1,)

    @staticmethod
    def inout(name, a):
        if not isinstance(a, np.ndarray):
            raise TypeError(f"{name} must be a NumPy array (it is updated in place), got {type(a).__name__}")
        if not a.flags.c_contiguous or not a.flags.writeable:
            raise ValueError(f"{name} must be C-contiguous and writable (it is updated in place)")
        return a

    @staticmethod
    def same_device(kernel, arrays):
        pass

    output = staticmethod(V.host_output)

    def launch(self, kernel, dtype, arrays, extent, scalars):
        key = (kernel.name, dtype)
        fn = self._fns.get(key)
        if fn is None:
            from .. import _core
            fn = self._fns[key] = getattr(getattr(_core, _SUBMODULE[dtype.name]), kernel.name)
        fn(tuple(arrays), extent, scalars)


_SUBMODULE = {"float32": "f32", "float64": "f64", "uint32": "u32"}
HOST = HostLib()
