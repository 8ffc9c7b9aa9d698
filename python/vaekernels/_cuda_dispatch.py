"""The GPU side of the public kernels: CuPy (or any ``__cuda_array_interface__``) arrays in, CuPy arrays out.

``vaekernels.ops`` sends a call here when its first array argument is a device array (or, for ``randn``
and ``rand``, when ``device=`` names a GPU or ``out=`` is a device array). Each function mirrors its
``ops`` namesake: the same argument checks and errors, the same shapes, the same results bit for bit
(see cuda/common.cuh). Kernels are enqueued on CuPy's current stream of the arrays' device and the
call returns without synchronising, as CuPy's own kernels do.

Order of checks: mixing host and device arrays is a TypeError naming both arguments; then the CUDA
extension must be built and a device usable (RuntimeError "no CUDA device ..." otherwise, never a
crash); then CuPy must be importable (it is the optional extra ``vaekernels[cuda]``, imported only here,
only on a GPU call).
"""
from __future__ import annotations

import re

import numpy as np

from . import _validate as V

_cuda = None            # the extension module, once imported
_cuda_import_error = None
_device_seen = False    # a device was usable once: it stays so for the life of the process


def _module():
    global _cuda, _cuda_import_error
    if _cuda is None and _cuda_import_error is None:
        try:
            from . import _cuda as mod
            _cuda = mod
        except ImportError as e:  # not compiled (no nvcc at build time) or not loadable
            _cuda_import_error = e
    return _cuda


def cuda_built():
    """True when the CUDA extension ``vaekernels._cuda`` was compiled into this install and imports."""
    return _module() is not None


def cuda_available():
    """True when the CUDA extension is built and a CUDA device is usable now (a driver and a GPU)."""
    global _device_seen
    if not _device_seen:
        mod = _module()
        _device_seen = mod is not None and mod.device_count() > 0
    return _device_seen


def is_device_array(a):
    """Whether ``a`` lives on a GPU (CuPy, PyTorch CUDA tensors, Numba device arrays, ...)."""
    return hasattr(a, "__cuda_array_interface__")


def _require_device():
    """The extension module, or RuntimeError saying why no GPU call can run here."""
    mod = _module()
    if mod is None:
        raise RuntimeError(
            "no CUDA device support: vaekernels was built without its CUDA extension (nvcc was not found at "
            f"build time, or VAEKERNELS_CUDA=OFF): {_cuda_import_error}")
    if not cuda_available():
        raise RuntimeError(mod.device_error() or "no CUDA device is usable")
    return mod


def _all_on_device(named):
    """TypeError naming the host and the GPU argument when ``(name, array)`` pairs mix the two."""
    device_name = next((n for n, a in named if is_device_array(a)), None)
    for name, a in named:
        if not is_device_array(a):
            raise TypeError(
                f"{name} is a host array ({type(a).__name__}) but {device_name} is a GPU array; mixing host and "
                f"GPU arrays is not supported (move {name} with cupy.asarray, or {device_name} with cupy.asnumpy)")


def _cupy():
    try:
        import cupy
    except ImportError as e:
        raise ImportError(
            "device arrays need CuPy: install it with `pip install vaekernels[cuda]` (cupy-cuda13x)") from e
    return cupy


