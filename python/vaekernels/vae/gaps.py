"""The inference gaps of a VAE (Cremer, Li & Duvenaud 2018, "Inference Suboptimality in Variational
Autoencoders"): how far the encoder's ELBO falls below log p(x), split into

    KL(q(z|x) || p(z|x)) = log p(x) - ELBO(q)            (the whole gap of the amortised encoder q)
                         = [log p(x) - ELBO(q*)]          approximation gap: the diagonal-Gaussian family
                         + [ELBO(q*) - ELBO(q)]           amortisation gap: one network for every x

where q*_i is the best diagonal Gaussian for data point x_i alone, found by stochastic optimisation of the
ELBO (``optimal_gaussian_elbo``), and log p(x) comes from annealed importance sampling (``mcmc.ais``) or is
given. Everything is per data point: a row's noise depends on its global index g = i + point_offset only
(stream positions g * K * L .. of each stream; AIS keys its streams by g too) and nothing is pooled across
rows, so chunks of a data set run separately (with point_offset) give the numbers of one call in float64;
in float32 the encoder's and decoder's GEMMs may round a row differently in a batch of another size, and
500 Adam steps carry such last-bit differences into the last few digits.

Example::

    from vaekernels.vae.gaps import inference_gaps, plot_gaps
    res = inference_gaps(model, X_test[:8], ais_steps=500, ais_chains=16, seed=0)
    print(res.table())
    plot_gaps(res, "inference_gaps.png")
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .. import kernels as ops
from .._progress import progress_bar
from ..kernels import validate as V
from ..random import derive_seed

__all__ = ["optimal_gaussian_elbo", "inference_gaps", "plot_gaps", "OptimalGaussian", "InferenceGaps"]

# Adam's betas: beta2 = 0.95, not the usual 0.999: from an encoder's q far from q*, the first gradients are
# large and a 1000-step memory of them in v kept the steps tiny near the optimum (measured on the
# linear-Gaussian model: 0.999 left some points 0.1 - 0.7 nats below the optimum ELBO after 500-1000
# steps; 0.95 reached within 0.008 nats on every point; 0.9 gave the same numbers).
_BETAS = (0.9, 0.95)
_GAPS = ("log_px", "elbo_qstar", "elbo_q", "approximation_gap", "amortisation_gap", "kl_q_posterior")


@dataclass
class OptimalGaussian:
    """The result of ``optimal_gaussian_elbo``, per data point (n rows): ``elbo`` (n,) float64, the ELBO
    of q* estimated with ``eval_samples`` fresh samples, and its Monte Carlo standard error ``stderr`` (n,);
    q*'s ``mean`` and ``logvar`` (n, L) in the model's dtype; ``trace`` (n_iterations,), the training
    objective (the K-sample ELBO estimate averaged over the points) at each iteration, for convergence
    checks (the only quantity that pools points, and nothing depends on it)."""
    elbo: np.ndarray
    stderr: np.ndarray
    mean: np.ndarray
    logvar: np.ndarray
    trace: np.ndarray = field(repr=False)


def _check_model(model):
    for attr in ("encode", "decoder_log_likelihood", "_check_data", "n_latent", "dtype"):
        if not hasattr(model, attr):
            raise TypeError(f"model must be a vaekernels.VAE (missing {attr!r}), got {type(model).__name__}")


def _check_settings(n_samples, n_iterations, learning_rate, eval_samples, batch_size, seed, point_offset):
    out = dict(point_offset=V.integer("point_offset", point_offset, 0, 1 << 40),
               n_samples=V.integer("n_samples", n_samples, 1, 1 << 31),
               n_iterations=V.integer("n_iterations", n_iterations, 0, 1 << 31),
               eval_samples=V.integer("eval_samples", eval_samples, 2, 1 << 31),
               batch_size=V.integer("batch_size", batch_size, 1, 1 << 31), seed=V.integer("seed", seed))
    if callable(learning_rate):
        out["lr"] = learning_rate
    else:
        lr = V.real("learning_rate", learning_rate)
        if not 0 < lr < math.inf:
            raise ValueError(f"learning_rate must be a finite number > 0 (or a callable), got {lr}")
        T = max(out["n_iterations"] - 1, 1)   # cosine decay from lr to lr / 100 at the last iteration
        out["lr"] = lambda t: lr * (0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * t / T)))
    return out


def _initial(model, X, init):
    n, L = X.shape[0], model.n_latent
    if isinstance(init, str):
        if init == "encoder":
            return model.encode(X)
        if init == "prior":
            return np.zeros((n, L), model.dtype), np.zeros((n, L), model.dtype)
        raise ValueError(f"init must be 'encoder', 'prior' or a (mean, logvar) pair, got {init!r}")
    if not isinstance(init, (tuple, list)) or len(init) != 2:
        raise TypeError(f"init must be 'encoder', 'prior' or a (mean, logvar) pair, got {type(init).__name__}")
    out = []
    for name, a in zip(("init mean", "init logvar"), init):
        a = model._as_model_dtype(name, a)
        if a.shape != (n, L):
            raise ValueError(f"{name} must have shape ({n}, {L}) for X of {n} rows, got {a.shape}")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{name} contains NaN or inf")
        out.append(np.array(a, order="C"))
    return tuple(out)


def _optimise(model, X, mean, logvar, s, progress):
    """Adam on [mean | logvar] (2, n, L), in place; returns the trace. Iteration t draws K samples per row
    from stream derive_seed(seed, "optimal_gaussian_elbo", "step", t), row i at positions (i + point_offset) K L
    onwards."""
    n, L, K = X.shape[0], model.n_latent, s["n_samples"]
    dt = model.dtype
    theta = np.stack([mean, logvar])          # one flat parameter block for one adam_step call per iteration
    m, v, grad = np.zeros_like(theta), np.zeros_like(theta), np.empty_like(theta)
    mu_k, lv_k = np.empty((n, K, L), dt), np.empty((n, K, L), dt)
    off = s["point_offset"] * K * L
    trace = np.empty(s["n_iterations"])
    bar = progress_bar(s["n_iterations"], progress, "step")
    try:
        for t in range(s["n_iterations"]):
            lr = s["lr"](t)
            if not (isinstance(lr, (int, float, np.floating, np.integer)) and 0 <= lr < math.inf):
                raise ValueError(f"learning_rate({t}) must return a finite number >= 0, got {lr!r}")
            key = derive_seed(s["seed"], "optimal_gaussian_elbo", "step", t)
            np.copyto(mu_k, theta[0][:, None, :])
            np.copyto(lv_k, theta[1][:, None, :])
            z, kl = ops.latent_forward(mu_k, lv_k, key, off)
            ll, dz = model.decoder_log_likelihood(X, z, grad=True, batch_size=s["batch_size"])
            trace[t] = float(np.mean(ll, dtype=np.float64) - np.mean(kl[:, 0], dtype=np.float64))
            dz *= dt.type(-1.0 / K)   # loss_i = -(1/K) sum_k log p(x_i | z_ik) + KL_i
            dmu, dlv = ops.latent_backward(dz, mu_k, lv_k, key, off, 1.0 / K)
            np.sum(dmu, axis=1, out=grad[0])
            np.sum(dlv, axis=1, out=grad[1])
            ops.adam_step(theta, grad, m, v, t + 1, lr=float(lr), beta1=_BETAS[0], beta2=_BETAS[1])
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    mean[...], logvar[...] = theta
    return trace


def _mc_elbo(model, X, gaussians, n_samples, key, batch_size, point_offset):
    """Per-row ELBO estimates (float64) of diagonal Gaussians [(mean, logvar)], all with the same noise
    (row i: positions (i + point_offset) K L .. of stream ``key``): [(elbo, stderr)] and, for two, the
    stderr of their difference (common random numbers: much smaller than either). KL in closed form."""
    n, L, K = X.shape[0], model.n_latent, n_samples
    rows = max(1, batch_size // K)
    res = [(np.empty(n), np.empty(n)) for _ in gaussians]
    diff_se = np.empty(n)
    for s in range(0, n, rows):
        t = min(n, s + rows)
        lls = []
        for (mu, lv), (elbo, se) in zip(gaussians, res):
            z, _ = ops.latent_forward(np.repeat(mu[s:t, None], K, 1), np.repeat(lv[s:t, None], K, 1), key,
                                      (point_offset + s) * K * L)
            ll = model.decoder_log_likelihood(X[s:t], z, batch_size=batch_size).astype(np.float64)
            kl = ops.kl_standard_normal(mu[s:t].astype(np.float64), lv[s:t].astype(np.float64))
            elbo[s:t] = ll.mean(axis=1) - kl
            se[s:t] = ll.std(axis=1, ddof=1) / math.sqrt(K)
            lls.append(ll)
        if len(lls) == 2:
            diff_se[s:t] = (lls[0] - lls[1]).std(axis=1, ddof=1) / math.sqrt(K)
    return res, diff_se


def _qstar(model, X, n_samples, n_iterations, learning_rate, seed, init, progress, eval_samples, batch_size,
           point_offset, also=None):
    _check_model(model)
    X = model._check_data(X, "X")
    s = _check_settings(n_samples, n_iterations, learning_rate, eval_samples, batch_size, seed, point_offset)
    mean, logvar = _initial(model, X, init)
    trace = _optimise(model, X, mean, logvar, s, progress)
    key = derive_seed(s["seed"], "optimal_gaussian_elbo", "eval")
    gaussians = [(mean, logvar)] + ([also(X)] if also is not None else [])
    res, diff_se = _mc_elbo(model, X, gaussians, s["eval_samples"], key, s["batch_size"], s["point_offset"])
    return OptimalGaussian(res[0][0], res[0][1], mean, logvar, trace), res[1:], diff_se, X


def optimal_gaussian_elbo(model, X, *, n_samples=16, n_iterations=500, learning_rate=0.05, seed=0,
                          init="encoder", progress=False, eval_samples=1000, batch_size=4096, point_offset=0):
    """The best diagonal Gaussian q*_i(z) = N(mean_i, diag exp(logvar_i)) for each data point x_i alone:
    the maximiser of ELBO_i(q) = E_q[log p(x_i|z)] - KL(q || N(0, I)), by Adam (the fused ``adam_step``)
    on the reparameterised gradient (``latent_forward`` for z, ``decoder_log_likelihood(grad=True)`` for
    d log p(x|z)/dz, ``latent_backward`` for d/dmean, d/dlogvar, the KL exact), all points in one batch.
    Adam's betas are (0.9, 0.95) (see ``_BETAS``). With the defaults, on a linear-Gaussian model (where q*
    is known) the final q* was within 0.008 nats of the best ELBO and its mean within 0.08 posterior
    standard deviations (tests/test_gaps.py); more iterations and samples get closer.

    X: (n, n_inputs). n_samples: K samples per point and iteration. n_iterations: Adam steps (0 keeps
    ``init``). learning_rate: the first step size, decayed as a cosine to 1/100 of it at the last
    iteration (so the noisy iterates settle), or a callable ``lr(t)`` of the 0-based iteration.
    init: "encoder" (the model's q(z|x), default), "prior" (N(0, I)) or a (mean, logvar) pair of (n, L)
    arrays. eval_samples: fresh samples per point for the returned ELBO estimate (a stream of its own,
    not used in training). batch_size: latent rows per decoder pass. progress: a tqdm bar on a terminal.

    Randomness: iteration t uses stream ``derive_seed(seed, "optimal_gaussian_elbo", "step", t)``, the
    evaluation ``derive_seed(seed, "optimal_gaussian_elbo", "eval")``; row i reads positions g K L .. of
    each (g = i + point_offset, its global index), so a row's result does not depend on the other rows
    (nothing is pooled: Adam is elementwise; the decoder's GEMMs may round a row's last bit differently
    for another number of rows, as ``VAE.iwae`` notes).
    Works in the model's dtype (float32 or float64); ELBO estimates are float64. Returns ``OptimalGaussian``.

    Example::

        qs = optimal_gaussian_elbo(model, X[:10], n_iterations=300, seed=1)
        qs.elbo, qs.stderr, qs.mean, qs.logvar
    """
    return _qstar(model, X, n_samples, n_iterations, learning_rate, seed, init, progress, eval_samples,
                  batch_size, point_offset)[0]


@dataclass
class InferenceGaps:
    """Per data point (arrays of n, float64) and on average (``average()``): ``log_px`` (AIS or given),
    ``elbo_qstar`` (the best diagonal Gaussian), ``elbo_q`` (the encoder's q(z|x), with the same noise as
    q*), ``approximation_gap = log_px - elbo_qstar``, ``amortisation_gap = elbo_qstar - elbo_q`` and
    ``kl_q_posterior = log_px - elbo_q``, each with its Monte Carlo standard error in ``stderr[name]``
    (the amortisation gap's from the paired samples). ``qstar``: the ``OptimalGaussian``; ``settings``:
    how it was computed (``log_px_method``: "ais" or "given")."""
    log_px: np.ndarray
    elbo_qstar: np.ndarray
    elbo_q: np.ndarray
    approximation_gap: np.ndarray
    amortisation_gap: np.ndarray
    kl_q_posterior: np.ndarray
    stderr: dict
    qstar: OptimalGaussian = field(repr=False)
    settings: dict = field(default_factory=dict)

    def average(self):
        """{name: mean over the points, name + "_stderr": its Monte Carlo standard error (the points'
        errors are independent: sqrt(sum se_i^2) / n; the spread between data points is not included)}."""
        out = {}
        for name in _GAPS:
            out[name] = float(np.mean(getattr(self, name)))
            out[name + "_stderr"] = float(np.sqrt(np.sum(np.square(self.stderr[name]))) / len(self.log_px))
        return out

    def to_dict(self):
        """A JSON-ready dict: n_points, per_point (lists, with *_stderr), average, settings."""
        per = {name: getattr(self, name).tolist() for name in _GAPS}
        per.update({name + "_stderr": self.stderr[name].tolist() for name in _GAPS})
        return {"n_points": len(self.log_px), "per_point": per, "average": self.average(),
                "settings": dict(self.settings)}

    def table(self, max_rows=20):
        """The gap table as text: one line per point (the first max_rows), the averages, the split."""
        cols = ("log p(x)", "ELBO(q*)", "ELBO(q)", "approx", "amort", "KL(q||p)")
        head = "  point " + "".join(f"{c:>11s}" for c in cols)
        lines = [f"inference gaps (nats) on {len(self.log_px)} points; log p(x): {self._how()}", head]
        for i in range(min(len(self.log_px), max_rows)):
            lines.append(f"  {i:5d} " + "".join(f"{getattr(self, c)[i]:11.3f}" for c in _GAPS))
        if len(self.log_px) > max_rows:
            lines.append(f"  ... ({len(self.log_px) - max_rows} more)")
        a = self.average()
        lines.append("   mean " + "".join(f"{a[c]:11.3f}" for c in _GAPS))
        lines.append("     se " + "".join(f"{a[c + '_stderr']:11.3f}" for c in _GAPS))
        kl = a["kl_q_posterior"]
        share = (lambda g: f" ({100 * a[g] / kl:.0f}%)") if kl > 0 else (lambda g: "")
        lines.append(f"  KL(q || p(z|x)) {kl:.3f} = approximation gap {a['approximation_gap']:.3f}"
                     f"{share('approximation_gap')} + amortisation gap {a['amortisation_gap']:.3f}"
                     f"{share('amortisation_gap')}")
        return "\n".join(lines)

    def _how(self):
        s = self.settings
        if s.get("log_px_method") == "ais":
            return f"AIS, {s['ais_steps']} steps x {s['ais_chains']} chains"
        return s.get("log_px_label", "given")


def _per_point(name, a, n):
    try:
        a = np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{name} must be an array of {n} real numbers") from e
    if a.ndim == 0:
        a = np.full(n, float(a))
    if a.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},) (one value per row of X), got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or inf")
    return a


def inference_gaps(model, X, *, ais_steps=1000, ais_chains=16, seed=0, log_px=None, log_px_stderr=None,
                   log_px_label="given", n_samples=16, n_iterations=500, learning_rate=0.05, eval_samples=1000,
                   batch_size=4096, point_offset=0, progress=False):
    """Approximation and amortisation gaps per data point (Cremer, Li & Duvenaud 2018; module docstring).

    log p(x): ``mcmc.ais(model, X, n_steps=ais_steps, chains=ais_chains, seed=seed, point_offset=...)`` (its
    ``log_z`` and ``stderr``), unless ``log_px`` (n,) gives precomputed values (exact ones, or a large-k
    IWAE; ``log_px_stderr``, default 0, their standard errors; ``log_px_label`` names them in the table).
    q*: ``optimal_gaussian_elbo`` with the remaining arguments. ELBO(q) is estimated with the same
    ``eval_samples`` noise draws as ELBO(q*) (common random numbers: the amortisation gap's error is that
    of a paired difference, and with ``n_iterations=0`` the gap is exactly 0). AIS estimates log p(x)
    from below in expectation, so a small negative approximation gap is estimation error.
    point_offset: the global index of X's first row (the random streams of q* and AIS), so chunks of a
    data set give the numbers of one call. Returns ``InferenceGaps`` (``.table()``, ``.average()``,
    ``.to_dict()``).

    Example::

        res = inference_gaps(model, X[:8], ais_steps=500, ais_chains=16, seed=0)
        res.average()["amortisation_gap"], res.approximation_gap
    """
    _check_model(model)
    X = model._check_data(X, "X")
    n = X.shape[0]
    s = _check_settings(n_samples, n_iterations, learning_rate, eval_samples, batch_size, seed, point_offset)
    settings = {"ais_steps": V.integer("ais_steps", ais_steps, 1, 1 << 31),
                "ais_chains": V.integer("ais_chains", ais_chains, 1, 1 << 31),
                **{k: s[k] for k in ("seed", "point_offset", "n_samples", "n_iterations", "eval_samples")}}
    if log_px is not None:
        log_px = _per_point("log_px", log_px, n)
        log_px_se = _per_point("log_px_stderr", 0.0 if log_px_stderr is None else log_px_stderr, n)
        if np.any(log_px_se < 0):
            raise ValueError("log_px_stderr must be >= 0")
        settings.update(log_px_method="given", log_px_label=str(log_px_label))
    elif log_px_stderr is not None:
        raise ValueError("log_px_stderr needs log_px (AIS gives its own standard errors)")
    qstar, (q,), diff_se, X = _qstar(model, X, n_samples, n_iterations, learning_rate, seed, "encoder", progress,
                                     eval_samples, batch_size, point_offset, also=model.encode)
    if log_px is None:
        from ..mcmc.annealing import ais
        r = ais(model, X, n_steps=settings["ais_steps"], chains=settings["ais_chains"], seed=s["seed"],
                point_offset=s["point_offset"], progress=progress)
        log_px = _per_point("AIS log_z", r.log_z, n)
        log_px_se = np.asarray(r.stderr, dtype=np.float64).reshape(n)
        settings["log_px_method"] = "ais"
    se = {"log_px": log_px_se, "elbo_qstar": qstar.stderr, "elbo_q": q[1], "amortisation_gap": diff_se,
          "approximation_gap": np.hypot(log_px_se, qstar.stderr), "kl_q_posterior": np.hypot(log_px_se, q[1])}
    return InferenceGaps(log_px, qstar.elbo, q[0], log_px - qstar.elbo, qstar.elbo - q[0], log_px - q[0], se,
                         qstar, settings)


def plot_gaps(result, path):
    """A figure of ``inference_gaps``'s result (or its ``to_dict()``) written to ``path`` (PNG etc.): per
    point log p(x), ELBO(q*) and ELBO(q) with their standard errors (left), and KL(q || p(z|x)) split into
    the approximation and amortisation gaps, per point and on average (right). Needs matplotlib.
    Returns path.

    Example::

        plot_gaps(inference_gaps(model, X[:4], log_px=model.iwae(X[:4], k=20000)), "gaps.png")
    """
    d = result.to_dict() if hasattr(result, "to_dict") else result
    try:
        per, avg = d["per_point"], d["average"]
    except (TypeError, KeyError) as e:
        raise TypeError("result must be an InferenceGaps or its to_dict()") from e
    try:
        import matplotlib
    except ImportError as e:
        raise ImportError("plot_gaps needs matplotlib: pip install matplotlib") from e
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    n = len(per["log_px"])
    x = np.arange(n)
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 3.8))
    for k, (name, label, marker) in enumerate((("log_px", "log p(x)", "o"), ("elbo_qstar", "ELBO(q*)", "s"),
                                               ("elbo_q", "ELBO(q)", "^"))):
        ax.errorbar(x + (k - 1) * 0.15, per[name], yerr=per[name + "_stderr"], fmt=marker, ms=5, capsize=2,
                    label=label)
    ax.set_title("Bounds per data point")
    # the gaps: one stacked bar per point, then the mean (error bars: the total's standard error)
    ap = np.append(per["approximation_gap"], avg["approximation_gap"])
    am = np.append(per["amortisation_gap"], avg["amortisation_gap"])
    se = np.append(per["kl_q_posterior_stderr"], avg["kl_q_posterior_stderr"])
    xb = np.append(x, n + 0.5)
    bx.bar(xb, ap, color="tab:orange", label="approximation gap")
    bx.bar(xb, am, bottom=np.maximum(ap, 0), color="tab:green", label="amortisation gap")
    bx.errorbar(xb, ap + am, yerr=se, fmt="none", color="k", capsize=3)
    bx.axhline(0, color="k", lw=0.5)
    bx.set_title(f"KL(q || p(z|x)), mean {avg['kl_q_posterior']:.3f} = {avg['approximation_gap']:.3f} + "
                 f"{avg['amortisation_gap']:.3f}", fontsize=10)
    for a, ticks, labels in ((ax, x, [str(i) for i in x]), (bx, xb, [str(i) for i in x] + ["mean"])):
        a.set_xticks(ticks)
        a.set_xticklabels(labels)
        a.set_xlabel("data point")
        a.set_ylabel("nats")
        a.grid(alpha=0.3)
        a.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
