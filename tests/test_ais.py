"""Annealed importance sampling and bidirectional Monte Carlo (vaekernels.mcmc.annealing) against exact normalisers.

References, each independent of the code under test:
* Gaussian targets f1_i = c_i N(mu_i, S_i): log Z_i = log c_i.
* Probabilistic PCA (a VAE with hidden=() and the Gaussian likelihood): x ~ N(b, W^T W + diag exp(logvar)),
  log p(x) by SciPy from the model's parameters.
* A Bernoulli VAE with a 2-D latent: log p(x) by dense quadrature of p(x|z) p(z) over a grid, the decoder
  re-implemented in NumPy from the parameters.

Statistical rule: over n points with errors e_i = estimate_i - exact_i, the mean error must lie within
3 standard errors (sd(e) / sqrt(n)) of 0; a false failure has probability ~0.003 per check for unbiased
estimates. AIS is biased low by about var(log w) / (2 C), which these run sizes keep to well below one
standard error (checked: each test asserts its standard error is also small in absolute terms, so "within
3 SE" cannot pass merely because the runs are noisy). Seeds are fixed, so the suite is deterministic.
"""
import json
import math
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

import vaekernels as vk
from conftest import REPO
from test_mcmc_vae import linear_gaussian_vae
from vaekernels.mcmc.annealing import AISProblem, VAEProblem, ais, bdmc, schedule, simulate

N_SE = 3.0


def mean_and_se(e):
    e = np.asarray(e)
    return float(e.mean()), float(e.std(ddof=1) / math.sqrt(e.size))


# -------------------------------------------------------------------------------------------------
# problems and models
# -------------------------------------------------------------------------------------------------
class GaussianProblem(AISProblem):
    """f0 = N(m, diag exp(lv)), f1_i = c_i N(mu_i, S_i) (log c_i = log_c[i], so log Z_i = log_c[i])."""

    def __init__(self, mu, S, log_c, m=None, lv=None):
        self.mu, self.S, self.log_c = mu, S, log_c
        self.n_points, self.dim = mu.shape
        self.P = np.linalg.inv(S)
        self.norm = log_c - 0.5 * (np.linalg.slogdet(S)[1] + self.dim * math.log(2 * math.pi))
        self.initial_mean = np.zeros_like(mu) if m is None else m
        self.initial_logvar = np.zeros_like(mu) if lv is None else lv

    def subset(self, s):
        return GaussianProblem(self.mu[s], self.S[s], self.log_c[s], self.initial_mean[s], self.initial_logvar[s])

    def log_target_and_grad(self, Z):
        r = Z - self.mu[:, None, :]
        Pr = np.einsum("nij,ncj->nci", self.P, r)
        return self.norm[:, None] - 0.5 * np.einsum("nci,nci->nc", r, Pr), -Pr


def gaussian_problem(n, d, seed):
    """Means ~ N(0, 1), covariances with eigenvalues in [0.05, 1.5] along random axes (correlated, some
    directions 4.5x narrower than f0), log c ~ U(-5, 5)."""
    rng = np.random.default_rng(seed)
    mu = rng.standard_normal((n, d))
    S = np.empty((n, d, d))
    for i in range(n):
        Q = np.linalg.qr(rng.standard_normal((d, d)))[0]
        S[i] = (Q * rng.uniform(0.05, 1.5, d)) @ Q.T
    return GaussianProblem(mu, S, rng.uniform(-5, 5, n))


def ppca_model(D=6, L=3, seed=3):
    """A linear-Gaussian VAE with random weights: posterior sds 0.3-0.6 (prior 1), correlated."""
    return linear_gaussian_vae(D, L, seed)[0]


def ppca_exact(model, X):
    p = model.get_params()
    W = p["dec.0.W"]
    return multivariate_normal(p["dec.0.b"], W.T @ W + np.diag(np.exp(p["dec.logvar"]))).logpdf(X)


def set_encoder_near_posterior(model, shift=0.3, inflate=1.5):
    """q(z|x) = the exact PPCA posterior's mean + shift, diagonal variances x inflate (imperfect but close)."""
    p = model.get_params()
    W, b, psi = p["dec.0.W"], p["dec.0.b"], np.exp(p["dec.logvar"])
    L = W.shape[0]
    S = np.linalg.inv(np.eye(L) + (W / psi) @ W.T)
    A = S @ (W / psi)
    p["enc.0.W"][:, :L] = A.T
    p["enc.0.W"][:, L:] = 0.0
    p["enc.0.b"][:L] = -A @ b + shift
    p["enc.0.b"][L:] = np.log(np.diag(S) * inflate)
    model.set_params(p)


