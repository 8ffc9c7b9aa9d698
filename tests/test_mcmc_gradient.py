"""Gradient-based proposals of vaekernels.mcmc.sample: MALA and HMC.

What is checked, each against an independent reference:
* the built-in targets' analytic gradients (C++, targets.hpp) against central finite differences of the
  NumPy log-densities (targets.py, written separately);
* moments against exact values (correlated Gaussian, Banana) with the MCSE tolerances of test_mcmc.py;
* the Metropolis correction itself: with a fixed step where the uncorrected Langevin or leapfrog chain is
  visibly biased (its stationary variance is known in closed form), the corrected chains are not;
* the VAE posterior (linear-Gaussian model, exact Gaussian posterior) with HMC through the decoder's
  hand-written backward pass;
* adaptation reaching its target acceptance, identical bits for built-in and Python targets and across
  chain partitions (thread counts and SIMD levels: tests/test_mcmc.py's subprocess cases), NaN gradients
  as counted rejections, divergences, ArviZ statistics and warm-up groups, bad input.
"""
import numpy as np
import pytest

from vaekernels import mcmc

from test_mcmc import mcse_check
from test_mcmc_vae import exact_posterior, linear_gaussian_vae


def _targets():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((5, 5))
    X = rng.standard_normal((70, 3))
    y = (rng.random(70) < 0.4).astype(float)
    return [mcmc.Gaussian(rng.standard_normal(5), A @ A.T + 2 * np.eye(5)), mcmc.Banana(b=0.3, sigma1=2.0, dim=4),
            mcmc.LogisticRegression(X, y, prior_scale=1.5)]


@pytest.mark.parametrize("target", _targets(), ids=lambda t: type(t).__name__)
def test_builtin_gradients_against_finite_differences(target):
    z = np.random.default_rng(1).standard_normal((37, target.dim)) * 2.0   # 37: a partial SIMD tile
    lp, grad = target.log_prob_and_grad(z)
    # the value is the NumPy formula's to rounding: both are sums of O(10-100) terms of size <= |lp|
    np.testing.assert_allclose(lp, target.log_prob(z), rtol=1e-12, atol=1e-12 * np.abs(lp).max())
    # Central differences with h = 1e-5: truncation h^2 |f'''| / 6 (|f'''| <= ~10 here: ~2e-10) plus
    # rounding eps |f| / h (|f| <= ~300: ~7e-9); 1e-7 relative to the largest gradient bounds both.
    h = 1e-5
    fd = np.empty_like(grad)
    for j in range(target.dim):
        e = np.zeros(target.dim)
        e[j] = h
        fd[:, j] = (target.log_prob(z + e) - target.log_prob(z - e)) / (2 * h)
    np.testing.assert_allclose(grad, fd, rtol=0, atol=1e-7 * np.abs(fd).max())
    # a wrong gradient (one coordinate's sign) must fail the same check
    bad = grad.copy()
    bad[:, -1] *= -1
    assert np.abs(bad - fd).max() > 1e-7 * np.abs(fd).max()
    one_lp, one_grad = target.log_prob_and_grad(z[3])
    assert one_lp == lp[3] and np.array_equal(one_grad, grad[3])


@pytest.mark.parametrize("proposal", ["mala", "hmc"])
def test_correlated_gaussian_moments(proposal):
    rng = np.random.default_rng(2)
    A = rng.standard_normal((4, 4))
    cov = A @ A.T + 0.5 * np.eye(4)
    mean = rng.standard_normal(4) * 3
    # jitter 0.1: the adapted step (~1.35) is near the leapfrog's stability limit 2 sd_min = 1.5, which a
    # larger jitter would cross (divergent trajectories: 1.4% at 0.2, 15% at 0.5)
    kw = {"n_leapfrog": 8, "jitter": 0.1} if proposal == "hmc" else {}
    res = mcmc.sample(mcmc.Gaussian(mean, cov), rng.standard_normal((64, 4)), n_draws=1500, n_warmup=1000,
                      seed=3, proposal=proposal, progress=False, **kw)
    s = res.samples
    mcse_check(s, mean, "mean")
    c = s - mean
    iu = np.triu_indices(4)
    prods = (c[..., :, None] * c[..., None, :])[..., iu[0], iu[1]]
    mcse_check(prods, cov[iu], "covariance")
    assert res.n_nan.sum() == 0 and res.n_divergent.sum() == 0


