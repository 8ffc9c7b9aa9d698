"""Batched Metropolis-Hastings (vaekernels.mcmc): moments against exact values with tolerances from the
effective sample size, adaptation, bitwise reproducibility (seed, thread count, chain partition, SIMD
level), NaN/exception handling, the independence proposal, the diagnostics against ArviZ, bad input.

Statistical tolerances: an estimate of E f from draws with effective sample size ESS has Monte Carlo
standard error sd(f) / sqrt(ESS). Tests allow 5 MCSE (two-sided false-alarm rate ~6e-7 per check under
the CLT), with ESS from vaekernels.mcmc.ess (itself checked against ArviZ below).
"""
import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import vaekernels as vk
from vaekernels import mcmc

Z_TOL = 5.0


def mcse_check(draws, truth, name):
    """draws (chains, n, k) of k scalar functions; truth (k,): |mean - truth| <= Z_TOL * MCSE."""
    est = draws.mean(axis=(0, 1))
    ess = mcmc.ess(draws)
    sd = draws.reshape(-1, draws.shape[2]).std(axis=0)
    mcse = sd / np.sqrt(ess)
    z = np.abs(est - truth) / mcse
    assert np.all(z < Z_TOL), f"{name}: estimate {est}, truth {truth}, z-scores {z}, ESS {ess}"
    return z


def sample_hash(res):
    h = hashlib.sha256()
    for a in (res.samples, res.log_prob, res.accept_rate, res.step_size, res.n_nan, res.proposal_chol):
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


# -------------------------------------------------------------------------------------------------
# Correctness: moments
# -------------------------------------------------------------------------------------------------
def test_correlated_gaussian_mean_and_covariance():
    rng = np.random.default_rng(1)
    A = rng.standard_normal((3, 3))
    cov = A @ A.T + 0.5 * np.eye(3)
    mean = np.array([1.0, -2.0, 0.5])
    target = mcmc.Gaussian(mean, cov)
    x0 = rng.standard_normal((128, 3))
    res = mcmc.sample(target, x0, n_draws=1500, n_warmup=800, seed=11, adapt_covariance=True)
    s = res.samples
    mcse_check(s, mean, "mean")
    # Covariances: E[(x_i - m_i)(x_j - m_j)] = cov_ij, one scalar function per pair.
    d = s - mean
    iu = np.triu_indices(3)
    prods = d[..., iu[0]] * d[..., iu[1]]
    mcse_check(prods, cov[iu], "covariance")
    assert res.n_nan.sum() == 0
    # the pooled covariance estimate is close to the target's covariance (it came from warm-up draws)
    est_cov = res.proposal_chol @ res.proposal_chol.T
    np.testing.assert_allclose(est_cov, cov, rtol=0.25, atol=0.25 * np.abs(cov).max())


def test_banana_exact_moments_in_every_dimension():
    # x1 ~ N(0, s^2), x2 | x1 ~ N(b (s^2 - x1^2), 1), x3 ~ N(0, 1): means 0, variances exact.
    target = mcmc.Banana(b=0.05, sigma1=3.0, dim=3)
    rng = np.random.default_rng(2)
    x0 = target.sample_exact(128, rng)
    res = mcmc.sample(target, x0, n_draws=2000, n_warmup=500, seed=3)
    s = res.samples
    mcse_check(s, target.mean, "banana mean")
    mcse_check(s ** 2, target.variance, "banana second moment")
    # exact values by construction: Var x2 = 1 + 2 b^2 s^4
    assert target.variance[1] == pytest.approx(1 + 2 * 0.05 ** 2 * 3.0 ** 4)


def test_log_prob_output_matches_numpy_formulas():
    """res.log_prob (C++ densities of targets.hpp) against independent NumPy formulas at the draws."""
    rng = np.random.default_rng(4)
    X = rng.standard_normal((40, 3))
    y = (rng.random(40) < 0.5).astype(float)
    cov = np.array([[2.0, 0.3, 0.1], [0.3, 1.0, -0.2], [0.1, -0.2, 0.5]])
    targets = [mcmc.Gaussian(np.array([0.5, -1.0, 2.0]), cov), mcmc.Banana(b=0.1, sigma1=10.0, dim=3),
               mcmc.LogisticRegression(X, y, prior_scale=2.0)]
    for t in targets:
        res = mcmc.sample(t, rng.standard_normal((21, 3)), n_draws=30, n_warmup=20, seed=5)
        ref = t.log_prob(res.samples)
        # float64 rounding of sums of <= 40 terms of size <= ~100: 1e-12 relative is ample
        np.testing.assert_allclose(res.log_prob, ref, rtol=1e-12, atol=1e-11, err_msg=type(t).__name__)


