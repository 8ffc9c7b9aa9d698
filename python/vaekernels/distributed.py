"""vaekernels on a Dask cluster: the same results as one process, bit for bit, over many machines.

Every result of vaekernels is a pure function of (seed, chain id or data row, step): MCMC chain ``c`` draws
from stream positions keyed by its id, AIS point ``i`` by ``i + point_offset``, IWAE/ELBO row ``i`` from
positions ``i k L`` / ``i L``. So a run splits into shards (chains through ``chain_offset``, data points
through ``point_offset``, rows through the streams' positions), runs them as ``dask.distributed`` tasks and
comes back identical to one process whatever the number of workers, the shard size and the order in which
shards finish. Dask does the scheduling, transport, retries and worker pool; this module only cuts,
ships and reassembles.

    from dask.distributed import Client, LocalCluster
    import vaekernels as vk, vaekernels.distributed as vkd
    client = Client(LocalCluster(n_workers=2, threads_per_worker=1))
    res = vkd.sample(client, vk.mcmc.Gaussian(mu, cov), x0, n_draws=1000, seed=0)   # an MCMCResult
    lz = vkd.ais(client, model, X_test, n_steps=1000, chains=16, seed=0)             # an AISResult
    ll = vkd.iwae(client, model, X_test, k=5000, seed=0)                              # (n,) float64

Identical bits for the GEMM-based evaluations (IWAE, ELBO, AIS on a VAE) hold because the shards are cut
at the evaluation's own row-block boundaries (a BLAS may round a row differently depending on the matrix
it sits in, so a row must sit in the same block in every run), and they need the same CPU kind and the
same library versions (NumPy's BLAS, vaekernels) on every worker and on the reference machine.

Models, targets and data travel by value: each is pickled once per call into a task that unpickles it,
so Dask ships it to each worker that needs it once (not once per shard), and if a worker dies the
scheduler recomputes it on a replacement from the task graph. The scheduler holds that pickle for the
call (a 10,000-image MNIST test set is 31 MB), which is the price of surviving any worker's death. A shard that raises comes back as
:class:`ShardError` naming the shard and its rows; the other shards are cancelled and nothing partial is
returned. A killed worker's shards are rescheduled by Dask (up to ``distributed.scheduler.allowed-failures``
times) and the result is unchanged.

Threads: Dask's nanny starts workers with OMP_NUM_THREADS=1 (and MKL/OPENBLAS_NUM_THREADS=1), so the kernels'
thread team and NumPy's BLAS use one thread per task; a worker with ``nthreads=T`` runs T shards at once.
Give each machine as many worker threads (or 1-thread worker processes) as it has cores and nothing is
oversubscribed. (A worker started without the nanny keeps its environment: then set OMP_NUM_THREADS=1.)

Importing this module imports dask.distributed; ``import vaekernels`` never does.
"""
from __future__ import annotations

import inspect
import math
import pickle
import warnings

import numpy as np

try:
    import cloudpickle
    from dask.base import tokenize
    from distributed import as_completed
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError("vaekernels.distributed needs Dask: pip install 'vaekernels[dask]'") from e

from . import mcmc as _mcmc
from ._progress import progress_bar
from .kernels import validate as V

__all__ = ["ShardError", "sample", "ais", "bdmc", "iwae", "elbo", "fit_many", "shards"]


class ShardError(RuntimeError):
    """A shard's task raised. ``shard`` is its index, ``rows`` its (start, stop) range (chains, data points
    or rows, as the call says), ``what`` the call; the task's exception is the ``__cause__``."""

    def __init__(self, what, shard, rows, exc):
        self.what, self.shard, self.rows = what, shard, rows
        super().__init__(f"{what}: shard {shard} ({rows[0]}..{rows[1] - 1}) failed: {type(exc).__name__}: {exc}")


