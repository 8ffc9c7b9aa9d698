"""Annealed importance sampling (AIS) and bidirectional Monte Carlo (BDMC) for log-normalisers such as log p(x).

A problem is a batch of n independent points; point i has a normalised diagonal Gaussian f0_i(z) =
N(m_i, diag exp(lv_i)) and an unnormalised target f1_i(z) whose normaliser Z_i = integral of f1_i is wanted
(for a VAE, f1 = p(x_i, z) and Z_i = p(x_i)). With 0 = b_0 < b_1 < ... < b_T = 1 (the schedule),

    log f_b = (1 - b) log f0 + b log f1
    z ~ f0;  for t = 1..T:  log w += (b_t - b_{t-1}) (log f1(z) - log f0(z));  z <- T_t(z)

where T_t is one Metropolis-Hastings transition (HMC, MALA or random walk) leaving f_{b_t} invariant (Neal
2001). E[w] = Z, so log mean_c w_c is a stochastic lower bound on log Z. Run from an exact draw of f1/Z back
to f0 (b from 1 to 0), the same recursion has E[w_rev] = 1/Z: -log mean_c w_rev,c is a stochastic upper
bound (BDMC, Grosse, Ghahramani & Adams 2015; for VAEs Wu, Burda, Salakhutdinov & Grosse 2017). Simulated
data (z ~ p(z), x ~ p(x|z), ``simulate``) give that exact posterior draw for free.

Two caveats, as in Wu et al.'s code. (1) E[w] = Z holds for transitions fixed in advance; the default
step_size="adapt" tunes transition t from the acceptances of the same point's chains before it, which
makes the estimate very slightly dependent on its own past (the effect was below the tests' resolution of
a few hundredths of a nat). For the exact guarantee, run a pilot and pass its sizes: ``ais(...,
step_size=pilot.step_size)`` (BDMC's reverse run already uses the forward run's sizes, fixed). (2) The
reverse chains of a point all start at the same exact draw, so they are correlated: the reverse run's
``stderr`` and ``ess`` (computed as for independent chains) overstate the precision of the upper bound.

Random numbers (everything is a pure function of the seed, the point's global index g = i + point_offset,
the chain c and the step t; nothing depends on which other points share the call): point g uses the key
``derive_seed(seed, "ais", g)`` (``"ais_reverse"`` for a reverse run); its initial draw is ``randn``
positions [0, C d) and transition t (1..T) uses ``randn`` positions [t C d, (t+1) C d) (chain c at
(t C + c) d: momentum or proposal) and ``rand`` position t C + c (the accept uniform), C = chains, d = dim.
Draws are fetched in blocks of steps; the block size changes no number.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from .. import kernels as ops
from .._progress import progress_bar
from ..kernels import validate as V
from ..random import derive_seed
from .sampler import DEFAULT_ACCEPT
from .problems import AISProblem, VAEProblem, simulate   # re-exported: the problems AIS solves

__all__ = ["AISProblem", "VAEProblem", "AISResult", "BDMCResult", "ais", "bdmc", "simulate", "schedule"]

TARGET_ACCEPT = MappingProxyType({k: DEFAULT_ACCEPT[k] for k in ("hmc", "mala", "random_walk")})   # the sampler's
SCHEDULES = ("linear", "sigmoid", "geometric")
_SIGMOID_DELTA = 4.0        # Grosse, Maddison & Salakhutdinov 2013
_GEOMETRIC_B1 = 1e-4        # first nonzero beta of the geometric schedule
_ADAPT_UP, _ADAPT_DOWN = 1.02, 0.98
_BLOCK_ELEMENTS = 1 << 21   # random normals fetched per block (16 MiB of float64)
_LOG_2PI = math.log(2 * math.pi)


@dataclass
class AISResult:
    """Output of :func:`ais` (and each direction of :func:`bdmc`).

    log_z (n,): log mean_c w_c, the estimate of log Z_i (a stochastic lower bound); for a reverse run,
    -log mean_c w_rev,c (a stochastic upper bound). stderr (n,): the delta-method standard error of that
    log-mean, sd(w) / (sqrt(C) mean(w)) (NaN with one chain). ess (n,): (sum w)^2 / sum w^2 of the weights.
    log_w (n, chains); z (n, chains, dim) the final states; step_size (n, n_steps) the step size used at
    each transition; accept_prob (n, n_steps) the mean MH acceptance probability over the point's chains at
    each transition, accept_rate (n,) its mean; betas (n_steps + 1,) as run (decreasing for a reverse run).
    """

    log_z: np.ndarray
    stderr: np.ndarray
    ess: np.ndarray
    log_w: np.ndarray
    z: np.ndarray
    step_size: np.ndarray
    accept_prob: np.ndarray
    accept_rate: np.ndarray
    betas: np.ndarray
    settings: dict = field(default_factory=dict)


@dataclass
class BDMCResult:
    """Output of :func:`bdmc`: lower (n,) (forward AIS), upper (n,) (reverse AIS), ``gap`` = upper - lower
    (in expectation a bound on the error of either, for data simulated from the model), forward / reverse
    :class:`AISResult`, and X, z_exact (the simulated data when ``n_simulated`` was given, else None)."""

    lower: np.ndarray
    upper: np.ndarray
    forward: AISResult
    reverse: AISResult
    X: np.ndarray = None
    z_exact: np.ndarray = None

    @property
    def gap(self):
        return self.upper - self.lower


def schedule(kind, n_steps):
    """The annealing betas (n_steps + 1,), b_0 = 0 < b_1 < ... < b_T = 1, exactly 0 and 1 at the ends.

    "linear": t / T. "sigmoid" (Grosse et al. 2013): s_t = sigmoid(delta (2t/T - 1)), delta = 4, rescaled
    (s_t - s_0) / (s_T - s_0). "geometric": 0, then T values geometric from 1e-4 to 1 (T = 1: [0, 1]).
    """
    if not isinstance(kind, str):
        raise TypeError(f"schedule must be a str or an array of betas, got {type(kind).__name__}")
    if kind not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES} or an array of betas, got {kind!r}")
    T = V.integer("n_steps", n_steps, 1, 1 << 40)
    t = np.arange(T + 1) / T
    if kind == "linear":
        b = t
    elif kind == "sigmoid":
        s = 1.0 / (1.0 + np.exp(-_SIGMOID_DELTA * (2.0 * t - 1.0)))
        b = (s - s[0]) / (s[-1] - s[0])
    else:
        b = np.concatenate([[0.0], np.geomspace(_GEOMETRIC_B1, 1.0, T)]) if T > 1 else np.array([0.0, 1.0])
    b[0], b[-1] = 0.0, 1.0
    if np.any(np.diff(b) <= 0):
        raise ValueError(f"n_steps={T} is too large for the {kind} schedule in float64 (betas would repeat)")
    return b


def _betas(sched, n_steps):
    if isinstance(sched, str):
        return schedule(sched, 1000 if n_steps is None else n_steps)
    b = np.asarray(sched)
    if b.ndim == 0 or b.dtype.kind not in "iuf":
        raise TypeError(f"schedule must be a str or a real array of betas, got {sched!r:.60}")
    b = b.astype(np.float64)
    if b.ndim != 1 or b.size < 2:
        raise ValueError(f"schedule array must be 1-D with at least 2 betas, got shape {b.shape}")
    if not np.all(np.isfinite(b)) or b[0] != 0.0 or b[-1] != 1.0:
        raise ValueError(f"schedule array must start at exactly 0 and end at exactly 1, got [{b[0]}, ..., {b[-1]}]")
    if np.any(np.diff(b) <= 0):
        raise ValueError(f"schedule array must be strictly increasing; first violation at index "
                         f"{int(np.argmax(np.diff(b) <= 0)) + 1}")
    if n_steps is not None and V.integer("n_steps", n_steps, 1) != b.size - 1:
        raise ValueError(f"n_steps={n_steps} disagrees with the schedule array's {b.size - 1} steps")
    return b


def _check_problem(p):
    for attr in ("dim", "n_points", "initial_mean", "initial_logvar", "log_target_and_grad"):
        if not hasattr(p, attr):
            raise TypeError(f"problem must be an AISProblem or a VAE model (missing {attr!r}), got {type(p).__name__}")
    n, d = V.integer("problem.n_points", p.n_points, 1, 1 << 40), V.integer("problem.dim", p.dim, 1, 1 << 31)
    return n, d, _matrix("problem.initial_mean", p.initial_mean, n, d), \
        _matrix("problem.initial_logvar", p.initial_logvar, n, d)


def _matrix(name, a, n, d):
    """A finite real (n_points, dim) array, as float64."""
    a = np.asarray(a)
    if a.dtype.kind not in "iuf":
        raise TypeError(f"{name} must be a real array, got dtype {a.dtype}")
    if a.shape != (n, d):
        raise ValueError(f"{name} must have shape (n_points, dim) = {(n, d)}, got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or inf (row {int(np.argwhere(~np.isfinite(a))[0, 0])})")
    return a.astype(np.float64)


def _as_problem(problem_or_model, X, start):
    if hasattr(problem_or_model, "decoder_log_likelihood"):
        if X is None:
            raise ValueError("X (n, n_inputs) is required when a VAE model is passed")
        return VAEProblem(problem_or_model, X, start)
    if X is not None:
        raise ValueError("X is only for a VAE model; an AISProblem carries its own data")
    if start != "prior":
        raise ValueError("start only applies when a VAE model is passed (an AISProblem has its own f0)")
    return problem_or_model


class _Target:
    """f0 (closed form) and f1 (the problem) at Z, with the problem's outputs checked."""

    def __init__(self, problem, mean, logvar, chains):
        self.problem, self.mean, self.prec = problem, mean[:, None, :], np.exp(-logvar)[:, None, :]
        self.const = (-0.5 * (logvar.sum(1) + mean.shape[1] * _LOG_2PI))[:, None]
        self.shape = (mean.shape[0], chains, mean.shape[1])

    def __call__(self, Z, grad, value=True):
        """(log f0, grad log f0, log f1, grad log f1) at Z (n, C, d); the gradients are None without grad,
        the values None without value."""
        dz = Z - self.mean
        if not value:
            g1 = np.asarray(self.problem.grad_log_target(Z), dtype=np.float64)
            if g1.shape != self.shape:
                raise ValueError(f"grad_log_target returned a gradient of shape {g1.shape}, expected {self.shape}")
            return None, -dz * self.prec, None, g1
        l0 = self.const - 0.5 * np.einsum("ncd,ncd->nc", dz * self.prec, dz)
        if grad:
            l1, g1 = self.problem.log_target_and_grad(Z)
            g1 = np.asarray(g1, dtype=np.float64)
            if g1.shape != self.shape:
                raise ValueError(f"log_target_and_grad returned a gradient of shape {g1.shape}, expected {self.shape}")
        else:
            l1, g1 = self.problem.log_target(Z), None
        l1 = np.asarray(l1, dtype=np.float64)
        if l1.shape != self.shape[:2]:
            raise ValueError(f"the problem's log target has shape {l1.shape}, expected {self.shape[:2]}")
        l1 = np.where(np.isnan(l1) | (l1 == np.inf), -np.inf, l1)      # invalid: density 0
        return l0, (-dz * self.prec if grad else None), l1, g1


