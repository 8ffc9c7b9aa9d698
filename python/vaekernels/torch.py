"""The kernels as PyTorch operators: ``torch.ops.vaekernels.<name>``, derived from the kernel table.

Every kernel of ``vaekernels.kernels.table`` is registered with ``torch.library`` (namespace ``vaekernels``):
its schema, its fake (meta) implementation (output shapes from the table's roles, so ``torch.compile``
traces it without a graph break), CPU and CUDA implementations (the same validation and C++ kernels as the
NumPy API, zero-copy), and for every differentiable kernel an autograd formula built from the table's
backward recipe, whose steps are operators of this library too (the latent layer's backward regenerates
eps from (seed, offset); nothing stores it). Importing this module imports torch; ``import vaekernels``
never does.

Seeds, offsets and Adam's step count are 0-d int64 tensors carrying the 64-bit values bit for bit
(``u64(2**64 - 1)`` is ``tensor(-1)``): ``torch.compile`` specialises Python ints into the graph, so an
offset that advances every step would recompile every step, while a tensor is data. The Python functions
below take ints or such tensors. n_samples (it decides a shape) and the real hyper-parameters are plain.

    import torch, vaekernels.torch as vkt
    latent = vkt.GaussianLatent(seed=0)              # advances its stream offset at every call
    z, kl = latent(mu, logvar)                       # fused: eps, z, KL(q || N(0, I)) per row
    loss = (vkt.bernoulli_logits_loss(x, decoder(z)) + kl).mean()
    loss.backward()

CPU tensors are used in place (contiguous float32/float64 inputs are not copied; outputs are tensors whose
memory the kernel wrote). CUDA tensors go to the CUDA kernels on torch's current stream (needs the CUDA
build; otherwise a RuntimeError saying why). Errors are the NumPy API's: TypeError for dtypes and devices,
ValueError for shapes and values.

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

from . import _core
from .kernels import KERNELS, dispatch
from .kernels import cuda as _cuda
from .kernels.autodiff import evaluate
from .kernels.spec import BATCH, CREATION, FULL, PHILOX, REQUIRED, SAMPLES, Array

__all__ = ["u64", "GaussianLatent", "bernoulli_logits_loss", "BernoulliLogitsLoss", "threads"] + [
    k.name for k in KERNELS]

NAMESPACE = "vaekernels"
_MASK = (1 << 64) - 1
_TENSOR_SCALARS = ("seed", "offset", "step")     # traced values: int64 tensors
_NP = {torch.float32: np.dtype(np.float32), torch.float64: np.dtype(np.float64), torch.uint32: np.dtype(np.uint32)}
_TORCH = {v: k for k, v in _NP.items()}


def u64(value, device=None):
    """A 64-bit stream value (seed, offset, step) as the 0-d int64 tensor the operators take."""
    if isinstance(value, torch.Tensor):
        if value.dtype != torch.int64 or value.dim() != 0:
            raise TypeError(f"a seed/offset tensor must be a 0-d int64 tensor, got {value.dtype} of shape "
                            f"{tuple(value.shape)}")
        return value
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"seed/offset must be an integer or a 0-d int64 tensor, got {type(value).__name__}")
    value = int(value)
    if not 0 <= value < 1 << 64:
        raise ValueError(f"seed/offset must be in [0, 2**64), got {value}")
    t = torch.from_numpy(np.array(value - (1 << 64) if value >= 1 << 63 else value, dtype=np.int64))
    return t if device is None else t.to(device)       # (from_numpy: a third of torch.tensor's cost)


def _from_tensor(t):
    """The uint64 value a 0-d int64 tensor carries."""
    return int(t.item()) & _MASK


# -------------------------------------------------------------------------------------------------
# schemas, from the table
# -------------------------------------------------------------------------------------------------
def _schema(k):
    parts, alias = [], iter("abcdefgh")
    for p in k.params:
        if isinstance(p, Array):
            parts.append(f"Tensor({next(alias)}!) {p.name}" if p.io == "inout" else f"Tensor {p.name}")
        elif p.kind in _TENSOR_SCALARS:
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
    outs = [o for o in k.outputs]
    ret = "()" if not outs else ("Tensor" if len(outs) == 1 else "(" + ", ".join("Tensor" for _ in outs) + ")")
    return f"{k.name}({', '.join(parts)}) -> {ret}"


def _full_args(k, args):
    """The operator's arguments with trailing defaults filled in (the dispatcher drops defaulted trailing
    arguments), the device of creation kernels separated: (params in order, device)."""
    args = list(args)
    defaults = [None if isinstance(p, Array) or p.default is REQUIRED else (None if p.kind == "dtype" else p.default)
                for p in k.params]
    args += defaults[len(args):len(k.params)]
    device = args[len(k.params)] if len(args) > len(k.params) else None
    return args[:len(k.params)], device


_team = [None]


def _follow_torch_threads():
    """The thread policy: the kernels' thread team follows torch.get_num_threads() (set_num_threads governs
    both thread pools of the process)."""
    n = torch.get_num_threads()
    if n != _team[0]:
        _core.set_team_size(n)
        _team[0] = n


def _host_array(name, t, wanted):
    """A CPU tensor as a NumPy array on the same memory (detached first when it requires grad)."""
    if t.requires_grad:
        t = t.detach()
    try:
        return t.numpy()
    except TypeError:           # dtypes NumPy lacks (bfloat16, ...): the NumPy API's message
        raise TypeError(f"{name} must have dtype {wanted}, got {t.dtype}") from None


def _cpu_impl(k):
    cuda_impl = _cuda_impl(k)
    n_params = len(k.params)
    arrays = tuple(i for i, p in enumerate(k.params) if isinstance(p, Array))
    streams = tuple(i for i, p in enumerate(k.params) if not isinstance(p, Array) and p.kind in _TENSOR_SCALARS)
    dtypes = tuple(i for i, p in enumerate(k.params) if not isinstance(p, Array) and p.kind == "dtype")
    plain = len(k.params) == len(arrays) + len(streams) and k.layout != CREATION
    names = [p.name for p in k.params]
    wanted = " or ".join(k.dtypes)

    def impl(*args):
        if torch.get_num_threads() != _team[0]:
            _follow_torch_threads()
        if plain and len(args) == n_params:
            device = None
        else:
            full, device = _full_args(k, args)
            if device is not None and torch.device(device).type != "cpu":
                # randn/rand with device="cuda": their only tensors (seed, offset) live on the CPU, so the
                # dispatcher comes here; the CUDA implementation draws on the device (or says why not)
                return cuda_impl(*args)
            args = full
        a = list(args)
        for i in arrays:
            a[i] = _host_array(names[i], a[i], wanted)
        for i in streams:
            a[i] = a[i].item() & _MASK
        for i in dtypes:
            a[i] = _NP.get(a[i], np.float32) if a[i] is not None else np.float32
        res = dispatch.run(k, dispatch.HOST, a)
        if not k.outputs:
            return None
        if type(res) is tuple:
            return tuple(torch.from_numpy(r) for r in res)      # the kernel's output memory, not a copy
        return torch.from_numpy(res)
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
        self.dtype = _NP.get(t.dtype) or _numpy_dtype(t.dtype)


def _numpy_dtype(dtype):
    """NumPy's name for a torch dtype (for dispatch's dtype errors); an object dtype when NumPy has none."""
    try:
        return torch.empty(0, dtype=dtype).numpy().dtype
    except TypeError:
        return np.dtype(object)


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
        return _View(t.detach().contiguous())

    def inout(self, name, t):
        self._check(name, t)
        if not t.is_contiguous():
            raise ValueError(f"{name} must be contiguous (it is updated in place)")
        return _View(t.detach())

    def output(self, name, out, shape, dtype):
        return _View(torch.empty(tuple(shape), dtype=_TORCH[dtype], device=self.device))

    def launch(self, kernel, dtype, arrays, extent, scalars):
        fn = getattr(getattr(self.mod, {"float32": "f32", "float64": "f64", "uint32": "u32"}[dtype.name]),
                     kernel.name)
        stream = torch.cuda.current_stream(self.device).cuda_stream
        fn(tuple(a.t.data_ptr() for a in arrays), extent, scalars, stream)


def _cuda_impl(k):
    def impl(*args):
        _cuda.require_device()          # first: without the CUDA build or a device, say so (RuntimeError)
        args, device = _full_args(k, args)
        if k.layout == CREATION:
            dev = torch.device(device if device is not None else "cuda")
        else:
            dev = next(a.device for p, a in zip(k.params, args) if isinstance(p, Array) and a.is_cuda)
        if dev.index is None:
            dev = torch.device("cuda", torch.cuda.current_device())
        lib = _TorchCuda(dev)
        np_args = [lib_arg if isinstance(p, Array) else v for p, lib_arg, v in
                   zip(k.params, args, _numpy_scalars(k, args))]
        res = dispatch.run(k, lib, np_args)
        if not k.outputs:
            return None
        res = res if isinstance(res, tuple) else (res,)
        ts = tuple(r.t for r in res)
        return ts[0] if len(ts) == 1 else ts
    return impl


def _numpy_scalars(k, args):
    out = []
    for p, a in zip(k.params, args):
        if isinstance(p, Array):
            out.append(None)
        elif p.kind in _TENSOR_SCALARS:
            out.append(_from_tensor(a))
        elif p.kind == "dtype":
            out.append(_NP.get(a, np.float32) if a is not None else np.float32)
        else:
            out.append(a)
    return out


# -------------------------------------------------------------------------------------------------
# fake implementations: output shapes from the roles
# -------------------------------------------------------------------------------------------------
def _fake_impl(k):
    def fake(*args):
        args, device = _full_args(k, args)
        named = dict(zip((p.name for p in k.params), args))
        if k.layout == CREATION:
            shape = tuple(named["shape"])
            dtype = named.get("dtype") or torch.float32
            dev = torch.device(device) if device is not None else torch.device("cpu")
            return torch.empty(shape, dtype=dtype, device=dev)
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
            outs.append(ref.new_empty(shape))
        if not outs:
            return None
        return outs[0] if len(outs) == 1 else tuple(outs)
    return fake


# -------------------------------------------------------------------------------------------------
# autograd: the table's backward recipe, evaluated with the operators
# -------------------------------------------------------------------------------------------------
def _autograd(k):
    names = [p.name for p in k.params]
    grads_of = k.backward.grads

    def setup_context(ctx, inputs, output):
        ctx.named = dict(zip(names, _full_args(k, inputs)[0]))
        ctx.out_shapes = [tuple(o.shape) for o in (output if isinstance(output, tuple) else (output,))]

    def backward(ctx, needs_grad, *upstream):
        env = _RecipeEnv(k, ctx, upstream)
        return tuple(evaluate(grads_of[n], env) if n in grads_of and need else None
                     for n, need in zip(names, needs_grad))

    return backward, setup_context


class _RecipeEnv:
    """``kernels.autodiff.evaluate``'s environment for torch: the recipe's kernel calls as operators, made
    only when a needed gradient reads them."""

    def __init__(self, k, ctx, upstream):
        self.k, self.named, self.out_shapes = k, ctx.named, ctx.out_shapes
        self.up = dict(zip((o.name for o in k.outputs), upstream))
        self.n_samples = ctx.named.get("n_samples")
        self.results = {}

    def value(self, name):
        return self.named[name]

    def upstream(self, name):
        g = self.up.get(name)
        if g is None:
            i = [o.name for o in self.k.outputs].index(name)
            ref = next(v for v in self.named.values() if isinstance(v, torch.Tensor) and v.is_floating_point())
            g = ref.new_zeros(self.out_shapes[i])
        return g

    def result(self, call, index):
        if call not in self.results:
            c = self.k.backward.calls[call]
            res = getattr(torch.ops.vaekernels, c.kernel)(*[evaluate(a, self) for a in c.args])
            self.results[call] = res if isinstance(res, tuple) else (res,)
        return self.results[call][index]

    @staticmethod
    def repeat(v, n):
        return v.expand((n,) + tuple(v.shape)).contiguous()


_BELOW_AUTOGRAD = torch._C._after_autograd_keyset


# What remains below autograd for plain CPU tensors outside any mode or transform (ADInplaceOrView, when
# present, is a fallthrough for functional operators): there the dispatcher's next stop is the CPU kernel.
_PLAIN_CPU = torch._C.DispatchKeySet(torch._C.DispatchKey.CPU)
_PLAIN_CPU_SEEN = {}


def _plain_cpu(keyset):
    """Whether the dispatcher's next kernel after autograd is the CPU kernel (memoised per keyset)."""
    raw = keyset.raw_repr()
    plain = _PLAIN_CPU_SEEN.get(raw)
    if plain is None:
        below = (keyset & _BELOW_AUTOGRAD).remove(torch._C.DispatchKey.ADInplaceOrView)
        plain = _PLAIN_CPU_SEEN[raw] = below == _PLAIN_CPU
    return plain


