"""The problems AIS and BDMC (annealing.py) solve: a batch of data points, each with a normalised diagonal
Gaussian start f0 and an unnormalised target f1 whose normaliser is wanted (``AISProblem``); the VAE's
log p(x) as one (``VAEProblem``, with its fixed decoder and encoder blocks of points); and data simulated
from a VAE with the exact latent that generated it (``simulate``, what BDMC needs).
"""
from __future__ import annotations

import abc

import numpy as np

from .. import kernels as ops
from ..kernels import validate as V
from ..random import derive_seed

__all__ = ["AISProblem", "VAEProblem", "simulate", "decoder_block_points", "ENCODER_BLOCK_POINTS", "STARTS"]

STARTS = ("prior", "encoder")


class AISProblem(abc.ABC):
    """The interface ``ais`` and ``bdmc`` accept (subclass it, or supply any object with these members).

    ``dim``, ``n_points``: ints; ``initial_mean``, ``initial_logvar``: (n_points, dim) float64, the
    normalised initial density f0_i = N(m_i, diag exp(lv_i)); ``log_target_and_grad(Z)``: for Z
    (n_points, chains, dim) float64, returns (log f1 (n_points, chains), its gradient in z (n_points, chains,
    dim)), float64. ``log_target(Z)`` (log f1 only, used by the random walk) defaults to the first half;
    ``grad_log_target(Z)`` (the gradient only, used by all but the last leapfrog step of a trajectory)
    defaults to the second half: override it when the gradient alone is cheaper, as VAEProblem does.
    A NaN or +inf log f1 counts as -inf (density 0): such a proposal is rejected, as is one with a
    non-finite gradient or position (the problem is never called with a non-finite Z). The problem is
    called once per leapfrog step with all n_points x chains rows. Example (f1_i = exp(a_i) N(0, I), so
    log Z_i = a_i)::

        class Scaled(AISProblem):
            def __init__(self, a, dim):
                self.a, self.dim, self.n_points = np.asarray(a, float), dim, len(a)
                self.initial_mean = np.ones((len(a), dim)); self.initial_logvar = np.zeros((len(a), dim))
            def log_target_and_grad(self, Z):
                return self.a[:, None] - 0.5 * (Z ** 2).sum(-1) - 0.5 * self.dim * np.log(2 * np.pi), -Z

        ais(Scaled([0.0, 3.0], 2), n_steps=200, seed=0).log_z     # ~ [0, 3]
    """

    dim: int
    n_points: int
    initial_mean: np.ndarray
    initial_logvar: np.ndarray

    @abc.abstractmethod
    def log_target_and_grad(self, Z):
        """(log f1 (n_points, chains), its gradient in z (n_points, chains, dim)) at Z (n_points, chains, dim)."""

    def log_target(self, Z):
        return self.log_target_and_grad(Z)[0]

    def grad_log_target(self, Z):
        return self.log_target_and_grad(Z)[1]


