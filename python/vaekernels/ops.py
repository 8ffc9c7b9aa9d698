"""The kernels as functions: random streams, reparameterised sampling, Gaussian KL, log-likelihoods,
the fused VAE latent pair and the AdamW step.

Conventions (all functions):

* Arrays are float32 or float64; outputs have the dtype of the inputs; mixing dtypes is a ``TypeError``.
* Reductions run over the last axis: inputs of shape ``(..., D)`` give outputs of shape ``(...)``.
* Any layout is accepted (non-contiguous views are copied once); ``out=`` arrays must be C-contiguous,
  of the exact shape and dtype, and let hot loops allocate nothing.
* Randomness is explicit: a 64-bit ``seed`` and a stream ``offset``. Normal number ``j`` of stream ``seed``
  is a pure function of ``(seed, j, dtype)``, the same on every thread count, SIMD level and device.
* NaN and inf propagate as IEEE arithmetic does: a NaN input gives NaN in the rows (or elements) it
  touches; ``logvar`` beyond about +-88 (float32) / +-709 (float64) overflows ``exp`` to inf.
* The GIL is released while a kernel runs.
* Device arrays: every function also takes CuPy arrays (or any object with ``__cuda_array_interface__``)
  and then runs on the GPU, on CuPy's current stream, returning CuPy arrays on the same device with the
  same bits as on the CPU (needs the CUDA build and ``vaekernels[cuda]``; see ``cuda_available()``).
  Host and device arrays cannot be mixed in one call (TypeError). ``randn``/``rand`` take ``device="cuda"``.
"""
from __future__ import annotations

import numpy as np

from . import _core
from . import _cuda_dispatch as _gpu
from . import _validate as V

__all__ = [
    "philox4x32_10", "randn", "rand", "reparameterize",
    "kl_standard_normal", "kl_standard_normal_backward", "kl_normal", "kl_normal_backward",
    "bernoulli_log_prob", "bernoulli_log_prob_and_grad",
    "normal_log_prob", "normal_log_prob_and_grad",
    "standard_normal_log_prob", "standard_normal_log_prob_and_grad",
    "latent_forward", "latent_backward", "adam_step",
]


# -------------------------------------------------------------------------------------------------
# Random numbers
# -------------------------------------------------------------------------------------------------
def philox4x32_10(counters, keys):
    """The raw Philox4x32-10 block function (Salmon et al. 2011), as published in Random123.

    counters: uint32 (N, 4); keys: uint32 (N, 2). Returns uint32 (N, 4): row i is
    Philox4x32-10(counter=counters[i], key=keys[i]).
    """
    if type(counters) is not np.ndarray and _gpu.is_device_array(counters):
        return _gpu.philox4x32_10(counters, keys)
    if _gpu.is_device_array(keys):
        raise TypeError("keys is a GPU array but counters is a host (NumPy) array; mixing GPU and host arrays is "
                        "not supported")
    counters = np.asarray(counters)
    keys = np.asarray(keys)
    V.philox_args(counters, keys)
    out = np.empty_like(counters, order="C")
    _core.philox4x32_10(np.ascontiguousarray(counters), np.ascontiguousarray(keys), out)
    return out


def randn(shape, seed, offset=0, dtype=np.float32, *, out=None, device=None):
    """Standard normal numbers at stream positions ``offset .. offset + prod(shape) - 1`` of ``seed``.

    ``randn(10, s, offset=5)`` equals ``randn(15, s)[5:]`` bit for bit. Box-Muller on Philox4x32-10
    (tag 0): float32 uses one 32-bit word per uniform (|z| <= 5.77), float64 two (|z| <= 8.49).
    seed: int in [0, 2**64). offset: int >= 0. Returns an array of ``shape`` and ``dtype`` (or fills ``out``).
    device: None (a NumPy array, or the device of ``out``), "cpu", "cuda" (CuPy's current GPU) or "cuda:N";
    on a GPU the result is a CuPy array with the same bits as on the CPU.
    """
    if device is not None or (out is not None and type(out) is not np.ndarray and _gpu.is_device_array(out)):
        if device is None or _gpu.device_index(device) != "cpu":
            return _gpu.randn(shape, seed, offset, dtype, out=out, device=device)
    shape = V.shape_arg(shape)
    dtype = V.dtype_arg(dtype)
    n = int(np.prod(shape, dtype=np.int64))
    seed, offset = V.seed_offset(seed, offset, n)
    out = V.output("out", out, shape, dtype)
    _core.randn(out, seed, offset)
    return out


