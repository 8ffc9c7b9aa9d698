"""The operators under ``torch.vmap`` and autocast, derived from the table.

vmap: a kernel without stream values runs once on the stacked tensors (rows are independent: an unbatched
operand is broadcast over the batch). A kernel that reads a random stream runs once per slice, so the
result is the loop over slices: a shared (seed, offset) gives every slice the same noise (the operators
are functions of their keys, as ``jax.random`` is), batched seeds or offsets give each slice its own.
``adam_step`` updates its arguments in place and refuses vmap with a message (it is elementwise: call it
on the stacked tensors).

Autocast: torch's convention for float32-policy operations (like ``binary_cross_entropy_with_logits``):
inside ``torch.autocast`` floating inputs are cast to float32 and results are float32, on CPU and CUDA.
"""
from __future__ import annotations

import torch

from ..kernels.spec import CREATION, PHILOX, Array
from .operators import NAMESPACE, TENSOR_SCALARS


def register(k, lib):
    qualname = f"{NAMESPACE}::{k.name}"
    torch.library.register_vmap(qualname, _vmap_rule(k), lib=lib)
    functional = not any(isinstance(p, Array) and p.io == "inout" for p in k.params)
    if functional and k.layout not in (CREATION, PHILOX):
        for device_type in ("cpu", "cuda"):
            torch.library.register_autocast(qualname, device_type, torch.float32, lib=lib)


def autocast_inputs(args):
    """``args`` as the registered autocast rule casts them (floating tensors other than float64, on a device
    where autocast is on, to float32): for calls that apply the autograd Function directly, whose
    setup_context must save the tensors the operator computes with."""
    device = next((a.device.type for a in args if isinstance(a, torch.Tensor) and a.is_floating_point()), None)
    if device not in ("cpu", "cuda") or not torch.is_autocast_enabled(device):
        return args
    return [a.float() if isinstance(a, torch.Tensor) and a.is_floating_point() and a.dtype != torch.float64
            else a for a in args]


def _vmap_rule(k):
    op = getattr(torch.ops.vaekernels, k.name).default
    per_slice = k.stream is not None or any(not isinstance(p, Array) and p.kind in TENSOR_SCALARS
                                            for p in k.params)
    arrays = tuple(i for i, p in enumerate(k.params) if isinstance(p, Array))
    inplace = any(isinstance(p, Array) and p.io == "inout" for p in k.params)
    n_out = len(k.outputs)

    def rule(info, in_dims, *args):
        if inplace:
            raise RuntimeError(
                f"vaekernels.{k.name} updates its arguments in place and does not support torch.vmap; it is "
                f"elementwise: call it once on the stacked tensors instead")
        args = list(args)
        dims = [d if isinstance(a, torch.Tensor) and isinstance(d, int) else None
                for a, d in zip(args, list(in_dims) + [None] * (len(args) - len(in_dims)))]
        batch = info.batch_size
        if per_slice:
            results = [op(*[a.select(d, i) if d is not None else a for a, d in zip(args, dims)])
                       for i in range(batch)]
            if n_out == 1:
                return torch.stack(results), 0
            return tuple(torch.stack(r) for r in zip(*results)), (0,) * n_out
        for i in arrays:
            a, d = args[i], dims[i]
            args[i] = a.expand((batch,) + tuple(a.shape)) if d is None else a.movedim(d, 0)
        res = op(*args)
        return res, (0 if n_out == 1 else (0,) * n_out)
    return rule