def bernoulli_model(D=12, seed=5):
    """A Bernoulli VAE with a 2-D latent and fixed random decoder weights large enough (tanh hidden layer,
    input weights sd 1.5, output sd 2) that p(z|x) is skewed and curved, not Gaussian."""
    model = vk.VAE(D, 2, hidden=(10,), activation="tanh", likelihood="bernoulli", dtype=np.float64, seed=seed)
    rng = np.random.default_rng(seed)
    p = model.get_params()
    p["dec.0.W"] = rng.standard_normal((2, 10)) * 1.5
    p["dec.0.b"] = rng.standard_normal(10) * 0.5
    p["dec.1.W"] = rng.standard_normal((10, D)) * 2.0
    p["dec.1.b"] = rng.standard_normal(D) * 0.5
    model.set_params(p)
    return model


def numpy_logits(p, Z):
    return np.tanh(Z @ p["dec.0.W"] + p["dec.0.b"]) @ p["dec.1.W"] + p["dec.1.b"]


def grid_log_px(model, X, half_width=7.0, m=300):
    """log p(x) = log sum_cells p(x|z) p(z) h^2 on an m x m midpoint grid over [-w, w]^2 (NumPy decoder)."""
    h = 2 * half_width / m
    g = -half_width + h * (np.arange(m) + 0.5)
    Z = np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    logits = numpy_logits(model.get_params(), Z)
    ll = logits @ X.T - np.logaddexp(0, logits).sum(1)[:, None]          # (cells, n)
    lp = -0.5 * (Z ** 2).sum(1) - math.log(2 * math.pi)
    return logsumexp(ll + lp[:, None], axis=0) + 2 * math.log(h), Z, ll + lp[:, None]


@pytest.fixture(scope="module")
def bern():
    """The 2-D Bernoulli VAE, 24 simulated points (with their exact posterior draws) and exact log p(x)."""
    model = bernoulli_model()
    X, z = simulate(model, 24, seed=11)
    exact, Z, logjoint = grid_log_px(model, X.astype(np.float64))
    return model, X, z, exact, Z, logjoint


@pytest.fixture(scope="module")
def ppca():
    model = ppca_model()
    X, z = simulate(model, 24, seed=12)
    return model, X, z, ppca_exact(model, X)


# -------------------------------------------------------------------------------------------------
# 1. Gaussian targets
# -------------------------------------------------------------------------------------------------
def test_gaussian_normalisers_and_convergence_in_steps():
    errs = {50: [], 500: []}
    for d in (2, 3, 4, 5):
        prob = gaussian_problem(8, d, seed=d)                   # 4 x 8 = 32 points
        for T in errs:
            res = ais(prob, n_steps=T, chains=16, seed=d, progress=False)
            errs[T].append(res.log_z - prob.log_c)
            assert np.all(np.isfinite(res.stderr)) and np.all(res.ess > 1)
    e500, e50 = np.concatenate(errs[500]), np.concatenate(errs[50])
    m, se = mean_and_se(e500)
    print(f"500 steps: mean error {m:.4f} (se {se:.4f}), mean |error| {np.abs(e500).mean():.4f}; "
          f"50 steps: mean error {e50.mean():.4f}, mean |error| {np.abs(e50).mean():.4f}")
    assert abs(m) < N_SE * se
    # strength: the errors scatter by ~0.14 nats per point (measured se 0.024 over 32 points), so any
    # systematic error above ~0.1 nats (a wrong weight increment, a wrong f0 normaliser) would fail
    assert se < 0.035
    # more annealing steps: the per-chain weight variance falls ~1/T, so |error| must fall clearly
    assert np.abs(e500).mean() < 0.6 * np.abs(e50).mean()


def test_each_transition_and_schedule_estimates_the_normaliser():
    """Every transition kernel and schedule gives an unbiased log Z on 20 Gaussian points (d = 3)."""
    prob = gaussian_problem(20, 3, seed=7)
    for transition in ("hmc", "mala", "random_walk"):
        for sched in ("linear", "sigmoid", "geometric"):
            res = ais(prob, n_steps=300, chains=16, seed=3, transition=transition, schedule=sched, progress=False)
            m, se = mean_and_se(res.log_z - prob.log_c)
            assert abs(m) < N_SE * se and se < 0.1, (transition, sched, m, se)