def test_banana_exact_moments_with_hmc():
    # b = 0.1, sigma1 = 3 (Var x2 = 2.62). The benchmark banana (sigma1 = 10) defeats one global step size:
    # the curvature in its tips (x1 ~ 30: (2 b x1)^2 = 36) needs steps 6x smaller than its bulk, so HMC with
    # an adapted fixed step under-visits them (variances 87 and 125 for 100 and 201) - what the divergences say.
    t = mcmc.Banana(b=0.1, sigma1=3.0, dim=3)
    res = mcmc.sample(t, t.sample_exact(128, np.random.default_rng(4)), n_draws=1000, n_warmup=1000, seed=5,
                      proposal="hmc", n_leapfrog=10, jitter=0.3, progress=False)
    s = res.samples
    mcse_check(s, t.mean, "mean")
    mcse_check(s ** 2, t.variance, "variance")


@pytest.mark.parametrize("proposal,biased_variance", [
    # Unadjusted Langevin x' = x - h^2/2 x + h eps on N(0, 1): an AR(1) with a = 1 - h^2/2, stationary
    # variance h^2 / (1 - a^2) = 1 / (1 - h^2/4): 1.5625 at h = 1.2.
    ("mala", 1 / (1 - 1.2 ** 2 / 4)),
    # Leapfrog with p ~ N(0, 1), h = 1.2, L = 3, never rejected: x_L = A x + B p with the leapfrog map's
    # matrix powers; its stationary variance B^2 / (1 - A^2) (computed below) is far from 1.
    ("hmc", None),
])
def test_metropolis_correction_removes_the_discretisation_bias(proposal, biased_variance):
    h, L = 1.2, 3
    if biased_variance is None:
        M = np.array([[1 - h * h / 2, h], [-h * (1 - h * h / 4), 1 - h * h / 2]])   # (x, p) -> one leapfrog step
        A, B = np.linalg.matrix_power(M, L)[0]
        biased_variance = B * B / (1 - A * A)
    assert abs(biased_variance - 1) > 0.3
    kw = {"n_leapfrog": L} if proposal == "hmc" else {}
    res = mcmc.sample(mcmc.Gaussian(np.zeros(1), np.eye(1)), np.zeros((256, 1)), n_draws=2000, n_warmup=0,
                      seed=6, proposal=proposal, step_size=h, progress=False, **kw)
    mcse_check(res.samples ** 2, np.ones(1), "E x^2")
    assert 0.05 < res.accept_rate.mean() < 0.99   # the correction was active


def test_adapted_metric_fixes_a_badly_scaled_target(proposal="hmc"):
    """Scales from 0.01 to 30: one step size is held to the narrowest direction, so without a metric the wide
    ones barely move (ESS ~70 of 64,000 draws for HMC, their sd underestimated 6x); each chain's adapted
    diagonal metric estimates the variances (within a factor 2 here) and gives every coordinate a large ESS
    and exact moments. (MALA, diffusive, explores the wide directions too slowly within 1,000 warm-up
    iterations to estimate them from an identity start: its metric stays short there.)"""
    sd = np.array([0.01, 0.1, 1.0, 10.0, 30.0])
    target = mcmc.Gaussian(np.zeros(5), np.diag(sd ** 2))
    kw = dict(n_draws=1000, n_warmup=1000, seed=1, proposal=proposal, progress=False)
    if proposal == "hmc":
        kw.update(n_leapfrog=10, jitter=0.2)
    plain = mcmc.sample(target, np.zeros((64, 5)), **kw)
    res = mcmc.sample(target, np.zeros((64, 5)), adapt_metric=True, **kw)
    assert np.all(plain.inv_metric == 1.0) and res.settings["adapt_metric"]
    # The bounds separate an adapted metric from a failed one by orders of magnitude, not by a statistical
    # margin: measured medians 0.72-1.12 of the true variances (a window of 250 correlated draws per chain),
    # where the identity would be off by 1e-4 to 1e4; smallest ESS ~30,000 against ~70 without a metric.
    ratio = res.inv_metric / sd ** 2
    assert np.all((np.median(ratio, axis=0) > 0.5) & (np.median(ratio, axis=0) < 2.0)), np.median(ratio, axis=0)
    ess, ess_plain = mcmc.ess(res.samples), mcmc.ess(plain.samples)
    assert ess.min() > 10 * ess_plain.min(), (ess, ess_plain)
    mcse_check(res.samples, np.zeros(5), "mean")
    mcse_check(res.samples ** 2, sd ** 2, "variance")


@pytest.mark.parametrize("proposal", ["mala", "hmc"])
def test_adaptation_reaches_the_default_target(proposal):
    res = mcmc.sample(_targets()[0], np.zeros((64, 5)), n_draws=1000, n_warmup=1000, seed=7, proposal=proposal,
                      progress=False)
    target = {"mala": 0.574, "hmc": 0.65}[proposal]
    assert res.settings["target_accept"] == target
    # the frozen step gives the target's rate up to the spread of the Polyak average: +-0.05 on the mean
    assert abs(res.accept_rate.mean() - target) < 0.05, res.accept_rate.mean()
    assert np.all(res.sample_stats["step_size"] == res.step_size[:, None])   # frozen after warm-up