def test_logistic_regression_posterior_mean_against_quadrature():
    rng = np.random.default_rng(5)
    X = np.column_stack([np.ones(60), rng.standard_normal(60)])
    y = (rng.random(60) < 1 / (1 + np.exp(-(0.3 + 1.2 * X[:, 1])))).astype(float)
    target = mcmc.LogisticRegression(X, y, prior_scale=1.5)
    # Reference: the posterior on a fine 2-D grid (integrand is smooth; 400^2 points over +-6 sd)
    g0 = np.linspace(-2.5, 3.0, 400)
    g1 = np.linspace(-1.5, 4.5, 400)
    G = np.stack(np.meshgrid(g0, g1, indexing="ij"), -1).reshape(-1, 2)
    lp = target.log_prob(G)
    w = np.exp(lp - lp.max())
    w /= w.sum()
    ref_mean = w @ G
    res = mcmc.sample(target, np.zeros((64, 2)), n_draws=1500, n_warmup=500, seed=6)
    mcse_check(res.samples, ref_mean, "logistic posterior mean")


# -------------------------------------------------------------------------------------------------
# Adaptation
# -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("target_accept", [0.234, 0.44])
def test_adaptation_reaches_target_accept(target_accept):
    target = mcmc.Gaussian(np.zeros(5), np.diag([1.0, 4.0, 0.25, 1.0, 9.0]))
    x0 = np.random.default_rng(7).standard_normal((64, 5))
    res = mcmc.sample(target, x0, n_draws=1000, n_warmup=1000, seed=8, target_accept=target_accept)
    assert abs(res.accept_rate.mean() - target_accept) < 0.05
    assert abs(np.median(res.accept_rate) - target_accept) < 0.05
    assert np.all(np.isfinite(res.step_size)) and np.all(res.step_size > 0)


def test_fixed_step_size_is_not_adapted():
    target = mcmc.Gaussian(np.zeros(2), np.eye(2))
    res = mcmc.sample(target, np.zeros((20, 2)), n_draws=50, n_warmup=100, seed=1, step_size=0.3)
    np.testing.assert_array_equal(res.step_size, 0.3)


def test_warmup_frozen_equals_fixed_step_rerun():
    """Warm-up and its frozen step sizes do not depend on how many draws follow (the stream is indexed by
    the global iteration), so a 1-draw run gives the same first draw and step sizes as a 40-draw run."""
    target = mcmc.Banana(b=0.05, sigma1=3.0)
    x0 = np.random.default_rng(9).standard_normal((20, 2))
    full = mcmc.sample(target, x0, n_draws=40, n_warmup=60, seed=4)
    # Run only the warm-up, keeping its last state (thin = 1, n_draws = 1 iteration past warm-up).
    warm = mcmc.sample(target, x0, n_draws=1, n_warmup=60, seed=4)
    np.testing.assert_array_equal(warm.samples[:, 0], full.samples[:, 0])
    np.testing.assert_array_equal(warm.step_size, full.step_size)


# -------------------------------------------------------------------------------------------------
# Reproducibility: seed, thread count, chain partition, SIMD level
# -------------------------------------------------------------------------------------------------
def test_same_seed_same_bits_other_seed_other_bits():
    t = mcmc.Banana()
    x0 = np.zeros((33, 2))
    a = mcmc.sample(t, x0, n_draws=50, n_warmup=50, seed=123)
    b = mcmc.sample(t, x0, n_draws=50, n_warmup=50, seed=123)
    c = mcmc.sample(t, x0, n_draws=50, n_warmup=50, seed=124)
    assert sample_hash(a) == sample_hash(b)
    assert not np.array_equal(a.samples, c.samples)


def _partition_case(target, **kw):
    x0 = np.random.default_rng(10).standard_normal((37, target.dim if hasattr(target, "dim") else 2))
    full = mcmc.sample(target, x0, seed=77, **kw)
    parts = [mcmc.sample(target, x0[a:b], seed=77, chain_offset=a, **kw) for a, b in ((0, 10), (10, 11), (11, 37))]
    for name in ("samples", "log_prob", "accept_rate", "step_size", "n_nan"):
        joined = np.concatenate([getattr(p, name) for p in parts])
        np.testing.assert_array_equal(getattr(full, name), joined, err_msg=name)


