"""The operators ``torch.ops.vaekernels.<name>``: schemas, the dtype rule, fake implementations and the
registration of every kernel of the table (implementations in ``fallbacks``, autograd in ``autograd``,
vmap and autocast in ``transforms``).

One rule decides the dtypes of a call, for eager, fake (``torch.compile``, meta) and compiled calls alike
(``resolve_dtypes``): float32 and float64 tensors are computed in their own dtype; float16 and bfloat16
tensors are computed in float32 inside the kernel and the results rounded back to the input's dtype;
every other dtype is a TypeError, and so is a mix of dtypes.
"""
from __future__ import annotations

import torch

from ..kernels import KERNELS
from ..kernels.spec import BATCH, CREATION, FULL, PHILOX, REQUIRED, SAMPLES, Array

NAMESPACE = "vaekernels"
TENSOR_SCALARS = ("seed", "offset", "step")      # traced values: 0-d int64 tensors carrying 64 bits
NATIVE = (torch.float32, torch.float64)           # computed as they are
HALF = (torch.float16, torch.bfloat16)            # computed in float32, results rounded back
_FLOAT_NAMES = "torch.float32, torch.float64, torch.float16 or torch.bfloat16"


def schema(k):
    """The operator schema of kernel ``k``: arrays are Tensors (in-place ones annotated ``(a!)``), stream
    values and Adam's step are 0-d int64 Tensors, reals are floats, creation kernels take a device."""
    parts, alias = [], iter("abcdefgh")
    for p in k.params:
        if isinstance(p, Array):
            parts.append(f"Tensor({next(alias)}!) {p.name}" if p.io == "inout" else f"Tensor {p.name}")
        elif p.kind in TENSOR_SCALARS:
            parts.append(f"Tensor {p.name}")
        elif p.kind == "n_samples":
            parts.append(f"int? {p.name}=None")
        elif p.kind == "real":
            parts.append(f"float {p.name}" + ("" if p.default is REQUIRED else f"={p.default!r}"))
        elif p.kind == "shape":
            parts.append(f"SymInt[] {p.name}")
        elif p.kind == "dtype":
            parts.append(f"ScalarType? {p.name}=None")
    if k.layout == CREATION:
        parts.append("Device? device=None")
    outs = k.outputs
    ret = "()" if not outs else ("Tensor" if len(outs) == 1 else "(" + ", ".join("Tensor" for _ in outs) + ")")
    return f"{k.name}({', '.join(parts)}) -> {ret}"


def full_args(k, args):
    """The operator's arguments with trailing defaults filled in (the dispatcher drops defaulted trailing
    arguments), the device of creation kernels separated: (params in order, device)."""
    args = list(args)
    defaults = [None if isinstance(p, Array) or p.default is REQUIRED else (None if p.kind == "dtype" else p.default)
                for p in k.params]
    args += defaults[len(args):len(k.params)]
    device = args[len(k.params)] if len(args) > len(k.params) else None
    return args[:len(k.params)], device


def check_stream_tensor(name, t):
    """A seed / offset / step operand: a 0-d int64 tensor (``vaekernels.torch.u64`` makes one)."""
    if not isinstance(t, torch.Tensor) or t.dtype != torch.int64 or t.dim() != 0:
        got = f"{t.dtype} tensor of shape {tuple(t.shape)}" if isinstance(t, torch.Tensor) else type(t).__name__
        raise TypeError(f"{name} must be a 0-d torch.int64 tensor carrying the 64-bit value (vaekernels.torch.u64 "
                        f"makes one), got {got}")


def resolve_dtypes(k, args):
    """The dtype rule of a call (``args``: the parameters in order): (compute dtype, result dtype), or a
    TypeError naming the argument. Shared by the eager implementations and the fake ones, so a compiled
    graph is promised exactly the dtype the kernel returns."""
    for p, a in zip(k.params, args):
        if not isinstance(p, Array) and p.kind in TENSOR_SCALARS:
            check_stream_tensor(p.name, a)
    if k.layout == PHILOX:
        for p, a in zip(k.params, args):
            if not isinstance(a, torch.Tensor) or a.dtype != torch.uint32:
                got = a.dtype if isinstance(a, torch.Tensor) else type(a).__name__
                raise TypeError(f"{p.name} must be a torch.uint32 tensor, got {got}")
        return torch.uint32, torch.uint32
    if k.layout == CREATION:
        dtype = dict(zip((p.name for p in k.params), args)).get("dtype") or torch.float32
        if dtype in NATIVE:
            return dtype, dtype
        if dtype in HALF:
            return torch.float32, dtype
        raise TypeError(f"dtype must be {_FLOAT_NAMES}, got {dtype}")
    first = None
    for p, a in zip(k.params, args):
        if not isinstance(p, Array):
            continue
        if not isinstance(a, torch.Tensor):
            raise TypeError(f"{p.name} must be a torch.Tensor, got {type(a).__name__}")
        if a.dtype not in NATIVE and a.dtype not in HALF:
            raise TypeError(f"{p.name} must be a floating-point tensor ({_FLOAT_NAMES}), got {a.dtype}")
        if first is None:
            first = (p.name, a.dtype)
        elif a.dtype != first[1]:
            raise TypeError(f"{p.name} has dtype {a.dtype} but {first[0]} has dtype {first[1]}; mixed dtypes are not "
                            f"cast silently (convert with .to({first[1]}))")
    return (torch.float32 if first[1] in HALF else first[1]), first[1]


def fake_impl(k):
    """The fake (and meta) implementation: the dtype rule and output shapes from the roles."""
    def fake(*args):
        args, device = full_args(k, args)
        _, result_dtype = resolve_dtypes(k, args)
        named = dict(zip((p.name for p in k.params), args))
        if k.layout == CREATION:
            return torch.empty(tuple(named["shape"]), dtype=result_dtype,
                               device=torch.device(device) if device is not None else torch.device("cpu"))
        if k.layout == PHILOX:
            c = named["counters"]
            return c.new_empty((c.shape[0], 4))
        ref = next(named[p.name] for p in k.params if isinstance(p, Array) and p.role == FULL)
        n_samples = named.get("n_samples")
        outs = []
        for o in k.outputs:
            if o.role == FULL:
                shape = ref.shape
            elif o.role == BATCH:
                shape = ref.shape[:-1]
            elif o.role == SAMPLES:
                shape = ref.shape if n_samples is None else (n_samples,) + tuple(ref.shape)
            else:
                raise AssertionError(o.role)
            outs.append(ref.new_empty(shape, dtype=result_dtype))
        if not outs:
            return None
        return outs[0] if len(outs) == 1 else tuple(outs)
    return fake


def register():
    """Define every kernel of the table as an operator and register its implementations. Public
    ``torch.library`` APIs only: ``Library.define`` / ``impl``, ``register_fake``, ``register_autograd``,
    ``register_vmap``, ``register_autocast``. Returns (the library, {kernel name: the autograd Function the
    Python functions apply})."""
    from . import autograd, fallbacks, transforms
    lib = torch.library.Library(NAMESPACE, "DEF")
    functions = {}
    for k in KERNELS:
        lib.define(schema(k))
        qualname = f"{NAMESPACE}::{k.name}"
        lib.impl(k.name, fallbacks.cpu_impl(k), "CPU")
        lib.impl(k.name, fallbacks.cuda_impl(k), "CUDA")     # without the CUDA build: a RuntimeError saying so
        torch.library.register_fake(qualname, fake_impl(k), lib=lib)
        if k.backward is not None:
            functions[k.name] = autograd.register(k, lib)
        transforms.register(k, lib)
    return lib, functions
