"""The posterior p(z|x) of a trained VAE as an MCMC target, and how the encoder's q(z|x) compares with it.

    log p(z | x) = log p(x | z) + log p(z) - log p(x),  p(z) = N(0, I),
    log p(x | z) = bernoulli_log_prob(x, decoder_logits(z))  or  normal_log_prob(x, decoder_mean(z), dec.logvar)

The target is a Python callable for vaekernels.mcmc.sample: the sampler hands it all chains' states at
once and the decoder runs on them as one batch (``VAE.decoder_log_likelihood``, the model's public decoder
API, which also gives the gradient in z). Several data points are sampled in one call: chains are grouped,
``chains_per_x`` consecutive chains per data point (row r of the state belongs to x[r // chains_per_x]).

The decoder runs in the model's dtype (float32 for most models): log p(x|z) then carries float32 rounding,
a deterministic function of z, so the chain targets that (very slightly perturbed) density exactly. It runs
on fixed blocks of data points (``block_points``, all their chains; problems.decoder_block_points), so a
chain's values do not depend on the other data points of the call: vaekernels.distributed cuts the chains
at those blocks and gets the single-process bits.
"""
from __future__ import annotations

import math
import numbers
import time

import numpy as np

from .. import kernels as ops
from .problems import ENCODER_BLOCK_POINTS, decoder_block_points
from .diagnostics import ess, rhat
from .sampler import sample

__all__ = ["VAEPosterior", "vae_posterior", "compare_posterior", "demo_section"]


