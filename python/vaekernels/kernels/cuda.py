"""The GPU back end of the kernels: CuPy (or any ``__cuda_array_interface__``) arrays in, CuPy arrays out.

``dispatch.call`` comes here when an array argument is a device array (or, for ``randn`` and ``rand``, when
``device=`` names a GPU or ``out=`` is a device array). Validation is the host's (dispatch.py, the same
table); this module supplies the device side of it: CuPy arrays on one device, contiguous copies made on
that device, outputs allocated there, and the launch of ``vaekernels._cuda`` on CuPy's current stream of
that device. Calls return without synchronising, as CuPy's own kernels do; results equal the CPU's bit
for bit (see cuda/common.cuh).

Order of checks: mixing host and device arrays is a TypeError naming both arguments; then the CUDA
extension must be built and a device usable (RuntimeError "no CUDA device ..." otherwise, never a
crash); then CuPy must be importable (the optional extra ``vaekernels[cuda]``, imported only here, only
on a GPU call).
"""
from __future__ import annotations

import re

import numpy as np

from . import validate as V
from .spec import CREATION

__all__ = ["cuda_built", "cuda_available", "is_device_array", "device_index", "require_device", "cupy"]

_cuda = None            # the extension module, once imported
_cuda_import_error = None
_device_seen = False    # a device was usable once: it stays so for the life of the process


def module():
    """The ``vaekernels._cuda`` extension, or None when it was not built (or cannot load)."""
    global _cuda, _cuda_import_error
    if _cuda is None and _cuda_import_error is None:
        try:
            from .. import _cuda as mod
            _cuda = mod
        except ImportError as e:  # not compiled (no nvcc at build time) or not loadable
            _cuda_import_error = e
    return _cuda


def cuda_built():
    """True when the CUDA extension ``vaekernels._cuda`` was compiled into this install and imports."""
    return module() is not None


def cuda_available():
    """True when the CUDA extension is built and a CUDA device is usable now (a driver and a GPU)."""
    global _device_seen
    if not _device_seen:
        mod = module()
        _device_seen = mod is not None and mod.device_count() > 0
    return _device_seen


_DLPACK_CUDA = (2, 13)        # kDLCUDA, kDLCUDAManaged


def is_device_array(a):
    """Whether ``a`` lives on a GPU: ``__cuda_array_interface__`` (CuPy, PyTorch CUDA tensors, Numba, ...) or a
    DLPack device that is CUDA memory (JAX GPU arrays, ...)."""
    if hasattr(a, "__cuda_array_interface__"):
        return True
    dev = getattr(a, "__dlpack_device__", None)
    if dev is None:
        return False
    try:
        return int(dev()[0]) in _DLPACK_CUDA
    except Exception:  # noqa: BLE001  (an object that cannot say where it lives is not a device array)
        return False


def require_device():
    """The extension module, or RuntimeError saying why no GPU call can run here."""
    mod = module()
    if mod is None:
        raise RuntimeError(
            "no CUDA device support: vaekernels was built without its CUDA extension (nvcc was not found at "
            f"build time, or VAEKERNELS_CUDA=OFF): {_cuda_import_error}")
    if not cuda_available():
        raise RuntimeError(mod.device_error() or "no CUDA device is usable")
    return mod


def cupy():
    try:
        import cupy as cp
    except ImportError as e:
        raise ImportError(
            "device arrays need CuPy: install it with `pip install vaekernels[cuda]` (cupy-cuda13x)") from e
    return cp


_DEVICE_RE = re.compile(r"cuda(?::(\d+))?")


def device_index(device):
    """"cpu" for the host, else the GPU index (None = CuPy's current device) for "cuda" / "cuda:N"."""
    if isinstance(device, str):
        if device == "cpu":
            return "cpu"
        m = _DEVICE_RE.fullmatch(device)
        if m:
            return None if m.group(1) is None else int(m.group(1))
    raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}")


def wants_device(kernel, plan, args, out, device):
    """Whether this call runs on a GPU; TypeError when it mixes host and device arrays."""
    if kernel.layout == CREATION:
        if device is None:
            return out is not None and type(out) is not np.ndarray and is_device_array(out)
        if device_index(device) == "cpu":
            return False
        if out is not None and not is_device_array(out):
            raise TypeError(f"out is a host array ({type(out).__name__}) but device={device!r} asks for a GPU array")
        return True
    host = dev = None
    for i, name, _, _ in plan.arrays:
        a = args[i]
        if type(a) is np.ndarray or not is_device_array(a):
            host = host or (name, type(a).__name__)
        else:
            dev = dev or name
        if host and dev:
            name, kind = host
            raise TypeError(
                f"{name} is a host array ({kind}) but {dev} is a GPU array; mixing host and GPU arrays in one call "
                f"is not supported (move {name} with cupy.asarray, or {dev} with cupy.asnumpy)")
    return dev is not None


class DeviceLib:
    """The device side of ``dispatch._run`` for one call: CuPy arrays on one GPU, CuPy's current stream."""

    def __init__(self, kernel, plan, args, out, device):
        self.mod = require_device()
        cp = self.cp = cupy()
        self.device = None
        if kernel.layout == CREATION:
            index = None if device is None else device_index(device)
            if out is not None:
                out_id = cp.asarray(out).device.id
                if index is not None and out_id != index:
                    raise ValueError(f"out is on GPU {out_id} but device={device!r}")
                index = out_id
            self.device = cp.cuda.Device(index) if index is not None else cp.cuda.Device()

    def _cupy_view(self, a):
        """CuPy's view of another library's GPU array: __cuda_array_interface__ (with its stream, which CuPy
        synchronises with) or DLPack (whose protocol orders the producer's stream before ours)."""
        if isinstance(a, self.cp.ndarray):
            return a
        if hasattr(a, "__cuda_array_interface__"):
            return self.cp.asarray(a)
        return self.cp.from_dlpack(a)

    def array(self, name, a):
        a = self._cupy_view(a)
        if not a.flags.c_contiguous:
            with a.device:  # the copy is made on the array's device
                a = self.cp.ascontiguousarray(a)
        self._on_device(name, a)
        return a

    def inout(self, name, a):
        a = self._cupy_view(a)
        if not a.flags.c_contiguous:
            raise ValueError(f"{name} must be C-contiguous (it is updated in place)")
        self._on_device(name, a)
        return a

    def _on_device(self, name, a):
        if self.device is None:
            self.device, self._first = a.device, name
        elif a.device.id != self.device.id:
            raise ValueError(f"{name} is on GPU {a.device.id} but {self._first} is on GPU {self.device.id}")

    def output(self, name, out, shape, dtype):
        cp = self.cp
        if out is None:
            with self.device:
                return cp.empty(shape, dtype=dtype)
        if not isinstance(out, cp.ndarray):
            if not is_device_array(out):
                raise TypeError(f"{name} must be a CuPy array on the GPU (the inputs are), got {type(out).__name__}")
            out = self._cupy_view(out)
        V.output_layout(name, out, shape, dtype)
        if out.device.id != self.device.id:
            raise ValueError(f"{name} is on GPU {out.device.id} but the inputs are on GPU {self.device.id}")
        return out

    def launch(self, kernel, dtype, arrays, extent, scalars):
        fn = getattr(getattr(self.mod, {"float32": "f32", "float64": "f64", "uint32": "u32"}[dtype.name]),
                     kernel.name)
        with self.device:
            stream = self.cp.cuda.get_current_stream().ptr
            fn(tuple(a.data.ptr for a in arrays), extent, scalars, stream)
