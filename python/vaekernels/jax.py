"""The kernels as JAX operations: callable under ``jax.jit``, ``jax.grad`` and ``jax.vmap``, through XLA's
foreign function interface (typed FFI handlers registered with ``jax.ffi``; no host callbacks).

Every kernel of the table is a function here with the NumPy API's signature (without ``out=``; JAX
arrays are immutable, so ``adam_step`` returns the updated ``(param, m, v)``). Validation is the NumPy
API's, at trace time (dtypes, shapes, Python-valued scalars); the handlers (cpp/jax/ffi_module.cpp) check
again what must be checked at run time, such as the stream end of a traced offset. Differentiable kernels
carry a ``jax.custom_vjp`` built from the table's backward recipe, evaluated with these same operations.

Seeds, offsets and Adam's step may be Python ints or traced JAX values (a jitted training step that
advances its offset compiles once). 64-bit values travel as two uint32 words: pass an int, a uint32[2]
array ``(low, high)`` (``words``), or any integer scalar (a uint64 one when ``jax_enable_x64`` is on).
float32 by default; float64 needs ``jax_enable_x64``.

vmap: kernels without scalars batch by broadcasting (one call on the stacked arrays); kernels with scalars
run once per slice (``vmap_method="sequential"``), so a shared (seed, offset) gives every slice the same
noise, as a shared key does in JAX, and batched seeds or offsets give each slice its own.

Needs the JAX module built in: ``VAEKERNELS_JAX=1 pip install .`` (see README).
"""
from __future__ import annotations

import inspect
import math

import jax
import jax.numpy as jnp
import numpy as np

from . import _core
from .kernels import KERNELS, dispatch
from .kernels import cuda as _cuda
from .kernels.autodiff import evaluate
from .kernels.spec import CREATION, REQUIRED, Array

try:
    from . import _jax as _ext
except ImportError as e:   # pragma: no cover - depends on the build
    raise ImportError("vaekernels was built without its JAX module (vaekernels._jax): rebuild with "
                      "VAEKERNELS_JAX=1 pip install . (jax must be installable at build time)") from e

__all__ = ["words"] + [k.name for k in KERNELS]

_MASK = (1 << 64) - 1
_STREAM_KINDS = ("seed", "offset", "step")


def _register():
    gpu = _cuda.module()._launcher_set() if _cuda.cuda_built() else None
    _ext.bind(_core._kernel_set(), gpu)
    for name, capsule in _ext.cpu_handlers.items():
        jax.ffi.register_ffi_target(f"vaekernels.{name}", capsule, platform="cpu")
    if gpu is not None:
        for name, capsule in _ext.gpu_handlers.items():
            jax.ffi.register_ffi_target(f"vaekernels.{name}", capsule, platform="CUDA")


_register()


def words(value):
    """A 64-bit value (an int in [0, 2**64)) as the uint32[2] array (low, high) the operations take."""
    value = int(value)
    if not 0 <= value < 1 << 64:
        raise ValueError(f"value must be in [0, 2**64), got {value}")
    return np.array([value & 0xFFFFFFFF, value >> 32], np.uint32)


def _is_traced(value):
    return isinstance(value, (jax.Array, jax.core.Tracer)) or (isinstance(value, np.ndarray) and value.ndim > 0)