@pytest.mark.parametrize("transition, bad_value", [("hmc", np.nan), ("random_walk", np.inf), ("mala", np.inf)])
def test_non_finite_target_regions_are_rejected(transition, bad_value):
    """f1_i = exp(a_i) N(mu_i, I) restricted to z_0 < 0, NaN or +inf elsewhere (gradient finite there, so
    only the value says "invalid"): Z_i = exp(a_i) Phi(-mu_i0). A proposal into the invalid region must be
    rejected, and an initial draw there gets weight 0 (an accepted one would leave a chain with a finite
    weight at z_0 >= 0, a +inf one an infinite log Z)."""
    from scipy.stats import norm

    class Truncated(AISProblem):
        def __init__(self, mu, a):
            self.mu, self.a = mu, a
            self.n_points, self.dim = mu.shape
            self.initial_mean, self.initial_logvar = np.zeros_like(mu), np.zeros_like(mu)

        def log_target_and_grad(self, Z):
            r = Z - self.mu[:, None, :]
            lp = self.a[:, None] - 0.5 * (r ** 2).sum(-1) - self.dim / 2 * math.log(2 * math.pi)
            return np.where(Z[..., 0] >= 0, bad_value, lp), -r

    rng = np.random.default_rng(0)
    mu = rng.standard_normal((20, 2)) * 0.5
    a = rng.uniform(-2, 2, 20)
    res = ais(Truncated(mu, a), n_steps=200, chains=32, seed=0, transition=transition, progress=False)
    exact = a + norm.logcdf(-mu[:, 0])
    m, se = mean_and_se(res.log_z - exact)
    assert abs(m) < N_SE * se and se < 0.05, (m, se)
    alive = np.isfinite(res.log_w)
    assert alive.any() and np.all(res.z[alive][:, 0] < 0)


def test_overflowing_proposals_are_rejected_and_never_evaluated():
    """A step size of 1e300 sends every leapfrog position to inf: the problem must never see a non-finite
    Z, every proposal is rejected, and AIS degenerates to importance sampling from f0 (the increments
    telescope: log w = log f1(z_0) - log f0(z_0) up to rounding)."""
    prob = gaussian_problem(4, 3, seed=1)

    class Strict(GaussianProblem):
        def log_target_and_grad(self, Z):
            assert np.all(np.isfinite(Z))
            return super().log_target_and_grad(Z)

    strict = Strict(prob.mu, prob.S, prob.log_c)
    for transition in ("hmc", "random_walk"):
        res = ais(strict, n_steps=10, chains=3, seed=0, transition=transition, step_size=1e300, progress=False)
        assert np.all(res.accept_prob == 0)
        z0 = res.z                                                  # never moved: the initial draws
        l1 = prob.log_target_and_grad(z0)[0]
        l0 = -0.5 * (z0 ** 2).sum(-1) - 1.5 * math.log(2 * math.pi)
        np.testing.assert_allclose(res.log_w, l1 - l0, rtol=1e-12, atol=1e-10)


# -------------------------------------------------------------------------------------------------
# 2. probabilistic PCA (exact log p(x))
# -------------------------------------------------------------------------------------------------
def test_ppca_log_marginal(ppca):
    model, X, _, exact = ppca
    res = ais(model, X, n_steps=400, chains=32, seed=1, progress=False)
    m, se = mean_and_se(res.log_z - exact)
    print(f"PPCA: mean error {m:.4f} (se {se:.4f}), stderr reported {res.stderr.mean():.4f}")
    # strength: se 0.02 means a systematic error of ~0.06 nats fails (HMC mixes the quadratic log p(x|z)
    # of a Gaussian posterior slowly: per-chain var(log w) is ~4x what independent draws would give)
    assert abs(m) < N_SE * se and se < 0.025
    # the reported per-point stderr describes the actual spread of the errors (within a factor 2)
    assert 0.5 < np.sqrt(np.mean((res.log_z - exact) ** 2)) / np.sqrt(np.mean(res.stderr ** 2)) < 2.0


# -------------------------------------------------------------------------------------------------
# 3. Bernoulli VAE with a 2-D latent (quadrature)
# -------------------------------------------------------------------------------------------------
def test_quadrature_reference_is_converged_and_matches_the_decoder(bern):
    model, X, _, exact, Z, logjoint = bern
    Xd = X.astype(np.float64)
    coarse = grid_log_px(model, Xd, 7.0, 150)[0]
    wide = grid_log_px(model, Xd, 9.0, 390)[0]
    # midpoint rule on a smooth integrand: doubling the cell width changes log p(x) by < 5e-6 (measured),
    # and the mass beyond |z| = 7 is negligible (prior tail ~e^-24, the likelihood is <= 1); 1e-4 is 100x
    # below the AIS standard errors the reference is used with
    np.testing.assert_allclose(coarse, exact, rtol=0, atol=1e-4)
    np.testing.assert_allclose(wide, exact, rtol=0, atol=1e-4)
    # the NumPy decoder is the model's: compare with decoder_log_likelihood at some grid points
    idx = np.random.default_rng(0).choice(Z.shape[0], 50, replace=False)
    ll = model.decoder_log_likelihood(X, np.broadcast_to(Z[idx], (X.shape[0], 50, 2)))
    np.testing.assert_allclose(ll.T + (-0.5 * (Z[idx] ** 2).sum(1) - math.log(2 * math.pi))[:, None],
                               logjoint[idx], rtol=1e-10, atol=1e-10)
    # the posteriors are not Gaussian: KL(p(z|x) || N(posterior mean, posterior covariance)), by quadrature,
    # E_p[log p(x, z) - log N(z)] - log p(x), averages well above 0 (measured 0.22 nats; 0 for PPCA)
    w = np.exp(logjoint - logjoint.max(0))
    w /= w.sum(0)
    mean = w.T @ Z
    kl = []
    for i in range(X.shape[0]):
        lq = multivariate_normal(mean[i], np.cov(Z.T, aweights=w[:, i])).logpdf(Z)
        kl.append(np.sum(w[:, i] * (logjoint[:, i] - lq)) - exact[i])
    assert np.mean(kl) > 0.1 and np.min(kl) > 0, kl


