"""Plain NumPy versions of every kernel of ``vaekernels.kernels``, written independently of the C++ code.

For tests and benchmarks only: textbook formulas (``np.logaddexp`` for softplus, ``np.exp(logvar)``,
libm sin/cos/log), no attempt at speed. Same names, signatures and output shapes as the public kernels.

The functions are dtype-generic: they compute in the dtype of their inputs, so calling them with
``np.longdouble`` (or float64) arrays gives a higher-precision reference for float64 (or float32) kernels.
The random functions (``randn``, ``rand``, ``reparameterize``, ``latent_*``) re-implement Philox4x32-10 in
vectorised uint64 arithmetic and the Box-Muller transform on the same stream layout as the kernels
(cpp/include/vaekernels/philox.hpp, random.hpp). Uniforms are bit-identical to the kernels'; normals are
computed here in float64 (float32 output) or long double (float64 output) and rounded once, so they agree
with the kernels to a few ulp, not bit for bit.
"""
from __future__ import annotations

import numpy as np

__all__ = [
    "philox4x32_10", "philox_stream_words", "box_muller", "randn", "randn_unrounded", "rand", "reparameterize",
    "kl_standard_normal", "kl_standard_normal_backward", "kl_normal", "kl_normal_backward",
    "bernoulli_log_prob", "bernoulli_log_prob_and_grad", "bernoulli_log_prob_backward",
    "normal_log_prob", "normal_log_prob_and_grad", "normal_log_prob_backward",
    "standard_normal_log_prob", "standard_normal_log_prob_and_grad",
    "latent_forward", "latent_backward", "latent_vjp", "adam_step",
]

_MASK32 = np.uint64(0xFFFFFFFF)
_TAG_NORMAL = 0
_TAG_UNIFORM = 1


def _fill(out, value):
    """Return ``value`` as a new array, or copy it into ``out`` (mirrors the kernels' ``out=``)."""
    if out is None:
        return value
    out[...] = value
    return out


def _fill_many(out, values):
    if out is None:
        return tuple(values)
    for o, v in zip(out, values):
        o[...] = v
    return tuple(out)


# -------------------------------------------------------------------------------------------------
# Philox4x32-10 (Salmon, Moraes, Dror, Shaw: "Parallel random numbers: as easy as 1, 2, 3", SC'11)
# -------------------------------------------------------------------------------------------------
def _philox_rounds(c, k0, k1):
    """Ten Philox rounds on uint64 arrays holding 32-bit words. c: list of 4 arrays; k0, k1: arrays."""
    m0, m1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
    w0, w1 = np.uint64(0x9E3779B9), np.uint64(0xBB67AE85)
    c0, c1, c2, c3 = c
    for r in range(10):
        if r:
            k0 = (k0 + w0) & _MASK32      # key schedule (Weyl sequence), mod 2^32
            k1 = (k1 + w1) & _MASK32
        p0 = m0 * c0                      # < 2^64: exact in uint64
        p1 = m1 * c2
        c0, c1, c2, c3 = ((p1 >> np.uint64(32)) ^ c1 ^ k0, p1 & _MASK32,
                          (p0 >> np.uint64(32)) ^ c3 ^ k1, p0 & _MASK32)
    return c0, c1, c2, c3


def philox4x32_10(counters, keys, *, out=None):
    """Philox4x32-10 block function. counters uint32 (N, 4), keys uint32 (N, 2) -> uint32 (N, 4)."""
    c = np.asarray(counters, dtype=np.uint32).astype(np.uint64)
    k = np.asarray(keys, dtype=np.uint32).astype(np.uint64)
    words = _philox_rounds([c[:, 0], c[:, 1], c[:, 2], c[:, 3]], k[:, 0], k[:, 1])
    return _fill(out, np.stack(words, axis=1).astype(np.uint32))


def philox_stream_words(seed, first_block, n_blocks, tag, substream=0):
    """Words (4, n_blocks) of blocks first_block .. of stream (seed, tag, substream).

    Counter = (block low 32 bits, block high 32 bits, tag, substream); key = (seed low, seed high).
    """
    idx = np.uint64(first_block) + np.arange(n_blocks, dtype=np.uint64)
    ones = np.ones(n_blocks, dtype=np.uint64)
    words = _philox_rounds([idx & _MASK32, idx >> np.uint64(32), ones * np.uint64(tag), ones * np.uint64(substream)],
                           ones * np.uint64(seed & 0xFFFFFFFF), ones * np.uint64(seed >> 32))
    return np.stack(words)