# -------------------------------------------------------------------------------------------------
# One call: validated arrays on one device, the kernels for their dtype, the stream
# -------------------------------------------------------------------------------------------------
class _Call:
    """Checks ``(name, array)`` pairs for a GPU call and holds what the launch needs.

    Use as a context manager: inside, the arrays' device is current and ``stream`` is CuPy's current
    stream on it. ``inplace`` names arrays that are updated in place: they must be CuPy-compatible,
    C-contiguous views (never copied); the others are made contiguous (copied once) when they are not.
    """

    def __init__(self, *named, inplace=()):
        _all_on_device(named)
        self.mod = _require_device()
        cp = self.cp = _cupy()
        arrays, dtype, first, device = [], None, None, None
        for name, a in named:
            a = a if isinstance(a, cp.ndarray) else cp.asarray(a)
            if a.dtype not in V.FLOAT_DTYPES:
                raise TypeError(f"{name} must have dtype float32 or float64, got {a.dtype}")
            if dtype is None:
                dtype, first, device = a.dtype, name, a.device
            elif a.dtype != dtype:
                raise TypeError(
                    f"{name} has dtype {a.dtype} but {first} has dtype {dtype}; mixed dtypes are not cast silently "
                    f"(convert with .astype first)")
            elif a.device.id != device.id:
                raise ValueError(f"{name} is on GPU {a.device.id} but {first} is on GPU {device.id}")
            if name in inplace and not a.flags.c_contiguous:
                raise ValueError(f"{name} must be C-contiguous (it is updated in place)")
            arrays.append(a)
        if not all(a.flags.c_contiguous for a in arrays):
            with device:  # copies (of non-contiguous inputs) are made on the arrays' device
                arrays = [a if name in inplace else cp.ascontiguousarray(a) for (name, _), a in zip(named, arrays)]
        self.arrays, self.dtype, self.device = arrays, dtype, device
        self.k = self.mod.f64 if dtype == np.float64 else self.mod.f32

    @classmethod
    def for_output(cls, dtype, device_id):
        """A call with no input arrays (randn, rand): kernels for ``dtype`` on GPU ``device_id``."""
        self = cls.__new__(cls)
        self.mod = _require_device()
        cp = self.cp = _cupy()
        self.arrays, self.dtype = [], dtype
        self.device = cp.cuda.Device(device_id) if device_id is not None else cp.cuda.Device()
        self.k = self.mod.f64 if dtype == np.float64 else self.mod.f32
        return self

    def __enter__(self):
        self.device.__enter__()
        self.stream = self.cp.cuda.get_current_stream().ptr
        return self

    def __exit__(self, *exc):
        return self.device.__exit__(*exc)

    def output(self, name, out, shape, dtype=None):
        """An ``out=`` array on this device (None allocates): exact shape and dtype, C-contiguous."""
        dtype = self.dtype if dtype is None else dtype
        cp = self.cp
        if out is None:
            return cp.empty(shape, dtype=dtype)
        if not isinstance(out, cp.ndarray):
            if is_device_array(out):
                out = cp.asarray(out)
            else:
                raise TypeError(f"{name} must be a CuPy array on the GPU (the inputs are), got {type(out).__name__}")
        V.output_layout(name, out, shape, dtype)
        if out.device.id != self.device.id:
            raise ValueError(f"{name} is on GPU {out.device.id} but the inputs are on GPU {self.device.id}")
        return out


def _ptr(a):
    return a.data.ptr


def _rows(name, a):
    """(rows, cols) of an array reduced over its last axis, and its batch shape."""
    if a.ndim == 0:
        raise ValueError(f"{name} must have at least one dimension (the reduced last axis), got a scalar")
    return int(np.prod(a.shape[:-1], dtype=np.int64)), int(a.shape[-1]), a.shape[:-1]


_DEVICE_RE = re.compile(r"cuda(?::(\d+))?")


def device_index(device):
    """None for the host ("cpu"), else the GPU index (None = CuPy's current device) for "cuda" / "cuda:N"."""
    if isinstance(device, str):
        if device == "cpu":
            return "cpu"
        m = _DEVICE_RE.fullmatch(device)
        if m:
            return None if m.group(1) is None else int(m.group(1))
    raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}")


