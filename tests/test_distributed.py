"""vaekernels.distributed on a real dask.distributed.LocalCluster (two worker processes on this machine):
every distributed result is compared bit for bit with the single-process call, over several shard sizes;
shards finishing out of order, a worker killed mid-run, shards that raise, argument errors, the workers'
thread settings, and that ``import vaekernels`` does not import Dask.
"""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import assert_bitwise, vk

if os.environ.get("VAEKERNELS_EXPECT_DASK") == "1":   # .ci/run installs the dask extra: absence is a failure
    import distributed
else:
    distributed = pytest.importorskip("distributed")
import vaekernels.distributed as vkd  # noqa: E402
from vaekernels import mcmc  # noqa: E402
from vaekernels.mcmc.annealing import VAEProblem  # noqa: E402


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()


@pytest.fixture(scope="module")
def model_and_data():
    X = vk.datasets.binarize(vk.datasets.load_digits()[0][:300], 1)
    m = vk.VAE(64, 4, hidden=(32,), seed=1)   # float32: the GEMM-blocking case that needs aligned shards
    m.fit(X, epochs=3, batch_size=50, progress=False)
    return m, X


def assert_results_equal(a, b, fields):
    for f in fields:
        assert_bitwise(getattr(b, f), getattr(a, f), f)


MCMC_FIELDS = ("samples", "log_prob", "accept_rate", "step_size", "n_nan", "n_divergent", "proposal_chol")


@pytest.mark.parametrize("kw", [dict(), dict(proposal="hmc", n_leapfrog=3, jitter=0.2, keep_warmup=True, adapt_metric=True),
                                dict(proposal="mala", chain_offset=1000)], ids=["rw", "hmc", "mala-offset"])
@pytest.mark.parametrize("shard_chains", [1000, 17, 1])
def test_sample_bitwise_one_process(client, kw, shard_chains):
    g = mcmc.Gaussian(np.arange(3.0), np.eye(3) + 0.5)
    x0 = np.random.default_rng(0).standard_normal((40, 3))
    a = mcmc.sample(g, x0, n_draws=30, n_warmup=30, seed=3, progress=False, **kw)
    b = vkd.sample(client, g, x0, n_draws=30, n_warmup=30, seed=3, shard_chains=shard_chains, progress=False, **kw)
    assert_results_equal(a, b, MCMC_FIELDS)
    assert a.sample_stats.keys() == b.sample_stats.keys()
    for k in a.sample_stats:
        assert_bitwise(b.sample_stats[k], a.sample_stats[k], k)
    assert (a.inv_metric is None) == (b.inv_metric is None)
    if a.inv_metric is not None:
        assert_bitwise(b.inv_metric, a.inv_metric, "inv_metric")
    assert (a.warmup is None) == (b.warmup is None)
    if a.warmup is not None:
        assert_bitwise(b.warmup["samples"], a.warmup["samples"], "warm-up draws")
    assert b.settings == a.settings


def test_python_target_travels_by_value_and_progress_counts_shards(client):
    g = mcmc.Gaussian(np.zeros(2), np.eye(2))

    def closure_target(z):             # a closure: not importable on the workers, so it travels by value
        return g.log_prob(z)

    x0 = np.random.default_rng(1).standard_normal((48, 2))
    a = mcmc.sample(closure_target, x0, n_draws=20, n_warmup=10, seed=5, progress=False)
    calls = []
    b = vkd.sample(client, closure_target, x0, n_draws=20, n_warmup=10, seed=5, shard_chains=8,
                   progress=lambda done, total: calls.append((done, total)))
    assert_results_equal(a, b, MCMC_FIELDS)
    assert calls == [(i, 6) for i in range(1, 7)]


def _first_finishes_last(n, a, b):
    time.sleep(0.8 if a == 0 else 0.0)   # while shard 0 sleeps on one worker, the other runs shard 1
    return a, time.monotonic()


def test_shards_finishing_out_of_order_are_assembled_in_order(client):
    out = vkd._run_shards(client, "test", _first_finishes_last, vkd.shards(2, 1), (2,), False)
    assert [a for a, _ in out] == [0, 1]
    finished = [t for _, t in out]
    assert finished[0] > max(finished[1:])   # the first shard really finished last


def test_vae_evaluations_bitwise(client, model_and_data):
    m, X = model_and_data
    for shard in (7, 40, 1000):
        assert_bitwise(vkd.iwae(client, m, X[:90], k=50, seed=2, batch_size=256, shard_rows=shard, progress=False),
                       m.iwae(X[:90], k=50, seed=2, batch_size=256), f"iwae, shards of {shard}")
        assert_bitwise(vkd.elbo(client, m, X[:90], seed=2, batch_size=16, shard_rows=shard, progress=False),
                       m.elbo(X[:90], seed=2, batch_size=16), f"elbo, shards of {shard}")
    # k > batch_size: one row per pass; and a global row offset
    assert_bitwise(vkd.iwae(client, m, X[:9], k=300, seed=4, batch_size=100, row_offset=5, shard_rows=2,
                            progress=False), m.iwae(X[:9], k=300, seed=4, batch_size=100, row_offset=5), "iwae k > batch")


