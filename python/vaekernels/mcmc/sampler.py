"""Batched Metropolis-Hastings: many chains at once, proposals and accept/reject in C++.

Random stream (see cpp/include/vaekernels/mcmc.hpp): Philox4x32-10 keyed by ``seed``, stream tag 2,
sub-stream = chain id = ``chain_offset + row``; at iteration ``step`` (warm-up included) the chain uses
blocks ``step * B + k``. Random walk: blocks k < ceil(dim/4) give the proposal normals 4k .. 4k+3 (float32
Box-Muller, exactly symmetric), the acceptance uniform comes from the last normal block's spare words when
dim % 4 is 1 or 2 (B = ceil(dim/4)), else from one more block (B = ceil(dim/4) + 1). Independence proposal:
blocks k < ceil(dim/2) give the normals 2k, 2k+1 (float64 Box-Muller), one more block the acceptance uniform
(B = ceil(dim/2) + 1). MALA and HMC: the same layout as the independence proposal (the normals are the
momentum), the last block's second pair of words the uniform v of HMC's step-size jitter, h = s (1 +
jitter (2v - 1)). Hence results do not depend on the thread count,
and sampling rows [a, b) of x0 with ``chain_offset=a`` reproduces those chains bit for bit (unless
``adapt_covariance=True``, which pools warm-up draws over the chains of one call).
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass, field

import numpy as np

from .. import _core
from .._progress import progress_bar
from ..kernels import validate as V
from .targets import Target

__all__ = ["sample", "MCMCResult"]

_PROPOSALS = {"random_walk": 0, "independent": 1, "mala": 2, "hmc": 3}
DEFAULT_ACCEPT = {"random_walk": 0.234, "independent": 0.234, "mala": 0.574, "hmc": 0.65}
_GRADIENT = ("mala", "hmc")
# Columns of the C++ sampler's per-draw statistics (cpp/src/mcmc.hpp, enum Stat), under ArviZ's names.
_STATS = ("acceptance_rate", "step_size", "energy", "diverging")


@dataclass
class MCMCResult:
    """Output of :func:`sample`.

    samples (chains, draws, dim); log_prob (chains, draws) the target's log-density at each draw;
    accept_rate (chains,) over the post-warm-up iterations; step_size (chains,) the frozen step size (the
    random walk's scale; MALA's and HMC's leapfrog step before jitter; 1.0 for the independence proposal);
    n_nan (chains,) proposals rejected because the target was NaN or +inf, or whose MALA/HMC trajectory met
    a non-finite gradient (all iterations, warm-up included);
    proposal_chol (dim, dim) the factor L of the random-walk proposal x' = x + step_size * L eps (identity
    unless adapt_covariance=True); n_divergent (chains,) MALA/HMC iterations after warm-up whose energy
    error exceeded 1000 or was not finite (as Stan counts them; 0 for the other proposals).
    sample_stats: per draw, (chains, draws) arrays under ArviZ's names: ``acceptance_rate`` (the iteration's
    min(1, e^delta)), ``step_size`` (the one used, after HMC's jitter); for MALA and HMC also ``energy`` (the
    Hamiltonian -log p + |p|^2/2 at the end of the iteration), ``diverging`` (bool) and ``n_steps`` (leapfrog
    steps). warmup: with keep_warmup=True and n_warmup > 0, a dict of the warm-up iterations' ``samples``
    (chains, n_warmup, dim), ``log_prob`` and ``sample_stats``; else None. inv_metric: MALA/HMC, (chains, dim)
    the diagonal inverse metric used after warm-up (ones unless adapt_metric=True); None otherwise. Plain
    data: safe to share between threads once returned.
    """

    samples: np.ndarray
    log_prob: np.ndarray
    accept_rate: np.ndarray
    step_size: np.ndarray
    n_nan: np.ndarray
    proposal_chol: np.ndarray
    settings: dict = field(default_factory=dict)
    n_divergent: np.ndarray = None
    sample_stats: dict = field(default_factory=dict)
    warmup: dict = None
    inv_metric: np.ndarray = None

    def to_arviz(self, var_names=None):
        """An ``arviz.InferenceData`` with one variable ``z`` of shape (chain, draw, dim) (or one variable
        per name in ``var_names``), the sample statistics (``lp``, ``acceptance_rate``, ``step_size``, and for
        MALA/HMC ``energy``, ``diverging``, ``n_steps``), and with keep_warmup=True the groups
        ``warmup_posterior`` and ``warmup_sample_stats``; so ``az.summary``, ``az.plot_trace`` and
        ``az.bfmi`` (MALA/HMC) work on it."""
        try:
            import arviz as az
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise ImportError("to_arviz needs ArviZ: pip install 'vaekernels[mcmc]' (or pip install arviz)") from e
        dim = self.samples.shape[2]
        if var_names is None:
            names = None
        else:
            names = list(var_names)
            if len(names) != dim or not all(isinstance(n, str) for n in names):
                raise ValueError(f"var_names must be {dim} strings, got {var_names!r}")

        def posterior(samples):
            return {"z": samples} if names is None else {n: samples[:, :, i] for i, n in enumerate(names)}

        kwargs = {"posterior": posterior(self.samples), "sample_stats": {"lp": self.log_prob, **self.sample_stats}}
        if self.warmup is not None:
            kwargs.update(warmup_posterior=posterior(self.warmup["samples"]),
                          warmup_sample_stats={"lp": self.warmup["log_prob"], **self.warmup["sample_stats"]},
                          save_warmup=True)
        return az.from_dict(**kwargs)


def _bar_report(bar):
    def report(done, total):
        bar.update(done - bar.n)
    return report


def _int(name, value, lo, hi=1 << 62):
    return V.integer(name, value, lo, hi)


def _chain_matrix(name, a, chains, dim):
    a = np.asarray(a)
    if a.dtype != np.float64:
        raise TypeError(f"{name} must have dtype float64, got {a.dtype}")
    if a.shape != (chains, dim):
        raise ValueError(f"{name} must have shape ({chains}, {dim}) like x0, got {a.shape}")
    a = np.ascontiguousarray(a)
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must be finite (it contains NaN or inf)")
    return a


def _stats_dict(stats, gradient, n_leapfrog):
    """The C++ sampler's (chains, draws, 4) statistics as ArviZ's sample_stats."""
    out = {"acceptance_rate": np.ascontiguousarray(stats[:, :, 0]), "step_size": np.ascontiguousarray(stats[:, :, 1])}
    if gradient:
        out["energy"] = np.ascontiguousarray(stats[:, :, 2])
        out["diverging"] = stats[:, :, 3] != 0.0
        out["n_steps"] = np.full(stats.shape[:2], n_leapfrog, dtype=np.int64)
    return out


def _gradient_target(target):
    """A Python target for MALA/HMC: its log_prob_and_grad method when it has one, else the callable itself
    (which must then return (log_prob, grad))."""
    fn = getattr(target, "log_prob_and_grad", None)
    return fn if callable(fn) else target


def sample(target, x0, *, n_draws, seed, n_warmup=1000, proposal="random_walk", step_size="adapt",
           target_accept=None, adapt_covariance=False, thin=1, chain_offset=0, proposal_mean=None,
           proposal_logvar=None, n_leapfrog=None, jitter=0.0, adapt_metric=False, keep_warmup=False, progress=True,
           _check_only=False):
    """Run one Metropolis-Hastings chain per row of ``x0``.

    target: a built-in target (:class:`Gaussian`, :class:`Banana`, :class:`LogisticRegression`), whose
        whole chain loop runs in C++ with the GIL released and the thread team across chains; or a Python callable
        ``log_prob(Z) -> (chains,)`` for Z (chains, dim) float64, called once per iteration for all chains
        (Z is a fresh array each time). NaN or +inf values are rejections (counted in ``n_nan``), -inf is
        zero density; an exception raised by the callable propagates unchanged. For proposal="mala" or
        "hmc" a Python target gives gradients too: its method ``log_prob_and_grad(Z)`` if it has one (as
        :func:`vae_posterior` does, through the decoder's backward pass), else the callable itself must return
        ``(log_prob (chains,), grad (chains, dim))``; it is called once per leapfrog step. The built-in targets
        have analytic gradients in C++.
    x0: (chains, dim) float64 starting points (finite).
    n_draws: draws kept per chain (>= 1), after ``n_warmup`` warm-up iterations and thinning by ``thin``
        (n_warmup + n_draws * thin iterations in all).
    seed: int in [0, 2**64). chain_offset: chain id of row 0 (ids must stay below 2**32).
    proposal: "random_walk" (x' = x + step_size L eps), "independent" (x' ~ N(proposal_mean,
        exp(proposal_logvar)) per chain, both (chains, dim), with the MH correction q(x)/q(x')), "mala"
        (Langevin: x' = x + h^2/2 grad log p(x) + h eps, with the MH correction) or "hmc" (Hamiltonian Monte
        Carlo: momentum p ~ N(0, I), ``n_leapfrog`` leapfrog steps of size h, accepted with probability
        min(1, e^(H(x, p) - H(x', p'))), H = -log p + |p|^2/2). MALA is computed as one leapfrog step, which
        is the same proposal and the same acceptance ratio.
    step_size: "adapt" (start at 2.38/sqrt(dim) for the random walk, 1.65 dim^(-1/6) for MALA, dim^(-1/4)
        for HMC, and adapt each chain's log step by Robbins-Monro toward ``target_accept`` during warm-up:
        log s += (alpha_t - target_accept)/sqrt(t+1), frozen at the average of log s over the second half of
        warm-up), or a positive float or (chains,) array of fixed step sizes (not adapted). Not for
        "independent".
    target_accept: the acceptance probability the adaptation aims at; default 0.234 (random walk), 0.574
        (MALA), 0.65 (HMC).
    n_leapfrog: HMC's leapfrog steps per iteration (>= 1, default 10; each costs one gradient evaluation).
    jitter: HMC only: each iteration's step size is drawn uniformly from s (1 +- jitter), jitter in [0, 1),
        from the chain's own stream (this breaks the periodicity of fixed-length trajectories).
    adapt_metric: MALA and HMC: estimate each chain's diagonal inverse metric (mass matrix) from its own
        warm-up draws (n_warmup >= 8): the variance of the chain's draws over warm-up iterations [W/4, W/2)
        (run with the identity), then again over [W/2, 3W/4) (run with that estimate), regularised as Stan
        does (n/(n+5) var + 1e-3 5/(n+5)); the step size adapts anew after each estimate. Per chain, so
        draws stay independent of the chain partition. For targets whose coordinates have very different
        scales (e.g. VAE posteriors).
    keep_warmup: also return the warm-up iterations (``warmup``, and the warm-up groups of ``to_arviz``).
    adapt_covariance: estimate the proposal covariance from warm-up draws pooled over all chains of this
        call (first half of warm-up isotropic, covariance from its second half, step sizes adapted afresh
        in the second half of warm-up). Pooling couples the chains: the draws then depend on which chains
        are sampled together (chain-partition independence no longer holds; thread-count independence does).
    Everything is frozen after warm-up, so the kept draws come from a valid MH chain.
    progress: True (a tqdm bar on stderr when it is a terminal), False, or a callable ``progress(done,
        total)`` called with the iterations done about every 0.05 s (from the calling thread).

    Ctrl-C stops a run within about 0.05 s plus one iteration (KeyboardInterrupt; no thread keeps
    computing); so does an exception raised by ``progress``. Chunking the run for that changes no draw.

    Returns an :class:`MCMCResult`.
    """
    # ---- target and starting points -----------------------------------------------------------------
    builtin = isinstance(target, Target)
    if not builtin and not callable(target):
        raise TypeError(f"target must be a vaekernels.mcmc target or a callable log_prob(Z), got "
                        f"{type(target).__name__}")
    if not isinstance(x0, np.ndarray):
        x0 = np.asarray(x0, dtype=np.float64)
    if x0.dtype != np.float64:
        raise TypeError(f"x0 must have dtype float64, got {x0.dtype}")
    if x0.ndim != 2:
        raise ValueError(f"x0 must be 2-D (chains, dim), got shape {x0.shape}")
    chains, dim = x0.shape
    if chains < 1 or dim < 1:
        raise ValueError(f"x0 must have at least one chain and one coordinate, got shape {x0.shape}")
    if builtin and dim != target.dim:
        raise ValueError(f"x0 has dim {dim} but {type(target).__name__} has dim {target.dim}")
    x0 = np.ascontiguousarray(x0)
    if not np.all(np.isfinite(x0)):
        raise ValueError("x0 must be finite (it contains NaN or inf)")

    # ---- counts and random stream -------------------------------------------------------------------
    n_draws = _int("n_draws", n_draws, 1)
    n_warmup = _int("n_warmup", n_warmup, 0)
    thin = _int("thin", thin, 1)
    seed = V.integer("seed", seed)
    chain_offset = _int("chain_offset", chain_offset, 0, 1 << 32)
    if chain_offset + chains > 1 << 32:
        raise ValueError(f"chain_offset + chains must not exceed 2**32 (chain ids are 32-bit), got "
                         f"{chain_offset} + {chains}")
    if n_warmup + n_draws * thin > 1 << 40:
        raise ValueError(f"n_warmup + n_draws * thin must not exceed 2**40 iterations, got "
                         f"{n_warmup} + {n_draws} * {thin}")
    if chains * n_draws * dim > 1 << 34:
        raise ValueError(f"chains * n_draws * dim = {chains * n_draws * dim} float64 values would not fit in memory; "
                         f"thin or sample fewer chains per call (chain_offset lets calls be split)")

    # ---- proposal --------------------------------------------------------------------------------
    if not isinstance(proposal, str) or proposal not in _PROPOSALS:
        raise ValueError(f"proposal must be one of {', '.join(map(repr, _PROPOSALS))}, got {proposal!r}")
    independent = proposal == "independent"
    gradient = proposal in _GRADIENT
    if target_accept is None:
        target_accept = DEFAULT_ACCEPT[proposal]
    if n_leapfrog is not None and proposal != "hmc":
        raise ValueError("n_leapfrog applies to proposal='hmc' only")
    n_leapfrog = _int("n_leapfrog", 10 if n_leapfrog is None else n_leapfrog, 1, 1 << 20) if proposal == "hmc" else 1
    if isinstance(jitter, (bool, np.bool_)) or not isinstance(jitter, (numbers.Real, np.floating, np.integer)):
        raise TypeError(f"jitter must be a float, got {type(jitter).__name__}")
    jitter = float(jitter)
    if not 0.0 <= jitter < 1.0:
        raise ValueError(f"jitter must be in [0, 1), got {jitter}")
    if jitter != 0.0 and proposal != "hmc":
        raise ValueError("jitter applies to proposal='hmc' only")
    if not isinstance(keep_warmup, (bool, np.bool_)):
        raise TypeError(f"keep_warmup must be a bool, got {type(keep_warmup).__name__}")
    keep_warmup = bool(keep_warmup) and n_warmup > 0     # nothing to keep without warm-up: warmup is None
    if keep_warmup and chains * n_warmup * dim > 1 << 34:
        raise ValueError(f"chains * n_warmup * dim = {chains * n_warmup * dim} float64 warm-up values would not fit in "
                         f"memory; leave keep_warmup off or sample fewer chains per call")
    if isinstance(target_accept, (bool, np.bool_)) or not isinstance(target_accept, (numbers.Real, np.floating)):
        raise TypeError(f"target_accept must be a float, got {type(target_accept).__name__}")
    target_accept = float(target_accept)
    if not 0.0 < target_accept < 1.0:
        raise ValueError(f"target_accept must be in (0, 1), got {target_accept}")
    if not isinstance(adapt_covariance, (bool, np.bool_)):
        raise TypeError(f"adapt_covariance must be a bool, got {type(adapt_covariance).__name__}")
    qm = qlv = None
    if independent:
        if proposal_mean is None or proposal_logvar is None:
            raise ValueError("proposal='independent' needs proposal_mean and proposal_logvar, each (chains, dim)")
        qm = _chain_matrix("proposal_mean", proposal_mean, chains, dim)
        qlv = _chain_matrix("proposal_logvar", proposal_logvar, chains, dim)
        if not (isinstance(step_size, str) and step_size == "adapt"):
            raise ValueError("step_size applies to proposal='random_walk' only; leave it at 'adapt' for 'independent'")
    elif proposal_mean is not None or proposal_logvar is not None:
        raise ValueError("proposal_mean/proposal_logvar are only used with proposal='independent'")

    if adapt_covariance and proposal != "random_walk":
        raise ValueError("adapt_covariance applies to proposal='random_walk' only")
    if not isinstance(adapt_metric, (bool, np.bool_)):
        raise TypeError(f"adapt_metric must be a bool, got {type(adapt_metric).__name__}")
    if adapt_metric and not gradient:
        raise ValueError("adapt_metric applies to proposal='mala' or 'hmc' only")

    adapt_step = isinstance(step_size, str)
    if adapt_step:
        if step_size != "adapt":
            raise ValueError(f"step_size must be 'adapt', a positive float or a (chains,) array, got {step_size!r}")
        initial = {"mala": 1.65 * dim ** (-1 / 6), "hmc": dim ** -0.25}.get(proposal, 2.38 / np.sqrt(dim))
        step0 = np.full(chains, initial)
    else:
        s = np.asarray(step_size)
        if s.dtype.kind not in "fiu" or s.dtype == np.bool_:
            raise TypeError(f"step_size must be 'adapt', a positive float or a (chains,) array, got {step_size!r}")
        if s.ndim == 0:
            s = np.full(chains, float(s))
        if s.shape != (chains,):
            raise ValueError(f"step_size array must have shape ({chains},), got {s.shape}")
        step0 = np.ascontiguousarray(s, dtype=np.float64)
        if not np.all(np.isfinite(step0) & (step0 > 0)):
            raise ValueError("step_size must be positive and finite")

    if _check_only:   # vaekernels.distributed: the arguments' errors once, before any shard runs
        return None

    # ---- run ----------------------------------------------------------------------------------------
    samples = np.empty((chains, n_draws, dim))
    log_prob = np.empty((chains, n_draws))
    accept_rate = np.empty(chains)
    steps = np.empty(chains)
    n_nan = np.empty(chains, dtype=np.int64)
    chol = np.empty((dim, dim))
    stats = np.empty((chains, n_draws, len(_STATS)))
    n_div = np.empty(chains, dtype=np.int64)
    inv_metric = np.empty((chains, dim))
    warm = (np.empty((chains, n_warmup, dim)), np.empty((chains, n_warmup)), np.empty((chains, n_warmup, len(_STATS)))) \
        if keep_warmup else (None, None, None)
    settings = (seed, chain_offset, n_warmup, n_draws, thin, _PROPOSALS[proposal], adapt_step, bool(adapt_covariance),
                target_accept, n_leapfrog, jitter, keep_warmup, bool(adapt_metric))
    total = n_warmup + n_draws * thin
    bar = None if callable(progress) else progress_bar(total, progress, "it")
    report = progress if callable(progress) else (None if bar is None else _bar_report(bar))
    outputs = (samples, log_prob, accept_rate, steps, n_nan, chol, stats, n_div, inv_metric) + warm
    args = (x0, step0, qm, qlv, settings, outputs, report)
    try:
        if builtin:
            target._run(args)
        else:
            _core.mcmc_run_callable(_gradient_target(target) if gradient else target, *args)
    finally:
        if bar is not None:
            bar.close()
    warmup = None
    if keep_warmup:
        warmup = {"samples": warm[0], "log_prob": warm[1], "sample_stats": _stats_dict(warm[2], gradient, n_leapfrog)}
    return MCMCResult(samples, log_prob, accept_rate, steps, n_nan, chol,
                      settings=dict(seed=seed, chain_offset=chain_offset, n_warmup=n_warmup, n_draws=n_draws,
                                    thin=thin, proposal=proposal, adapt_step=adapt_step,
                                    adapt_covariance=bool(adapt_covariance), target_accept=target_accept,
                                    n_leapfrog=n_leapfrog,
                                    jitter=jitter, adapt_metric=bool(adapt_metric), keep_warmup=keep_warmup),
                      n_divergent=n_div, sample_stats=_stats_dict(stats, gradient, n_leapfrog), warmup=warmup,
                      inv_metric=inv_metric if gradient else None)
