"""The kernels as PyTorch operators: ``torch.ops.vaekernels.<name>``, derived from the kernel table.

Every kernel of ``vaekernels.kernels.table`` is registered with ``torch.library`` (namespace ``vaekernels``;
``operators``): its schema, one dtype rule for eager, fake and compiled calls, fake implementations (so
``torch.compile`` traces without a graph break), CPU and CUDA implementations (``fallbacks``: the NumPy
API's validation and C++ kernels), autograd from the table's backward recipe with everything it reads in
``save_for_backward`` (``autograd``), vmap rules and torch's float32 autocast policy (``transforms``).
Importing this package imports torch; ``import vaekernels`` never does.

Two ways to get noise:

* ``GaussianLatent()`` (``modules``) draws a fresh key with torch's generator at every call: seed runs
  with ``torch.manual_seed``; right under ``torch.compile``, activation checkpointing and evaluation.
* The functions take explicit streams, ``latent_forward(mu, logvar, seed, offset)``, for noise by
  position. Seeds and offsets are ints or 0-d int64 tensors carrying the 64-bit value (``u64``): under
  ``torch.compile`` pass tensors (an int is a constant of the graph: a new value recompiles) and advance
  them out of place (``offset = offset + n``): the backward reads the offset its forward saved, and an
  in-place ``add_`` before the backward is refused by autograd's version check.

    import torch, vaekernels.torch as vkt
    latent = vkt.GaussianLatent()
    z, kl = latent(mu, logvar)                                   # fused: eps, z, KL(q || N(0, I)) per row
    loss = (vkt.bernoulli_nll(decoder(z), x, reduction="none") + kl).mean()
    loss.backward()

dtypes: float32 and float64 are computed as they are; float16 and bfloat16 in float32 inside the kernel,
results rounded to the input's dtype (``randn(..., dtype=torch.float16)`` is the float32 stream rounded);
under ``torch.autocast`` inputs are cast to float32 and results are float32 (torch's float32 policy);
other dtypes and mixed dtypes are a TypeError. Second derivatives are not implemented: differentiating a
gradient through these operators raises a RuntimeError. Errors otherwise are the NumPy API's: TypeError for
dtypes and devices, ValueError for shapes and values.

CPU tensors are used in place (contiguous float32/float64 inputs are not copied). CUDA tensors go to the
CUDA kernels on torch's current stream (needs the CUDA build; otherwise a RuntimeError saying why);
``device="meta"`` gives meta tensors.

Threads: the torch wheel brings its own OpenMP runtime, beside the vaekernels kernels' thread team. The
operators run the kernels with ``torch.get_num_threads()`` threads, so ``torch.set_num_threads`` governs
both (``threads()`` shows the policy in effect). Idle threads of both spin for a while before they sleep
(about 1 ms), and spinning threads slow the other runtime's next parallel region; in processes that
alternate torch and vaekernels work on few cores, ``OMP_WAIT_POLICY=passive`` before importing torch makes
torch's idle threads sleep at once: benchmarks/bench_frameworks.py measures the effect.
"""
from __future__ import annotations

import inspect

import numpy as np
import torch

from .. import _core
from ..kernels import KERNELS
from ..kernels.spec import CREATION, REQUIRED, Array
from . import operators, transforms
from .operators import TENSOR_SCALARS

_LIB, _AUTOGRAD_FUNCTIONS = operators.register()
ops = torch.ops.vaekernels

from .modules import (BernoulliLogitsLoss, BernoulliNLLLoss, GaussianLatent, bernoulli_logits_loss,  # noqa: E402
                      bernoulli_nll, noise_key)

__all__ = ["u64", "GaussianLatent", "bernoulli_nll", "BernoulliNLLLoss", "noise_key", "threads", "ops",
           "bernoulli_logits_loss", "BernoulliLogitsLoss"] + [k.name for k in KERNELS]

_TORCH_DTYPE = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64,
                np.dtype(np.float16): torch.float16}