def test_chain_partition_independence_builtin():
    _partition_case(mcmc.Banana(b=0.05, sigma1=3.0, dim=3), n_draws=40, n_warmup=40)


def test_chain_partition_independence_callable_and_independent_proposal():
    t = mcmc.Gaussian(np.zeros(2), np.array([[1.0, 0.5], [0.5, 2.0]]))
    # The callable must itself give each row the same bits whatever the batch size. t.log_prob does not
    # (np.linalg.solve on a 1-row batch differs from a 37-row one in the last bit for some rows), so the
    # same log-density written elementwise (precision matrix [[2, -0.5], [-0.5, 1]] / 1.75).
    def log_prob_rowwise(z):
        return -0.5 * (2.0 * z[:, 0] ** 2 - z[:, 0] * z[:, 1] + z[:, 1] ** 2) / 1.75
    _partition_case(log_prob_rowwise, n_draws=30, n_warmup=30)
    m = np.random.default_rng(3).standard_normal((37, 2))
    x0 = np.random.default_rng(10).standard_normal((37, 2))
    lv = np.full((37, 2), 0.5)
    full = mcmc.sample(t, x0, n_draws=30, n_warmup=0, seed=5, proposal="independent", proposal_mean=m,
                       proposal_logvar=lv)
    part = mcmc.sample(t, x0[5:9], n_draws=30, n_warmup=0, seed=5, chain_offset=5, proposal="independent",
                       proposal_mean=m[5:9], proposal_logvar=lv[5:9])
    np.testing.assert_array_equal(full.samples[5:9], part.samples)


_SUBPROCESS = r"""
import hashlib, json, numpy as np
from vaekernels import mcmc
def h(r):
    return hashlib.sha256(r.samples.tobytes() + r.log_prob.tobytes() + r.step_size.tobytes()
                          + r.proposal_chol.tobytes()).hexdigest()
x0 = np.random.default_rng(0).standard_normal((300, 4))
g = mcmc.Gaussian(np.arange(4.0), np.eye(4) + 0.5)
out = {
    "banana": h(mcmc.sample(mcmc.Banana(dim=4), x0, n_draws=30, n_warmup=40, seed=9)),
    "gauss_cov": h(mcmc.sample(g, x0, n_draws=30, n_warmup=40, seed=9, adapt_covariance=True)),
    "callable": h(mcmc.sample(g.log_prob, x0, n_draws=20, n_warmup=20, seed=9)),
    "logistic": h(mcmc.sample(mcmc.LogisticRegression(x0[:50], (x0[:50, 0] > 0) * 1.0), x0, n_draws=20,
                              n_warmup=20, seed=9)),
}
for prop in ("mala", "hmc"):   # gradient proposals: draws and per-draw statistics (energy, step sizes)
    kw = dict(n_draws=20, n_warmup=20, seed=9, proposal=prop, keep_warmup=True)
    if prop == "hmc":
        kw.update(n_leapfrog=4, jitter=0.3, adapt_metric=True)
    for name, t in (("gauss", g), ("banana", mcmc.Banana(dim=4)),
                    ("logistic", mcmc.LogisticRegression(x0[:50], (x0[:50, 0] > 0) * 1.0)),
                    ("callable", g.log_prob_and_grad)):
        r = mcmc.sample(t, x0, **kw)
        out[f"{prop} {name}"] = h(r) + hashlib.sha256(
            np.stack(list(r.sample_stats.values())[:3]).tobytes() + r.warmup["samples"].tobytes()
            + r.inv_metric.tobytes()).hexdigest()
    lp, grad = g.log_prob_and_grad(x0)
    out["evaluate"] = hashlib.sha256(lp.tobytes() + grad.tobytes()).hexdigest()
print(json.dumps(out))
"""


