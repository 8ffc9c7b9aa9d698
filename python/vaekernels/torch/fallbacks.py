"""The operators' CPU and CUDA implementations in Python: the NumPy API's validation and C++ kernels on
the tensors' memory (CPU: zero-copy NumPy views; CUDA: dispatch's checks on tensor views, the launch on
torch's current stream).

Half precision (float16, bfloat16) is computed in float32 and the results rounded to the input's dtype
(``operators.resolve_dtypes``); in-place arguments (``adam_step``) are then written back, and every
tensor an operator updates in place has its version counter bumped, as native in-place ops do, so
autograd refuses a gradient that would read an overwritten value.
"""
from __future__ import annotations

import numpy as np
import torch

from .. import _core
from ..kernels import dispatch
from ..kernels import cuda as _cuda
from ..kernels.spec import CREATION, PHILOX, Array
from .operators import NATIVE, TENSOR_SCALARS, fake_impl, full_args, resolve_dtypes

_MASK = (1 << 64) - 1
_NP = {torch.float32: np.dtype(np.float32), torch.float64: np.dtype(np.float64), torch.uint32: np.dtype(np.uint32)}
_TORCH = {v: k for k, v in _NP.items()}


def stream_value(t):
    """The uint64 value a 0-d int64 tensor carries."""
    return int(t.item()) & _MASK


_team = [None]


def follow_torch_threads():
    """The thread policy: the kernels' thread team follows torch.get_num_threads() (set_num_threads governs
    both thread pools of the process)."""
    n = torch.get_num_threads()
    if n != _team[0]:
        _core.set_team_size(n)
        _team[0] = n


class _Call:
    """One call's arguments prepared for ``dispatch.run``: tensors in the compute dtype, stream values as
    ints; ``finish`` turns the kernel's results into tensors of the result dtype and writes in-place
    arguments back."""

    def __init__(self, k, args):
        self.k = k
        self.compute, self.result = resolve_dtypes(k, args)
        self.args = list(args)
        self.inplace = []             # (caller's tensor, the tensor the kernel updates)
        for i, p in enumerate(k.params):
            a = args[i]
            if isinstance(p, Array):
                t = a.detach()
                if t.dtype != self.compute:
                    t = t.to(self.compute)
                if p.io == "inout":
                    if a.requires_grad and torch.is_grad_enabled():
                        raise RuntimeError(f"{p.name} requires grad and {k.name} updates it in place: call it under "
                                           f"torch.no_grad() (as torch.optim does)")
                    self.inplace.append((a, t))
                self.args[i] = t
            elif p.kind in TENSOR_SCALARS:
                self.args[i] = stream_value(a)
            elif p.kind == "dtype":
                self.args[i] = _NP[self.compute]

    def finish(self, res):
        for caller, updated in self.inplace:
            if updated is not caller and updated.data_ptr() != caller.data_ptr():
                caller.detach().copy_(updated)
        if self.inplace:
            torch.autograd.graph.increment_version(tuple(c for c, _ in self.inplace))
        if not self.k.outputs:
            return None
        res = res if type(res) is tuple else (res,)
        res = tuple(r if r.dtype == self.result else r.to(self.result) for r in res)
        return res[0] if len(res) == 1 else res


