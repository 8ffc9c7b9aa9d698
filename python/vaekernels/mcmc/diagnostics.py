"""Convergence diagnostics of Vehtari, Gelman, Simpson, Carpenter & Buerkner (2021), "Rank-normalization,
folding, and localization: an improved R-hat", in NumPy (no SciPy needed), vectorised over dimensions.

Both take samples of shape (chains, draws, dim) (or (chains, draws)) and return (dim,) (or a scalar):

* ``ess``: bulk effective sample size: split chains, rank-normalise, then Geyer's initial monotone
  sequence estimator on the FFT autocovariance, as in Stan and ArviZ (``az.ess(method="bulk")``).
* ``rhat``: rank-normalised split R-hat, the larger of the bulk and the folded (tail) versions
  (``az.rhat(method="rank")``).
"""
from __future__ import annotations

import numpy as np

__all__ = ["ess", "rhat"]


# ---------------------------------------------------------------------------------------------------
# Inverse standard normal CDF: Wichura (1988), algorithm AS 241 (PPND16), relative error ~1e-16.
# ---------------------------------------------------------------------------------------------------
_A = [3.387132872796366608, 133.14166789178437745, 1971.5909503065514427, 13731.693765509461125,
      45921.953931549871457, 67265.770927008700853, 33430.575583588128105, 2509.0809287301226727]
_B = [1.0, 42.313330701600911252, 687.1870074920579083, 5394.1960214247511077, 21213.794301586595867,
      39307.89580009271061, 28729.085735721942674, 5226.495278852545925]
_C = [1.42343711074968357734, 4.6303378461565452959, 5.7694972214606914055, 3.64784832476320460504,
      1.27045825245236838258, 0.24178072517745061177, 0.0227238449892691845833, 7.7454501427834140764e-4]
_D = [1.0, 2.05319162663775882187, 1.6763848301838038494, 0.68976733498510000455, 0.14810397642748007459,
      0.0151986665636164571966, 5.475938084995344946e-4, 1.05075007164441684324e-9]
_E = [6.6579046435011037772, 5.4637849111641143699, 1.7848265399172913358, 0.29656057182850489123,
      0.026532189526576123093, 0.0012426609473880784386, 2.71155556874348757815e-5, 2.01033439929228813265e-7]
_F = [1.0, 0.59983220655588793769, 0.13692988092273580531, 0.0148753612908506148525,
      7.868691311456132591e-4, 1.8463183175100546818e-5, 1.4215117583164458887e-7, 2.04426310338993978564e-15]


def _poly(coef, x):
    acc = np.full_like(x, coef[-1])
    for c in coef[-2::-1]:
        acc = acc * x + c
    return acc


def _ndtri(p):
    """Inverse of the standard normal CDF for p in (0, 1)."""
    p = np.asarray(p, dtype=np.float64)
    q = p - 0.5
    out = np.empty_like(p)
    central = np.abs(q) <= 0.425
    r = 0.180625 - q[central] ** 2
    out[central] = q[central] * _poly(_A, r) / _poly(_B, r)
    tail = ~central
    r = np.where(q[tail] < 0, p[tail], 1.0 - p[tail])
    r = np.sqrt(-np.log(r))
    near = r <= 5.0
    val = np.where(near, _poly(_C, r - 1.6) / _poly(_D, r - 1.6), _poly(_E, r - 5.0) / _poly(_F, r - 5.0))
    out[tail] = np.where(q[tail] < 0, -val, val)
    return out


# ---------------------------------------------------------------------------------------------------
# Building blocks (arrays are (chains, draws, k): k independent quantities at once)
# ---------------------------------------------------------------------------------------------------
def _as_3d(samples, name="samples"):
    a = np.asarray(samples)
    if a.dtype.kind not in "fiu" or a.dtype == np.bool_:
        raise TypeError(f"{name} must be a real array, got dtype {a.dtype}")
    a = a.astype(np.float64, copy=False)
    scalar = a.ndim == 2
    if scalar:
        a = a[:, :, None]
    if a.ndim != 3:
        raise ValueError(f"{name} must have shape (chains, draws, dim) or (chains, draws), got {a.shape}")
    if a.shape[1] < 4:
        raise ValueError(f"{name} needs at least 4 draws per chain, got {a.shape[1]}")
    return a, scalar


def _split(a):
    half = a.shape[1] // 2
    return np.concatenate([a[:, :half], a[:, a.shape[1] - half:]], axis=0)