# -------------------------------------------------------------------------------------------------
# Random numbers
# -------------------------------------------------------------------------------------------------
def philox4x32_10(counters, keys):
    _all_on_device((("counters", counters), ("keys", keys)))
    mod = _require_device()
    cp = _cupy()
    counters, keys = cp.asarray(counters), cp.asarray(keys)
    V.philox_args(counters, keys)
    if keys.device.id != counters.device.id:
        raise ValueError(f"keys is on GPU {keys.device.id} but counters is on GPU {counters.device.id}")
    with counters.device:
        counters, keys = cp.ascontiguousarray(counters), cp.ascontiguousarray(keys)
        out = cp.empty(counters.shape, dtype=np.uint32)
        mod.philox4x32_10(_ptr(counters), _ptr(keys), counters.shape[0], _ptr(out), cp.cuda.get_current_stream().ptr)
    return out


def _random(kind, shape, seed, offset, dtype, out, device):
    shape = V.shape_arg(shape)
    dtype = V.dtype_arg(dtype)
    n = int(np.prod(shape, dtype=np.int64))
    seed, offset = V.seed_offset(seed, offset, n)
    index = None if device is None else device_index(device)
    if out is not None and not is_device_array(out):
        raise TypeError(f"out is a host array ({type(out).__name__}) but device={device!r} asks for a GPU array")
    c = _Call.for_output(dtype, index)
    if out is not None:
        out_id = c.cp.asarray(out).device.id
        if index is not None and out_id != index:
            raise ValueError(f"out is on GPU {out_id} but device={device!r}")
        c.device = c.cp.cuda.Device(out_id)
    with c:
        out = c.output("out", out, shape)
        getattr(c.k, kind)(_ptr(out), n, seed, offset, c.stream)
    return out


def randn(shape, seed, offset=0, dtype=np.float32, *, out=None, device=None):
    return _random("randn", shape, seed, offset, dtype, out, device)


def rand(shape, seed, offset=0, dtype=np.float32, *, out=None, device=None):
    return _random("rand", shape, seed, offset, dtype, out, device)


def reparameterize(mu, logvar, seed, offset=0, n_samples=None, *, out=None):
    c = _Call(("mu", mu), ("logvar", logvar))
    mu, logvar = c.arrays
    V.same_shape("mu", mu, "logvar", logvar)
    k = 1 if n_samples is None else V.integer("n_samples", n_samples, 1, 1 << 62)
    seed, offset = V.seed_offset(seed, offset, k * mu.size)
    shape = mu.shape if n_samples is None else (k,) + mu.shape
    with c:
        out = c.output("out", out, shape)
        c.k.reparameterize(_ptr(mu), _ptr(logvar), mu.size, k, seed, offset, _ptr(out), c.stream)
    return out


# -------------------------------------------------------------------------------------------------
# KL divergences
# -------------------------------------------------------------------------------------------------
def kl_standard_normal(mu, logvar, *, out=None):
    c = _Call(("mu", mu), ("logvar", logvar))
    mu, logvar = c.arrays
    V.same_shape("mu", mu, "logvar", logvar)
    rows, cols, batch = _rows("mu", mu)
    with c:
        out = c.output("out", out, batch)
        c.k.kl_standard_normal(_ptr(mu), _ptr(logvar), rows, cols, _ptr(out), c.stream)
    return out


def kl_standard_normal_backward(grad, mu, logvar, *, out=None):
    c = _Call(("grad", grad), ("mu", mu), ("logvar", logvar))
    grad, mu, logvar = c.arrays
    V.same_shape("mu", mu, "logvar", logvar)
    rows, cols, batch = _rows("mu", mu)
    if grad.shape != batch:
        raise ValueError(f"grad must have shape {batch} (mu's shape without its last axis), got {grad.shape}")
    o1, o2 = V.outputs("out", out, 2)
    with c:
        dmu = c.output("out[0]", o1, mu.shape)
        dlv = c.output("out[1]", o2, mu.shape)
        c.k.kl_standard_normal_backward(_ptr(grad), _ptr(mu), _ptr(logvar), rows, cols, _ptr(dmu), _ptr(dlv),
                                        c.stream)
    return dmu, dlv