def _autograd_kernel(k, backward, setup_context, cpu_impl):
    """The operator's Autograd-key kernel: an autograd.Function around the kernels below autograd when an
    input requires grad, else a plain redispatch, or for plain CPU tensors the CPU kernel itself (the one
    the dispatcher would choose; saves a second Python crossing). torch.library.register_autograd builds
    the same Function, but its no-grad path costs ~15 us of Python per call."""
    handle = getattr(torch.ops.vaekernels, k.name).default._handle
    functional = not any(isinstance(p, Array) and p.io == "inout" for p in k.params)

    def forward(ctx, keyset, *args):
        with torch._C._AutoDispatchBelowAutograd():
            result = handle.redispatch_boxed(keyset & _BELOW_AUTOGRAD, *args)
        setup_context(ctx, args, result)
        return result

    def backward_with_keyset(ctx, *upstream):
        return (None,) + backward(ctx, ctx.needs_input_grad[1:], *upstream)

    function = type(f"{k.name}_autograd", (torch.autograd.Function,),
                    {"forward": staticmethod(forward), "backward": staticmethod(backward_with_keyset)})

    def kernel(keyset, *args):
        if torch._C.is_grad_enabled() and torch._C._any_requires_grad(*args):
            return function.apply(keyset, *args)
        if functional and _plain_cpu(keyset):
            return cpu_impl(*args)
        with torch._C._AutoDispatchBelowAutograd():
            return handle.redispatch_boxed(keyset & _BELOW_AUTOGRAD, *args)
    return kernel