def test_bernoulli_vae_log_marginal(bern):
    model, X, _, exact, _, _ = bern
    res = ais(model, X, n_steps=300, chains=16, seed=2, progress=False)
    m, se = mean_and_se(res.log_z - exact)
    print(f"Bernoulli 2-D: mean error {m:.4f} (se {se:.4f})")
    assert abs(m) < N_SE * se and se < 0.03


@pytest.mark.slow
def test_trained_digits_vae_log_marginal_matches_quadrature():
    """A Bernoulli VAE (64 -> 64 -> 2) trained briefly on the binarised 8x8 digits; 24 held-out digits.
    Quadrature on 300^2 and 600^2 grids over [-6, 6]^2 agree to 1e-6 (q's sds are 0.4-0.6, so the cells
    resolve the posteriors). 1000 AIS steps from the prior and from q: each within 3 SE of the exact
    values with SE < 0.015 (measured: errors +0.003 +- 0.009 and -0.001 +- 0.002). About 25 s."""
    pytest.importorskip("sklearn")
    X, _ = vk.datasets.load_digits(np.float64)
    Xb = vk.datasets.binarize(X, 0)
    model = vk.VAE(64, 2, hidden=(64,), dtype=np.float64, seed=0)
    model.fit(Xb[:1500], epochs=40, batch_size=100, lr=3e-3, progress=False)
    Xt = Xb[1500:1524]
    exact = grid_log_px(model, Xt, 6.0, 600)[0]
    np.testing.assert_allclose(grid_log_px(model, Xt, 6.0, 300)[0], exact, rtol=0, atol=1e-6)
    for start in ("prior", "encoder"):
        res = ais(model, Xt, n_steps=1000, chains=16, seed=0, start=start, progress=False)
        m, se = mean_and_se(res.log_z - exact)
        assert abs(m) < N_SE * se and se < 0.015, (start, m, se)


# -------------------------------------------------------------------------------------------------
# 4. BDMC
# -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("which", ["ppca", "bern"])
def test_bdmc_sandwiches_the_exact_value_and_the_gap_closes(which, request):
    data = request.getfixturevalue(which)
    model, X, z, exact = data[:4]
    gaps = {}
    for T in (10, 200):
        res = bdmc(model, X, z, n_steps=T, chains=8, seed=4, progress=False)
        lo, se_lo = mean_and_se(res.lower - exact)
        up, se_up = mean_and_se(res.upper - exact)
        print(f"{which} T={T}: lower - exact {lo:.4f} (se {se_lo:.4f}), upper - exact {up:.4f} (se {se_up:.4f})")
        assert lo < N_SE * se_lo and up > -N_SE * se_up
        gaps[T] = res.gap.mean()
        assert res.reverse.settings["direction"] == "reverse" and res.reverse.betas[0] == 1.0
    # 10 steps leave a wide gap (a real one: > 10 standard errors); 200 steps must shrink it several-fold
    assert gaps[10] > 0.2 and gaps[200] < 0.25 * gaps[10], gaps


def test_bdmc_reuses_forward_step_sizes_in_reverse(ppca):
    model, X, z, _ = ppca
    res = bdmc(model, X[:3], z[:3], n_steps=6, chains=4, seed=1, progress=False)
    f, r = res.forward.step_size, res.reverse.step_size
    # reverse transition t targets b_{T-t}, which forward transition T-t used; the last (b = 0) reuses b_1's
    np.testing.assert_array_equal(r[:, :5], f[:, 4::-1])
    np.testing.assert_array_equal(r[:, 5], f[:, 0])
    np.testing.assert_array_equal(res.reverse.betas, res.forward.betas[::-1])


def test_bdmc_with_simulated_data_and_problem_objects(ppca):
    model = ppca[0]
    res = bdmc(model, n_simulated=5, n_steps=20, chains=4, seed=9, progress=False)
    X, z = simulate(model, 5, vk.random.derive_seed(9, "bdmc", "data"))
    np.testing.assert_array_equal(res.X, X)
    np.testing.assert_array_equal(res.z_exact, z)
    again = bdmc(VAEProblem(model, X), z_exact=z, n_steps=20, chains=4, seed=9, progress=False)
    np.testing.assert_array_equal(again.upper, res.upper)
    np.testing.assert_array_equal(again.lower, res.lower)