def rand(shape, seed, offset=0, dtype=np.float32, *, out=None, device=None):
    """Uniform numbers on the open interval (0, 1) at stream positions ``offset ..`` of ``seed``.

    A separate stream from ``randn`` (Philox tag 1). float32 values are (2k+1) 2^-24 (k < 2^23); float64
    values are (2k+1) 2^-53 (k < 2^52). Same offset contract and ``device=`` argument as ``randn``.
    """
    if device is not None or (out is not None and type(out) is not np.ndarray and _gpu.is_device_array(out)):
        if device is None or _gpu.device_index(device) != "cpu":
            return _gpu.rand(shape, seed, offset, dtype, out=out, device=device)
    shape = V.shape_arg(shape)
    dtype = V.dtype_arg(dtype)
    n = int(np.prod(shape, dtype=np.int64))
    seed, offset = V.seed_offset(seed, offset, n)
    out = V.output("out", out, shape, dtype)
    _core.rand(out, seed, offset)
    return out


def reparameterize(mu, logvar, seed, offset=0, n_samples=None, *, out=None):
    """z = mu + exp(logvar / 2) * eps, eps = ``randn(mu.shape, seed, offset, mu.dtype)``.

    mu, logvar: the same shape (any). With ``n_samples=k`` returns shape ``(k, *mu.shape)``; sample s uses
    stream positions ``offset + s * mu.size ..``. Consumes positions ``offset .. offset + k * mu.size - 1``.
    """
    if type(mu) is not np.ndarray and _gpu.is_device_array(mu):
        return _gpu.reparameterize(mu, logvar, seed, offset, n_samples, out=out)
    dtype, (mu, logvar) = V.float_arrays(("mu", mu), ("logvar", logvar))
    V.same_shape("mu", mu, "logvar", logvar)
    k = 1 if n_samples is None else V.integer("n_samples", n_samples, 1, 1 << 62)
    seed, offset = V.seed_offset(seed, offset, k * mu.size)
    shape = mu.shape if n_samples is None else (k,) + mu.shape
    out = V.output("out", out, shape, dtype)
    _core.reparameterize(mu, logvar, seed, offset, k, out)
    return out


# -------------------------------------------------------------------------------------------------
# KL divergences
# -------------------------------------------------------------------------------------------------
def kl_standard_normal(mu, logvar, *, out=None):
    """KL(N(mu, diag exp(logvar)) || N(0, I)) summed over the last axis.

    Per coordinate 0.5 * (mu^2 + exp(logvar) - 1 - logvar), with exp(lv) - 1 - lv evaluated without
    cancellation near 0. mu, logvar: (..., D). Returns (...).
    """
    if type(mu) is not np.ndarray and _gpu.is_device_array(mu):
        return _gpu.kl_standard_normal(mu, logvar, out=out)
    dtype, (mu, logvar) = V.float_arrays(("mu", mu), ("logvar", logvar))
    V.same_shape("mu", mu, "logvar", logvar)
    m2, batch = V.rows_view("mu", mu)
    out = V.output("out", out, batch, dtype)
    _core.kl_standard_normal(m2, logvar.reshape(m2.shape), out.reshape(-1))
    return out


def kl_standard_normal_backward(grad, mu, logvar, *, out=None):
    """Gradients of sum(grad * kl_standard_normal(mu, logvar)).

    grad: (...), the upstream gradient; mu, logvar: (..., D). Returns (dmu, dlogvar):
    dmu = grad * mu, dlogvar = grad * (exp(logvar) - 1) / 2.
    """
    if type(grad) is not np.ndarray and _gpu.is_device_array(grad):
        return _gpu.kl_standard_normal_backward(grad, mu, logvar, out=out)
    dtype, (grad, mu, logvar) = V.float_arrays(("grad", grad), ("mu", mu), ("logvar", logvar))
    V.same_shape("mu", mu, "logvar", logvar)
    m2, batch = V.rows_view("mu", mu)
    if grad.shape != batch:
        raise ValueError(f"grad must have shape {batch} (mu's shape without its last axis), got {grad.shape}")
    o1, o2 = V.outputs("out", out, 2)
    dmu = V.output("out[0]", o1, mu.shape, dtype)
    dlv = V.output("out[1]", o2, mu.shape, dtype)
    _core.kl_standard_normal_backward(grad.reshape(-1), m2, logvar.reshape(m2.shape), dmu.reshape(m2.shape),
                                      dlv.reshape(m2.shape))
    return dmu, dlv


