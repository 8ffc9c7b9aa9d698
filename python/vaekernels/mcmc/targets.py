"""Built-in MCMC targets. Their whole chain loop runs in C++ (GIL released, the thread team across chains); the
log-densities are written once in cpp/include/vaekernels/targets.hpp for the CPU and the GPU.

Each target is also callable from Python (``target.log_prob(Z)`` for Z of shape (chains, dim)), a NumPy
formula written independently of the C++ one, used by the tests and handy for plotting; and
``target.log_prob_and_grad(Z)`` evaluates the C++ density and its analytic gradient (what MALA and HMC use)
at any points.
"""
from __future__ import annotations

import numbers

import numpy as np

from .. import _core

_LOG_2PI = float(np.log(2.0 * np.pi))


def _finite_float(name, value, positive=False):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Real, np.floating, np.integer)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if not np.isfinite(value) or (positive and value <= 0):
        raise ValueError(f"{name} must be {'positive and ' if positive else ''}finite, got {value}")
    return value


def _real_array(name, a, ndim):
    a = np.asarray(a)
    if a.dtype.kind not in "fiu" or a.dtype == np.bool_:
        raise TypeError(f"{name} must be a real array, got dtype {a.dtype}")
    if a.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {a.shape}")
    a = np.ascontiguousarray(a, dtype=np.float64)
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must be finite (it contains NaN or inf)")
    return a


class Target:
    """Base class of the built-in targets (``dim`` and a NumPy ``log_prob``). Targets are read-only after
    construction: one instance may be sampled from many threads at once."""

    dim: int

    def log_prob(self, z):  # pragma: no cover - overridden
        raise TypeError(f"{type(self).__name__} does not define log_prob")

    def log_prob_and_grad(self, z):
        """(log p (chains,), grad log p (chains, dim)) at z (chains, dim) or (dim,), from the C++ formulas
        the sampler runs (targets.hpp): the same bits as inside ``sample``. Returns float64 arrays."""
        z = np.asarray(z)
        if z.dtype.kind not in "fiu" or z.dtype == np.bool_:
            raise TypeError(f"z must be a real array, got dtype {z.dtype}")
        single = z.ndim == 1
        z2 = np.ascontiguousarray(np.atleast_2d(z), dtype=np.float64)
        if z2.ndim != 2 or z2.shape[1] != self.dim:
            raise ValueError(f"z must have shape (chains, {self.dim}) or ({self.dim},), got {z.shape}")
        lp, grad = self._evaluate(z2, True)
        return (lp[0], grad[0]) if single else (lp, grad)

    def __call__(self, z):
        return self.log_prob(z)


class Gaussian(Target):
    """N(mean, cov): log p(x) = -0.5 (x - m)^T cov^-1 (x - m) - 0.5 log det(2 pi cov).

    cov is factorised once (Cholesky, in C++); a matrix that is not symmetric positive definite is a
    ValueError. Each step costs dim (dim + 1) / 2 multiply-adds per chain (a triangular solve).
    """

    def __init__(self, mean, cov):
        self.mean = _real_array("mean", mean, 1)
        self.cov = _real_array("cov", cov, 2)
        d = self.mean.shape[0]
        if d < 1:
            raise ValueError("mean must have at least one element")
        if self.cov.shape != (d, d):
            raise ValueError(f"cov must have shape ({d}, {d}) to match mean {self.mean.shape}, got {self.cov.shape}")
        if not np.allclose(self.cov, self.cov.T, rtol=1e-12, atol=0.0):
            raise ValueError("cov must be symmetric")
        self.chol, self.inv_chol = _core.mcmc_factor_covariance(self.cov)
        self.dim = d
        self.log_norm = float(-np.sum(np.log(np.diag(self.chol))) - 0.5 * d * _LOG_2PI)

    def log_prob(self, z):
        z = np.asarray(z, dtype=np.float64)
        diff = z.reshape(-1, self.dim) - self.mean
        sol = np.linalg.solve(self.cov, diff.T).T
        _, logdet = np.linalg.slogdet(self.cov)
        lp = -0.5 * np.sum(diff * sol, axis=-1) - 0.5 * (logdet + self.dim * _LOG_2PI)
        return lp.reshape(z.shape[:-1])

    def _run(self, args):
        return _core.mcmc_run_gaussian(self.mean, self.inv_chol, self.log_norm, *args)

    def _evaluate(self, z, grad):
        return _core.mcmc_evaluate_gaussian(self.mean, self.inv_chol, self.log_norm, z, grad)