def shards(n, size, align=1):
    """[(start, stop)] cutting range(n) into pieces of ``size`` rounded up to a multiple of ``align``."""
    size = max(align, -(-size // align) * align)
    return [(a, min(n, a + size)) for a in range(0, n, size)]


def _check_client(client):
    if not (hasattr(client, "submit") and hasattr(client, "gather")):
        raise TypeError(f"client must be a dask.distributed.Client, got {type(client).__name__}")


def _shared(client, obj):
    """A future holding ``obj`` on the cluster: a task that unpickles it, so each worker fetches it once and
    a lost copy is recomputed from the graph (scattered data would be lost with its worker)."""
    blob = cloudpickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)   # closures and lambdas travel by value
    with warnings.catch_warnings():
        # Dask warns about graphs over 10 MB; holding the blob in the graph is the point here (the scheduler
        # keeps one copy per call, and a lost result is rebuilt from it)
        warnings.filterwarnings("ignore", message="Sending large graph", category=UserWarning)
        return client.submit(pickle.loads, blob, key=f"vaekernels-shared-{tokenize(blob)}", pure=False)


def _run_shards(client, what, fn, pieces, args, progress):
    """Submit fn(shared args..., piece) for each piece, gather in order; ShardError on the first failure."""
    futures = [client.submit(fn, *args, a, b, pure=False) for a, b in pieces]
    index = {f.key: i for i, f in enumerate(futures)}
    results = [None] * len(futures)
    bar = progress_bar(len(futures), progress, "shard") if not callable(progress) else None
    finished = False
    try:
        for done, fut in enumerate(as_completed(futures), 1):
            i = index[fut.key]
            if fut.status == "error":
                exc = fut.exception()
                client.cancel(futures)
                raise ShardError(what, i, pieces[i], exc) from exc
            results[i] = fut.result()
            if bar is not None:
                bar.update(1)
            elif callable(progress):
                progress(done, len(futures))
        finished = True
    finally:
        if not finished:          # a shard error, an exception from progress, Ctrl-C: stop the other shards
            client.cancel(futures)
        if bar is not None:
            bar.close()
    return results


def _shard_size(name, value, default):
    return default if value is None else V.integer(name, value, 1, 1 << 40)


# -------------------------------------------------------------------------------------------------
# MCMC: chains split through chain_offset
# -------------------------------------------------------------------------------------------------
_PER_CHAIN = ("proposal_mean", "proposal_logvar", "step_size")   # mcmc.sample arguments with a chains axis


def _sample_task(target, x0, kwargs, a, b):
    kw = dict(kwargs)
    for name in _PER_CHAIN:
        if np.ndim(kw.get(name)) > 0 and not isinstance(kw[name], str):
            kw[name] = np.asarray(kw[name])[a:b]
    kw["chain_offset"] += a
    if isinstance(target, _mcmc.VAEPosterior):   # the shard's own data points (shards hold whole points)
        k = target.chains_per_x
        target = target.subset(a // k, b // k)
    return _mcmc.sample(target, x0[a:b], progress=False, **kw)


def sample(client, target, x0, *, shard_chains=4096, progress=True, **kwargs):
    """:func:`vaekernels.mcmc.sample` with the chains split into shards of ``shard_chains`` over the cluster.

    Same arguments as ``mcmc.sample`` (``chain_offset`` included) and the same :class:`MCMCResult`, bitwise
    equal to one ``mcmc.sample`` call. ``adapt_covariance=True`` pools warm-up draws over all chains of a
    call, so it cannot be sharded (ValueError). The target and x0 go to each worker once; per-chain
    arguments (proposal_mean, proposal_logvar, a step_size array) are cut like x0. progress: a bar over
    shards (True/False) or ``progress(done, total)``.

    Targets: the built-in ones; a :func:`vaekernels.mcmc.vae_posterior` (shards hold whole blocks of its data
    points, ``VAEPosterior.block_chains`` chains, and each shard samples its own points' posteriors through
    the same decoder blocks); or any picklable callable that evaluates every row of Z on its own (a row's
    value must not depend on which other rows are in Z: a callable that runs one GEMM over all rows may
    round differently in a shard, and one that maps rows to data points by position, like a hand-made
    posterior over several data points, must be split by you).
    """
    _check_client(client)
    if kwargs.get("adapt_covariance"):
        raise ValueError("adapt_covariance=True pools warm-up draws over all chains of one call and cannot be "
                         "sharded; run it in one process or adapt per chain")
    x0 = np.asarray(x0)
    if x0.ndim != 2:
        raise ValueError(f"x0 must be 2-D (chains, dim), got shape {x0.shape}")
    size = V.integer("shard_chains", shard_chains, 1, 1 << 32)
    kwargs.setdefault("chain_offset", 0)
    if "progress" in kwargs:
        raise TypeError("progress is this function's own argument (a bar over shards)")
    _mcmc.sample(target, x0, **kwargs, progress=False, _check_only=True)   # argument errors here, not per shard
    align = target.block_chains if isinstance(target, _mcmc.VAEPosterior) else 1
    pieces = shards(x0.shape[0], size, align)
    parts = _run_shards(client, "mcmc.sample", _sample_task, pieces,
                        (_shared(client, target), _shared(client, x0), dict(kwargs)), progress)
    return _concat_mcmc(parts, kwargs["chain_offset"])


def _concat_mcmc(parts, chain_offset):
    first = parts[0]
    cat = lambda name: np.concatenate([getattr(p, name) for p in parts], axis=0)   # noqa: E731
    stats = {k: np.concatenate([p.sample_stats[k] for p in parts], axis=0) for k in first.sample_stats}
    warmup = None
    if first.warmup is not None:
        warmup = {"samples": np.concatenate([p.warmup["samples"] for p in parts]),
                  "log_prob": np.concatenate([p.warmup["log_prob"] for p in parts]),
                  "sample_stats": {k: np.concatenate([p.warmup["sample_stats"][k] for p in parts])
                                   for k in first.warmup["sample_stats"]}}
    settings = dict(first.settings, chain_offset=chain_offset)
    return _mcmc.MCMCResult(cat("samples"), cat("log_prob"), cat("accept_rate"), cat("step_size"), cat("n_nan"),
                            first.proposal_chol, settings=settings, n_divergent=cat("n_divergent"),
                            sample_stats=stats, warmup=warmup,
                            inv_metric=None if first.inv_metric is None else cat("inv_metric"))


# -------------------------------------------------------------------------------------------------
# AIS and BDMC: data points split through point_offset, at the decoder's point-block boundaries
# -------------------------------------------------------------------------------------------------
def _ais_task(model, X, z_exact, kwargs, a, b):
    from .mcmc.annealing import VAEProblem, ais, bdmc
    kw = dict(kwargs)
    problem = VAEProblem(model, X[a:b], kw.pop("start"), block_points=kw.pop("block_points"))
    kw["point_offset"] += a
    if z_exact is None:
        return ais(problem, progress=False, **kw)
    return bdmc(problem, z_exact=z_exact[a:b], progress=False, **kw)


def _concat_ais(parts, point_offset):
    from .mcmc.annealing import AISResult
    first = parts[0]
    cat = {name: np.concatenate([getattr(p, name) for p in parts]) for name in
           ("log_z", "stderr", "ess", "log_w", "z", "step_size", "accept_prob", "accept_rate")}
    return AISResult(**cat, betas=first.betas, settings=dict(first.settings, point_offset=point_offset))


def _check_vae_data(model, X):
    for attr in ("decoder_log_likelihood", "encode", "n_inputs", "n_latent"):
        if not hasattr(model, attr):
            raise TypeError(f"model must be a vaekernels.VAE (distributed AIS shards a VAE's data points), got "
                            f"{type(model).__name__}")
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[1] != model.n_inputs or X.shape[0] < 1:
        raise ValueError(f"X must have shape (n >= 1, {model.n_inputs}), got {X.shape}")
    return X


def _ais_like(client, what, model, X, z_exact, kwargs, shard_points, block_points, progress):
    from .mcmc.annealing import VAEProblem, _settings, ais, bdmc
    from .mcmc.problems import ENCODER_BLOCK_POINTS, decoder_block_points
    _check_client(client)
    X = _check_vae_data(model, X)
    kwargs.setdefault("point_offset", 0)
    kwargs.setdefault("start", "prior")
    if "progress" in kwargs:
        raise TypeError("progress is this function's own argument (a bar over shards)")
    if block_points is not None:
        block_points = V.integer("block_points", block_points, 1, 1 << 31)
    size = V.integer("shard_points", shard_points, 1, 1 << 40)
    if not isinstance(kwargs.get("step_size", "adapt"), str) and np.ndim(kwargs["step_size"]) > 0:
        raise ValueError("distributed AIS takes step_size='adapt' or one float (a per-point array is not sharded)")
    # every argument checked here, with the functions' own checks on a one-point problem (argument errors
    # are not shard errors), nothing run
    kw = dict(kwargs)
    small = VAEProblem(model, X[:1], kw.pop("start"), block_points=block_points)
    bound = inspect.signature(ais if z_exact is None else bdmc).bind(small, progress=False, **kw)
    bound.apply_defaults()
    a = bound.arguments
    _settings(small, a["schedule"], a["n_steps"], a["chains"], a["seed"], a["transition"], a["n_leapfrog"],
              a["step_size"], a["target_accept"], a["point_offset"] + X.shape[0] - 1, False)
    if z_exact is not None:
        z_exact = np.asarray(z_exact)
        if z_exact.shape != (X.shape[0], model.n_latent):
            raise ValueError(f"z_exact must have shape ({X.shape[0]}, {model.n_latent}) like X's rows, got {z_exact.shape}")
    # shards start at multiples of both blocks (decoder and encoder), so every point sits in the same GEMMs
    # as in one process
    dec = decoder_block_points(V.integer("chains", kwargs.get("chains", 16), 1, 1 << 31), block_points)
    align = dec * ENCODER_BLOCK_POINTS // math.gcd(dec, ENCODER_BLOCK_POINTS)
    pieces = shards(X.shape[0], size, align)
    return _run_shards(client, what, _ais_task, pieces,
                       (_shared(client, model), _shared(client, X),
                        None if z_exact is None else _shared(client, z_exact),
                        dict(kwargs, block_points=block_points)), progress)


def ais(client, model, X, *, shard_points=32, block_points=None, progress=True, **kwargs):
    """:func:`vaekernels.mcmc.ais` of a VAE over the cluster, data points split into shards of
    ``shard_points`` (rounded up to a multiple of the decoder's block of points, see
    ``mcmc.problems.decoder_block_points``: 64 points for 16 chains; pass a smaller ``block_points`` for
    finer shards, at some cost per decoder pass): the same :class:`AISResult` as
    ``mcmc.ais(model, X, **kwargs)`` (= ``VAEProblem(model, X, start, block_points)``) in one process, bit
    for bit.

    kwargs: ``mcmc.ais``'s (n_steps, chains, seed, schedule, transition, n_leapfrog, step_size, target_accept,
    start, point_offset); a per-point (n, n_steps) step_size array is not sharded (ValueError from the
    check). Step sizes adapt per data point, so shards change nothing."""
    parts = _ais_like(client, "mcmc.ais", model, X, None, kwargs, shard_points, block_points, progress)
    return _concat_ais(parts, kwargs["point_offset"])


def bdmc(client, model, X=None, z_exact=None, *, n_simulated=None, shard_points=32, block_points=None, progress=True,
         **kwargs):
    """:func:`vaekernels.mcmc.bdmc` of a VAE over the cluster (data points sharded as in :func:`ais`): the
    same :class:`BDMCResult` as one process, bit for bit. ``n_simulated=k`` simulates the data first, here,
    exactly as ``mcmc.bdmc`` does (``simulate(model, k, derive_seed(seed, "bdmc", "data"))``)."""
    from .mcmc.annealing import BDMCResult, simulate
    from .random import derive_seed
    sim = None
    if n_simulated is not None:
        if X is not None or z_exact is not None:
            raise ValueError("give either n_simulated or X and z_exact, not both")
        sim = simulate(model, n_simulated, derive_seed(V.integer("seed", kwargs.get("seed")), "bdmc", "data"))
        X, z_exact = sim
    if X is None or z_exact is None:
        raise ValueError("bdmc needs X and z_exact (n_points, dim), or n_simulated")
    parts = _ais_like(client, "mcmc.bdmc", model, X, z_exact, kwargs, shard_points, block_points, progress)
    off = kwargs["point_offset"]
    fwd, rev = _concat_ais([p.forward for p in parts], off), _concat_ais([p.reverse for p in parts], off)
    return BDMCResult(lower=fwd.log_z, upper=rev.log_z, forward=fwd, reverse=rev,
                      X=None if sim is None else sim[0], z_exact=None if sim is None else sim[1])


# -------------------------------------------------------------------------------------------------
# VAE evaluation: data rows split at the evaluation's row-block boundaries
# -------------------------------------------------------------------------------------------------
def _check_model(model):
    for attr in ("iwae", "elbo", "n_inputs", "_check_data"):
        if not hasattr(model, attr):
            raise TypeError(f"model must be a vaekernels.VAE, got {type(model).__name__}")


def _iwae_task(model, X, k, seed, batch_size, row_offset, a, b):
    return model.iwae(X[a:b], k=k, seed=seed, batch_size=batch_size, row_offset=row_offset + a)


def iwae(client, model, X, *, k=5000, seed=0, batch_size=8192, row_offset=0, shard_rows=None, progress=True):
    """``model.iwae(X, k, seed, batch_size, row_offset)`` over the cluster, rows split into shards: (n,) float64, bitwise
    the single-process result. Shards hold a multiple of the rows one IWAE pass takes (max(1,
    batch_size // k)), so every row goes through the decoder in the same block as in one process;
    shard_rows (default: about 64 passes' worth) is rounded up to that multiple."""
    _check_client(client)
    _check_model(model)
    X = model._check_data(X, "X", None)
    k = V.integer("k", k, 1, 1 << 40)
    batch_size = V.integer("batch_size", batch_size, 1, 1 << 31)
    row_offset = V.integer("row_offset", row_offset, 0, 1 << 62)
    V.seed_offset(seed, row_offset * k * model.n_latent, X.shape[0] * k * model.n_latent)
    block = max(1, batch_size // k)
    size = _shard_size("shard_rows", shard_rows, 64 * block)
    parts = _run_shards(client, "VAE.iwae", _iwae_task, shards(X.shape[0], size, block),
                        (_shared(client, model), _shared(client, X), k, seed, batch_size, row_offset), progress)
    return np.concatenate(parts)


def _elbo_task(model, X, seed, batch_size, row_offset, a, b):
    return model.elbo(X[a:b], seed=seed, batch_size=batch_size, row_offset=row_offset + a)


def elbo(client, model, X, *, seed=0, batch_size=1024, row_offset=0, shard_rows=None, progress=True):
    """``model.elbo(X, seed, batch_size, row_offset)`` over the cluster: (n,) in the model's dtype, bitwise the
    single-process result (shards are whole multiples of ``batch_size`` rows; default 16 batches)."""
    _check_client(client)
    _check_model(model)
    X = model._check_data(X, "X", None)
    batch_size = V.integer("batch_size", batch_size, 1, 1 << 31)
    row_offset = V.integer("row_offset", row_offset, 0, 1 << 62)
    V.seed_offset(seed, row_offset * model.n_latent, X.shape[0] * model.n_latent)
    size = _shard_size("shard_rows", shard_rows, 16 * batch_size)
    parts = _run_shards(client, "VAE.elbo", _elbo_task, shards(X.shape[0], size, batch_size),
                        (_shared(client, model), _shared(client, X), seed, batch_size, row_offset), progress)
    return np.concatenate(parts)


# -------------------------------------------------------------------------------------------------
# Hyper-parameter sweeps: one fit per task
# -------------------------------------------------------------------------------------------------
def _fit_task(X, configs, a, b):
    from .vae import VAE
    (cfg,) = configs[a:b]
    model = VAE(X.shape[1], **cfg.get("model", {}))
    model.fit(X, **{"progress": False, **cfg.get("fit", {})})
    return model


def fit_many(client, configs, X, *, progress=True):
    """Train one VAE per configuration, each on one worker: a hyper-parameter sweep.

    configs: a list of dicts ``{"model": VAE keyword arguments (n_latent, hidden, activation, likelihood,
    seed, dtype), "fit": VAE.fit keyword arguments (epochs, batch_size, lr, ...)}``; n_inputs is X's width.
    X goes to each worker once. Returns the trained models in the order of configs, each bitwise the model
    the same two calls give in one process. A configuration that fails raises ShardError naming it.

        models = fit_many(client, [{"model": {"n_latent": L, "seed": 0}, "fit": {"epochs": 20, "lr": lr}}
                                   for L in (2, 8, 32) for lr in (1e-3, 3e-3)], X_train)
    """
    _check_client(client)
    configs = list(configs)
    for i, c in enumerate(configs):
        if not isinstance(c, dict) or set(c) - {"model", "fit"}:
            raise ValueError(f"configs[{i}] must be a dict with keys 'model' and/or 'fit', got {c!r}")
        if "n_inputs" in c.get("model", {}):
            raise ValueError(f"configs[{i}]['model'] must not set n_inputs (it is X's width)")
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (n, n_inputs), got shape {X.shape}")
    return _run_shards(client, "fit_many", _fit_task, [(i, i + 1) for i in range(len(configs))],
                       (_shared(client, X), configs), progress)