def kl_normal(mu_q, logvar_q, mu_p, logvar_p, *, out=None):
    c = _Call(("mu_q", mu_q), ("logvar_q", logvar_q), ("mu_p", mu_p), ("logvar_p", logvar_p))
    mq, lq, mp, lp = c.arrays
    for name, a in (("logvar_q", lq), ("mu_p", mp), ("logvar_p", lp)):
        V.same_shape("mu_q", mq, name, a)
    rows, cols, batch = _rows("mu_q", mq)
    with c:
        out = c.output("out", out, batch)
        c.k.kl_normal(_ptr(mq), _ptr(lq), _ptr(mp), _ptr(lp), rows, cols, _ptr(out), c.stream)
    return out


def kl_normal_backward(grad, mu_q, logvar_q, mu_p, logvar_p, *, out=None):
    c = _Call(("grad", grad), ("mu_q", mu_q), ("logvar_q", logvar_q), ("mu_p", mu_p), ("logvar_p", logvar_p))
    grad, mq, lq, mp, lp = c.arrays
    for name, a in (("logvar_q", lq), ("mu_p", mp), ("logvar_p", lp)):
        V.same_shape("mu_q", mq, name, a)
    rows, cols, batch = _rows("mu_q", mq)
    if grad.shape != batch:
        raise ValueError(f"grad must have shape {batch} (mu_q's shape without its last axis), got {grad.shape}")
    with c:
        outs = [c.output(f"out[{i}]", o, mq.shape) for i, o in enumerate(V.outputs("out", out, 4))]
        c.k.kl_normal_backward(_ptr(grad), _ptr(mq), _ptr(lq), _ptr(mp), _ptr(lp), rows, cols,
                               *[_ptr(o) for o in outs], c.stream)
    return tuple(outs)


# -------------------------------------------------------------------------------------------------
# Log-likelihoods
# -------------------------------------------------------------------------------------------------
def bernoulli_log_prob(x, logits, *, out=None):
    c = _Call(("x", x), ("logits", logits))
    x, logits = c.arrays
    V.same_shape("logits", logits, "x", x)
    rows, cols, batch = _rows("logits", logits)
    with c:
        out = c.output("out", out, batch)
        c.k.bernoulli_log_prob(_ptr(x), _ptr(logits), rows, cols, _ptr(out), c.stream)
    return out


def bernoulli_log_prob_and_grad(x, logits, *, out=None):
    c = _Call(("x", x), ("logits", logits))
    x, logits = c.arrays
    V.same_shape("logits", logits, "x", x)
    rows, cols, batch = _rows("logits", logits)
    o1, o2 = V.outputs("out", out, 2)
    with c:
        lp = c.output("out[0]", o1, batch)
        dl = c.output("out[1]", o2, logits.shape)
        c.k.bernoulli_log_prob_and_grad(_ptr(x), _ptr(logits), rows, cols, _ptr(lp), _ptr(dl), c.stream)
    return lp, dl


def normal_log_prob(x, mean, logvar, *, out=None):
    c = _Call(("x", x), ("mean", mean), ("logvar", logvar))
    x, mean, logvar = c.arrays
    V.same_shape("mean", mean, "x", x)
    V.same_shape("mean", mean, "logvar", logvar)
    rows, cols, batch = _rows("mean", mean)
    with c:
        out = c.output("out", out, batch)
        c.k.normal_log_prob(_ptr(x), _ptr(mean), _ptr(logvar), rows, cols, _ptr(out), c.stream)
    return out