def cpu_impl(k):
    """The CPU implementation of kernel ``k``: the NumPy API on views of the tensors' memory."""
    gpu_impl = cuda_impl(k)
    meta_impl = fake_impl(k)
    arrays = tuple(i for i, p in enumerate(k.params) if isinstance(p, Array))
    wanted = " or ".join(k.dtypes)

    n_params = len(k.params)
    streams = tuple(i for i, p in enumerate(k.params) if not isinstance(p, Array) and p.kind in TENSOR_SCALARS)
    # the common call, checked inline: a functional kernel, every argument given, tensors of one native float
    # dtype, stream values as 0-d int64 tensors (anything else takes the general path and its messages)
    plain = k.layout not in (CREATION, PHILOX) and not any(isinstance(p, Array) and p.io == "inout"
                                                         for p in k.params)

    def fast(args):
        dtype = args[arrays[0]].dtype
        if dtype not in NATIVE:
            return None
        a = list(args)
        for i in arrays:
            t = a[i]
            if not isinstance(t, torch.Tensor) or t.dtype != dtype:
                return None
            a[i] = (t.detach() if t.requires_grad else t).numpy()
        for i in streams:
            t = a[i]
            if not isinstance(t, torch.Tensor) or t.dtype != torch.int64 or t.dim() != 0:
                return None
            a[i] = stream_value(t)
        res = dispatch.run(k, dispatch.HOST, a)
        return tuple(torch.from_numpy(r) for r in res) if type(res) is tuple else torch.from_numpy(res)

    def impl(*args):
        if torch.get_num_threads() != _team[0]:
            follow_torch_threads()
        if plain and len(args) == n_params:
            res = fast(args)
            if res is not None:
                return res
        full, device = full_args(k, args)
        if device is not None:
            kind = torch.device(device).type
            if kind == "meta":
                return meta_impl(*args)
            if kind != "cpu":
                # randn/rand with device="cuda": their only tensors (seed, offset) live on the CPU, so the
                # dispatcher comes here; the CUDA implementation draws on the device (or says why not)
                return gpu_impl(*args)
        call = _Call(k, full)
        a = call.args
        for i in arrays:
            try:
                a[i] = a[i].numpy()
            except TypeError:
                raise TypeError(f"{k.params[i].name} must have dtype {wanted}, got {a[i].dtype}") from None
        res = dispatch.run(k, dispatch.HOST, a)
        if type(res) is tuple:
            res = tuple(torch.from_numpy(r) for r in res)      # the kernel's output memory, not a copy
        elif res is not None and k.outputs:
            res = torch.from_numpy(res)
        return call.finish(res)
    return impl


# -------------------------------------------------------------------------------------------------
# CUDA tensors: dispatch's validation on a view of the tensors, the launch on torch's current stream
# -------------------------------------------------------------------------------------------------
class _Flags:
    def __init__(self, t):
        self.c_contiguous = t.is_contiguous()
        self.aligned = t.data_ptr() % max(t.element_size(), 1) == 0


class _View:
    """What dispatch reads of an array (shape, dtype, size, flags), for a torch tensor."""

    def __init__(self, t):
        self.t = t
        self.shape = tuple(t.shape)
        self.ndim = t.dim()
        self.size = t.numel()
        self.flags = _Flags(t)
        self.dtype = _NP[t.dtype]


class _TorchCuda:
    """The array library of ``dispatch.run`` for CUDA tensors of one device."""

    def __init__(self, device):
        self.mod = _cuda.require_device()
        self.device = device

    def _check(self, name, t):
        if not isinstance(t, torch.Tensor) or t.device != self.device:
            where = t.device if isinstance(t, torch.Tensor) else type(t).__name__
            raise TypeError(f"{name} is on {where} but the call runs on {self.device}; mixing devices is not "
                            f"supported (move it with .to({str(self.device)!r}))")

    def array(self, name, t):
        self._check(name, t)
        return _View(t.contiguous())

    def inout(self, name, t):
        self._check(name, t)
        if not t.is_contiguous():
            raise ValueError(f"{name} must be contiguous (it is updated in place)")
        return _View(t)

    def output(self, name, out, shape, dtype):
        return _View(torch.empty(tuple(shape), dtype=_TORCH[dtype], device=self.device))

    def launch(self, kernel, dtype, arrays, extent, scalars):
        fn = getattr(getattr(self.mod, {"float32": "f32", "float64": "f64", "uint32": "u32"}[dtype.name]),
                     kernel.name)
        stream = torch.cuda.current_stream(self.device).cuda_stream
        fn(tuple(a.t.data_ptr() for a in arrays), extent, scalars, stream)


def cuda_impl(k):
    """The CUDA implementation of kernel ``k`` (needs the CUDA build and a device; otherwise a RuntimeError
    saying why)."""
    def impl(*args):
        _cuda.require_device()          # first: without the CUDA build or a device, say so (RuntimeError)
        full, device = full_args(k, args)
        if k.layout == CREATION:
            dev = torch.device(device if device is not None else "cuda")
        else:
            dev = next(a.device for p, a in zip(k.params, full) if isinstance(p, Array) and a.is_cuda)
        if dev.index is None:
            dev = torch.device("cuda", torch.cuda.current_device())
        call = _Call(k, full)
        res = dispatch.run(k, _TorchCuda(dev), call.args)
        if res is not None and k.outputs:
            res = tuple(r.t for r in res) if isinstance(res, tuple) else res.t
        return call.finish(res)
    return impl
