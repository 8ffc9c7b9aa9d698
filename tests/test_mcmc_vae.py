"""The VAE posterior p(z|x) as an MCMC target (vaekernels.mcmc.vae_posterior / compare_posterior).

The exact reference: a VAE with linear decoder and Gaussian likelihood (``hidden=()``) is factor
analysis, x = z W + b + noise, noise ~ N(0, diag Psi), z ~ N(0, I), whose posterior is Gaussian:
    p(z|x) = N(S W Psi^-1 (x - b), S),  S = (I + W Psi^-1 W^T)^-1     (W is (L, D) as the model stores it).
The weights need no training for that to hold, so random weights are used.
"""
import math

import numpy as np
import pytest

import vaekernels as vk
from vaekernels import mcmc

Z_TOL = 5.0


def linear_gaussian_vae(D=6, L=2, seed=3):
    model = vk.VAE(D, L, hidden=(), likelihood="gaussian", dtype=np.float64, seed=seed)
    rng = np.random.default_rng(seed)
    p = model.get_params()
    p["dec.0.W"] = rng.standard_normal((L, D)) * 0.8
    p["dec.0.b"] = rng.standard_normal(D) * 0.3
    p["dec.logvar"] = np.log(rng.uniform(0.2, 0.8, D))
    model.set_params(p)
    return model, p


def exact_posterior(p, x):
    W, b, psi = p["dec.0.W"], p["dec.0.b"], np.exp(p["dec.logvar"])
    S = np.linalg.inv(np.eye(W.shape[0]) + (W / psi) @ W.T)
    return S @ (W / psi) @ (x - b), S


def set_encoder_near_posterior(model, p, shift=0.3, inflate=1.5):
    """A linear encoder whose q(z|x) is the exact posterior's mean moved by ``shift`` with the posterior's
    variances times ``inflate`` (a KL of a few tenths of a nat: an imperfect q that importance sampling with
    thousands of samples still measures accurately; a random encoder's KL of tens of nats it cannot)."""
    W, b, psi = p["dec.0.W"], p["dec.0.b"], np.exp(p["dec.logvar"])
    L = W.shape[0]
    S = np.linalg.inv(np.eye(L) + (W / psi) @ W.T)
    A = S @ (W / psi)                                   # posterior mean = A (x - b)
    q = model.get_params()
    q["enc.0.W"][:, :L] = A.T
    q["enc.0.W"][:, L:] = 0.0
    q["enc.0.b"][:L] = -A @ b + shift
    q["enc.0.b"][L:] = np.log(np.diag(S) * inflate)
    model.set_params(q)


def test_log_prob_matches_numpy_bernoulli_and_gaussian():
    rng = np.random.default_rng(0)
    model = vk.VAE(5, 3, hidden=(7,), likelihood="bernoulli", dtype=np.float64, seed=2)
    x = (rng.random((2, 5)) < 0.5).astype(np.float64)
    post = mcmc.vae_posterior(model, x, chains_per_x=4)
    Z = rng.standard_normal((8, 3))
    probs = model.decode(Z)
    X = np.repeat(x, 4, axis=0)
    ref = np.sum(X * np.log(probs) + (1 - X) * np.log1p(-probs), axis=1) - 0.5 * np.sum(Z ** 2, 1) \
        - 1.5 * math.log(2 * math.pi)
    np.testing.assert_allclose(post.log_prob(Z), ref, rtol=1e-10)

    gm, p = linear_gaussian_vae()
    xg = rng.standard_normal(6)
    post = mcmc.vae_posterior(gm, xg, chains_per_x=5)
    Z = rng.standard_normal((5, 2))
    mean = Z @ p["dec.0.W"] + p["dec.0.b"]
    var = np.exp(p["dec.logvar"])
    ref = np.sum(-0.5 * (xg - mean) ** 2 / var - 0.5 * np.log(2 * math.pi * var), 1) \
        - 0.5 * np.sum(Z ** 2, 1) - math.log(2 * math.pi)
    np.testing.assert_allclose(post.log_prob(Z), ref, rtol=1e-10)