class VAEProblem(AISProblem):
    """log p(x_i) of a :class:`vaekernels.VAE` for the rows of X: f1_i(z) = p(x_i | z) p(z), p(z) = N(0, I).

    start="prior": f0 = p(z), so f_b = p(z) p(x|z)^b; start="encoder": f0 = q(z | x_i) of the encoder, the path
    q^(1-b) p(x, z)^b (shorter when q is good). log p(x|z) and its gradient in z come from
    ``model.decoder_log_likelihood(X, Z, grad=True)`` (the decoder runs in the model's dtype; results are
    float64). The decoder runs on blocks of ``block_points`` data points (all their chains; default
    :func:`decoder_block_points`: about 1024 latent rows, at least one point) and the encoder on blocks of 8
    points: a GEMM may round a row differently in a matrix of another size, so fixed blocks make a point's
    numbers independent of the other points of the call whenever calls are cut at multiples of the block
    (``point_offset`` shards, vaekernels.distributed). Example::

        X, z = simulate(model, 20, seed=0)
        res = ais(VAEProblem(model, X, start="encoder"), n_steps=500, seed=1)   # = ais(model, X, start=...)
    """

    def __init__(self, model, X, start="prior", block_points=None):
        for attr in ("encode", "decoder_log_likelihood", "n_latent", "n_inputs", "dtype", "likelihood"):
            if not hasattr(model, attr):
                raise TypeError(f"model must be a vaekernels.VAE (missing {attr!r}), got {type(model).__name__}")
        if start not in STARTS:
            raise ValueError(f"start must be one of {STARTS}, got {start!r}")
        X = np.asarray(X)
        if X.dtype.kind not in "biuf":
            raise TypeError(f"X must be a real array, got dtype {X.dtype}")
        if X.ndim != 2 or X.shape[1] != model.n_inputs or X.shape[0] < 1:
            raise ValueError(f"X must have shape (n >= 1, {model.n_inputs}), got {X.shape}")
        if not np.all(np.isfinite(X)):
            raise ValueError("X contains NaN or inf")
        if model.likelihood == "bernoulli" and (X.min() < 0 or X.max() > 1):
            raise ValueError(f"X must lie in [0, 1] for the Bernoulli likelihood, got [{X.min()}, {X.max()}]")
        self.model, self.start = model, start
        self.block_points = None if block_points is None else V.integer("block_points", block_points, 1, 1 << 31)
        self.X = np.ascontiguousarray(X, dtype=model.dtype)
        self.n_points, self.dim = self.X.shape[0], int(model.n_latent)
        if start == "prior":
            self.initial_mean = np.zeros((self.n_points, self.dim))
            self.initial_logvar = np.zeros((self.n_points, self.dim))
        else:
            mu, logvar = model.encode(self.X, batch_size=ENCODER_BLOCK_POINTS)
            self.initial_mean, self.initial_logvar = mu.astype(np.float64), logvar.astype(np.float64)

    def _rows(self, Z):
        """Latent rows per decoder pass: a block of data points with all their chains (Z (n, C, d))."""
        chains = Z.shape[1] if Z.ndim == 3 else 1
        return decoder_block_points(chains, self.block_points) * chains

    def log_target_and_grad(self, Z):
        ll, dll = self.model.decoder_log_likelihood(self.X, Z, grad=True, batch_size=self._rows(Z))
        lp, dlp = ops.standard_normal_log_prob_and_grad(Z)
        return ll.astype(np.float64) + lp, dll.astype(np.float64) + dlp

    def log_target(self, Z):
        ll = self.model.decoder_log_likelihood(self.X, Z, batch_size=self._rows(Z))
        return ll.astype(np.float64) + ops.standard_normal_log_prob(Z)

    def grad_log_target(self, Z):
        _, dll = self.model.decoder_log_likelihood(self.X, Z, grad=True, value=False, batch_size=self._rows(Z))
        return dll.astype(np.float64) - Z   # + grad log N(z; 0, I)


ENCODER_BLOCK_POINTS = 8


def decoder_block_points(chains, block_points=None):
    """Data points per decoder pass of :class:`VAEProblem` (and ``VAEPosterior``): ``block_points`` if
    given, else the largest power of two <= 1024 / chains, at least 1 (the 784-200-200 decoder's passes over
    1024 rows: 6.4 ms per 1024 rows against 7.0 in blocks of 512 and 8.0 of 256; blocks of 128 rows cost up
    to 2x; with more than 1024 chains a block is one point). Shards of a distributed run are cut at
    multiples of both this and the encoder's block of 8 points."""
    if block_points is not None:
        return block_points
    per = 1024 // chains
    return 1 << (per.bit_length() - 1) if per > 0 else 1


def simulate(model, n, seed):
    """(X, z): z ~ p(z) = N(0, I), then x ~ p(x | z) from the VAE's decoder, n rows, reproducible by seed.

    z (n, n_latent) float64 (values representable in the model's dtype: the decoder sees them exactly) from
    ``randn`` key ``derive_seed(seed, "simulate", "z")`` (row i at positions i L ..); X (n, n_inputs) in
    the model's dtype: Bernoulli x_d = [u_d < sigmoid(logits_d)], Gaussian x = mean + exp(logvar / 2) eps,
    u / eps from key ``derive_seed(seed, "simulate", "x")`` (row i at positions i D ..). Each z[i] is an
    exact draw of p(z | X[i]), what :func:`bdmc` needs. Example::

        from vaekernels.mcmc import bdmc, simulate
        X, z = simulate(model, 100, seed=0)
        res = bdmc(model, X, z, n_steps=500, seed=1)
    """
    for attr in ("decode", "get_params", "n_latent", "n_inputs", "dtype", "likelihood"):
        if not hasattr(model, attr):
            raise TypeError(f"model must be a vaekernels.VAE (missing {attr!r}), got {type(model).__name__}")
    n, seed = V.integer("n", n, 1, 1 << 40), V.integer("seed", seed)
    L, D = model.n_latent, model.n_inputs
    z = ops.randn((n, L), derive_seed(seed, "simulate", "z"), 0, np.float64).astype(model.dtype)
    mean = model.decode(z).astype(np.float64)        # probabilities (Bernoulli) or the Gaussian mean
    key = derive_seed(seed, "simulate", "x")
    if model.likelihood == "bernoulli":
        X = ops.rand((n, D), key, 0, np.float64) < mean
    else:
        sd = np.exp(0.5 * model.get_params()["dec.logvar"].astype(np.float64))
        X = mean + sd * ops.randn((n, D), key, 0, np.float64)
    return X.astype(model.dtype), z.astype(np.float64)