def kl_normal(mu_q, logvar_q, mu_p, logvar_p, *, out=None):
    """KL(N(mu_q, diag exp(logvar_q)) || N(mu_p, diag exp(logvar_p))) summed over the last axis.

    Per coordinate 0.5 * ((e^d - 1 - d) + (mu_q - mu_p)^2 exp(-logvar_p)) with d = logvar_q - logvar_p.
    All four arguments (..., D), the same shape. Returns (...).
    """
    if type(mu_q) is not np.ndarray and _gpu.is_device_array(mu_q):
        return _gpu.kl_normal(mu_q, logvar_q, mu_p, logvar_p, out=out)
    dtype, arrs = V.float_arrays(("mu_q", mu_q), ("logvar_q", logvar_q), ("mu_p", mu_p), ("logvar_p", logvar_p))
    mq, lq, mp, lp = arrs
    for name, a in (("logvar_q", lq), ("mu_p", mp), ("logvar_p", lp)):
        V.same_shape("mu_q", mq, name, a)
    m2, batch = V.rows_view("mu_q", mq)
    out = V.output("out", out, batch, dtype)
    _core.kl_normal(m2, lq.reshape(m2.shape), mp.reshape(m2.shape), lp.reshape(m2.shape), out.reshape(-1))
    return out


def kl_normal_backward(grad, mu_q, logvar_q, mu_p, logvar_p, *, out=None):
    """Gradients of sum(grad * kl_normal(...)) with respect to all four arguments.

    Returns (dmu_q, dlogvar_q, dmu_p, dlogvar_p), each (..., D):
    dmu_q = g (mu_q - mu_p) e^-lp, dmu_p = -dmu_q, dlogvar_q = g (e^(lq - lp) - 1) / 2,
    dlogvar_p = -g ((e^(lq - lp) - 1) + (mu_q - mu_p)^2 e^-lp) / 2.
    """
    if type(grad) is not np.ndarray and _gpu.is_device_array(grad):
        return _gpu.kl_normal_backward(grad, mu_q, logvar_q, mu_p, logvar_p, out=out)
    dtype, arrs = V.float_arrays(("grad", grad), ("mu_q", mu_q), ("logvar_q", logvar_q), ("mu_p", mu_p),
                                 ("logvar_p", logvar_p))
    grad, mq, lq, mp, lp = arrs
    for name, a in (("logvar_q", lq), ("mu_p", mp), ("logvar_p", lp)):
        V.same_shape("mu_q", mq, name, a)
    m2, batch = V.rows_view("mu_q", mq)
    if grad.shape != batch:
        raise ValueError(f"grad must have shape {batch} (mu_q's shape without its last axis), got {grad.shape}")
    outs = [V.output(f"out[{i}]", o, mq.shape, dtype) for i, o in enumerate(V.outputs("out", out, 4))]
    s = m2.shape
    _core.kl_normal_backward(grad.reshape(-1), m2, lq.reshape(s), mp.reshape(s), lp.reshape(s),
                             *[o.reshape(s) for o in outs])
    return tuple(outs)


# -------------------------------------------------------------------------------------------------
# Log-likelihoods
# -------------------------------------------------------------------------------------------------
def bernoulli_log_prob(x, logits, *, out=None):
    """log Bernoulli(x | sigmoid(logits)) summed over the last axis: sum(x * l - softplus(l)).

    Computed as (x - [l >= 0]) l - log1p(exp(-|l|)): exact to rounding and finite for any finite logits
    (|l| = 1e4 included). x is meant to lie in [0, 1] (grey levels allowed); other values give the same
    formula's value. x, logits: (..., D). Returns (...).
    """
    if type(x) is not np.ndarray and _gpu.is_device_array(x):
        return _gpu.bernoulli_log_prob(x, logits, out=out)
    dtype, (x, logits) = V.float_arrays(("x", x), ("logits", logits))
    V.same_shape("logits", logits, "x", x)
    l2, batch = V.rows_view("logits", logits)
    out = V.output("out", out, batch, dtype)
    _core.bernoulli_log_prob(x.reshape(l2.shape), l2, out.reshape(-1))
    return out