def test_mh_recovers_the_exact_factor_analysis_posterior():
    model, p = linear_gaussian_vae()
    rng = np.random.default_rng(1)
    xs = rng.standard_normal((3, 6))
    post = mcmc.vae_posterior(model, xs, chains_per_x=32)
    res = mcmc.sample(post, post.initial_points(seed=4), n_draws=800, n_warmup=500, seed=5)
    for i, x in enumerate(xs):
        m, S = exact_posterior(p, x)
        s = res.samples[i * 32:(i + 1) * 32]
        ess = mcmc.ess(s)
        sd = np.sqrt(np.diag(S))
        assert np.all(np.abs(s.mean((0, 1)) - m) < Z_TOL * sd / np.sqrt(ess)), (i, s.mean((0, 1)), m)
        d2 = (s - m) ** 2
        mcse_var = d2.reshape(-1, 2).std(0) / np.sqrt(mcmc.ess(d2))
        assert np.all(np.abs(d2.mean((0, 1)) - np.diag(S)) < Z_TOL * mcse_var)


def test_compare_posterior_numbers_and_plot(tmp_path):
    model, p = linear_gaussian_vae()
    set_encoder_near_posterior(model, p)
    xs = np.random.default_rng(2).standard_normal((2, 6))
    out = mcmc.compare_posterior(model, xs, chains_per_x=16, n_draws=400, n_warmup=300, seed=1,
                                 n_importance=4000, plot=tmp_path / "post.png")
    assert (tmp_path / "post.png").stat().st_size > 1000
    for i, x in enumerate(xs):
        m, S = exact_posterior(p, x)
        q_mean = np.asarray(out["q_mean"][i])
        q_var = np.asarray(out["q_sd"][i]) ** 2
        # KL(q || p) in closed form for the Gaussian encoder against the exact posterior
        Si = np.linalg.inv(S)
        kl = 0.5 * (np.trace(Si @ np.diag(q_var)) + (m - q_mean) @ Si @ (m - q_mean) - 2
                    + np.linalg.slogdet(S)[1] - np.sum(np.log(q_var)))
        # log p(x) - ELBO by importance sampling from q (4000 samples): accurate for a q this close to p
        assert out["kl_q_p"][i] == pytest.approx(kl, rel=0.15, abs=0.05)
        assert out["kl_gaussian"][i] == pytest.approx(kl, rel=0.15, abs=0.05)
        # log p(x) is known exactly for factor analysis: x ~ N(b, W^T W + Psi)
        C = p["dec.0.W"].T @ p["dec.0.W"] + np.diag(np.exp(p["dec.logvar"]))
        r = x - p["dec.0.b"]
        log_px = -0.5 * (r @ np.linalg.solve(C, r) + np.linalg.slogdet(C)[1] + 6 * math.log(2 * math.pi))
        assert out["log_px"][i] == pytest.approx(log_px, abs=0.05)
        assert 0.0 < out["independence_accept"][i] < 1.0
        np.testing.assert_allclose(out["mh_mean"][i], m, atol=0.2)


def test_independence_sampler_accepts_more_with_a_better_q():
    # q with the exact posterior mean and marginal variances (the posterior is correlated, so q != p and
    # acceptance stays below 1) against the same q shifted by 2: the acceptance rate must separate them.
    model, p = linear_gaussian_vae()
    x = np.random.default_rng(3).standard_normal(6)
    m, S = exact_posterior(p, x)
    post = mcmc.vae_posterior(model, x, chains_per_x=32)
    # start at draws from the good q: an independence sampler started in q's far tail can stay there
    x0 = m + np.sqrt(np.diag(S)) * np.random.default_rng(4).standard_normal((32, 2))
    good = mcmc.sample(post, x0, n_draws=300, n_warmup=0, seed=2, proposal="independent",
                       proposal_mean=np.tile(m, (32, 1)), proposal_logvar=np.tile(np.log(np.diag(S)), (32, 1)))
    bad = mcmc.sample(post, x0, n_draws=300, n_warmup=0, seed=2, proposal="independent",
                      proposal_mean=np.tile(m + 2.0, (32, 1)), proposal_logvar=np.tile(np.log(np.diag(S)), (32, 1)))
    assert good.accept_rate.mean() > 0.5 > bad.accept_rate.mean()