def _run_env(**env):
    e = dict(os.environ)
    e.update(env)
    out = subprocess.run([sys.executable, "-c", _SUBPROCESS], env=e, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_thread_count_independence():
    one = _run_env(OMP_NUM_THREADS="1")
    two = _run_env(OMP_NUM_THREADS="2")
    assert one == two


def test_simd_levels_give_identical_draws():
    levels = vk.simd_levels()
    results = {lvl: _run_env(VAEKERNELS_SIMD=lvl) for lvl in levels}
    first = results[levels[0]]
    for lvl, r in results.items():
        assert r == first, f"{lvl} differs from {levels[0]}"


# -------------------------------------------------------------------------------------------------
# Python callables: NaN, exceptions, shapes
# -------------------------------------------------------------------------------------------------
def test_nan_is_a_counted_rejection_and_gives_the_truncated_target():
    # N(0, 1) in 1-D with NaN above 1: the chain samples N(0, 1) truncated to x <= 1,
    # whose mean is -phi(1) / Phi(1).
    calls = {"nan": 0}

    def lp(z):
        out = -0.5 * z[:, 0] ** 2
        bad = z[:, 0] > 1.0
        calls["nan"] += int(bad.sum())
        out[bad] = np.nan
        return out

    x0 = np.full((64, 1), -0.5)
    res = mcmc.sample(lp, x0, n_draws=1500, n_warmup=300, seed=12)
    assert np.all(np.isfinite(res.samples)) and np.all(np.isfinite(res.log_prob))
    assert res.samples.max() <= 1.0
    assert res.n_nan.sum() == calls["nan"] > 0       # every NaN proposal counted, nothing else
    phi1 = np.exp(-0.5) / np.sqrt(2 * np.pi)
    Phi1 = 0.8413447460685429
    mcse_check(res.samples, np.array([-phi1 / Phi1]), "truncated normal mean")


def test_plus_inf_counted_minus_inf_is_zero_density():
    def lp(z):
        out = -0.5 * np.sum(z ** 2, axis=1)
        out[z[:, 0] > 1.5] = np.inf
        out[z[:, 0] < -1.5] = -np.inf
        return out

    res = mcmc.sample(lp, np.zeros((32, 2)), n_draws=300, n_warmup=100, seed=2)
    assert res.n_nan.sum() > 0
    assert np.all(np.abs(res.samples[..., 0]) <= 1.5)

    res2 = mcmc.sample(lambda z: np.where(z[:, 0] < -1.0, -np.inf, -0.5 * z[:, 0] ** 2), np.zeros((8, 1)),
                       n_draws=200, seed=3)
    assert res2.n_nan.sum() == 0 and res2.samples.min() >= -1.0


def test_nan_at_start_is_an_error():
    with pytest.raises(ValueError, match="x0"):
        mcmc.sample(lambda z: np.full(z.shape[0], np.nan), np.zeros((4, 2)), n_draws=5, seed=0)


def test_callable_exception_propagates_unchanged():
    class Boom(RuntimeError):
        pass

    raised = []
    count = {"n": 0}

    def lp(z):
        count["n"] += 1
        if count["n"] == 7:
            e = Boom("from the target")
            raised.append(e)
            raise e
        return -0.5 * np.sum(z ** 2, axis=1)

    with pytest.raises(Boom) as info:
        mcmc.sample(lp, np.zeros((10, 3)), n_draws=50, seed=1)
    assert info.value is raised[0]


@pytest.mark.parametrize("ret, exc", [
    (lambda z: np.zeros(z.shape[0] + 1), ValueError),
    (lambda z: np.zeros((z.shape[0], 1)), ValueError),
    (lambda z: 0.0, ValueError),
    (lambda z: np.array(["a"] * z.shape[0]), TypeError),
])
def test_callable_wrong_return(ret, exc):
    with pytest.raises(exc, match="log_prob"):
        mcmc.sample(ret, np.zeros((6, 2)), n_draws=5, seed=0)


def test_callable_receives_arrays_it_may_keep_and_float32_results_are_accepted():
    kept, copies = [], []

    def lp(z):
        kept.append(z)
        copies.append(z.copy())
        assert z.shape == (5, 2) and z.dtype == np.float64
        return (-0.5 * np.sum(z ** 2, axis=1)).astype(np.float32)

    mcmc.sample(lp, np.zeros((5, 2)), n_draws=20, n_warmup=5, seed=1)
    assert len(kept) == 26   # x0, then one call per iteration
    for a, b in zip(kept, copies):
        np.testing.assert_array_equal(a, b)


def test_builtin_and_callable_agree():
    """The same target through the C++ loop and through the Python path: same stream, same decisions
    (the NumPy density differs from the C++ one by rounding only)."""
    t = mcmc.Banana(b=0.05, sigma1=3.0)
    x0 = t.sample_exact(40, np.random.default_rng(1))
    a = mcmc.sample(t, x0, n_draws=200, n_warmup=100, seed=8)
    b = mcmc.sample(t.log_prob, x0, n_draws=200, n_warmup=100, seed=8)
    np.testing.assert_allclose(a.samples, b.samples, rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(a.accept_rate, b.accept_rate)


# -------------------------------------------------------------------------------------------------
# Independence proposal
# -------------------------------------------------------------------------------------------------
def test_independence_sampler_exact_proposal_always_accepts():
    mean, var = np.array([1.0, -1.0]), np.array([0.5, 2.0])
    t = mcmc.Gaussian(mean, np.diag(var))
    n = 16
    res = mcmc.sample(t, np.zeros((n, 2)), n_draws=500, n_warmup=0, seed=3, proposal="independent",
                      proposal_mean=np.tile(mean, (n, 1)), proposal_logvar=np.tile(np.log(var), (n, 1)))
    # ratio p(x')q(x)/(p(x)q(x')) = 1 up to rounding: only u above 1 - 1e-12 could reject
    assert res.accept_rate.min() > 0.995
    assert np.all(res.step_size == 1.0)


def test_independence_sampler_corrects_a_wrong_proposal():
    mean, var = np.array([1.0, -1.0]), np.array([0.5, 2.0])
    t = mcmc.Gaussian(mean, np.diag(var))
    n = 64
    # shifted, over-dispersed proposal: draws must still have the target's moments
    res = mcmc.sample(t, np.zeros((n, 2)), n_draws=1500, n_warmup=100, seed=4, proposal="independent",
                      proposal_mean=np.tile(mean + 0.5, (n, 1)), proposal_logvar=np.tile(np.log(var) + 0.7, (n, 1)))
    mcse_check(res.samples, mean, "independence mean")
    mcse_check((res.samples - mean) ** 2, var, "independence variance")
    assert 0.2 < res.accept_rate.mean() < 0.95


# -------------------------------------------------------------------------------------------------
# Diagnostics
# -------------------------------------------------------------------------------------------------
def _ar1(chains, n, dim, rho, rng, shift=0.0):
    x = np.empty((chains, n, dim))
    x[:, 0] = rng.standard_normal((chains, dim))
    e = rng.standard_normal((chains, n, dim)) * np.sqrt(1 - rho ** 2)
    for t in range(1, n):
        x[:, t] = rho * x[:, t - 1] + e[:, t]
    return x + shift


def test_ess_of_ar1_matches_theory():
    rng = np.random.default_rng(0)
    rho = 0.5
    x = _ar1(8, 4000, 3, rho, rng)
    theory = x.shape[0] * x.shape[1] * (1 - rho) / (1 + rho)
    # the estimator's relative sd here is a few percent; 15% is a loose, fail-able check
    np.testing.assert_allclose(mcmc.ess(x), theory, rtol=0.15)
    iid = rng.standard_normal((4, 2000, 2))
    np.testing.assert_allclose(mcmc.ess(iid), 8000, rtol=0.15)
    assert np.all(mcmc.rhat(iid) < 1.01)
    stuck = iid.copy()
    stuck[0] += 3.0          # one chain elsewhere: R-hat must flag it
    assert np.all(mcmc.rhat(stuck) > 1.1)


def test_diagnostics_agree_with_arviz():
    az = pytest.importorskip("arviz")
    rng = np.random.default_rng(1)
    x = _ar1(4, 500, 3, 0.7, rng)
    x[1] += 0.2               # slight between-chain difference so R-hat is not ~1
    x[..., 2] = np.round(x[..., 2], 1)   # ties exercise the average ranks
    ours_ess = mcmc.ess(x)
    ours_rhat = mcmc.rhat(x)
    ref_ess = [float(az.ess(x[..., j], method="bulk")) for j in range(3)]
    ref_rhat = [float(az.rhat(x[..., j], method="rank")) for j in range(3)]
    np.testing.assert_allclose(ours_ess, ref_ess, rtol=0.01)
    np.testing.assert_allclose(ours_rhat, ref_rhat, rtol=0.01)
    assert mcmc.ess(x[..., 0]) == pytest.approx(ours_ess[0])


def test_to_arviz():
    pytest.importorskip("arviz")
    res = mcmc.sample(mcmc.Banana(), np.zeros((4, 2)), n_draws=20, n_warmup=10, seed=1)
    idata = res.to_arviz()
    assert idata.posterior["z"].shape == (4, 20, 2)
    idata2 = res.to_arviz(var_names=["x1", "x2"])
    np.testing.assert_array_equal(idata2.posterior["x2"].values, res.samples[..., 1])


# -------------------------------------------------------------------------------------------------
# Bad input
# -------------------------------------------------------------------------------------------------
def test_bad_inputs():
    t = mcmc.Banana()
    x0 = np.zeros((4, 2))
    with pytest.raises(ValueError, match="x0 must be 2-D"):
        mcmc.sample(t, np.zeros(2), n_draws=5, seed=0)
    with pytest.raises(ValueError, match="dim"):
        mcmc.sample(t, np.zeros((4, 3)), n_draws=5, seed=0)
    with pytest.raises(TypeError, match="x0 must have dtype float64"):
        mcmc.sample(t, np.zeros((4, 2), np.float32), n_draws=5, seed=0)
    with pytest.raises(ValueError, match="finite"):
        mcmc.sample(t, np.full((4, 2), np.nan), n_draws=5, seed=0)
    with pytest.raises(ValueError, match="n_draws"):
        mcmc.sample(t, x0, n_draws=0, seed=0)
    with pytest.raises(TypeError, match="n_draws"):
        mcmc.sample(t, x0, n_draws=2.5, seed=0)
    with pytest.raises(ValueError, match="seed"):
        mcmc.sample(t, x0, n_draws=5, seed=-1)
    with pytest.raises(ValueError, match="thin"):
        mcmc.sample(t, x0, n_draws=5, seed=0, thin=0)
    with pytest.raises(ValueError, match="proposal"):
        mcmc.sample(t, x0, n_draws=5, seed=0, proposal="nuts")
    with pytest.raises(ValueError, match="step_size"):
        mcmc.sample(t, x0, n_draws=5, seed=0, step_size=-1.0)
    with pytest.raises(ValueError, match="step_size"):
        mcmc.sample(t, x0, n_draws=5, seed=0, step_size="auto")
    with pytest.raises(ValueError, match="target_accept"):
        mcmc.sample(t, x0, n_draws=5, seed=0, target_accept=1.5)
    with pytest.raises(ValueError, match="chain_offset"):
        mcmc.sample(t, x0, n_draws=5, seed=0, chain_offset=2 ** 32 - 2)
    with pytest.raises(ValueError, match="proposal_mean"):
        mcmc.sample(t, x0, n_draws=5, seed=0, proposal="independent")
    with pytest.raises(ValueError, match="proposal_mean"):
        mcmc.sample(t, x0, n_draws=5, seed=0, proposal="independent", proposal_mean=np.zeros((3, 2)),
                    proposal_logvar=np.zeros((4, 2)))
    with pytest.raises(TypeError, match="target"):
        mcmc.sample("banana", x0, n_draws=5, seed=0)


def test_bad_targets():
    with pytest.raises(ValueError, match="positive definite"):
        mcmc.Gaussian(np.zeros(2), np.array([[1.0, 2.0], [2.0, 1.0]]))
    with pytest.raises(ValueError, match="symmetric"):
        mcmc.Gaussian(np.zeros(2), np.array([[1.0, 0.5], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="shape"):
        mcmc.Gaussian(np.zeros(3), np.eye(2))
    with pytest.raises(ValueError, match="dim"):
        mcmc.Banana(dim=1)
    with pytest.raises(ValueError, match="sigma1"):
        mcmc.Banana(sigma1=0.0)
    with pytest.raises(ValueError, match="y must have shape"):
        mcmc.LogisticRegression(np.zeros((5, 2)), np.zeros(4))
    with pytest.raises(ValueError, match="prior_scale"):
        mcmc.LogisticRegression(np.zeros((5, 2)), np.zeros(5), prior_scale=-1.0)
    with pytest.raises(ValueError, match="samples"):
        mcmc.ess(np.zeros((2, 10, 2, 2)))


def test_thinning_keeps_every_thin_th_iteration_and_accept_rate_counts_moves():
    t = mcmc.Banana(b=0.05, sigma1=3.0)
    x0 = t.sample_exact(12, np.random.default_rng(5))
    full = mcmc.sample(t, x0, n_draws=60, n_warmup=0, seed=6, step_size=1.5)
    thin = mcmc.sample(t, x0, n_draws=20, n_warmup=0, seed=6, step_size=1.5, thin=3)
    np.testing.assert_array_equal(thin.samples, full.samples[:, 2::3])
    np.testing.assert_array_equal(thin.log_prob, full.log_prob[:, 2::3])
    # an accepted move of a continuous proposal always changes the state
    prev = np.concatenate([x0[:, None], full.samples[:, :-1]], axis=1)
    moved = np.any(full.samples != prev, axis=2).mean(axis=1)
    np.testing.assert_array_equal(full.accept_rate, moved)
    np.testing.assert_array_equal(thin.accept_rate, full.accept_rate)