def bernoulli_log_prob_and_grad(x, logits, *, out=None):
    """(log_prob (...), d sum(log_prob) / d logits (..., D)) in one pass; the gradient is x - sigmoid(l)."""
    if type(x) is not np.ndarray and _gpu.is_device_array(x):
        return _gpu.bernoulli_log_prob_and_grad(x, logits, out=out)
    dtype, (x, logits) = V.float_arrays(("x", x), ("logits", logits))
    V.same_shape("logits", logits, "x", x)
    l2, batch = V.rows_view("logits", logits)
    o1, o2 = V.outputs("out", out, 2)
    lp = V.output("out[0]", o1, batch, dtype)
    dl = V.output("out[1]", o2, logits.shape, dtype)
    _core.bernoulli_log_prob_and_grad(x.reshape(l2.shape), l2, lp.reshape(-1), dl.reshape(l2.shape))
    return lp, dl


def normal_log_prob(x, mean, logvar, *, out=None):
    """log N(x | mean, diag exp(logvar)) summed over the last axis:
    -0.5 * sum(log(2 pi) + logvar + (x - mean)^2 exp(-logvar)). All (..., D). Returns (...)."""
    if type(x) is not np.ndarray and _gpu.is_device_array(x):
        return _gpu.normal_log_prob(x, mean, logvar, out=out)
    dtype, (x, mean, logvar) = V.float_arrays(("x", x), ("mean", mean), ("logvar", logvar))
    V.same_shape("mean", mean, "x", x)
    V.same_shape("mean", mean, "logvar", logvar)
    m2, batch = V.rows_view("mean", mean)
    out = V.output("out", out, batch, dtype)
    _core.normal_log_prob(x.reshape(m2.shape), m2, logvar.reshape(m2.shape), out.reshape(-1))
    return out


def normal_log_prob_and_grad(x, mean, logvar, *, out=None):
    """(log_prob (...), dmean, dlogvar) of the summed log-density in one pass:
    dmean = (x - mean) exp(-logvar), dlogvar = ((x - mean)^2 exp(-logvar) - 1) / 2."""
    if type(x) is not np.ndarray and _gpu.is_device_array(x):
        return _gpu.normal_log_prob_and_grad(x, mean, logvar, out=out)
    dtype, (x, mean, logvar) = V.float_arrays(("x", x), ("mean", mean), ("logvar", logvar))
    V.same_shape("mean", mean, "x", x)
    V.same_shape("mean", mean, "logvar", logvar)
    m2, batch = V.rows_view("mean", mean)
    o1, o2, o3 = V.outputs("out", out, 3)
    lp = V.output("out[0]", o1, batch, dtype)
    dm = V.output("out[1]", o2, mean.shape, dtype)
    dlv = V.output("out[2]", o3, mean.shape, dtype)
    s = m2.shape
    _core.normal_log_prob_and_grad(x.reshape(s), m2, logvar.reshape(s), lp.reshape(-1), dm.reshape(s),
                                   dlv.reshape(s))
    return lp, dm, dlv


def standard_normal_log_prob(z, *, out=None):
    """log N(z | 0, I) summed over the last axis: -0.5 * sum(log(2 pi) + z^2). z: (..., D). Returns (...)."""
    if type(z) is not np.ndarray and _gpu.is_device_array(z):
        return _gpu.standard_normal_log_prob(z, out=out)
    dtype, (z,) = V.float_arrays(("z", z))
    z2, batch = V.rows_view("z", z)
    out = V.output("out", out, batch, dtype)
    _core.standard_normal_log_prob(z2, out.reshape(-1))
    return out


def standard_normal_log_prob_and_grad(z, *, out=None):
    """(log_prob (...), dz = -z (..., D)) in one pass."""
    if type(z) is not np.ndarray and _gpu.is_device_array(z):
        return _gpu.standard_normal_log_prob_and_grad(z, out=out)
    dtype, (z,) = V.float_arrays(("z", z))
    z2, batch = V.rows_view("z", z)
    o1, o2 = V.outputs("out", out, 2)
    lp = V.output("out[0]", o1, batch, dtype)
    dz = V.output("out[1]", o2, z.shape, dtype)
    _core.standard_normal_log_prob_and_grad(z2, lp.reshape(-1), dz.reshape(z2.shape))
    return lp, dz