def test_vae_posterior_with_hmc_matches_the_exact_posterior():
    model, p = linear_gaussian_vae()
    xs = np.random.default_rng(1).standard_normal((2, 6))
    post = mcmc.vae_posterior(model, xs, chains_per_x=32)
    res = mcmc.sample(post, post.initial_points(seed=4), n_draws=500, n_warmup=300, seed=5, proposal="hmc",
                      n_leapfrog=5, jitter=0.3, progress=False)
    for i, x in enumerate(xs):
        m, S = exact_posterior(p, x)
        s = res.samples[i * 32:(i + 1) * 32]
        mcse_check(s, m, f"posterior mean of x[{i}]")
        mcse_check((s - m) ** 2, np.diag(S), f"posterior variance of x[{i}]")


@pytest.mark.parametrize("proposal", ["mala", "hmc"])
def test_builtin_callable_and_chain_partitions_give_identical_bits(proposal):
    t = _targets()[1]
    x0 = np.random.default_rng(8).standard_normal((40, t.dim))
    kw = dict(n_draws=60, n_warmup=60, seed=9, proposal=proposal, progress=False, adapt_metric=proposal == "hmc")
    if proposal == "hmc":
        kw.update(n_leapfrog=4, jitter=0.4)
    full = mcmc.sample(t, x0, **kw)
    calls = []

    def grad_fn(z):
        calls.append(1)
        return t.log_prob_and_grad(z)

    cb = mcmc.sample(grad_fn, x0, **kw)
    assert np.array_equal(full.samples, cb.samples) and np.array_equal(full.step_size, cb.step_size)
    assert np.array_equal(full.inv_metric, cb.inv_metric)
    for k in full.sample_stats:
        assert np.array_equal(full.sample_stats[k], cb.sample_stats[k]), k
    n_evals = 1 if proposal == "mala" else 4
    assert len(calls) == 1 + 120 * n_evals   # x0, then one call per leapfrog step
    part = mcmc.sample(t, x0[17:33], chain_offset=17, **kw)
    assert np.array_equal(full.samples[17:33], part.samples)
    assert np.array_equal(full.inv_metric[17:33], part.inv_metric)
    other = mcmc.sample(t, x0, **{**kw, "seed": 10})
    assert not np.array_equal(full.samples, other.samples)


def test_nan_gradient_is_a_counted_rejection_and_x_stays_in_the_valid_region():
    g = mcmc.Gaussian(np.zeros(2), np.eye(2))

    def lp_grad(z):
        lp, grad = g.log_prob_and_grad(z)
        grad[z[:, 0] > 1.0] = np.nan   # the gradient fails beyond x0 = 1 (the density is fine)
        return lp, grad

    res = mcmc.sample(lp_grad, np.zeros((32, 2)), n_draws=300, n_warmup=0, step_size=0.8, seed=11,
                      proposal="hmc", n_leapfrog=3, progress=False)
    assert res.n_nan.sum() > 0
    assert np.all(res.samples[..., 0] <= 1.0)   # every state was reached by a trajectory with finite gradients
    assert np.all(np.isfinite(res.samples))
    # a non-finite trajectory also counts as divergent (no warm-up here: both count the same iterations)
    assert np.all(res.n_divergent >= res.n_nan)
    assert np.array_equal(res.sample_stats["diverging"].sum(1), res.n_divergent)


def test_divergences_are_counted_with_a_too_large_step():
    res = mcmc.sample(mcmc.Gaussian(np.zeros(3), np.diag([1.0, 1e-4, 1.0])), np.zeros((16, 3)), n_draws=50,
                      n_warmup=0, seed=12, proposal="hmc", step_size=0.5, progress=False)
    # h = 0.5 on a direction of sd 0.01 (h / sd = 50 > 2): the leapfrog is unstable there, energies explode
    assert res.n_divergent.sum() > 0.5 * 16 * 50
    assert np.array_equal(res.sample_stats["diverging"].sum(1), res.n_divergent)
    assert res.accept_rate.max() < 0.1


def test_gradient_at_x0_must_be_finite_and_return_values_are_checked():
    g = mcmc.Gaussian(np.zeros(2), np.eye(2))
    x0 = np.zeros((4, 2))
    with pytest.raises(ValueError, match="gradient at x0 must be finite"):
        mcmc.sample(lambda z: (g.log_prob(z), np.full(z.shape, np.inf)), x0, n_draws=5, seed=0, proposal="mala")
    with pytest.raises(TypeError, match="must return a tuple"):
        mcmc.sample(g.log_prob, x0, n_draws=5, seed=0, proposal="hmc")
    with pytest.raises(ValueError, match=r"grad must have shape \(4, 2\)"):
        mcmc.sample(lambda z: (g.log_prob(z), np.zeros((4, 3))), x0, n_draws=5, seed=0, proposal="mala")
    with pytest.raises(TypeError, match="grad must be real"):
        mcmc.sample(lambda z: (g.log_prob(z), np.zeros((4, 2), complex)), x0, n_draws=5, seed=0, proposal="mala")