class VAEPosterior:
    """log p(x|z) + log p(z) for each of n_x data points, as a batched target (see the module docstring).

    Attributes: x (n_x, D) in the model's dtype; chains_per_x; dim (= the model's n_latent);
    q_mean, q_logvar (n_x, L): the encoder's q(z|x). Evaluates through the model's evaluation methods, so it
    may be called from many threads at once (not while the model is being trained).
    """

    def __init__(self, model, x, chains_per_x=64, block_points=None):
        for attr in ("encode", "decoder_log_likelihood", "n_latent", "n_inputs", "dtype"):
            if not hasattr(model, attr):
                raise TypeError(f"model must be a trained vaekernels.VAE (missing {attr!r}), got {type(model).__name__}")
        x = np.asarray(x)
        if x.ndim == 1:
            x = x[None, :]
        if x.ndim != 2 or x.shape[1] != model.n_inputs:
            raise ValueError(f"x must have shape ({model.n_inputs},) or (n, {model.n_inputs}), got {x.shape}")
        if x.shape[0] < 1:
            raise ValueError("x must contain at least one data point")
        if x.dtype.kind not in "biuf":
            raise TypeError(f"x must be a real array, got dtype {x.dtype}")
        if isinstance(chains_per_x, (bool, np.bool_)) or not isinstance(chains_per_x, (numbers.Integral, np.integer)):
            raise TypeError(f"chains_per_x must be an integer, got {type(chains_per_x).__name__}")
        if chains_per_x < 1:
            raise ValueError(f"chains_per_x must be >= 1, got {chains_per_x}")
        self.model = model
        self.x = np.ascontiguousarray(x, dtype=model.dtype)
        self.chains_per_x = int(chains_per_x)
        self.dim = model.n_latent
        self.block_points = decoder_block_points(self.chains_per_x, block_points)
        mu, logvar = model.encode(self.x, batch_size=ENCODER_BLOCK_POINTS)
        self.q_mean = mu.astype(np.float64)
        self.q_logvar = logvar.astype(np.float64)

    @property
    def n_chains(self):
        return self.x.shape[0] * self.chains_per_x

    @property
    def block_chains(self):
        """Chains per decoder pass (block_points data points with all their chains)."""
        return self.block_points * self.chains_per_x

    def subset(self, start, stop):
        """The target of data points start .. stop - 1 alone (same model, chains per point and blocks)."""
        return VAEPosterior(self.model, self.x[start:stop], self.chains_per_x, self.block_points)

    def _latents(self, Z):
        """Z (n_x * k, L) as (n_x, k, L): k consecutive rows per data point."""
        Z = np.asarray(Z)
        n_x = self.x.shape[0]
        if Z.ndim != 2 or Z.shape[1] != self.dim or Z.shape[0] % n_x:
            raise ValueError(f"Z must have shape (a multiple of n_x = {n_x}, {self.dim}), got {Z.shape}")
        return Z.reshape(n_x, Z.shape[0] // n_x, self.dim)

    def log_likelihood(self, Z):
        """log p(x_r | z_r) for each row of Z (n_x * k, L): (n_x * k,) float64."""
        ll = self.model.decoder_log_likelihood(self.x, self._latents(Z), batch_size=self._rows(Z))
        return ll.reshape(-1).astype(np.float64)

    def _rows(self, Z):
        return self.block_points * (np.shape(Z)[0] // self.x.shape[0])

    def log_prob(self, Z):
        """log p(x|z) + log p(z) (the unnormalised log posterior) for each row of Z: (n_x * k,) float64."""
        Z = np.asarray(Z, dtype=np.float64)
        return self.log_likelihood(Z) + ops.standard_normal_log_prob(Z)

    def log_prob_and_grad(self, Z):
        """(log p(x|z) + log p(z), its gradient in z) for each row of Z: (n_x * k,), (n_x * k, L) float64.
        The decoder's gradient comes from its hand-written backward pass, batched over all chains."""
        Z = np.asarray(Z, dtype=np.float64)
        ll, dll = self.model.decoder_log_likelihood(self.x, self._latents(Z), grad=True, batch_size=self._rows(Z))
        lp, dlp = ops.standard_normal_log_prob_and_grad(Z)
        return ll.reshape(-1).astype(np.float64) + lp, dll.reshape(Z.shape).astype(np.float64) + dlp

    __call__ = log_prob

    def proposal(self):
        """(proposal_mean, proposal_logvar), each (n_chains, L): q(z|x) of each chain's data point."""
        k = self.chains_per_x
        return np.repeat(self.q_mean, k, axis=0), np.repeat(self.q_logvar, k, axis=0)

    def initial_points(self, seed):
        """One draw from q(z|x) per chain ((n_chains, L) float64, randn stream ``seed``)."""
        m, lv = self.proposal()
        return m + np.exp(0.5 * lv) * ops.randn(m.shape, seed, 0, np.float64)


def vae_posterior(model, x, chains_per_x=64):
    """The target log p(x|z) + log p(z) of a trained :class:`vaekernels.VAE` for data point(s) x.

    x: (D,) or (n_x, D). Returns a :class:`VAEPosterior`, a callable log_prob(Z) for
    :func:`vaekernels.mcmc.sample` with n_x * chains_per_x chains (chain r samples p(z | x[r // chains_per_x])).
    """
    return VAEPosterior(model, x, chains_per_x)


def _gaussian_kl(m0, c0, m1, c1):
    """KL(N(m0, c0) || N(m1, c1)) for full covariances."""
    d = m0.size
    c1_inv = np.linalg.inv(c1)
    diff = m1 - m0
    _, ld0 = np.linalg.slogdet(c0)
    _, ld1 = np.linalg.slogdet(c1)
    return 0.5 * (np.trace(c1_inv @ c0) + diff @ c1_inv @ diff - d + ld1 - ld0)


def compare_posterior(model, x, *, chains_per_x=32, n_draws=1000, n_warmup=1000, seed=0, n_importance=2000,
                      plot=None):
    """How q(z|x) differs from MCMC samples of p(z|x), for each data point in x ((D,) or (n_x, D)).

    Runs random-walk MH on p(z|x) (chains started at draws from q, step sizes adapted per chain) and the
    independence sampler driven by q (proposal N(mu(x), exp(logvar(x))), the MH correction included), each
    with ``chains_per_x`` chains per data point. Returns a dict with, per data point (lists of length n_x):

    * ``mh_mean``, ``mh_sd`` (L,): posterior mean and sd from the random-walk draws; ``q_mean``, ``q_sd``;
    * ``kl_q_p``: an estimate of KL(q(z|x) || p(z|x)) = log p(x) - ELBO(x), with log p(x) by importance
      sampling from q (``n_importance`` samples) and the ELBO averaged over the same samples (so it is
      >= 0 by Jensen up to Monte Carlo error, and exact as n_importance grows when q covers p);
    * ``kl_gaussian``: KL(q || N(mh mean, mh covariance)), the Gaussian fit to the MH draws;
    * ``independence_accept``: the independence sampler's acceptance rate (1 when q = p(z|x));
    * ``rw_accept``, ``ess_min`` (the smallest bulk ESS over latent dimensions), ``rhat_max``;
    and ``seconds`` (wall time of the two samplers). ``plot``: a file name to draw, for up to four data
    points, the MH draws of the first two latent dimensions and q's 1- and 2-sd ellipses (matplotlib,
    imported only then). The figure's path is returned as ``plot``.
    """
    post = vae_posterior(model, x, chains_per_x)
    n_x, k, L = post.x.shape[0], post.chains_per_x, post.dim
    t0 = time.perf_counter()
    x0 = post.initial_points(seed)
    rw = sample(post, x0, n_draws=n_draws, n_warmup=n_warmup, seed=seed)
    qm, qlv = post.proposal()
    ind = sample(post, x0, n_draws=n_draws, n_warmup=0, seed=seed + 1, proposal="independent",
                 proposal_mean=qm, proposal_logvar=qlv)
    seconds = time.perf_counter() - t0

    # log p(x) and the ELBO from the same importance samples z_s ~ q(z|x), s < n_importance.
    imp = VAEPosterior(model, post.x, n_importance)
    m, lv = imp.proposal()
    eps = ops.randn(m.shape, seed + 2, 0, np.float64)
    z = m + np.exp(0.5 * lv) * eps
    log_q = (-0.5 * (eps ** 2 + lv + math.log(2 * math.pi))).sum(1)
    log_w = (imp.log_prob(z) - log_q).reshape(n_x, n_importance)
    mx = log_w.max(axis=1)
    log_px = mx + np.log(np.mean(np.exp(log_w - mx[:, None]), axis=1))
    elbo = log_w.mean(axis=1)

    out = {"n_x": n_x, "latent_dim": L, "chains_per_x": k, "n_draws": n_draws, "n_warmup": n_warmup,
           "mh_mean": [], "mh_sd": [], "q_mean": [], "q_sd": [], "kl_q_p": [], "kl_gaussian": [],
           "log_px": [], "elbo": [], "independence_accept": [], "rw_accept": [], "ess_min": [], "rhat_max": [],
           "seconds": seconds}
    for i in range(n_x):
        s = rw.samples[i * k:(i + 1) * k]
        flat = s.reshape(-1, L)
        mh_mean, mh_cov = flat.mean(0), np.atleast_2d(np.cov(flat.T))
        q_mean, q_var = post.q_mean[i], np.exp(post.q_logvar[i])
        out["mh_mean"].append(mh_mean.tolist())
        out["mh_sd"].append(np.sqrt(np.diag(mh_cov)).tolist())
        out["q_mean"].append(q_mean.tolist())
        out["q_sd"].append(np.sqrt(q_var).tolist())
        out["kl_q_p"].append(float(log_px[i] - elbo[i]))
        out["kl_gaussian"].append(float(_gaussian_kl(q_mean, np.diag(q_var), mh_mean, mh_cov)))
        out["log_px"].append(float(log_px[i]))
        out["elbo"].append(float(elbo[i]))
        out["independence_accept"].append(float(ind.accept_rate[i * k:(i + 1) * k].mean()))
        out["rw_accept"].append(float(rw.accept_rate[i * k:(i + 1) * k].mean()))
        out["ess_min"].append(float(ess(s).min()))
        out["rhat_max"].append(float(rhat(s).max()))
    if plot is not None:
        out["plot"] = _plot(post, rw, out, plot)
    return out


def _plot(post, rw, summary, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("plotting needs matplotlib: pip install 'vaekernels[plot]'") from e
    n = min(4, post.x.shape[0])
    k = post.chains_per_x
    d2 = min(2, post.dim)
    fig, axes = plt.subplots(1, n, figsize=(3.6 * n, 3.4), squeeze=False)
    t = np.linspace(0, 2 * np.pi, 200)
    for i in range(n):
        ax = axes[0, i]
        s = rw.samples[i * k:(i + 1) * k].reshape(-1, post.dim)
        s = s[:: max(1, s.shape[0] // 4000)]
        yv = s[:, 1] if d2 == 2 else np.zeros(len(s))
        ax.scatter(s[:, 0], yv, s=2, alpha=0.25, color="tab:blue", label="MH draws of p(z|x)")
        m, sd = post.q_mean[i], np.exp(0.5 * post.q_logvar[i])
        for r in (1, 2):
            ax.plot(m[0] + r * sd[0] * np.cos(t), (m[1] + r * sd[1] * np.sin(t)) if d2 == 2 else 0 * t,
                    color="tab:red", lw=1.2, label="q(z|x): 1, 2 sd" if r == 1 else None)
        ax.set_title(f"x[{i}]: KL(q||p) ~ {summary['kl_q_p'][i]:.2f}, ind. acc {summary['independence_accept'][i]:.2f}",
                     fontsize=8)
        ax.set_xlabel("z[0]")
        ax.set_ylabel("z[1]" if d2 == 2 else "")
    axes[0, 0].legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


def demo_section(model, X, out_dir, n_points=4, seed=0):
    """The MCMC part of ``vaekernels demo``: compare q(z|x) with p(z|x) for the first ``n_points`` rows of X.

    Writes ``out_dir/mcmc_posterior.png`` and returns a JSON-ready dict: the numbers of
    :func:`compare_posterior` (per data point) and summary lines (``summary``) for printing.
    """
    import os

    os.makedirs(out_dir, exist_ok=True)
    X = np.asarray(X)[:n_points]
    path = os.path.join(out_dir, "mcmc_posterior.png")
    # Sizes keep the demo to seconds for an MNIST-sized decoder: 16 chains x 400 draws per point (random
    # walk; ESS typically several hundred), 400 independence-sampler iterations, 1000 importance samples.
    res = compare_posterior(model, X, chains_per_x=16, n_draws=400, n_warmup=400, seed=seed, n_importance=1000,
                            plot=path)
    lines = [f"MCMC vs q(z|x) on {res['n_x']} data points (latent dim {res['latent_dim']}, "
             f"{res['chains_per_x']} chains x {res['n_draws']} draws each, {res['seconds']:.2f} s):"]
    for i in range(res["n_x"]):
        dm = np.abs(np.subtract(res["mh_mean"][i], res["q_mean"][i])).max()
        ratio = np.divide(res["q_sd"][i], res["mh_sd"][i])
        lines.append(f"  x[{i}]: KL(q||p) ~ {res['kl_q_p'][i]:.3f} nats, max |mean diff| {dm:.3f}, "
                     f"q sd / posterior sd in [{ratio.min():.2f}, {ratio.max():.2f}], "
                     f"independence-sampler acceptance {res['independence_accept'][i]:.2f}")
    res["summary"] = lines
    return res