def test_row_offset_shards_equal_one_call(model_and_data):
    m, X = model_and_data
    whole = m.iwae(X[:12], k=20, seed=1, batch_size=80)               # 4 rows per pass
    parts = np.concatenate([m.iwae(X[a:a + 4], k=20, seed=1, batch_size=80, row_offset=a) for a in (0, 4, 8)])
    assert_bitwise(parts, whole, "iwae shards with row_offset")
    assert not np.array_equal(m.iwae(X[4:8], k=20, seed=1, batch_size=80), whole[4:8])   # the offset matters


AIS_FIELDS = ("log_z", "stderr", "ess", "log_w", "z", "step_size", "accept_prob", "accept_rate", "betas")


@pytest.mark.parametrize("shard_points", [8, 16, 100])
def test_ais_and_bdmc_bitwise(client, model_and_data, shard_points):
    m, X = model_and_data
    kw = dict(n_steps=20, chains=4, seed=4)
    a = mcmc.ais(VAEProblem(m, X[:24], block_points=8), progress=False, **kw)
    b = vkd.ais(client, m, X[:24], shard_points=shard_points, block_points=8, progress=False, **kw)
    assert_results_equal(a, b, AIS_FIELDS)
    # the default blocks: 64 chains -> 16 points (1024 latent rows) per decoder pass: shards of 16 points
    a = mcmc.ais(m, X[:24], n_steps=5, chains=64, seed=4, progress=False)
    b = vkd.ais(client, m, X[:24], n_steps=5, chains=64, seed=4, shard_points=8, progress=False)
    assert_results_equal(a, b, AIS_FIELDS)
    Xs, zs = mcmc.simulate(m, 16, seed=6)
    a = mcmc.bdmc(VAEProblem(m, Xs, start="encoder", block_points=8), z_exact=zs, progress=False, **kw)
    b = vkd.bdmc(client, m, Xs, zs, start="encoder", shard_points=shard_points, block_points=8, progress=False, **kw)
    assert_results_equal(a.forward, b.forward, AIS_FIELDS)
    assert_results_equal(a.reverse, b.reverse, AIS_FIELDS)
    a = mcmc.bdmc(m, n_simulated=16, progress=False, **kw)         # simulated here as mcmc.bdmc does
    b = vkd.bdmc(client, m, n_simulated=16, progress=False, **kw)
    assert_results_equal(a.forward, b.forward, AIS_FIELDS)
    assert_bitwise(b.X, a.X, "simulated data")


def test_ais_point_blocks_make_float32_chunks_equal_one_call(model_and_data):
    m, X = model_and_data
    whole = mcmc.ais(VAEProblem(m, X[:16], block_points=8), n_steps=15, chains=4, seed=9, progress=False)
    second = mcmc.ais(VAEProblem(m, X[8:16], block_points=8), n_steps=15, chains=4, seed=9, point_offset=8,
                      progress=False)
    assert_bitwise(second.log_z, whole.log_z[8:], "AIS chunk in float32")


def test_fit_many_equals_local_fits(client, model_and_data):
    _, X = model_and_data
    configs = [{"model": {"n_latent": 2, "hidden": (16,), "seed": s}, "fit": {"epochs": 2, "lr": 2e-3}} for s in (0, 1)]
    models = vkd.fit_many(client, configs, X, progress=False)
    for cfg, got in zip(configs, models):
        want = vk.VAE(64, **cfg["model"])
        want.fit(X, progress=False, **cfg["fit"])
        for k, v in want.get_params().items():
            assert_bitwise(got.get_params()[k], v, f"fit_many parameter {k}")
        assert got.step == want.step


def test_a_killed_worker_is_survived_with_the_same_bits(client):
    g = mcmc.Gaussian(np.zeros(2), np.eye(2))

    def slow(z):
        time.sleep(0.002)
        return g.log_prob(z)

    x0 = np.random.default_rng(2).standard_normal((64, 2))
    want = mcmc.sample(slow, x0, n_draws=40, n_warmup=20, seed=7, progress=False)
    pids = list(client.run(os.getpid).values())
    killed = []

    def kill_one(done, total):   # after the first finished shard, SIGKILL a worker process mid-run
        if not killed:
            os.kill(pids[0], signal.SIGKILL)
            killed.append(pids[0])

    got = vkd.sample(client, slow, x0, n_draws=40, n_warmup=20, seed=7, shard_chains=4, progress=kill_one)
    assert killed
    assert_results_equal(want, got, MCMC_FIELDS)
    client.wait_for_workers(2, timeout=60)   # the nanny restarts it for the next tests