def test_bad_arguments():
    t = mcmc.Banana()
    x0 = np.zeros((4, 2))
    with pytest.raises(ValueError, match="n_leapfrog applies to proposal='hmc'"):
        mcmc.sample(t, x0, n_draws=5, seed=0, proposal="mala", n_leapfrog=3)
    with pytest.raises(ValueError, match="n_leapfrog"):
        mcmc.sample(t, x0, n_draws=5, seed=0, proposal="hmc", n_leapfrog=0)
    with pytest.raises(TypeError, match="n_leapfrog"):
        mcmc.sample(t, x0, n_draws=5, seed=0, proposal="hmc", n_leapfrog=2.5)
    with pytest.raises(ValueError, match=r"jitter must be in \[0, 1\)"):
        mcmc.sample(t, x0, n_draws=5, seed=0, proposal="hmc", jitter=1.0)
    with pytest.raises(TypeError, match="jitter"):
        mcmc.sample(t, x0, n_draws=5, seed=0, proposal="hmc", jitter="a")
    with pytest.raises(ValueError, match="jitter applies to proposal='hmc'"):
        mcmc.sample(t, x0, n_draws=5, seed=0, proposal="mala", jitter=0.1)
    with pytest.raises(ValueError, match="adapt_covariance applies to proposal='random_walk'"):
        mcmc.sample(t, x0, n_draws=5, seed=0, proposal="hmc", adapt_covariance=True)
    with pytest.raises(ValueError, match="adapt_metric applies to proposal='mala' or 'hmc'"):
        mcmc.sample(t, x0, n_draws=5, seed=0, adapt_metric=True)
    with pytest.raises(TypeError, match="adapt_metric must be a bool"):
        mcmc.sample(t, x0, n_draws=5, seed=0, proposal="hmc", adapt_metric="yes")
    with pytest.raises(TypeError, match="keep_warmup"):
        mcmc.sample(t, x0, n_draws=5, seed=0, proposal="hmc", keep_warmup=1)
    with pytest.raises(ValueError, match="z must have shape"):
        t.log_prob_and_grad(np.zeros((3, 5)))
    with pytest.raises(TypeError, match="z must be a real array"):
        t.log_prob_and_grad(np.zeros((3, 2), complex))


@pytest.mark.filterwarnings("ignore:Passing a dict or None as alias_mapping")   # ArviZ's plot code on matplotlib 3.11
@pytest.mark.parametrize("proposal", ["random_walk", "mala", "hmc"])
def test_to_arviz_statistics_and_warmup_groups(proposal):
    az = pytest.importorskip("arviz")
    kw = {"n_leapfrog": 4, "jitter": 0.2} if proposal == "hmc" else {}
    res = mcmc.sample(mcmc.Banana(dim=3), np.zeros((8, 3)), n_draws=200, n_warmup=150, seed=13, proposal=proposal,
                      keep_warmup=True, progress=False, **kw)
    idata = res.to_arviz(var_names=["a", "b", "c"])
    assert {"posterior", "sample_stats", "warmup_posterior", "warmup_sample_stats"} <= set(idata.groups())
    stats = idata.sample_stats
    expected = {"lp", "acceptance_rate", "step_size"} | ({"energy", "diverging", "n_steps"} if proposal != "random_walk" else set())
    assert expected == set(stats.data_vars)
    assert idata.warmup_posterior["a"].shape == (8, 150)
    # The warm-up group holds the warm-up iterations: its step sizes move (adaptation), its last state is
    # where the first kept iteration started from.
    ws = res.warmup["sample_stats"]["step_size"]
    assert np.ptp(ws, axis=1).min() > 0
    np.testing.assert_array_equal(idata.warmup_posterior["a"].values, res.warmup["samples"][:, :, 0])
    # post-warm-up acceptance statistics average to the per-chain rate's expectation (same iterations)
    assert abs(stats["acceptance_rate"].values.mean() - res.accept_rate.mean()) < 0.05
    summary = az.summary(idata)
    assert list(summary.index) == ["a", "b", "c"]
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    axes = az.plot_trace(idata)
    assert axes.shape == (3, 2)
    plt.close("all")
    if proposal != "random_walk":
        bfmi = az.bfmi(idata)
        assert bfmi.shape == (8,) and np.all(np.isfinite(bfmi)) and np.all(bfmi > 0.3)
        assert stats["diverging"].dtype == bool
        assert np.all(stats["n_steps"].values == (4 if proposal == "hmc" else 1))
    else:
        assert np.all(stats["step_size"].values == res.step_size[:, None])