# -------------------------------------------------------------------------------------------------
# registration
# -------------------------------------------------------------------------------------------------
def _register():
    lib = torch.library.Library(NAMESPACE, "DEF")
    for k in KERNELS:
        lib.define(_schema(k))
        cpu_impl = _cpu_impl(k)
        lib.impl(k.name, cpu_impl, "CPU")
        lib.impl(k.name, _cuda_impl(k), "CUDA")       # without the CUDA build: a RuntimeError saying so
        torch.library.register_fake(f"{NAMESPACE}::{k.name}", _fake_impl(k), lib=lib)
        if k.backward is not None:
            lib.impl(k.name, _autograd_kernel(k, *_autograd(k), cpu_impl), "Autograd", with_keyset=True)
    return lib


_LIB = _register()
ops = torch.ops.vaekernels


# -------------------------------------------------------------------------------------------------
# Python functions: the NumPy API's signatures (without out=), ints accepted for stream values
# -------------------------------------------------------------------------------------------------
def _function(k):
    op = getattr(ops, k.name)
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
            if kind is None:
                pass
            elif kind in _TENSOR_SCALARS:
                v = u64(v)
            elif kind == "dtype" and v is not None and not isinstance(v, torch.dtype):
                v = _TORCH[np.dtype(v)]
            elif kind == "shape" and isinstance(v, int):
                v = [v]
            conv.append(v)
        if k.layout == CREATION:
            conv.append(dev)
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