def u64(value, device=None):
    """A 64-bit stream value (seed, offset, step) as the 0-d int64 tensor the operators take."""
    if isinstance(value, torch.Tensor):
        operators.check_stream_tensor("seed/offset", value)
        return value
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"seed/offset must be an integer or a 0-d int64 tensor, got {type(value).__name__}")
    value = int(value)
    if not 0 <= value < 1 << 64:
        raise ValueError(f"seed/offset must be in [0, 2**64), got {value}")
    t = torch.from_numpy(np.array(value - (1 << 64) if value >= 1 << 63 else value, dtype=np.int64))
    return t if device is None else t.to(device)       # (from_numpy: a third of torch.tensor's cost)


def _dtype_arg(v):
    """A dtype argument as a torch dtype (NumPy dtypes and names accepted; the operator checks the rest)."""
    if v is None or isinstance(v, torch.dtype):
        return v
    try:
        return _TORCH_DTYPE[np.dtype(v)]
    except (TypeError, KeyError):
        raise TypeError(f"dtype must be torch.float32, torch.float64, torch.float16 or torch.bfloat16, "
                        f"got {v!r}") from None


# -------------------------------------------------------------------------------------------------
# Python functions: the NumPy API's signatures (without out=), ints accepted for stream values
# -------------------------------------------------------------------------------------------------
def _function(k):
    op = getattr(ops, k.name)
    # Eager calls that differentiate apply the functorch-ready Function (torch.func.grad's inputs require
    # grad); the others, and graphs being compiled, call the operator itself (its register_autograd formula:
    # the same setup_context and backward; dynamo does not trace into the Function).
    function = _AUTOGRAD_FUNCTIONS[k.name].apply if k.name in _AUTOGRAD_FUNCTIONS else op
    params = []
    for p in k.params:
        default = inspect.Parameter.empty
        if not isinstance(p, Array) and p.default is not REQUIRED:
            default = None if p.kind == "dtype" else p.default
        params.append(inspect.Parameter(p.name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default))
    if k.layout == CREATION:
        params.append(inspect.Parameter("device", inspect.Parameter.KEYWORD_ONLY, default=None))
    sig = inspect.Signature(params)
    kinds = [None if isinstance(p, Array) else p.kind for p in k.params]
    n_params = len(k.params)
    returns = None if k.returns == "outputs" else [p.name for p in k.params].index(k.returns)

    def fn(*args, **kwargs):
        if kwargs or len(args) != n_params or k.layout == CREATION:
            bound = sig.bind(*args, **kwargs)       # (all arguments given by position skip this)
            bound.apply_defaults()
            args = list(bound.arguments.values())
        dev = args.pop() if k.layout == CREATION else None
        conv = []
        for kind, v in zip(kinds, args):
            if kind in TENSOR_SCALARS:
                v = u64(v)
            elif kind == "dtype":
                v = _dtype_arg(v)
            elif kind == "shape" and isinstance(v, int):
                v = [v]
            conv.append(v)
        if k.layout == CREATION:
            conv.append(dev)
        if (function is not op and not torch.compiler.is_compiling() and torch.is_grad_enabled()
                and any(type(v) is not list and getattr(v, "requires_grad", False) for v in conv)):
            res = function(*transforms.autocast_inputs(conv))
        else:                       # nothing to differentiate here (or a graph being compiled): the operator
            res = op(*conv)
        return res if returns is None else args[returns]

    fn.__name__ = fn.__qualname__ = k.name
    fn.__signature__ = sig
    fn.__doc__ = (inspect.cleandoc(k.doc) + "\n\nPyTorch operator ``torch.ops.vaekernels." + k.name +
                  "``: tensors in, tensors out; seed and offset as ints or 0-d int64 tensors (``u64``).")
    return fn


for _k in KERNELS:
    globals()[_k.name] = _function(_k)
del _k


def threads():
    """The thread policy in effect: {"torch": torch's intra-op threads, "vaekernels": the kernels' team size
    (following torch's at every operator call)}."""
    return {"torch": torch.get_num_threads(), "vaekernels": _core.team_size()}