def normal_log_prob_and_grad(x, mean, logvar, *, out=None):
    c = _Call(("x", x), ("mean", mean), ("logvar", logvar))
    x, mean, logvar = c.arrays
    V.same_shape("mean", mean, "x", x)
    V.same_shape("mean", mean, "logvar", logvar)
    rows, cols, batch = _rows("mean", mean)
    o1, o2, o3 = V.outputs("out", out, 3)
    with c:
        lp = c.output("out[0]", o1, batch)
        dm = c.output("out[1]", o2, mean.shape)
        dlv = c.output("out[2]", o3, mean.shape)
        c.k.normal_log_prob_and_grad(_ptr(x), _ptr(mean), _ptr(logvar), rows, cols, _ptr(lp), _ptr(dm), _ptr(dlv),
                                     c.stream)
    return lp, dm, dlv


def standard_normal_log_prob(z, *, out=None):
    c = _Call(("z", z))
    (z,) = c.arrays
    rows, cols, batch = _rows("z", z)
    with c:
        out = c.output("out", out, batch)
        c.k.standard_normal_log_prob(_ptr(z), rows, cols, _ptr(out), c.stream)
    return out


def standard_normal_log_prob_and_grad(z, *, out=None):
    c = _Call(("z", z))
    (z,) = c.arrays
    rows, cols, batch = _rows("z", z)
    o1, o2 = V.outputs("out", out, 2)
    with c:
        lp = c.output("out[0]", o1, batch)
        dz = c.output("out[1]", o2, z.shape)
        c.k.standard_normal_log_prob_and_grad(_ptr(z), rows, cols, _ptr(lp), _ptr(dz), c.stream)
    return lp, dz


# -------------------------------------------------------------------------------------------------
# The fused VAE latent pair
# -------------------------------------------------------------------------------------------------
def latent_forward(mu, logvar, seed, offset=0, *, out=None):
    c = _Call(("mu", mu), ("logvar", logvar))
    mu, logvar = c.arrays
    V.same_shape("mu", mu, "logvar", logvar)
    seed, offset = V.seed_offset(seed, offset, mu.size)
    rows, cols, batch = _rows("mu", mu)
    o1, o2 = V.outputs("out", out, 2)
    with c:
        z = c.output("out[0]", o1, mu.shape)
        kl = c.output("out[1]", o2, batch)
        c.k.latent_forward(_ptr(mu), _ptr(logvar), rows, cols, seed, offset, _ptr(z), _ptr(kl), c.stream)
    return z, kl


def latent_backward(dz, mu, logvar, seed, offset=0, kl_weight=1.0, *, out=None):
    c = _Call(("dz", dz), ("mu", mu), ("logvar", logvar))
    dz, mu, logvar = c.arrays
    V.same_shape("mu", mu, "dz", dz)
    V.same_shape("mu", mu, "logvar", logvar)
    seed, offset = V.seed_offset(seed, offset, mu.size)
    kl_weight = float(kl_weight)
    rows, cols, _ = _rows("mu", mu)
    o1, o2 = V.outputs("out", out, 2)
    with c:
        dmu = c.output("out[0]", o1, mu.shape)
        dlv = c.output("out[1]", o2, mu.shape)
        c.k.latent_backward(_ptr(dz), _ptr(mu), _ptr(logvar), rows, cols, seed, offset, kl_weight, _ptr(dmu),
                            _ptr(dlv), c.stream)
    return dmu, dlv


# -------------------------------------------------------------------------------------------------
# Optimiser
# -------------------------------------------------------------------------------------------------
def adam_step(param, grad, m, v, step, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0):
    c = _Call(("param", param), ("grad", grad), ("m", m), ("v", v), inplace=("param", "m", "v"))
    p, g, m_, v_ = c.arrays
    for name, a in (("grad", g), ("m", m_), ("v", v_)):
        V.same_shape("param", p, name, a)
    step, lr, beta1, beta2, eps, weight_decay = V.adam_hyper(step, lr, beta1, beta2, eps, weight_decay)
    with c:
        c.k.adam_step(_ptr(p), _ptr(g), _ptr(m_), _ptr(v_), p.size, step, lr, beta1, beta2, eps, weight_decay,
                      c.stream)
    return param