# -------------------------------------------------------------------------------------------------
# modules a torch user expects
# -------------------------------------------------------------------------------------------------
class GaussianLatent(torch.nn.Module):
    """The VAE latent layer: ``z, kl = layer(mu, logvar)`` with z = mu + exp(logvar / 2) eps and kl =
    KL(N(mu, exp(logvar)) || N(0, I)) per row, in one fused kernel; the backward regenerates eps from the
    stream instead of storing it.

    Each call draws from stream ``seed`` at the layer's ``offset`` (a buffer, saved with the state dict) and
    advances it by mu.numel(), so every call gets fresh noise, a run replays from its seed, and under
    ``torch.compile`` the advancing offset is data, not a constant (no recompilation).
    """

    def __init__(self, seed=0, offset=0):
        super().__init__()
        self.register_buffer("seed", u64(seed))
        self.register_buffer("offset", u64(offset))

    def forward(self, mu, logvar):
        offset = self.offset.clone()             # the value this call uses (saved for its backward)
        z, kl = ops.latent_forward(mu, logvar, self.seed, offset)
        self.offset.add_(mu.numel())
        return z, kl


def bernoulli_logits_loss(x, logits):
    """-log Bernoulli(x | sigmoid(logits)) summed over the last axis: (..., D) -> (...), differentiable in
    logits (and x); the value and its gradient come from one fused kernel pass each."""
    return -ops.bernoulli_log_prob(x, logits)


class BernoulliLogitsLoss(torch.nn.Module):
    """``bernoulli_logits_loss`` reduced over the batch: reduction "mean" (default), "sum" or "none"."""

    def __init__(self, reduction="mean"):
        super().__init__()
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
        self.reduction = reduction

    def forward(self, logits, x):
        nll = bernoulli_logits_loss(x, logits)
        return nll.mean() if self.reduction == "mean" else nll.sum() if self.reduction == "sum" else nll


# -------------------------------------------------------------------------------------------------
# threads
# -------------------------------------------------------------------------------------------------
def threads():
    """The thread policy in effect: {"torch": torch's intra-op threads, "vaekernels": the kernels' team size
    (following torch's at every operator call)}."""
    return {"torch": torch.get_num_threads(), "vaekernels": _core.team_size()}