class Banana(Target):
    """Haario et al. (1999)'s twisted Gaussian ("banana"), in ``dim >= 2`` dimensions:

        x1 ~ N(0, sigma1^2),  x2 | x1 ~ N(b (sigma1^2 - x1^2), 1),  x3.. ~ N(0, 1) independent;
        log p(x) = -x1^2 / (2 sigma1^2) - (x2 + b x1^2 - b sigma1^2)^2 / 2 - sum_{j>=3} x_j^2 / 2
                   - log(sigma1) - dim/2 log(2 pi).

    The defaults (b = 0.1, sigma1 = 10) give the benchmark target -x1^2/200 - (x2 + 0.1 x1^2 - 10)^2/2.
    Exact moments: mean 0; variances sigma1^2, 1 + 2 b^2 sigma1^4, then 1; all covariances 0.
    """

    def __init__(self, b=0.1, sigma1=10.0, dim=2):
        self.b = _finite_float("b", b)
        self.sigma1 = _finite_float("sigma1", sigma1, positive=True)
        if isinstance(dim, (bool, np.bool_)) or not isinstance(dim, (numbers.Integral, np.integer)):
            raise TypeError(f"dim must be an integer, got {type(dim).__name__}")
        if dim < 2:
            raise ValueError(f"dim must be >= 2, got {dim}")
        self.dim = int(dim)

    @property
    def mean(self):
        return np.zeros(self.dim)

    @property
    def variance(self):
        v = np.ones(self.dim)
        v[0] = self.sigma1 ** 2
        v[1] = 1.0 + 2.0 * self.b ** 2 * self.sigma1 ** 4
        return v

    def sample_exact(self, n, rng):
        """n independent exact draws (for starting chains at the target)."""
        z = rng.standard_normal((n, self.dim))
        z[:, 0] *= self.sigma1
        z[:, 1] += self.b * (self.sigma1 ** 2 - z[:, 0] ** 2)
        return z

    def log_prob(self, z):
        z = np.asarray(z, dtype=np.float64)
        x1, x2 = z[..., 0], z[..., 1]
        lp = -0.5 * (x1 / self.sigma1) ** 2 - 0.5 * (x2 - self.b * (self.sigma1 ** 2 - x1 ** 2)) ** 2
        lp = lp - 0.5 * np.sum(z[..., 2:] ** 2, axis=-1)
        return lp - np.log(self.sigma1) - 0.5 * self.dim * _LOG_2PI

    def _run(self, args):
        return _core.mcmc_run_banana(self.b, self.sigma1, *args)

    def _evaluate(self, z, grad):
        return _core.mcmc_evaluate_banana(self.b, self.sigma1, z, grad)


class LogisticRegression(Target):
    """Bayesian logistic regression: y_n ~ Bernoulli(sigmoid(X_n . beta)), beta ~ N(0, prior_scale^2 I).

    log p(beta) = sum_n [y_n eta_n - log(1 + e^eta_n)] - |beta|^2 / (2 prior_scale^2) - dim log(prior_scale
    sqrt(2 pi)), eta = X beta (the evidence is not included). X: (n_obs, dim); y: (n_obs,) of 0/1 (values in
    [0, 1] are accepted as soft labels). Add a column of ones to X for an intercept.
    """

    def __init__(self, X, y, prior_scale=1.0):
        self.X = _real_array("X", X, 2)
        self.y = _real_array("y", y, 1)
        if self.X.shape[1] < 1:
            raise ValueError("X must have at least one column")
        if self.y.shape[0] != self.X.shape[0]:
            raise ValueError(f"y must have shape ({self.X.shape[0]},) to match X {self.X.shape}, got {self.y.shape}")
        if np.any((self.y < 0) | (self.y > 1)):
            raise ValueError("y must lie in [0, 1]")
        self.prior_scale = _finite_float("prior_scale", prior_scale, positive=True)
        self.dim = self.X.shape[1]

    def log_prob(self, z):
        z = np.asarray(z, dtype=np.float64)
        eta = z @ self.X.T
        lik = np.sum(self.y * eta - np.logaddexp(0.0, eta), axis=-1)
        prior = -0.5 * np.sum(z ** 2, axis=-1) / self.prior_scale ** 2
        return lik + prior - self.dim * (np.log(self.prior_scale) + 0.5 * _LOG_2PI)

    def _run(self, args):
        return _core.mcmc_run_logistic(self.X, self.y, self.prior_scale, *args)

    def _evaluate(self, z, grad):
        return _core.mcmc_evaluate_logistic(self.X, self.y, self.prior_scale, z, grad)