def _transition(target, z, cur, b, s, noise, u, kind, n_leapfrog):
    """One MH transition leaving f_b invariant, for all rows at once. Returns (z, cur, accept prob (n, C))."""
    l0, g0, l1, g1 = cur
    s3 = s[:, None, None]
    lb = (1 - b) * l0 + b * l1
    if kind == "random_walk":
        zp = z + s3 * noise
        bad = ~np.isfinite(zp).all(-1)
        zp[bad] = z[bad]                       # keep evaluations finite; such rows are rejected
        new = target(zp, False)
        log_r = (1 - b) * new[0] + b * new[2] - lb
    else:                                      # leapfrog with momentum p ~ N(0, I); MALA is one step
        p = noise + 0.5 * s3 * ((1 - b) * g0 + b * g1)
        zp, bad = z, np.zeros(z.shape[:2], bool)
        for k in range(n_leapfrog):
            zp = zp + s3 * p
            bad |= ~np.isfinite(zp).all(-1)
            zp[bad], p[bad] = z[bad], 0.0
            new = target(zp, True, value=k == n_leapfrog - 1)   # values only where the trajectory ends
            bad |= ~np.isfinite(new[3]).all(-1)
            p += (s3 if k < n_leapfrog - 1 else 0.5 * s3) * ((1 - b) * new[1] + b * new[3])
        # H = -log f_b(z) + |p|^2 / 2;  log r = H(old) - H(new)
        log_r = (1 - b) * new[0] + b * new[2] - lb - 0.5 * (np.einsum("ncd,ncd->nc", p, p)
                                                            - np.einsum("ncd,ncd->nc", noise, noise))
    log_r = np.where(bad | np.isnan(log_r), -np.inf, log_r)
    acc = np.log(u) < log_r
    z = np.where(acc[..., None], zp, z)
    cur = tuple(None if c is None else np.where(acc if c.ndim == 2 else acc[..., None], nw, c)
                for c, nw in zip(cur, new))
    return z, cur, np.exp(np.minimum(log_r, 0.0))