def test_demo_section(tmp_path):
    model = vk.VAE(8, 2, hidden=(6,), likelihood="bernoulli", dtype=np.float32, seed=0)
    X = (np.random.default_rng(0).random((10, 8)) < 0.4).astype(np.float32)
    out = mcmc.demo_section(model, X, tmp_path, n_points=2)
    assert (tmp_path / "mcmc_posterior.png").exists()
    assert len(out["kl_q_p"]) == 2 and all(np.isfinite(out["kl_q_p"]))
    assert out["summary"][0].startswith("MCMC vs q(z|x)")


def test_bad_inputs():
    model = vk.VAE(5, 2, hidden=(), likelihood="bernoulli", dtype=np.float64)
    with pytest.raises(ValueError, match="x must have shape"):
        mcmc.vae_posterior(model, np.zeros((2, 4)))
    with pytest.raises(ValueError, match="chains_per_x"):
        mcmc.vae_posterior(model, np.zeros(5), chains_per_x=0)
    with pytest.raises(TypeError, match="model"):
        mcmc.vae_posterior(object(), np.zeros(5))


def test_log_prob_and_grad_is_the_exact_posterior_score():
    """For factor analysis, d/dz log p(x, z) = -S^-1 (z - m) with (m, S) the exact posterior; the target's
    gradient comes through the decoder's hand-written backward pass, batched over chains and data points."""
    model, p = linear_gaussian_vae()
    rng = np.random.default_rng(6)
    xs = rng.standard_normal((3, 6))
    post = mcmc.vae_posterior(model, xs, chains_per_x=4)
    Z = rng.standard_normal((12, 2))
    lp, grad = post.log_prob_and_grad(Z)
    np.testing.assert_array_equal(lp, post.log_prob(Z))
    for r in range(12):
        m, S = exact_posterior(p, xs[r // 4])
        np.testing.assert_allclose(grad[r], -np.linalg.solve(S, Z[r] - m), rtol=1e-10, atol=1e-12)


def test_bernoulli_posterior_gradient_vs_finite_differences():
    model = vk.VAE(5, 3, hidden=(7,), likelihood="bernoulli", dtype=np.float64, seed=2)
    x = (np.random.default_rng(0).random((2, 5)) < 0.5).astype(np.float64)
    post = mcmc.vae_posterior(model, x, chains_per_x=3)
    Z = np.random.default_rng(1).standard_normal((6, 3))
    _, grad = post.log_prob_and_grad(Z)
    h = 1e-6
    for j in range(3):
        e = np.zeros(3)
        e[j] = h
        fd = (post.log_prob(Z + e) - post.log_prob(Z - e)) / (2 * h)
        np.testing.assert_allclose(grad[:, j], fd, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gradient_only_decoder_likelihood_equals_the_value_and_gradient_pass(likelihood, dtype):
    """value=False (the gradient-only kernels, no log per element) gives the bits of the gradient of the
    value-and-gradient pass: both evaluate x - sigmoid(l) (resp. (x - m) e^-lv) the same way, times 1."""
    model = vk.VAE(9, 3, hidden=(8,), likelihood=likelihood, dtype=dtype, seed=4)
    rng = np.random.default_rng(2)
    X = (rng.random((5, 9)) < 0.5).astype(dtype)
    Z = rng.standard_normal((5, 7, 3))
    _, full = model.decoder_log_likelihood(X, Z, grad=True, batch_size=8)   # 8: batches cut across data rows
    none, only = model.decoder_log_likelihood(X, Z, grad=True, value=False, batch_size=8)
    assert none is None
    np.testing.assert_array_equal(only, full)
    with pytest.raises(ValueError, match="value=False needs grad=True"):
        model.decoder_log_likelihood(X, Z, value=False)


def test_vae_posterior_uses_only_the_public_model_api():
    """A stand-in model with just the public methods works (no private members are reached for)."""
    model, _ = linear_gaussian_vae()

    class Public:
        n_latent, n_inputs, dtype = model.n_latent, model.n_inputs, model.dtype
        encode = staticmethod(model.encode)
        decoder_log_likelihood = staticmethod(model.decoder_log_likelihood)

    x = np.random.default_rng(3).standard_normal((2, 6))
    Z = np.random.default_rng(4).standard_normal((4, 2))
    np.testing.assert_array_equal(mcmc.vae_posterior(Public(), x, 2).log_prob(Z),
                                  mcmc.vae_posterior(model, x, 2).log_prob(Z))