def _stream_buffer(name, value):
    """A seed / offset / step as a uint32[2] (or 64-bit scalar) buffer."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        return jnp.asarray(words(value))
    v = jnp.asarray(value)
    if v.dtype == jnp.uint32 and v.shape == (2,):
        return v
    if v.shape == () and jnp.issubdtype(v.dtype, jnp.integer):
        if v.dtype.itemsize == 8:           # x64: the bits of a 64-bit integer as two words
            return jax.lax.bitcast_convert_type(v.astype(jnp.uint64), jnp.uint32)
        return jnp.stack([v.astype(jnp.uint32), jnp.zeros((), jnp.uint32)])
    raise TypeError(f"{name} must be an int, a uint32[2] array (low, high) or an integer scalar, got "
                    f"{v.dtype}{list(v.shape)}")


def _real_buffer(name, value):
    if isinstance(value, (float, int, np.floating, np.integer)) and not isinstance(value, (bool, np.bool_)):
        return jnp.asarray(np.frombuffer(np.float64(value).tobytes(), np.uint32).copy())   # the double's bits
    v = jnp.asarray(value)
    if v.shape != () or v.dtype not in (jnp.float32, jnp.float64):
        raise TypeError(f"{name} must be a real number or a float scalar array, got {v.dtype}{list(v.shape)}")
    return v


# -------------------------------------------------------------------------------------------------
# dispatch's array library for JAX: validation at trace time, the launch as an XLA FFI call
# -------------------------------------------------------------------------------------------------
class _Flags:
    c_contiguous = True
    aligned = True


class _View:
    def __init__(self, x):
        self.x = x
        self.shape = tuple(x.shape)
        self.ndim = len(self.shape)
        self.size = math.prod(self.shape)
        self.dtype = np.dtype(x.dtype)
        self.flags = _Flags()


class _Out:
    def __init__(self, shape, dtype):
        self.shape, self.dtype, self.value = tuple(shape), np.dtype(dtype), None


class _JaxLib:
    """One call: traced seeds/offsets/steps/reals pass validation as they are; outputs become the results
    of one ``jax.ffi.ffi_call``."""

    def __init__(self):
        self.inplace = None

    @staticmethod
    def traced(kind, value):
        return kind in _STREAM_KINDS + ("real",) and _is_traced(value)

    @staticmethod
    def array(name, x):
        if isinstance(x, (list, tuple)) or np.isscalar(x):
            x = np.asarray(x)
        return _View(jnp.asarray(x))

    inout = array

    @staticmethod
    def output(name, out, shape, dtype):
        if out is not None:
            raise TypeError("out= is not supported by vaekernels.jax: JAX arrays are immutable")
        if np.dtype(dtype) == np.float64 and not jax.config.jax_enable_x64:
            raise TypeError("float64 needs jax_enable_x64 (jax.config.update('jax_enable_x64', True))")
        return _Out(shape, dtype)

    def launch(self, kernel, dtype, arrays, extent, scalars):
        params = kernel.all_arrays
        ins = [a.x for a, p in zip(arrays, params) if p.io != "out"]
        inplace = [a for a, p in zip(arrays, params) if p.io == "inout"]
        outs = [a for a, p in zip(arrays, params) if p.io == "out"]
        specs = [jax.ShapeDtypeStruct(a.shape, a.dtype) for a in inplace] + \
                [jax.ShapeDtypeStruct(o.shape, o.dtype) for o in outs]
        bufs = [_stream_buffer(s.name, v) if s.kind in _STREAM_KINDS else
                (_real_buffer(s.name, v) if s.kind == "real" else jnp.asarray(words(v)))
                for s, v in zip(kernel.cpp_scalars, scalars)]
        in_positions = [i for i, p in enumerate(p for p in params if p.io != "out") if p.io == "inout"]
        call = jax.ffi.ffi_call(f"vaekernels.{kernel.name}.{dtype.name}", specs,
                                vmap_method="sequential" if kernel.cpp_scalars else "broadcast_all",
                                input_output_aliases={pos: j for j, pos in enumerate(in_positions)})
        res = call(*ins, *bufs)
        res = list(res) if isinstance(res, (list, tuple)) else [res]
        self.inplace = res[:len(inplace)]
        for o, r in zip(outs, res[len(inplace):]):
            o.value = r


def _forward(k, args):
    lib = _JaxLib()
    res = dispatch.run(k, lib, list(args))
    if k.returns != "outputs":
        return tuple(lib.inplace)
    res = res if isinstance(res, tuple) else (res,)
    vals = tuple(r.value for r in res)
    return vals[0] if len(vals) == 1 else vals


# -------------------------------------------------------------------------------------------------
# gradients: the table's backward recipe with these operations
# -------------------------------------------------------------------------------------------------
class _RecipeEnv:
    """``kernels.autodiff.evaluate``'s environment for JAX: the recipe's calls through the raw FFI wrappers."""

    def __init__(self, named, up):
        self.named, self.up, self.results = named, up, []
        self.n_samples = named.get("n_samples")

    def value(self, name):
        return self.named[name]

    def upstream(self, name):
        return self.up[name]

    def result(self, call, index):
        return self.results[call][index]

    @staticmethod
    def repeat(v, n):
        return jnp.broadcast_to(v, (n,) + tuple(v.shape))


def _with_vjp(k, raw):
    """``raw`` with a ``jax.custom_vjp`` from the table's recipe. Scalars given as Python values (seeds,
    offsets, n_samples, reals) are non-differentiable static arguments (never turned into narrow JAX ints);
    traced ones are arguments whose cotangent is None."""
    names = [p.name for p in k.params]
    grads_of = k.backward.grads
    scalar_pos = [i for i, p in enumerate(k.params) if not isinstance(p, Array)]
    cache = {}

    def bwd_impl(named, upstream):
        env = _RecipeEnv(named, dict(zip((o.name for o in k.outputs), upstream)))
        for c in k.backward.calls:
            r = _RAW[c.kernel](*[evaluate(a, env) for a in c.args])
            env.results.append(r if isinstance(r, tuple) else (r,))
        return {n: evaluate(e, env) for n, e in grads_of.items()}

    def build(static):
        f = jax.custom_vjp(raw, nondiff_argnums=static)

        def fwd(*args):
            return raw(*args), tuple(a for i, a in enumerate(args) if i not in static)

        def bwd(*rest):
            fixed, (dyn, g_out) = rest[:len(static)], rest[len(static):]
            it_fixed, it_dyn = iter(fixed), iter(dyn)
            named = {nm: next(it_fixed) if i in static else next(it_dyn) for i, nm in enumerate(names)}
            grads = bwd_impl(named, g_out if isinstance(g_out, tuple) else (g_out,))
            return tuple(grads.get(nm) for i, nm in enumerate(names) if i not in static)

        f.defvjp(fwd, bwd)
        return f

    def call(*args):
        static = tuple(i for i in scalar_pos if not _is_traced(args[i]))
        f = cache.get(static)
        if f is None:
            f = cache[static] = build(static)
        return f(*args)

    return call


# -------------------------------------------------------------------------------------------------
# the functions
# -------------------------------------------------------------------------------------------------
_RAW = {}


def _function(k):
    params = []
    for p in k.params:
        default = inspect.Parameter.empty
        if not isinstance(p, Array) and p.default is not REQUIRED:
            default = np.float32 if p.kind == "dtype" else p.default
        params.append(inspect.Parameter(p.name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default))
    sig = inspect.Signature(params)

    def raw(*args):
        return _forward(k, args)

    _RAW[k.name] = raw
    body = _with_vjp(k, raw) if k.backward is not None else raw

    def fn(*args, **kwargs):
        bound = sig.bind(*args, **kwargs)
        bound.apply_defaults()
        values = list(bound.arguments.values())
        if k.layout == CREATION:
            return raw(*values)
        return body(*values)

    fn.__name__ = fn.__qualname__ = k.name
    fn.__signature__ = sig
    doc = inspect.cleandoc(k.doc)
    if k.returns != "outputs":
        doc += "\n\nIn JAX (immutable arrays) this returns the updated (param, m, v)."
    fn.__doc__ = doc + "\n\nJAX operation (XLA FFI); usable under jit, grad and vmap. Seeds and offsets may be traced."
    return fn


for _k in KERNELS:
    globals()[_k.name] = _function(_k)
del _k