def _run(problem, betas, z0, key_name, seed, point_offset, chains, kind, n_leapfrog, steps, target_accept, report):
    """AIS along ``betas`` (either direction) from draws of f_{b_0} (z0 None: f0) or from z0 (n, d).
    steps: (n, T) fixed step sizes, or (n,) initial step sizes to adapt."""
    n, d, mean, logvar = _check_problem(problem)
    T, C = betas.size - 1, chains
    keys = [derive_seed(seed, key_name, i + point_offset) for i in range(n)]
    target = _Target(problem, mean, logvar, C)
    grad = kind != "random_walk"
    if z0 is None:
        eps = np.stack([ops.randn((C, d), k, 0, np.float64) for k in keys])
        z = mean[:, None, :] + np.exp(0.5 * logvar)[:, None, :] * eps
    else:
        z = np.repeat(z0[:, None, :], C, axis=1)
    adapt = steps.ndim == 1
    s = steps.copy() if adapt else None
    step_used, acc_prob = np.empty((n, T)), np.empty((n, T))
    log_w = np.zeros((n, C))
    block = max(1, min(T, _BLOCK_ELEMENTS // (n * C * d)))
    noise, unif = np.empty((n, block, C, d)), np.empty((n, block, C))
    with np.errstate(all="ignore"):
        cur = target(z, grad)
        for t in range(1, T + 1):
            j = (t - 1) % block
            if j == 0:                          # positions [t C d, ...) of each point's streams, see above
                nb = min(block, T + 1 - t)
                for i, k in enumerate(keys):
                    ops.randn((nb, C, d), k, t * C * d, np.float64, out=noise[i, :nb])
                    ops.rand((nb, C), k, t * C, np.float64, out=unif[i, :nb])
            log_w += (betas[t] - betas[t - 1]) * (cur[2] - cur[0])
            st = s if adapt else steps[:, t - 1]
            step_used[:, t - 1] = st
            z, cur, a = _transition(target, z, cur, betas[t], st, noise[:, j], unif[:, j], kind, n_leapfrog)
            acc_prob[:, t - 1] = a.mean(1)
            if adapt:                           # per point (Wu et al. 2017): never pooled across points
                s = np.where(acc_prob[:, t - 1] > target_accept, s * _ADAPT_UP, s * _ADAPT_DOWN)
            report()
    # log mean w, and the delta-method standard error sd(w) / (sqrt(C) mean(w)), on w / max w
    mx = log_w.max(1)
    w = np.exp(log_w - np.where(np.isfinite(mx), mx, 0.0)[:, None])
    mw = w.mean(1)
    with np.errstate(all="ignore"):
        log_mean = mx + np.log(mw)
        stderr = w.std(1, ddof=1) / (math.sqrt(C) * mw) if C > 1 else np.full(n, np.nan)
        ess = w.sum(1) ** 2 / (w ** 2).sum(1)
    reverse = betas[0] > betas[-1]
    return AISResult(log_z=-log_mean if reverse else log_mean, stderr=stderr, ess=ess, log_w=log_w, z=z,
                     step_size=step_used, accept_prob=acc_prob, accept_rate=acc_prob.mean(1), betas=betas.copy(),
                     settings={"direction": "reverse" if reverse else "forward", "n_steps": T, "chains": C,
                               "seed": seed, "transition": kind, "n_leapfrog": n_leapfrog if grad else None,
                               "adapt": adapt, "target_accept": target_accept if adapt else None,
                               "point_offset": point_offset, "initial_step_size": steps.copy() if adapt else None})


def _initial_steps(kind, d, logvar):
    """Step sizes for the start of adaptation: c(d) times the smallest initial sd of each point, with
    c = d^(-1/4) (HMC), d^(-1/6) (MALA, = a proposal sd), 2.38 / sqrt(d) (random walk): the optimal-scaling
    rates (Roberts & Rosenthal 2001; Beskos et al. 2013) at unit scale, on the conservative side."""
    c = {"hmc": d ** -0.25, "mala": d ** (-1 / 6), "random_walk": 2.38 / math.sqrt(d)}[kind]
    return c * np.exp(0.5 * logvar.min(1))


def _settings(problem, sched, n_steps, chains, seed, transition, n_leapfrog, step_size, target_accept,
              point_offset, progress):
    """Checks the shared arguments; returns (n, d, betas, n_leapfrog, steps, target_accept)."""
    n, d, _, logvar = _check_problem(problem)
    betas = _betas(sched, n_steps)
    T = betas.size - 1
    V.integer("chains", chains, 1, 1 << 31)
    if (T + 1) * chains * d > 1 << 64:
        raise ValueError(f"(n_steps + 1) * chains * dim = {(T + 1) * chains * d} exceeds a stream's 2**64 positions")
    V.integer("seed", seed)
    if V.integer("point_offset", point_offset) + n > 1 << 64:
        raise ValueError(f"point_offset + n_points must not exceed 2**64, got {point_offset} + {n}")
    if not isinstance(transition, str) or transition not in TARGET_ACCEPT:
        raise ValueError(f"transition must be one of {tuple(TARGET_ACCEPT)}, got {transition!r}")
    n_leapfrog = V.integer("n_leapfrog", n_leapfrog, 1, 1 << 20) if transition == "hmc" else 1
    if isinstance(step_size, str):
        if step_size != "adapt":
            raise ValueError(f"step_size must be 'adapt', a positive float or an (n, n_steps) array, got {step_size!r}")
        steps = _initial_steps(transition, d, logvar)
        target_accept = TARGET_ACCEPT[transition] if target_accept is None else \
            V.real("target_accept", target_accept, 0.0, 1.0, hi_open=True)
        if target_accept <= 0:
            raise ValueError(f"target_accept must be in (0, 1), got {target_accept}")
    else:
        if target_accept is not None:
            raise ValueError("target_accept only applies with step_size='adapt'")
        a = np.asarray(step_size)
        if a.dtype.kind not in "iuf":
            raise TypeError(f"step_size must be 'adapt', a positive float or an array, got {type(step_size).__name__}")
        if a.ndim not in (0, 2) or (a.ndim == 2 and a.shape != (n, T)):
            raise ValueError(f"step_size array must have shape (n_points, n_steps) = {(n, T)}, got {a.shape}")
        if not np.all(np.isfinite(a) & (a > 0)):
            raise ValueError("step_size must be positive and finite")
        steps = np.broadcast_to(a.astype(np.float64), (n, T))
    if not (progress is None or isinstance(progress, (bool, np.bool_)) or callable(progress)):
        raise TypeError(f"progress must be a bool or a callable progress(done, total), got {type(progress).__name__}")
    return n, d, betas, n_leapfrog, steps, target_accept


def _record(res, sched, problem):
    res.settings.update(schedule=sched if isinstance(sched, str) else "array", start=getattr(problem, "start", None))


def _reporter(progress, total):
    """(report(), close()): report is called after each transition (one tqdm bar or progress(done, total))."""
    if callable(progress):
        done = itertools.count(1)
        return (lambda: progress(next(done), total)), (lambda: None)
    bar = progress_bar(total, progress, "step")
    return ((lambda: None), (lambda: None)) if bar is None else ((lambda: bar.update(1)), bar.close)


def ais(problem_or_model, X=None, *, n_steps=None, chains=16, seed, schedule="sigmoid", transition="hmc",
        n_leapfrog=10, step_size="adapt", target_accept=None, start="prior", point_offset=0, progress=True):
    """Annealed importance sampling estimates of log Z_i (log p(x_i) for a VAE), see the module docstring.

    problem_or_model: an :class:`AISProblem`, or a VAE with data X (n, n_inputs) (then ``VAEProblem(model,
    X, start)``). n_steps: T transitions (default 1000, or the length of a schedule array minus 1).
    chains: C independent chains per point. schedule: "sigmoid", "linear", "geometric" (see
    :func:`schedule`) or an array of betas (0 = b_0 < ... < b_T = 1). transition: "hmc" (n_leapfrog
    leapfrog steps, momentum N(0, I)), "mala" (one leapfrog step) or "random_walk" (z + s N(0, I)).
    step_size: "adapt" (per point: after each transition s_i *= 1.02 if the mean acceptance probability
    of point i's chains exceeds target_accept, else 0.98; default targets 0.65 / 0.574 / 0.234; start
    s_i = c(d) min_j sd0_ij, c = d^(-1/4) for HMC, d^(-1/6) for MALA, 2.38 / sqrt(d) for the random walk,
    sd0 the initial density's sds), a fixed positive float, or an (n, T) array of fixed per-point sizes
    (e.g. an earlier run's ``step_size``). A float32 VAE's leapfrog uses its float32 gradient: still an
    exact MH correction for the (float32-rounded) density it evaluates.
    point_offset: the global index of the first point (its random streams; see the module docstring), so
    chunks of a data set run separately give the same numbers as one call. progress: True for a tqdm bar
    on a terminal, False, or a callable progress(done, total) called after each transition (an exception
    it raises, KeyboardInterrupt included, propagates). Returns an :class:`AISResult`. Example::

        from vaekernels.mcmc.annealing import ais, simulate
        X, _ = simulate(model, 100, seed=0)
        res = ais(model, X, n_steps=1000, chains=16, seed=1)
        res.log_z.mean(), res.stderr.max()
    """
    problem = _as_problem(problem_or_model, X, start)
    n, d, betas, n_leapfrog, steps, target_accept = _settings(
        problem, schedule, n_steps, chains, seed, transition, n_leapfrog, step_size, target_accept,
        point_offset, progress)
    report, close = _reporter(progress, betas.size - 1)
    try:
        res = _run(problem, betas, None, "ais", seed, point_offset, chains, transition, n_leapfrog, steps,
                   target_accept, report)
    finally:
        close()
    _record(res, schedule, problem)
    return res


def bdmc(problem_or_model, X=None, z_exact=None, *, n_simulated=None, n_steps=None, chains=16, seed,
         schedule="sigmoid", transition="hmc", n_leapfrog=10, step_size="adapt", target_accept=None,
         start="prior", point_offset=0, progress=True):
    """Bidirectional Monte Carlo: sandwich bounds lower <= log Z_i <= upper (each in expectation).

    Runs forward AIS (``ais`` with the same arguments and seed: the lower bound) and reverse AIS from
    b = 1 to 0 with every chain of point i started at ``z_exact[i]`` (n, dim), an exact draw of
    f1_i / Z_i, for simulated data the z that generated x_i. The reverse run uses the betas reversed and,
    at each distribution, the step size the forward run used there (no adaptation; the last transition, at
    b = 0, reuses the step of b_1), and its own streams (key ``derive_seed(seed, "ais_reverse", g)``).
    upper = -log mean_c exp(log w_rev,c). With a VAE model, ``n_simulated=k`` draws k data points with
    ``simulate(model, k, derive_seed(seed, "bdmc", "data"))`` instead of taking X, z_exact. Returns a
    :class:`BDMCResult`. Example::

        from vaekernels.mcmc.annealing import bdmc
        res = bdmc(model, n_simulated=50, n_steps=1000, seed=0)
        res.lower.mean(), res.upper.mean(), res.gap.mean()
    """
    sim = None
    if n_simulated is not None:
        if X is not None or z_exact is not None:
            raise ValueError("give either n_simulated or X and z_exact, not both")
        if not hasattr(problem_or_model, "decoder_log_likelihood"):
            raise TypeError("n_simulated needs a VAE model (data are simulated from it)")
        sim = simulate(problem_or_model, n_simulated, derive_seed(V.integer("seed", seed), "bdmc", "data"))
        X, z_exact = sim
    problem = _as_problem(problem_or_model, X, start)
    n, d, betas, n_leapfrog, steps, target_accept = _settings(
        problem, schedule, n_steps, chains, seed, transition, n_leapfrog, step_size, target_accept,
        point_offset, progress)
    if z_exact is None:
        raise ValueError("z_exact (n_points, dim) is required: an exact draw of each point's posterior "
                         "(e.g. the latents from simulate())")
    z0 = _matrix("z_exact", z_exact, n, d)
    T = betas.size - 1
    report, close = _reporter(progress, 2 * T)
    try:
        fwd = _run(problem, betas, None, "ais", seed, point_offset, chains, transition, n_leapfrog, steps,
                   target_accept, report)
        # reverse transition t (1..T) targets b_{T-t}, which the forward run's transition T-t used
        rev_steps = fwd.step_size[:, np.r_[T - 2:-1:-1, 0]] if T > 1 else fwd.step_size.copy()
        rev = _run(problem, betas[::-1].copy(), z0, "ais_reverse", seed, point_offset, chains,
                   transition, n_leapfrog, rev_steps, None, report)
    finally:
        close()
    _record(fwd, schedule, problem)
    _record(rev, schedule, problem)
    return BDMCResult(lower=fwd.log_z, upper=rev.log_z, forward=fwd, reverse=rev,
                      X=None if sim is None else sim[0], z_exact=None if sim is None else sim[1])