# -------------------------------------------------------------------------------------------------
# 5. schedules, start, reproducibility, batching, adaptation, progress, errors
# -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["linear", "sigmoid", "geometric"])
@pytest.mark.parametrize("T", [1, 2, 10, 1000, 100000])
def test_schedules(kind, T):
    b = schedule(kind, T)
    assert b.shape == (T + 1,) and b.dtype == np.float64
    assert b[0] == 0.0 and b[-1] == 1.0 and np.all(np.diff(b) > 0)
    t = np.arange(T + 1) / T
    if kind == "linear":
        np.testing.assert_allclose(b, t, rtol=0, atol=1e-15)
    elif kind == "sigmoid" and T > 1:
        s = 1 / (1 + np.exp(-4 * (2 * t - 1)))
        np.testing.assert_allclose(b, (s - s[0]) / (s[-1] - s[0]), rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(b + b[::-1], 1.0, atol=1e-12)      # symmetric about T/2
    elif kind == "geometric" and T > 2:
        assert b[1] == pytest.approx(1e-4)
        np.testing.assert_allclose(b[2:] / b[1:-1], (1e4) ** (1 / (T - 1)), rtol=1e-9)


def test_schedule_array_is_used_as_given():
    prob = gaussian_problem(3, 2, seed=0)
    b = np.array([0.0, 0.1, 0.5, 1.0])
    res = ais(prob, schedule=b, chains=4, seed=0, progress=False)
    np.testing.assert_array_equal(res.betas, b)
    assert res.step_size.shape == (3, 3) and res.settings["schedule"] == "array"
    same = ais(prob, schedule=list(b), n_steps=3, chains=4, seed=0, progress=False)
    np.testing.assert_array_equal(same.log_w, res.log_w)


def test_encoder_start_agrees_with_prior_start_and_has_smaller_weight_variance(ppca):
    model, X, _, exact = ppca
    model = ppca_model()                      # a copy whose encoder is set near the exact posterior
    set_encoder_near_posterior(model)
    prior = ais(model, X, n_steps=30, chains=16, seed=5, progress=False)
    enc = ais(model, X, n_steps=30, chains=16, seed=5, start="encoder", progress=False)
    m, se = mean_and_se(enc.log_z - prior.log_z)
    assert abs(m) < N_SE * se, (m, se)
    m, se = mean_and_se(enc.log_z - exact)
    assert abs(m) < N_SE * se and se < 0.03                       # measured se 0.022 with 30 steps
    v_prior, v_enc = prior.log_w.var(1).mean(), enc.log_w.var(1).mean()
    print(f"var log w: prior {v_prior:.4f}, encoder {v_enc:.4f}")
    assert v_enc < 0.5 * v_prior


def test_reproducible_by_seed():
    prob = gaussian_problem(4, 3, seed=1)
    kw = dict(n_steps=40, chains=5, progress=False)
    a, b, c = ais(prob, seed=3, **kw), ais(prob, seed=3, **kw), ais(prob, seed=4, **kw)
    for name in ("log_w", "z", "step_size", "accept_prob"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.any(a.log_w == c.log_w)


@pytest.mark.parametrize("transition", ["hmc", "random_walk"])
def test_batching_invariance_gaussian_bitwise(transition):
    """Points [0, 20) in one call == [0, 10) and [10, 20) (point_offset=10) separately, bit for bit."""
    prob = gaussian_problem(20, 3, seed=2)
    kw = dict(n_steps=60, chains=6, seed=8, transition=transition, progress=False)
    whole = ais(prob, **kw)
    parts = [ais(prob.subset(slice(0, 10)), **kw), ais(prob.subset(slice(10, 20)), point_offset=10, **kw)]
    for name in ("log_z", "stderr", "ess", "log_w", "z", "step_size", "accept_prob"):
        got = np.concatenate([getattr(p, name) for p in parts])
        assert np.array_equal(getattr(whole, name), got), name
    # and a different point_offset gives different streams
    assert not np.array_equal(ais(prob.subset(slice(10, 20)), **kw).log_w, parts[1].log_w)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_batching_invariance_vae(dtype):
    """float64: bit for bit (the decoder's GEMM blocks give each row the same bits whatever the batch).
    float32: the decoder's rounding depends on the batch's row count (differences ~5e-7 measured), so a
    chain whose accept decision flips follows another path: compared statistically, each point's
    difference within 5 combined standard errors and their mean within 3 standard errors of 0."""
    model = bernoulli_model()
    if dtype == np.float32:
        m32 = vk.VAE(12, 2, hidden=(10,), activation="tanh", dtype=np.float32, seed=5)
        m32.set_params({k: v.astype(np.float32) for k, v in model.get_params().items()})
        model = m32
    X, _ = simulate(model, 12, seed=3)
    kw = dict(n_steps=40, chains=8, seed=6, progress=False)
    whole = ais(model, X, **kw)
    parts = [ais(model, X[:5], **kw), ais(model, X[5:], point_offset=5, **kw)]
    got = {name: np.concatenate([getattr(p, name) for p in parts]) for name in ("log_z", "log_w", "stderr")}
    if dtype == np.float64:
        np.testing.assert_array_equal(whole.log_w, got["log_w"])
        np.testing.assert_array_equal(whole.log_z, got["log_z"])
    else:
        d = whole.log_z - got["log_z"]
        assert np.all(np.abs(d) <= 5 * np.hypot(whole.stderr, got["stderr"])), d
        if np.any(d != 0):
            m, se = mean_and_se(d)
            assert abs(m) < N_SE * se, (m, se)


def test_more_chains_keep_the_first_chains_initial_draws():
    """Chain c's streams do not depend on how many points share the call, and its initial draw (positions
    [0, C d) of the point's stream) is the same prefix whatever C is."""
    prob = gaussian_problem(2, 2, seed=0)
    a = ais(prob, n_steps=1, chains=3, seed=1, step_size=1e-300, progress=False)
    b = ais(prob, n_steps=1, chains=5, seed=1, step_size=1e-300, progress=False)
    np.testing.assert_array_equal(a.log_w, b.log_w[:, :3])


@pytest.mark.parametrize("transition", ["hmc", "mala", "random_walk"])
def test_step_size_adaptation_reaches_the_target_acceptance(transition):
    """Per point, never pooled: two points with the same f0 = N(0, I) and targets N(0, 0.1^2 I) and
    N(0, 3^2 I), annealed to b = 0.99 in 100 steps and then held near b = 1 for 300 more (a nearly fixed
    distribution): the acceptance over the last 200 transitions settles at the target (+-0.1: the
    multiplicative rule hovers within a few percent of it; 16 chains x 200 steps average out the noise),
    and the step sizes end ~29x apart, the ratio of the two distributions' scales at b = 0.99..1."""
    mu = np.zeros((2, 3))
    prob = GaussianProblem(mu, np.stack([np.eye(3) * 0.1 ** 2, np.eye(3) * 3.0 ** 2]), np.zeros(2))
    betas = np.concatenate([np.linspace(0, 0.99, 101), np.linspace(0.99, 1, 301)[1:]])
    res = ais(prob, schedule=betas, chains=16, seed=2, transition=transition, progress=False)
    target = {"hmc": 0.65, "mala": 0.574, "random_walk": 0.234}[transition]
    late = res.accept_prob[:, 200:].mean(1)
    assert np.all(np.abs(late - target) < 0.1), late
    ratio = res.step_size[1, 200:].mean() / res.step_size[0, 200:].mean()
    assert 15 < ratio < 60, ratio


def test_weights_are_exactly_one_when_f0_is_f1():
    """f0 = f1 (diagonal, non-unit variances and a mean): every log f1 - log f0 is 0 up to rounding, so
    log w = 0 and log Z = 0; this pins f0's normaliser (the exp(lv) terms) and the weight recursion."""
    rng = np.random.default_rng(3)
    mu, var = rng.standard_normal((3, 4)), rng.uniform(0.01, 5, (3, 4))
    prob = GaussianProblem(mu, np.stack([np.diag(v) for v in var]), np.zeros(3), m=mu, lv=np.log(var))
    res = ais(prob, n_steps=50, chains=8, seed=0, progress=False)
    np.testing.assert_allclose(res.log_w, 0.0, atol=1e-9)
    np.testing.assert_allclose(res.log_z, 0.0, atol=1e-9)
    np.testing.assert_allclose(res.ess, 8.0, rtol=1e-9)


def test_fixed_step_size_and_target_accept():
    prob = gaussian_problem(3, 2, seed=0)
    res = ais(prob, n_steps=20, chains=4, seed=0, step_size=0.3, progress=False)
    assert np.all(res.step_size == 0.3) and not res.settings["adapt"]
    per_point = np.tile(np.linspace(0.1, 0.5, 20), (3, 1))
    res = ais(prob, n_steps=20, chains=4, seed=0, step_size=per_point, progress=False)
    np.testing.assert_array_equal(res.step_size, per_point)
    hi = ais(prob, n_steps=300, chains=16, seed=0, target_accept=0.9, progress=False)
    assert abs(hi.accept_prob[:, 150:].mean() - 0.9) < 0.1


def test_progress_callable_and_interrupt():
    prob = gaussian_problem(2, 2, seed=0)
    calls = []
    ais(prob, n_steps=7, chains=2, seed=0, progress=lambda d, t: calls.append((d, t)))
    assert calls == [(i, 7) for i in range(1, 8)]
    calls.clear()
    bdmc(prob, z_exact=prob.mu, n_steps=5, chains=2, seed=0, progress=lambda d, t: calls.append((d, t)))
    assert calls == [(i, 10) for i in range(1, 11)]

    def stop(done, total):
        if done == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ais(prob, n_steps=100, chains=2, seed=0, progress=stop)
    # progress=True on a non-terminal (pytest's stderr) runs silently
    ais(prob, n_steps=3, chains=2, seed=0, progress=True)


def test_simulate():
    model = bernoulli_model()
    X, z = simulate(model, 10, seed=1)
    X2, z2 = simulate(model, 15, seed=1)
    np.testing.assert_array_equal(X, X2[:10])                     # row i depends only on (seed, i)
    np.testing.assert_array_equal(z, z2[:10])
    assert X.dtype == model.dtype and set(np.unique(X)) <= {0.0, 1.0} and z.shape == (10, 2)
    assert not np.array_equal(simulate(model, 10, seed=2)[0], X)
    # Bernoulli frequencies given z: over many draws at one z, the mean of x matches sigmoid(logits)
    big_X, big_z = simulate(model, 4000, seed=0)
    probs = 1 / (1 + np.exp(-numpy_logits(model.get_params(), big_z)))
    resid = (big_X - probs).sum(0) / np.sqrt((probs * (1 - probs)).sum(0))    # ~N(0, 1) per pixel
    assert np.all(np.abs(resid) < 4.5)
    gm = ppca_model()
    Xg, zg = simulate(gm, 4000, seed=0)
    p = gm.get_params()
    r = (Xg - zg @ p["dec.0.W"] - p["dec.0.b"]) / np.exp(0.5 * p["dec.logvar"])
    assert abs(r.mean()) < 0.02 and abs(r.var() - 1) < 0.03         # 24000 N(0,1) values: se 0.006 / 0.009
    assert abs(zg.mean()) < 0.03 and abs(zg.var() - 1) < 0.04


def test_bad_arguments():
    prob = gaussian_problem(3, 2, seed=0)
    model = ppca_model()
    X = np.zeros((2, 6))
    cases = [
        (dict(chains=0), ValueError, "chains"),
        (dict(chains=2.0), TypeError, "chains"),
        (dict(n_steps=0), ValueError, "n_steps"),
        (dict(n_steps="10"), TypeError, "n_steps"),
        (dict(schedule="cosine"), ValueError, "schedule must be one of"),
        (dict(schedule=5), TypeError, "schedule"),
        (dict(schedule=[0.0, 0.5, 0.4, 1.0]), ValueError, "strictly increasing"),
        (dict(schedule=[0.1, 0.5, 1.0]), ValueError, "start at exactly 0"),
        (dict(schedule=[0.0, 0.5, 0.9]), ValueError, "end at exactly 1"),
        (dict(schedule=[0.0]), ValueError, "at least 2"),
        (dict(schedule=[[0.0, 1.0]]), ValueError, "1-D"),
        (dict(schedule=[0.0, np.nan, 1.0]), ValueError, "schedule"),
        (dict(schedule=[0.0, 0.5, 1.0], n_steps=5), ValueError, "disagrees"),
        (dict(transition="nuts"), ValueError, "transition"),
        (dict(n_leapfrog=0), ValueError, "n_leapfrog"),
        (dict(step_size="auto"), ValueError, "step_size"),
        (dict(step_size=-0.1), ValueError, "step_size"),
        (dict(step_size=np.ones((3, 4))), ValueError, r"step_size array must have shape \(n_points, n_steps\)"),
        (dict(step_size=0.1, target_accept=0.5), ValueError, "target_accept"),
        (dict(target_accept=1.0), ValueError, "target_accept"),
        (dict(target_accept=0.0), ValueError, "target_accept"),
        (dict(seed=-1), ValueError, "seed"),
        (dict(seed=1.5), TypeError, "seed"),
        (dict(point_offset=-1), ValueError, "point_offset"),
        (dict(point_offset=2 ** 64 - 2), ValueError, "point_offset"),
        (dict(progress="yes"), TypeError, "progress"),
        (dict(start="encoder"), ValueError, "start only applies"),
    ]
    base = dict(n_steps=3, chains=2, seed=0, progress=False)
    for kw, exc, match in cases:
        with pytest.raises(exc, match=match):
            ais(prob, **{**base, **kw})
    with pytest.raises(TypeError, match="seed"):
        ais(prob, n_steps=3)                                        # seed is required
    # VAE arguments
    with pytest.raises(ValueError, match=r"X must have shape \(n >= 1, 6\)"):
        ais(model, np.zeros((2, 5)), **base)
    with pytest.raises(ValueError, match="X .* required"):
        ais(model, **base)
    with pytest.raises(ValueError, match="X contains NaN"):
        ais(model, np.full((2, 6), np.nan), **base)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        ais(bernoulli_model(), np.full((2, 12), 2.0), **base)
    with pytest.raises(ValueError, match="start must be one of"):
        ais(model, X, start="posterior", **base)
    with pytest.raises(ValueError, match="X is only for a VAE"):
        ais(prob, X, **base)
    with pytest.raises(TypeError, match="problem must be an AISProblem"):
        ais(object(), **base)
    # problem members
    bad = gaussian_problem(3, 2, seed=0)
    bad.initial_logvar = np.full((3, 2), np.inf)
    with pytest.raises(ValueError, match="initial_logvar contains NaN or inf"):
        ais(bad, **base)
    bad = gaussian_problem(3, 2, seed=0)
    bad.initial_mean = np.zeros((3, 3))
    with pytest.raises(ValueError, match=r"initial_mean must have shape \(n_points, dim\) = \(3, 2\)"):
        ais(bad, **base)

    class WrongShape(GaussianProblem):
        def log_target_and_grad(self, Z):
            lp, g = super().log_target_and_grad(Z)
            return lp[:, :1], g

    with pytest.raises(ValueError, match="log target has shape"):
        ais(WrongShape(prob.mu, prob.S, prob.log_c), **base)
    # bdmc and simulate
    with pytest.raises(ValueError, match="z_exact .* is required"):
        bdmc(prob, **base)
    with pytest.raises(ValueError, match=r"z_exact must have shape \(n_points, dim\) = \(3, 2\)"):
        bdmc(prob, z_exact=np.zeros((3, 3)), **base)
    with pytest.raises(ValueError, match="z_exact contains NaN"):
        bdmc(prob, z_exact=np.full((3, 2), np.nan), **base)
    with pytest.raises(ValueError, match="either n_simulated or X"):
        bdmc(model, X, np.zeros((2, 3)), n_simulated=4, **base)
    with pytest.raises(TypeError, match="n_simulated needs a VAE"):
        bdmc(prob, n_simulated=4, **base)
    with pytest.raises(ValueError, match="n must be in"):
        simulate(model, 0, seed=0)
    with pytest.raises(TypeError, match="model must be a vaekernels.VAE"):
        simulate(prob, 3, seed=0)
    with pytest.raises(TypeError, match="model must be a vaekernels.VAE"):
        VAEProblem(prob, X)


def test_ctrl_c_stops_a_long_run_quickly():
    """A real SIGINT (from a timer thread, in a fresh interpreter) during an AIS run sized to take hours on
    an MNIST-sized decoder (256 points x 16 chains, 10 leapfrog steps per transition) raises
    KeyboardInterrupt within 0.5 s: the loop is Python and no single call runs long (the decoder sees at
    most 4096 rows per call)."""
    code = textwrap.dedent("""
        import json, os, signal, threading, time
        import numpy as np
        import vaekernels as vk
        from vaekernels.mcmc.annealing import ais
        signal.signal(signal.SIGINT, signal.default_int_handler)   # background shells may ignore SIGINT
        model = vk.VAE(784, 10, hidden=(200,), seed=0)
        X = (np.random.default_rng(0).random((256, 784)) < 0.3).astype(np.float32)
        sent = {}
        def fire():
            sent["t"] = time.perf_counter()
            os.kill(os.getpid(), signal.SIGINT)
        threading.Timer(1.0, fire).start()
        try:
            ais(model, X, n_steps=10**6, chains=16, seed=0, progress=False)
            print(json.dumps({"latency": None}))
        except KeyboardInterrupt:
            print(json.dumps({"latency": time.perf_counter() - sent["t"]}))
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240, cwd=REPO)
    assert r.returncode == 0, r.stderr[-3000:]
    latency = json.loads(r.stdout.strip().splitlines()[-1])["latency"]
    print(f"latency {latency}")
    assert latency is not None and latency < 0.5, latency


def test_concurrent_runs_on_one_model_match_serial_runs():
    """No shared mutable state: three threads running AIS/BDMC on one VAE at once give the serial bits."""
    from concurrent.futures import ThreadPoolExecutor

    model = bernoulli_model()
    X, z = simulate(model, 6, seed=2)
    jobs = [dict(seed=s, transition=t) for s, t in ((0, "hmc"), (1, "mala"), (2, "random_walk"))]

    def run(kw):
        r = bdmc(model, X, z, n_steps=30, chains=4, progress=False, **kw)
        return np.concatenate([r.forward.log_w, r.reverse.log_w])

    serial = [run(kw) for kw in jobs]
    with ThreadPoolExecutor(3) as pool:
        parallel = list(pool.map(run, jobs))
    for a, b in zip(serial, parallel):
        np.testing.assert_array_equal(a, b)