def test_a_raising_shard_is_a_clear_error_and_nothing_partial_comes_back(client):
    g = mcmc.Gaussian(np.zeros(2), np.eye(2))

    def fails_for_some_chains(z):
        if z.shape[0] == 8 and np.all(z[:, 0] > 100):   # only the shard started far away
            raise FloatingPointError("bad data in this shard")
        return g.log_prob(z)

    x0 = np.zeros((32, 2))
    x0[16:24] = 200.0   # shard 2 (chains 16..23)
    with pytest.raises(vkd.ShardError, match=r"mcmc.sample: shard 2 \(16..23\) failed: FloatingPointError: bad data") as e:
        vkd.sample(client, fails_for_some_chains, x0, n_draws=5, n_warmup=0, seed=1, shard_chains=8, progress=False)
    assert isinstance(e.value.__cause__, FloatingPointError) and e.value.shard == 2 and e.value.rows == (16, 24)

    def wrong_shape(z):
        return np.zeros(3)

    with pytest.raises(vkd.ShardError, match="shard 0 .*must have shape"):
        vkd.sample(client, wrong_shape, x0, n_draws=5, n_warmup=0, seed=1, shard_chains=32, progress=False)


def test_argument_errors_come_before_any_shard(client, model_and_data):
    m, X = model_and_data
    g = mcmc.Gaussian(np.zeros(2), np.eye(2))
    x0 = np.zeros((8, 2))
    with pytest.raises(TypeError, match="client must be a dask.distributed.Client"):
        vkd.sample(object(), g, x0, n_draws=5, seed=0)
    with pytest.raises(ValueError, match="adapt_covariance=True .* cannot be sharded"):
        vkd.sample(client, g, x0, n_draws=5, seed=0, adapt_covariance=True)
    with pytest.raises(ValueError, match="n_draws"):
        vkd.sample(client, g, x0, n_draws=0, seed=0)
    with pytest.raises(TypeError, match="unexpected keyword argument 'n_draw'"):
        vkd.sample(client, g, x0, n_draw=5, seed=0)
    with pytest.raises(ValueError, match="shard_chains"):
        vkd.sample(client, g, x0, n_draws=5, seed=0, shard_chains=0)
    with pytest.raises(ValueError, match="transition must be one of"):
        vkd.ais(client, m, X[:8], n_steps=5, seed=0, transition="nuts")
    with pytest.raises(ValueError, match="per-point array is not sharded"):
        vkd.ais(client, m, X[:8], n_steps=5, seed=0, step_size=np.ones((8, 5)))
    with pytest.raises(ValueError, match=r"X must have shape \(n >= 1, 64\)"):
        vkd.ais(client, m, X[:8, :10], n_steps=5, seed=0)
    with pytest.raises(ValueError, match="z_exact must have shape"):
        vkd.bdmc(client, m, X[:8], np.zeros((8, 3)), n_steps=5, seed=0)
    with pytest.raises(ValueError, match="k"):
        vkd.iwae(client, m, X[:8], k=0)
    with pytest.raises(ValueError, match="configs\\[1\\]"):
        vkd.fit_many(client, [{"model": {}}, {"epochs": 3}], X)


def test_workers_run_one_kernel_thread_per_task(client):
    sizes = client.run(lambda: __import__("vaekernels")._core.team_size())
    assert set(sizes.values()) == {1}, sizes   # the nanny's OMP_NUM_THREADS=1: no oversubscription


def test_import_vaekernels_does_not_import_dask():
    out = subprocess.run([sys.executable, "-c", "import sys, vaekernels, vaekernels.mcmc, vaekernels.vae; "
                          "print(any(m == 'dask' or m.startswith(('dask.', 'distributed')) for m in sys.modules))"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_per_chain_arguments_and_vae_posterior_targets_are_cut_with_the_chains(client, model_and_data):
    m, X = model_and_data
    post = mcmc.vae_posterior(m, X[:4], chains_per_x=8)          # 8 chains per point: blocks of 8 points
    x0 = post.initial_points(seed=1)
    qm, qlv = post.proposal()
    steps = np.linspace(0.1, 0.5, x0.shape[0])
    for kw in (dict(proposal="independent", proposal_mean=qm, proposal_logvar=qlv), dict(step_size=steps),
               dict(proposal="hmc", n_leapfrog=2)):
        a = mcmc.sample(post, x0, n_draws=10, n_warmup=10, seed=2, progress=False, **kw)
        b = vkd.sample(client, post, x0, n_draws=10, n_warmup=10, seed=2, shard_chains=8, progress=False, **kw)
        assert_results_equal(a, b, MCMC_FIELDS)
    # more data points than one decoder block: shards of whole blocks, each with its own points' posteriors
    post = mcmc.vae_posterior(m, X[:20], chains_per_x=64)        # blocks of 16 points = 1024 chains
    x0 = post.initial_points(seed=3)
    a = mcmc.sample(post, x0, n_draws=3, n_warmup=3, seed=4, proposal="mala", progress=False)
    b = vkd.sample(client, post, x0, n_draws=3, n_warmup=3, seed=4, proposal="mala", shard_chains=100, progress=False)
    assert_results_equal(a, b, MCMC_FIELDS)