def _stream(seed, offset, n, per_block, tag):
    """(words of every block touched, flat positions relative to the first block) for positions offset..+n."""
    first = offset // per_block
    last = (offset + n - 1) // per_block if n else first - 1
    words = philox_stream_words(seed, first, last - first + 1, tag)
    rel = np.arange(n, dtype=np.int64) + (offset - first * per_block)
    return words, rel


# -------------------------------------------------------------------------------------------------
# Box-Muller
# -------------------------------------------------------------------------------------------------
def _two_pi(work):
    # 2 pi to beyond long double precision: float64 pi plus its rounding error.
    return work(2) * (work(np.pi) + work(1.2246467991473532e-16))


def box_muller(u, t_num, t_bits, work=np.float64):
    """(r cos 2 pi t, r sin 2 pi t), r = sqrt(-2 log u), t = t_num / 2^t_bits, computed in ``work``.

    cos/sin of 2 pi t are taken after subtracting the nearest quarter turn exactly (t - q/4 is exact for
    t on a 2^-t_bits grid), so values near the zeros of sin/cos keep full relative accuracy.
    """
    u = np.asarray(u, dtype=work)
    r = np.sqrt(work(-2) * np.log(u))
    t = t_num.astype(work) / work(2.0 ** t_bits)
    q = np.floor(work(4) * t + work(0.5))
    a = _two_pi(work) * (t - q / work(4))             # |a| <= pi/4
    sa, ca = np.sin(a), np.cos(a)
    q = q.astype(np.int64) % 4
    cos_t = np.choose(q, [ca, -sa, -ca, sa])
    sin_t = np.choose(q, [sa, ca, -sa, -ca])
    return r * cos_t, r * sin_t


def _normal_work(dtype):
    """Working precision of the reference transform: float64 for float32, long double for float64."""
    return np.float64 if np.dtype(dtype) == np.float32 else np.longdouble


def _host_only(device):
    if device not in (None, "cpu"):
        raise ValueError(f"the NumPy reference runs on the host only (device None or 'cpu'), got {device!r}")


def randn(shape, seed, offset=0, dtype=np.float32, *, out=None, device=None):
    """Standard normals at stream positions offset .. of ``seed`` (same layout as vaekernels.randn)."""
    _host_only(device)
    shape = (shape,) if np.isscalar(shape) else tuple(shape)
    return _fill(out, randn_unrounded(shape, seed, offset, dtype).astype(dtype))


def randn_unrounded(shape, seed, offset=0, dtype=np.float32, work=None):
    """The normals ``randn`` returns before rounding to ``dtype``: computed in ``work`` precision (default
    float64 for float32 streams, long double for float64 streams). For measuring the kernels' ulp error."""
    shape = (shape,) if np.isscalar(shape) else tuple(shape)
    dtype = np.dtype(dtype)
    n = int(np.prod(shape, dtype=np.int64))
    work = work or _normal_work(dtype)
    if dtype == np.float32:
        # Block b -> normals 4b..4b+3: (w0, w1) -> (cos, sin), (w2, w3) -> (cos, sin); 24-bit uniforms.
        words, rel = _stream(seed, offset, n, 4, _TAG_NORMAL)
        blk, pos = rel // 4, rel % 4
        pair = pos // 2
        wr = np.where(pair == 0, words[0][blk], words[2][blk])
        wt = np.where(pair == 0, words[1][blk], words[3][blk])
        u = ((wr >> np.uint64(8)) + np.uint64(1)).astype(work) / work(2.0 ** 24)     # (0, 1]
        z0, z1 = box_muller(u, wt >> np.uint64(8), 24, work)
        z = np.where(pos % 2 == 0, z0, z1)
    elif dtype == np.float64:
        # Block b -> normals 2b (cos), 2b+1 (sin); 52-bit uniforms from (w0, w1) and (w2, w3).
        words, rel = _stream(seed, offset, n, 2, _TAG_NORMAL)
        blk = rel // 2
        top52 = lambda hi, lo: (hi << np.uint64(20)) | (lo >> np.uint64(12))         # noqa: E731
        kr = top52(words[0][blk], words[1][blk])
        kt = top52(words[2][blk], words[3][blk])
        u = (np.uint64(1 << 52) - kr).astype(work) / work(2.0 ** 52)                 # 1 - kr 2^-52 in (0, 1]
        z0, z1 = box_muller(u, kt, 52, work)
        z = np.where(rel % 2 == 0, z0, z1)
    else:
        raise TypeError(f"dtype must be float32 or float64, got {dtype}")
    return z.reshape(shape)


