"""The kernels as JAX operations: callable under ``jax.jit``, ``jax.grad`` and ``jax.vmap``, through XLA's
foreign function interface (typed FFI handlers registered with ``jax.ffi``; no host callbacks).

Every kernel of the table is a function here with the NumPy API's signature (without ``out=``; JAX
arrays are immutable, so ``adam_step`` returns the updated ``(param, m, v)``). Validation is the NumPy
API's, at trace time (dtypes, shapes, Python-valued scalars); the handlers (cpp/jax/ffi_module.cpp) check
again what must be checked at run time, such as the stream end of a traced offset. Differentiable kernels
carry a ``jax.custom_vjp`` built from the table's backward recipe, evaluated with these same operations.

Seeds, offsets and Adam's step may be Python ints or traced JAX values (a jitted training step that
advances its offset compiles once). 64-bit values travel as two uint32 words: pass an int, a uint32[2]
array ``(low, high)`` (``words``), or any integer scalar (a uint64 one when ``jax_enable_x64`` is on). A
seed may be a ``jax.random`` key, typed (``jax.random.key``) or legacy (``jax.random.PRNGKey``). Keep a
64-bit offset inside ``jit`` as words and move it with ``advance(offset, n)`` (the carry into the high
word included): a Python int past 2**31 - 1 cannot cross a ``jit`` boundary as one int32 value, and an
int32 step or offset counter wraps at 2**31. A traced value is validated where it exists, by the XLA FFI
handler, with the Python API's rules: a negative signed offset, ``step=0``, ``beta1=1``, ``lr=-1`` or
``kl_weight=nan`` fails at run time with an error (``jax.errors.JaxRuntimeError``) naming the argument and
its value; values known at trace time are refused at trace time (ValueError / TypeError).
float32 by default; float64 needs ``jax_enable_x64``; float16 and bfloat16 arrays are computed in float32
and the results rounded to their dtype (``randn(..., dtype=jnp.float16)`` is the float32 stream rounded).
Differentiation is reverse mode (``jax.custom_vjp``): ``jax.jvp`` / ``jax.jacfwd`` raise JAX's own error
for custom_vjp functions. On a GPU, the kernels with scalars are not available yet (cpp/jax/ffi_module.cpp).

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

__all__ = ["words", "advance"] + [k.name for k in KERNELS]

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


def advance(offset, n):
    """``offset + n`` as the uint32[2] words (low, high) the operations take, with the carry into the high
    word, inside ``jit`` too: the way to keep a 64-bit stream position in a jitted loop (an int32 or a
    Python int past 2**31 cannot cross a ``jit`` boundary as one value). offset: an int, uint32[2] words or
    an integer scalar; n: a non-negative int (< 2**64) or an integer scalar array (int32 counts: < 2**31).
    Wraps modulo 2**64; the kernels refuse a read past the stream end."""
    w = _stream_buffer("offset", offset)
    if w.shape != (2,):                     # a signed scalar offset: its value as words
        w = _words_of_scalar(w)
    if isinstance(n, (int, np.integer)) and not isinstance(n, (bool, np.bool_)):
        n = int(n)
        if not 0 <= n < 1 << 64:
            raise ValueError(f"n must be in [0, 2**64), got {n}")
        n_words = jnp.asarray(words(n))
    else:
        n = jnp.asarray(n)
        if n.shape != () or not jnp.issubdtype(n.dtype, jnp.integer):
            raise TypeError(f"n must be an int or an integer scalar array, got {n.dtype}{list(n.shape)}")
        n_words = _words_of_scalar(n)
    low = w[0] + n_words[0]
    high = w[1] + n_words[1] + (low < w[0]).astype(jnp.uint32)
    return jnp.stack([low, high])


def _words_of_scalar(v):
    """uint32[2] words of an integer scalar array (its two's complement bits for signed values)."""
    if v.dtype.itemsize == 8:
        return jax.lax.bitcast_convert_type(v, jnp.uint32)
    return jnp.stack([v.astype(jnp.uint32), jnp.zeros((), jnp.uint32)])


def _is_traced(value):
    return isinstance(value, (jax.Array, jax.core.Tracer)) or (isinstance(value, np.ndarray) and value.ndim > 0)


def _is_key(v):
    return hasattr(v, "dtype") and jax.dtypes.issubdtype(v.dtype, jax.dtypes.prng_key)


def _stream_buffer(name, value):
    """A seed / offset / step as the buffer the handlers read: uint32[2] words (low, high) of an unsigned
    value, or a signed integer scalar as it is (the handler refuses a negative one: an int32 -1 is never
    2**32 - 1). A seed may also be a ``jax.random`` key: a typed key (``jax.random.key``) gives its key data
    (threefry: its two words) or, for other implementations, two words drawn from it; a legacy key
    (``jax.random.PRNGKey``) is a uint32[2] and used as the words."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        return jnp.asarray(words(value))
    if _is_key(value):
        if name != "seed":
            raise TypeError(f"{name} must be an integer, not a jax.random key (keys are seeds)")
        if value.shape != ():
            raise TypeError(f"seed must be a single jax.random key, got a key array of shape {value.shape}")
        data = jax.random.key_data(value)
        return data if data.shape == (2,) else jax.random.bits(value, (2,), jnp.uint32)
    v = jnp.asarray(value)
    if v.dtype == jnp.uint32 and v.shape == (2,):
        return v
    if v.shape == () and jnp.issubdtype(v.dtype, jnp.integer):
        if jnp.issubdtype(v.dtype, jnp.signedinteger):
            return v.astype(jnp.int64) if v.dtype.itemsize == 8 else v.astype(jnp.int32)
        return _words_of_scalar(v)          # uint64 (x64): its bits as two words
    raise TypeError(f"{name} must be an int, a uint32[2] array (low, high), an integer scalar"
                    f"{' or a jax.random key' if name == 'seed' else ''}, got {v.dtype}{list(v.shape)}")


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


_HALF = (np.dtype(jnp.float16), np.dtype(jnp.bfloat16))


def _half_precision(k, args):
    """The half-precision dtype of a call (float16 or bfloat16: computed in float32, results rounded back),
    or None; a half-precision array beside another dtype is the NumPy API's mixed-dtype TypeError."""
    if k.layout == CREATION:
        dt = dict(zip((p.name for p in k.params), args)).get("dtype")
        try:
            return np.dtype(dt) if np.dtype(dt) in _HALF else None
        except TypeError:
            return None
    named = [(p.name, np.dtype(a.dtype if hasattr(a, "dtype") else np.asarray(a).dtype))
             for p, a in zip(k.params, args) if isinstance(p, Array)]
    half = next(((n, d) for n, d in named if d in _HALF), None)
    if half is None:
        return None
    for n, d in named:
        if d != half[1]:
            raise TypeError(f"{n} has dtype {d} but {half[0]} has dtype {half[1]}; mixed dtypes are not cast "
                            f"silently (convert with .astype first)")
    return half[1]


def _forward(k, args):
    args = list(args)
    half = _half_precision(k, args)
    if half is not None:
        args = [jnp.asarray(a, jnp.float32) if isinstance(p, Array) else (np.float32 if p.kind == "dtype" else a)
                for p, a in zip(k.params, args)]
    lib = _JaxLib()
    res = dispatch.run(k, lib, args)
    if k.returns != "outputs":
        vals = tuple(lib.inplace)
    else:
        res = res if isinstance(res, tuple) else (res,)
        vals = tuple(r.value for r in res)
    if half is not None:
        vals = tuple(v.astype(half) for v in vals)
    return vals[0] if len(vals) == 1 and k.returns == "outputs" else vals


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