def _rank_normalise(a):
    """z = Phi^-1((r - 3/8) / (S + 1/4)), r the average rank over all chains and draws (per quantity)."""
    c, n, k = a.shape
    flat = a.reshape(c * n, k)
    order = np.argsort(flat, axis=0, kind="stable")
    sorted_vals = np.take_along_axis(flat, order, axis=0)
    ranks = np.empty_like(flat)
    pos = np.arange(1, c * n + 1, dtype=np.float64)
    for j in range(k):
        v = sorted_vals[:, j]
        # Average rank of each run of ties: the midpoint of the run's first and last positions.
        starts = np.r_[True, v[1:] != v[:-1]]
        run_id = np.cumsum(starts) - 1
        first = pos[starts]
        last = np.r_[first[1:] - 1, c * n]
        ranks[order[:, j], j] = 0.5 * (first + last)[run_id]
    return _ndtri((ranks - 0.375) / (c * n + 0.25)).reshape(c, n, k)


def _rhat_basic(a):
    n = a.shape[1]
    chain_mean = a.mean(axis=1)
    within = a.var(axis=1, ddof=1).mean(axis=0)
    between = n * chain_mean.var(axis=0, ddof=1)
    return np.sqrt((between / within + n - 1) / n)


def _autocov(a):
    """Autocovariance of each chain along axis 1 (biased, divided by n), by FFT."""
    n = a.shape[1]
    m = 1
    while m < 2 * n:
        m *= 2
    centred = a - a.mean(axis=1, keepdims=True)
    f = np.fft.rfft(centred, n=m, axis=1)
    return np.fft.irfft(f * np.conj(f), n=m, axis=1)[:, :n] / n


def _ess_basic(a):
    """Geyer's initial monotone sequence estimator (Stan's, as in ArviZ), per quantity."""
    c, n, k = a.shape
    acov = _autocov(a)
    mean_var = acov[:, 0].mean(axis=0) * n / (n - 1.0)
    var_plus = mean_var * (n - 1.0) / n
    if c > 1:
        var_plus = var_plus + a.mean(axis=1).var(axis=0, ddof=1)
    out = np.empty(k)
    mean_acov = acov.mean(axis=0)
    for j in range(k):
        if a[..., j].max() - a[..., j].min() < np.finfo(float).resolution:
            out[j] = c * n
            continue
        rho = 1.0 - (mean_var[j] - mean_acov[:, j]) / var_plus[j]
        rho_t = np.zeros(n)
        rho_t[0] = 1.0
        rho_even, rho_odd = 1.0, rho[1]
        rho_t[1] = rho_odd
        t = 1
        while t < n - 3 and rho_even + rho_odd > 0.0:
            rho_even, rho_odd = rho[t + 1], rho[t + 2]
            if rho_even + rho_odd >= 0:
                rho_t[t + 1], rho_t[t + 2] = rho_even, rho_odd
            t += 2
        max_t = t - 2
        if rho_even > 0:
            rho_t[max_t + 1] = rho_even
        t = 1
        while t <= max_t - 2:   # initial monotone sequence
            if rho_t[t + 1] + rho_t[t + 2] > rho_t[t - 1] + rho_t[t]:
                rho_t[t + 1] = rho_t[t + 2] = (rho_t[t - 1] + rho_t[t]) / 2.0
            t += 2
        tau = -1.0 + 2.0 * rho_t[:max_t + 1].sum() + rho_t[max_t + 1:max_t + 2].sum()
        tau = max(tau, 1.0 / np.log10(c * n))
        out[j] = np.nan if np.isnan(rho_t).any() else c * n / tau
    return out


# ---------------------------------------------------------------------------------------------------
# Public diagnostics
# ---------------------------------------------------------------------------------------------------
def ess(samples):
    """Bulk effective sample size per dimension: (chains, draws, dim) -> (dim,) ((chains, draws) -> float).

    Split chains, rank-normalise, Geyer's initial monotone sequence (Vehtari et al. 2021). Matches
    ``arviz.ess(..., method="bulk")``. Needs at least 4 draws per chain.
    """
    a, scalar = _as_3d(samples)
    out = _ess_basic(_rank_normalise(_split(a)))
    return float(out[0]) if scalar else out


def rhat(samples):
    """Rank-normalised split R-hat per dimension: the larger of the bulk and tail (folded) values.

    (chains, draws, dim) -> (dim,) ((chains, draws) -> float). Matches ``arviz.rhat(..., method="rank")``.
    Values above about 1.01 suggest the chains have not mixed.
    """
    a, scalar = _as_3d(samples)
    bulk = _rhat_basic(_rank_normalise(_split(a)))
    folded = np.abs(a - np.median(a.reshape(-1, a.shape[2]), axis=0))
    tail = _rhat_basic(_rank_normalise(_split(folded)))
    out = np.maximum(bulk, tail)
    return float(out[0]) if scalar else out