# -------------------------------------------------------------------------------------------------
# The fused VAE latent pair
# -------------------------------------------------------------------------------------------------
def latent_forward(mu, logvar, seed, offset=0, *, out=None):
    """(z, kl) in one pass: z equals ``reparameterize(mu, logvar, seed, offset)`` bit for bit and kl equals
    ``kl_standard_normal(mu, logvar)``. mu, logvar: (..., L). Returns z (..., L) and kl (...).
    Consumes stream positions ``offset .. offset + mu.size - 1``; eps is never stored."""
    if type(mu) is not np.ndarray and _gpu.is_device_array(mu):
        return _gpu.latent_forward(mu, logvar, seed, offset, out=out)
    dtype, (mu, logvar) = V.float_arrays(("mu", mu), ("logvar", logvar))
    V.same_shape("mu", mu, "logvar", logvar)
    seed, offset = V.seed_offset(seed, offset, mu.size)
    m2, batch = V.rows_view("mu", mu)
    o1, o2 = V.outputs("out", out, 2)
    z = V.output("out[0]", o1, mu.shape, dtype)
    kl = V.output("out[1]", o2, batch, dtype)
    _core.latent_forward(m2, logvar.reshape(m2.shape), seed, offset, z.reshape(m2.shape), kl.reshape(-1))
    return z, kl


def latent_backward(dz, mu, logvar, seed, offset=0, kl_weight=1.0, *, out=None):
    """Gradient of ``sum(dz * z) + kl_weight * sum(kl)`` where (z, kl) = latent_forward(mu, logvar, seed, offset).

    eps is regenerated from (seed, offset), never stored: dmu = dz + w mu,
    dlogvar = dz * eps * exp(logvar / 2) / 2 + w (exp(logvar) - 1) / 2. Returns (dmu, dlogvar).
    """
    if type(dz) is not np.ndarray and _gpu.is_device_array(dz):
        return _gpu.latent_backward(dz, mu, logvar, seed, offset, kl_weight, out=out)
    dtype, (dz, mu, logvar) = V.float_arrays(("dz", dz), ("mu", mu), ("logvar", logvar))
    V.same_shape("mu", mu, "dz", dz)
    V.same_shape("mu", mu, "logvar", logvar)
    seed, offset = V.seed_offset(seed, offset, mu.size)
    kl_weight = float(kl_weight)
    m2, _ = V.rows_view("mu", mu)
    o1, o2 = V.outputs("out", out, 2)
    dmu = V.output("out[0]", o1, mu.shape, dtype)
    dlv = V.output("out[1]", o2, mu.shape, dtype)
    s = m2.shape
    _core.latent_backward(dz.reshape(s), m2, logvar.reshape(s), seed, offset, kl_weight, dmu.reshape(s),
                          dlv.reshape(s))
    return dmu, dlv


# -------------------------------------------------------------------------------------------------
# Optimiser
# -------------------------------------------------------------------------------------------------
def adam_step(param, grad, m, v, step, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0):
    """One AdamW step, in place on ``param``, ``m`` and ``v`` (PyTorch's AdamW, one fused pass):

    m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;  param *= 1 - lr * weight_decay;
    param -= lr / (1 - b1^step) * m / (sqrt(v) / sqrt(1 - b2^step) + eps).

    param, m, v must be C-contiguous writable arrays of one dtype (they are updated in place); grad any
    layout. step is the 1-based step count used for bias correction. Returns param.
    """
    if type(param) is not np.ndarray and _gpu.is_device_array(param):
        return _gpu.adam_step(param, grad, m, v, step, lr, beta1, beta2, eps, weight_decay)
    for name, a in (("param", param), ("m", m), ("v", v)):
        if not isinstance(a, np.ndarray):
            if _gpu.is_device_array(a):
                raise TypeError(f"{name} is a GPU array but param is a host (NumPy) array; mixing GPU and host "
                                f"arrays is not supported")
            raise TypeError(f"{name} must be a NumPy array (it is updated in place), got {type(a).__name__}")
        if not a.flags.c_contiguous or not a.flags.writeable:
            raise ValueError(f"{name} must be C-contiguous and writable (it is updated in place)")
    dtype, (p, grad, m_, v_) = V.float_arrays(("param", param), ("grad", grad), ("m", m), ("v", v))
    for name, a in (("grad", grad), ("m", m_), ("v", v_)):
        V.same_shape("param", p, name, a)
    step, lr, beta1, beta2, eps, weight_decay = V.adam_hyper(step, lr, beta1, beta2, eps, weight_decay)
    _core.adam_step(p, grad, m_, v_, step, lr, beta1, beta2, eps, weight_decay)
    return param