def rand(shape, seed, offset=0, dtype=np.float32, *, out=None, device=None):
    """Uniforms on (0, 1) at stream positions offset .. (tag 1); exact, so bit-identical to vaekernels.rand."""
    _host_only(device)
    shape = (shape,) if np.isscalar(shape) else tuple(shape)
    dtype = np.dtype(dtype)
    n = int(np.prod(shape, dtype=np.int64))
    if dtype == np.float32:
        words, rel = _stream(seed, offset, n, 4, _TAG_UNIFORM)
        w = words[rel % 4, rel // 4]
        k = w >> np.uint64(9)                                   # top 23 bits
        x = (2 * k + 1).astype(np.float64) / 2.0 ** 24          # (2k + 1) 2^-24, exact
    elif dtype == np.float64:
        words, rel = _stream(seed, offset, n, 2, _TAG_UNIFORM)
        i = 2 * (rel % 2)
        k = (words[i, rel // 2] << np.uint64(20)) | (words[i + 1, rel // 2] >> np.uint64(12))   # top 52 bits
        x = (k.astype(np.float64) + 0.5) / 2.0 ** 52            # (2k + 1) 2^-53: k < 2^52 is exact in float64
    else:
        raise TypeError(f"dtype must be float32 or float64, got {dtype}")
    return _fill(out, x.astype(dtype).reshape(shape))


def reparameterize(mu, logvar, seed, offset=0, n_samples=None, *, out=None):
    """mu + exp(logvar / 2) * eps with eps = randn(mu.shape, seed, offset + s * mu.size) for sample s."""
    mu, logvar = np.asarray(mu), np.asarray(logvar)
    k = 1 if n_samples is None else int(n_samples)
    eps = randn((k,) + mu.shape, seed, offset, mu.dtype).astype(mu.dtype)
    z = mu + np.exp(logvar / 2) * eps
    return _fill(out, z[0] if n_samples is None else z)


# -------------------------------------------------------------------------------------------------
# KL divergences (textbook form: log sigma ratios and variance ratios)
# -------------------------------------------------------------------------------------------------
def kl_standard_normal(mu, logvar, *, out=None):
    """sum over the last axis of 0.5 * (mu^2 + exp(logvar) - 1 - logvar)."""
    mu, logvar = np.asarray(mu), np.asarray(logvar)
    return _fill(out, 0.5 * np.sum(mu * mu + np.exp(logvar) - 1 - logvar, axis=-1))


def kl_standard_normal_backward(grad, mu, logvar, *, out=None):
    g = np.asarray(grad)[..., None]
    mu, logvar = np.asarray(mu), np.asarray(logvar)
    return _fill_many(out, (g * mu, g * 0.5 * (np.exp(logvar) - 1)))


def kl_normal(mu_q, logvar_q, mu_p, logvar_p, *, out=None):
    """sum of log(sigma_p / sigma_q) + (sigma_q^2 + (mu_q - mu_p)^2) / (2 sigma_p^2) - 1/2."""
    mq, lq, mp, lp = (np.asarray(a) for a in (mu_q, logvar_q, mu_p, logvar_p))
    var_p = np.exp(lp)
    terms = 0.5 * (lp - lq) + (np.exp(lq) + (mq - mp) ** 2) / (2 * var_p) - 0.5
    return _fill(out, np.sum(terms, axis=-1))


def kl_normal_backward(grad, mu_q, logvar_q, mu_p, logvar_p, *, out=None):
    g = np.asarray(grad)[..., None]
    mq, lq, mp, lp = (np.asarray(a) for a in (mu_q, logvar_q, mu_p, logvar_p))
    var_p = np.exp(lp)
    dmq = g * (mq - mp) / var_p
    dlq = g * (0.5 * np.exp(lq) / var_p - 0.5)
    dlp = g * (0.5 - 0.5 * (np.exp(lq) + (mq - mp) ** 2) / var_p)
    return _fill_many(out, (dmq, dlq, -dmq, dlp))


# -------------------------------------------------------------------------------------------------
# Log-likelihoods
# -------------------------------------------------------------------------------------------------
def _softplus(x):
    return np.logaddexp(np.zeros_like(x), x)


def _sigmoid(x):
    # exp of a non-positive number only: no overflow for any finite x.
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def bernoulli_log_prob(x, logits, *, out=None):
    """sum over the last axis of x * l - softplus(l)."""
    x, logits = np.asarray(x), np.asarray(logits)
    return _fill(out, np.sum(x * logits - _softplus(logits), axis=-1))


def bernoulli_log_prob_and_grad(x, logits, *, out=None):
    x, logits = np.asarray(x), np.asarray(logits)
    return _fill_many(out, (bernoulli_log_prob(x, logits), x - _sigmoid(logits)))


def bernoulli_log_prob_backward(grad, x, logits, *, out=None):
    g = np.asarray(grad)[..., None]
    x, logits = np.asarray(x), np.asarray(logits)
    return _fill(out, g * (x - _sigmoid(logits)))


def normal_log_prob(x, mean, logvar, *, out=None):
    """sum over the last axis of -0.5 log(2 pi var) - (x - mean)^2 / (2 var), var = exp(logvar)."""
    x, mean, logvar = (np.asarray(a) for a in (x, mean, logvar))
    var = np.exp(logvar)
    log2pi = np.log(_two_pi(x.dtype.type))
    return _fill(out, np.sum(-0.5 * (log2pi + logvar) - (x - mean) ** 2 / (2 * var), axis=-1))


def normal_log_prob_and_grad(x, mean, logvar, *, out=None):
    x, mean, logvar = (np.asarray(a) for a in (x, mean, logvar))
    var = np.exp(logvar)
    return _fill_many(out, (normal_log_prob(x, mean, logvar), (x - mean) / var,
                            0.5 * (x - mean) ** 2 / var - 0.5))


def normal_log_prob_backward(grad, x, mean, logvar, *, out=None):
    g = np.asarray(grad)[..., None]
    x, mean, logvar = (np.asarray(a) for a in (x, mean, logvar))
    var = np.exp(logvar)
    return _fill_many(out, (g * (x - mean) / var, g * (0.5 * (x - mean) ** 2 / var - 0.5)))


def standard_normal_log_prob(z, *, out=None):
    z = np.asarray(z)
    log2pi = np.log(_two_pi(z.dtype.type))
    return _fill(out, np.sum(-0.5 * log2pi - 0.5 * z * z, axis=-1))


def standard_normal_log_prob_and_grad(z, *, out=None):
    z = np.asarray(z)
    return _fill_many(out, (standard_normal_log_prob(z), -z))


# -------------------------------------------------------------------------------------------------
# The fused latent pair, as the composition of the pieces above
# -------------------------------------------------------------------------------------------------
def latent_forward(mu, logvar, seed, offset=0, *, out=None):
    """(reparameterize(mu, logvar, seed, offset), kl_standard_normal(mu, logvar))."""
    return _fill_many(out, (reparameterize(mu, logvar, seed, offset), kl_standard_normal(mu, logvar)))


def latent_backward(dz, mu, logvar, seed, offset=0, kl_weight=1.0, *, out=None):
    """Gradient of sum(dz * z) + kl_weight * sum(kl): z = mu + sigma eps, dz/dlogvar = sigma eps / 2."""
    dz, mu, logvar = (np.asarray(a) for a in (dz, mu, logvar))
    eps = randn(mu.shape, seed, offset, mu.dtype).astype(mu.dtype)
    sigma = np.exp(logvar / 2)
    w = mu.dtype.type(kl_weight)
    return _fill_many(out, (dz + w * mu, dz * sigma * eps / 2 + w * (np.exp(logvar) - 1) / 2))


def latent_vjp(dz, dkl, mu, logvar, seed, offset=0, *, out=None):
    """Gradient of sum(dz * z) + sum(dkl * kl): latent_backward with the KL weight dkl[row] in each row."""
    dz, mu, logvar = (np.asarray(a) for a in (dz, mu, logvar))
    w = np.asarray(dkl, dtype=mu.dtype)[..., None]
    eps = randn(mu.shape, seed, offset, mu.dtype).astype(mu.dtype)
    sigma = np.exp(logvar / 2)
    return _fill_many(out, (dz + w * mu, dz * sigma * eps / 2 + w * (np.exp(logvar) - 1) / 2))


# -------------------------------------------------------------------------------------------------
# AdamW (Loshchilov & Hutter; PyTorch's torch.optim.AdamW update order)
# -------------------------------------------------------------------------------------------------
def adam_step(param, grad, m, v, step, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0):
    """One AdamW step in place on param, m, v; returns param."""
    m[...] = beta1 * m + (1 - beta1) * grad
    v[...] = beta2 * v + (1 - beta2) * grad * grad
    m_hat = m / (1 - beta1 ** step)
    v_hat = v / (1 - beta2 ** step)
    param *= 1 - lr * weight_decay
    param -= lr * m_hat / (np.sqrt(v_hat) + eps)
    return param
