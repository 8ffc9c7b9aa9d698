"""vaekernels.VAE: the loss and its hand-written gradients against an independent NumPy forward pass, central
finite differences and torch autograd; the linear-Gaussian (factor analysis / PPCA) model where log p(x) is
exact; IWAE streaming; reproducibility across calls, resumes and thread counts; checkpoints; bad input.
"""
import hashlib
import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from scipy.special import expit, logsumexp
from scipy.stats import multivariate_normal

import vaekernels as vk
from conftest import STRICT_REL, assert_close, assert_mutation_detected
from vaekernels import VAE

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# -------------------------------------------------------------------------------------------------
# an independent forward pass (plain NumPy, float64, textbook formulas)
# -------------------------------------------------------------------------------------------------
ACT = {"tanh": np.tanh, "relu": lambda a: np.maximum(a, 0.0), "linear": lambda a: a, "sigmoid": expit,
       "softplus": lambda a: np.logaddexp(0.0, a), "elu": lambda a: np.where(a > 0, a, np.expm1(np.minimum(a, 0.0)))}


def reference_terms(model, x, seed, offset=0):
    """(log p(x|z), KL) per row, computed from get_params() with eps = randn((B, L), seed, offset)."""
    p = {k: v.astype(np.float64) for k, v in model.get_params().items()}
    h = _mlp(p, "enc", ACT[model.activation], x.astype(np.float64))
    L = model.n_latent
    mu, logvar = h[:, :L], h[:, L:]
    eps = vk.randn((x.shape[0], L), seed, offset, np.float64)
    z = mu + np.exp(0.5 * logvar) * eps
    kl = 0.5 * np.sum(mu ** 2 + np.exp(logvar) - 1.0 - logvar, axis=1)
    return _log_likelihood(model, p, x, _mlp(p, "dec", ACT[model.activation], z)), kl


def _mlp(p, prefix, act, h):
    n = sum(1 for k in p if k.startswith(prefix + ".") and k.endswith(".W"))
    for i in range(n):
        h = h @ p[f"{prefix}.{i}.W"] + p[f"{prefix}.{i}.b"]
        if i < n - 1:
            h = act(h)
    return h


def _log_likelihood(model, p, x, out):
    """log p(x | decoder output) summed over the last axis (x broadcasts against out)."""
    if model.likelihood == "bernoulli":
        return np.sum(x * out - np.logaddexp(0.0, out), axis=-1)
    lv = p["dec.logvar"]
    return -0.5 * np.sum(np.log(2 * np.pi) + lv + (x - out) ** 2 / np.exp(lv), axis=-1)


def small_model(likelihood="bernoulli", activation="tanh", hidden=(6, 5), dtype=np.float64, seed=3):
    m = VAE(7, 3, hidden=hidden, activation=activation, likelihood=likelihood, seed=seed, dtype=dtype)
    # move biases and the Gaussian log-variance off their zero initial values so every term is exercised
    rng = np.random.default_rng(seed)
    params = m.get_params()
    for k, v in params.items():
        if k.endswith(".b") or k == "dec.logvar":
            params[k] = (v + 0.3 * rng.standard_normal(v.shape)).astype(dtype)
    m.set_params(params)
    return m


def small_data(n=5, likelihood="bernoulli", seed=0):
    rng = np.random.default_rng(seed)
    if likelihood == "bernoulli":
        return rng.uniform(0, 1, (n, 7))  # grey levels: the Bernoulli formula accepts them
    return rng.standard_normal((n, 7))


CASES = [("bernoulli", "tanh", (6, 5)), ("bernoulli", "relu", (6,)), ("gaussian", "tanh", (6, 5)),
         ("gaussian", "linear", ()), ("bernoulli", "sigmoid", (6,)), ("gaussian", "sigmoid", (5, 4)),
         ("bernoulli", "softplus", (6, 5)), ("gaussian", "softplus", (6,)), ("bernoulli", "elu", (5, 4)),
         ("gaussian", "elu", (6,))]


@pytest.mark.parametrize("likelihood,activation,hidden", CASES)
def test_loss_matches_independent_forward(likelihood, activation, hidden):
    m = small_model(likelihood, activation, hidden)
    x = small_data(likelihood=likelihood)
    loss, _ = m.loss_and_grad(x, seed=9, offset=4)
    ll, kl = reference_terms(m, x, 9, 4)
    # float64 through a handful of layers: agreement to ~1e-15 relative; 1e-12 leaves room for BLAS order
    assert loss == pytest.approx(-np.mean(ll - kl), rel=1e-12)
    np.testing.assert_allclose(m.elbo(x, seed=9), reference_terms(m, x, 9, 0)[0] - reference_terms(m, x, 9, 0)[1],
                               rtol=1e-12)


# -------------------------------------------------------------------------------------------------
# Finite differences of the loss, element by element
# -------------------------------------------------------------------------------------------------
EPS64 = float(np.finfo(np.float64).eps)
U64 = EPS64 / 2
# The activations' derivatives (from a and y = act(a); relu: 1 wherever the rounded a may be positive) and
# the rounding of the model's implementations (python/vaekernels/nn/activations.py), with NumPy's tanh, exp,
# log1p and expm1 budgeted at 4 ulp each (4 eps of the value):
ACT_DERIV = {"linear": lambda a, y, e: np.ones_like(a), "relu": lambda a, y, e: (a + e > 0) * 1.0,
             "tanh": lambda a, y, e: 1 - y * y, "sigmoid": lambda a, y, e: y * (1 - y),
             "softplus": lambda a, y, e: expit(a), "elu": lambda a, y, e: np.where(a > 0, 1.0, y + 1)}
ACT_ROUNDING = {
    "linear": lambda y: 0 * y, "relu": lambda y: 0 * y,                  # exact
    "tanh": lambda y: 4 * EPS64 * np.abs(y),
    # (1 + tanh(a / 2)) / 2: tanh's 4 ulp of |t| <= 1 and the add's half ulp of |1 + t| <= 2, both halved
    "sigmoid": lambda y: 2.5 * EPS64 + 0 * y,
    # max(a, 0) + log1p(e^-|a|): exp 4 ulp (log1p's condition number on [0, 1] is <= 1), log1p 4, the add 0.5
    "softplus": lambda y: 8.5 * EPS64 * np.abs(y),
    # max(a, 0) + expm1(min(a, 0)): one addend is 0; expm1 4 ulp
    "elu": lambda y: 4 * EPS64 * np.abs(y),
}


def loss_rounding_bound(model, x, seed, offset, kl_weight):
    """A first-order bound on |fl(loss) - loss| for model.loss_and_grad(x, seed, offset, kl_weight) at the
    model's parameters: the forward pass with, next to each value, a bound on its rounding error (running
    error analysis; values from the plain NumPy forward above). A dense layer h W + b adds at most
    (fan_in + 1) u (|h| |W| + |b|) in any summation order (BLAS's), and passes its input's error through
    |W|; an activation multiplies the error by its derivative and adds its own rounding (ACT_ROUNDING); the
    kernels' errors are their test_kernels budgets (z: 3 eps of |mu| + sigma |eps|; a row sum of D terms:
    K eps + (ceil(D/16) + 4) / 2 eps of its |terms|, K = 4.5 for KL and the normal, 5.5 for the Bernoulli),
    plus their inputs' errors times |d term / d input|."""
    p = {k: v.astype(np.float64) for k, v in model.get_params().items()}
    act, dact, rnd = ACT[model.activation], ACT_DERIV[model.activation], ACT_ROUNDING[model.activation]

    def mlp(prefix, h, e):
        n = sum(1 for k in p if k.startswith(prefix + ".") and k.endswith(".W"))
        for i in range(n):
            W, b = p[f"{prefix}.{i}.W"], p[f"{prefix}.{i}.b"]
            a = h @ W + b
            e = e @ np.abs(W) + (W.shape[0] + 1) * U64 * (np.abs(h) @ np.abs(W) + np.abs(b))
            if i < n - 1:
                h = act(a)
                e = dact(a, h, e) * e + rnd(h)
            else:
                h = a
        return h, e

    B, L = x.shape[0], model.n_latent
    head, e_head = mlp("enc", x, np.zeros_like(x))
    mu, lv, e_mu, e_lv = head[:, :L], head[:, L:], e_head[:, :L], e_head[:, L:]
    noise = vk.randn((B, L), seed, offset, np.float64)
    sig = np.exp(lv / 2)
    z = mu + sig * noise
    e_z = e_mu + sig * np.abs(noise) / 2 * e_lv + 3 * EPS64 * (np.abs(mu) + sig * np.abs(noise))
    kl = 0.5 * (mu ** 2 + np.expm1(lv) - lv)
    e_kl = (np.sum(np.abs(mu) * e_mu + np.abs(np.expm1(lv)) / 2 * e_lv, 1)
            + (4.5 + (math.ceil(L / 16) + 4) / 2) * EPS64 * kl.sum(1))
    out, e_out = mlp("dec", z, e_z)
    row = (math.ceil(x.shape[1] / 16) + 4) / 2
    if model.likelihood == "bernoulli":
        ll = np.sum(x * out - np.logaddexp(0.0, out), 1)
        mag = np.abs((x - (out >= 0)) * out) + np.log1p(np.exp(-np.abs(out)))
        e_ll = np.sum(np.abs(x - expit(out)) * e_out, 1) + (5.5 + row) * EPS64 * mag.sum(1)
    else:
        xlv = p["dec.logvar"]
        sq = (x - out) ** 2 * np.exp(-xlv)
        ll = -0.5 * np.sum(np.log(2 * np.pi) + xlv + sq, 1)
        mag = 0.5 * (np.log(2 * np.pi) + np.abs(xlv) + sq)
        e_ll = np.sum(np.abs(x - out) * np.exp(-xlv) * e_out, 1) + (4.5 + row) * EPS64 * mag.sum(1)
    # -(sum ll - w sum kl) / B: two sums of B values (B - 1 adds each), the product by w, the subtraction and
    # the division: B + 2 roundings, each at most u of sum |ll| + w sum kl.
    return (np.sum(e_ll) + kl_weight * np.sum(e_kl)
            + (B + 2) * U64 * (np.sum(np.abs(ll)) + kl_weight * np.sum(kl.sum(1)))) / B


# Step of the finite differences: 2^-14 (6.1e-5). D4(h) = (8 (L(+h) - L(-h)) - (L(+2h) - L(-2h))) / (12 h)
# has truncation error c h^4 (c = f^(5) / 30) and rounding error <= 1.5 delta / h for a loss computed to
# within delta; delta is 2e-14 to 1.4e-13 here (18 to 65 eps |loss|), so 1.5 delta / h <= 3.5e-9, while
# h^4 = 1.4e-17. h is small enough that a relu or elu kink rarely falls inside the stencil (+-4h); one that
# does shows up in the truncation estimate below (and then in the 0.1% self-check).
FD_STEP = 2.0 ** -14


def fd_gradient(m, x, kw, h=FD_STEP):
    """Per parameter tensor: (D4(h), D4(2h), the bound on D4(h)'s rounding per element)."""
    base = m.get_params()
    delta = 2 * loss_rounding_bound(m, x, kl_weight=kw["kl_weight"], seed=kw["seed"], offset=kw["offset"])
    res = {}
    for name, value in base.items():
        vals = {k: np.empty(value.size) for k in (-4, -2, -1, 1, 2, 4)}
        for i in range(value.size):
            for k in vals:
                p = {n: v.copy() for n, v in base.items()}
                p[name].reshape(-1)[i] += k * h
                m.set_params(p)
                vals[k][i] = m.loss_and_grad(x, **kw)[0]
        d4h = (8 * (vals[1] - vals[-1]) - (vals[2] - vals[-2])) / (12 * h)
        d4_2h = (8 * (vals[2] - vals[-2]) - (vals[4] - vals[-4])) / (24 * h)
        theta = np.abs(value.reshape(-1))
        # delta: the loss's rounding (doubled: the stencil moves every intermediate value by far less than
        # its size, so the bound at the centre holds at every point of it within a factor 2) -> 1.5 delta / h;
        # the quotient's own rounding (the differences are exact by Sterbenz; 8 D1 - D2 and / 12h): eps |D4|;
        # theta + k h is exact except across a power of two, where it is off by one ulp of theta + 4h:
        # 1.5 ulp / h of |D4|.
        rounding = 1.5 * delta / h + (EPS64 + 1.5 * EPS64 * (theta + 4 * h) / h) * np.abs(d4h)
        res[name] = tuple(a.reshape(value.shape) for a in (d4h, d4_2h, rounding))
    m.set_params(base)
    return res


@pytest.mark.parametrize("likelihood,activation,hidden", CASES)
@pytest.mark.parametrize("kl_weight", [1.0, 0.3])
def test_loss_and_grad_vs_finite_differences(likelihood, activation, hidden, kl_weight):
    # Element by element: |grad - D4(h)| <= 2 |D4(h) - D4(2h)| / 15 + rounding, where
    #   * (D4(h) - D4(2h)) / 15 is D4(h)'s truncation error to leading order (Richardson: D4(2h) - g =
    #     16 c h^4 = 16 (D4(h) - g)); the factor 2 allows a next-order term as large;
    #   * rounding = 1.5 delta / h + ~1e-11 |D4| (fd_gradient), delta (doubled) from the running error
    #     analysis of the loss (loss_rounding_bound). It is the floor, 1e-9 to 7e-9 here; the float64
    #     backward pass's own rounding is far smaller (it agrees with torch autograd to 1e-13,
    #     test_gradients_match_torch_autograd).
    # Self-check: for every nonzero gradient element the allowed error is below 0.1% of it (relu's dead
    # units have exactly zero gradient, checked against the floor only), and a 0.1% error in the smallest
    # element of each tensor fails.
    m = small_model(likelihood, activation, hidden)
    x = small_data(likelihood=likelihood)
    kw = dict(seed=5, offset=2, kl_weight=kl_weight)
    _, grads = m.loss_and_grad(x, **kw)
    for name, (num, num_2h, rounding) in fd_gradient(m, x, kw).items():
        allowed = 2 * np.abs(num - num_2h) / 15 + rounding
        assert_close(grads[name], num, atol=allowed, rtol=0, name=name)
        live = grads[name] != 0
        weak = live & ~(allowed < STRICT_REL * np.abs(num))
        assert not weak.any(), f"{name}: tolerance above 0.1% at {np.argwhere(weak)[:4].tolist()}"
        assert_mutation_detected(grads[name], num, allowed, live, name)


@pytest.mark.parametrize("likelihood,activation,hidden", CASES)
def test_gradients_match_torch_autograd(likelihood, activation, hidden):
    torch = pytest.importorskip("torch")
    m = small_model(likelihood, activation, hidden)
    x = small_data(likelihood=likelihood)
    loss, grads = m.loss_and_grad(x, seed=7, offset=1)
    P = {k: torch.tensor(v, requires_grad=True) for k, v in m.get_params().items()}
    act = {"tanh": torch.tanh, "relu": torch.relu, "linear": lambda a: a, "sigmoid": torch.sigmoid,
           # softplus as log(1 + e^a) exactly (torch's F.softplus turns linear above its threshold, 20)
           "softplus": lambda a: torch.logaddexp(a, torch.zeros_like(a)), "elu": torch.nn.functional.elu}[activation]
    xt = torch.tensor(x)
    n_enc = len(hidden) + 1
    hcur = xt
    for i in range(n_enc):
        hcur = hcur @ P[f"enc.{i}.W"] + P[f"enc.{i}.b"]
        if i < n_enc - 1:
            hcur = act(hcur)
    mu, logvar = hcur[:, :3], hcur[:, 3:]
    eps = torch.tensor(vk.randn((x.shape[0], 3), 7, 1, np.float64))
    z = mu + torch.exp(0.5 * logvar) * eps
    kl = 0.5 * (mu ** 2 + logvar.exp() - 1 - logvar).sum(1)
    hcur = z
    for i in range(n_enc):
        hcur = hcur @ P[f"dec.{i}.W"] + P[f"dec.{i}.b"]
        if i < n_enc - 1:
            hcur = act(hcur)
    if likelihood == "bernoulli":
        ll = -torch.nn.functional.binary_cross_entropy_with_logits(hcur, xt, reduction="none").sum(1)
    else:
        ll = torch.distributions.Normal(hcur, torch.exp(0.5 * P["dec.logvar"])).log_prob(xt).sum(1)
    tloss = -(ll - kl).mean()
    tloss.backward()
    assert loss == pytest.approx(tloss.item(), rel=1e-12)
    for k, t in P.items():
        # two float64 implementations of the same formulas: rounding-level differences only
        np.testing.assert_allclose(grads[k], t.grad.numpy(), rtol=1e-10, atol=1e-13, err_msg=k)


# -------------------------------------------------------------------------------------------------
# Linear-Gaussian model: log p(x) is exact
# -------------------------------------------------------------------------------------------------
def exact_log_marginal(model, X):
    """log N(x; b, W^T W + diag exp(logvar)) for a VAE with hidden=() and the Gaussian likelihood:
    x = z W + b + noise, z ~ N(0, I)."""
    p = model.get_params()
    W, b = p["dec.0.W"].astype(np.float64), p["dec.0.b"].astype(np.float64)
    cov = W.T @ W + np.diag(np.exp(p["dec.logvar"].astype(np.float64)))
    return multivariate_normal(mean=b, cov=cov).logpdf(X)


def ppca_data(n=2000, seed=0):
    rng = np.random.default_rng(seed)
    D, L = 5, 2
    W = rng.standard_normal((L, D))
    b = rng.standard_normal(D)
    noise_sd = 0.3
    X = rng.standard_normal((n, L)) @ W + b + noise_sd * rng.standard_normal((n, D))
    exact = multivariate_normal(mean=b, cov=W.T @ W + noise_sd ** 2 * np.eye(D)).logpdf(X)
    return X, exact


def test_elbo_below_iwae_below_exact_log_marginal():
    X, _ = ppca_data(400)
    m = VAE(5, 2, hidden=(), likelihood="gaussian", seed=1, dtype=np.float64)
    m.fit(X, epochs=3, batch_size=50, lr=1e-2, progress=False)  # a poor q: the bounds are far apart
    exact = exact_log_marginal(m, X)
    elbo = m.elbo(X, seed=2)
    iw10 = m.iwae(X, k=10, seed=3)
    iw1000 = m.iwae(X, k=1000, seed=4)

    def mean_and_se(d):
        return d.mean(), d.std(ddof=1) / math.sqrt(len(d))

    # each estimator is below log p(x) in expectation and rises with k; compare means with 4 standard
    # errors of the per-row differences (the Monte Carlo error), which would be exceeded by chance < 1e-4
    for lower, upper in ((elbo, iw10), (iw10, iw1000), (iw1000, exact)):
        d, se = mean_and_se(upper - lower)
        assert d > -4 * se
    d, se = mean_and_se(exact - elbo)
    assert d > 0.05 and d > 4 * se  # the ELBO gap of a poor q is real, not noise
    d, se = mean_and_se(exact - iw1000)
    assert d < 0.5 * mean_and_se(exact - elbo)[0]  # k = 1000 closes most of the gap


def test_trained_linear_vae_elbo_reaches_exact_log_likelihood():
    X, exact_true = ppca_data(2000)
    m = VAE(5, 2, hidden=(), likelihood="gaussian", seed=0, dtype=np.float64)
    lr = lambda e: 1e-2 if e < 150 else 2e-3  # noqa: E731
    m.fit(X, epochs=200, batch_size=100, lr=lr, progress=False)
    elbo = m.elbo(X, seed=1)
    exact_fit = exact_log_marginal(m, X)
    # the maximum-likelihood fit of this factor-analysis model beats the true parameters on the training
    # data by O(#params / n) = 20 / 2000 per row; ELBO is tight at the optimum (the exact posterior is
    # Gaussian and can be made diagonal by rotating W), so the ELBO should land within ~0.05 nats of the
    # exact average log-likelihood (of 5-dimensional data; its single-sample noise has se ~0.005 here)
    assert abs(elbo.mean() - exact_true.mean()) < 0.05, (elbo.mean(), exact_true.mean())
    assert exact_fit.mean() >= elbo.mean() - 0.01
    assert abs(exact_fit.mean() - exact_true.mean()) < 0.05


# -------------------------------------------------------------------------------------------------
# IWAE / ELBO evaluation
# -------------------------------------------------------------------------------------------------
def reference_iwae(model, X, k, seed):
    p = {k_: v.astype(np.float64) for k_, v in model.get_params().items()}
    out = []
    L = model.n_latent
    for i, x in enumerate(X):
        h = np.tanh(x @ p["enc.0.W"] + p["enc.0.b"]) @ p["enc.1.W"] + p["enc.1.b"]
        mu, lv = h[:L], h[L:]
        eps = vk.randn((k, L), seed, i * k * L, np.float64)
        z = mu + np.exp(0.5 * lv) * eps
        logq = np.sum(-0.5 * (np.log(2 * np.pi) + lv + eps ** 2), axis=1)
        logpz = np.sum(-0.5 * (np.log(2 * np.pi) + z ** 2), axis=1)
        logits = np.tanh(z @ p["dec.0.W"] + p["dec.0.b"]) @ p["dec.1.W"] + p["dec.1.b"]
        ll = np.sum(x * logits - np.logaddexp(0, logits), axis=1)
        out.append(logsumexp(ll + logpz - logq) - np.log(k))
    return np.array(out)


@pytest.mark.parametrize("batch_size", [7, 60, 100000])  # chunks of k, whole rows, many rows per pass
def test_iwae_streams_exactly(batch_size):
    m = VAE(7, 3, hidden=(6,), seed=2, dtype=np.float64)
    X = small_data(6)
    got = m.iwae(X, k=25, seed=11, batch_size=batch_size)
    # float64 end to end: the streamed log-mean-exp equals scipy's to rounding
    np.testing.assert_allclose(got, reference_iwae(m, X, 25, 11), rtol=1e-12)


def test_elbo_does_not_depend_on_batching():
    m = VAE(7, 3, hidden=(6,), seed=2)
    X = small_data(50)
    np.testing.assert_array_equal(m.elbo(X, seed=4, batch_size=7), m.elbo(X, seed=4))
    # the same samples whatever the chunking; OpenBLAS may pick a different float32 GEMM kernel for a
    # different number of rows, so allow a few float32 ulps of the log-weights (~1e-6 relative)
    np.testing.assert_allclose(m.iwae(X, k=9, seed=4, batch_size=4), m.iwae(X, k=9, seed=4), rtol=1e-5)


def test_encode_decode_reconstruct_sample():
    m = small_model(hidden=(6,))
    X = small_data(4)
    mu, logvar = m.encode(X)
    p = m.get_params()
    h = np.tanh(X @ p["enc.0.W"] + p["enc.0.b"]) @ p["enc.1.W"] + p["enc.1.b"]
    np.testing.assert_allclose(mu, h[:, :3], rtol=1e-12)
    np.testing.assert_allclose(logvar, h[:, 3:], rtol=1e-12)
    logits = np.tanh(mu @ p["dec.0.W"] + p["dec.0.b"]) @ p["dec.1.W"] + p["dec.1.b"]
    np.testing.assert_allclose(m.reconstruct(X), 1 / (1 + np.exp(-logits)), rtol=1e-12)
    s = m.sample(5, seed=3)
    z = vk.randn((5, 3), 3, 0, np.float64)
    np.testing.assert_allclose(s, m.decode(z))
    assert s.shape == (5, 7) and np.all((s > 0) & (s < 1))
    with pytest.raises(ValueError, match=r"Z must have shape \(n, 3\)"):
        m.decode(np.zeros((2, 4)))


# -------------------------------------------------------------------------------------------------
# fit: reproducibility, schedules, history, errors
# -------------------------------------------------------------------------------------------------
def digits_like(n=300, d=16, seed=0):
    return np.random.default_rng(seed).uniform(0, 1, (n, d)).astype(np.float32)


def test_fit_is_reproducible_and_resumable():
    X = digits_like()
    kw = dict(batch_size=64, lr=3e-3, binarize="dynamic", progress=False)
    a, b, c = (VAE(16, 4, hidden=(32,), seed=5) for _ in range(3))
    a.fit(X, epochs=4, **kw)
    b.fit(X, epochs=4, **kw)
    for k, v in a.get_params().items():
        np.testing.assert_array_equal(v, b.get_params()[k])
    c.fit(X, epochs=2, **kw)  # streams continue across calls: 2 + 2 epochs == 4 epochs
    c.fit(X, epochs=2, **kw)
    for k, v in a.get_params().items():
        np.testing.assert_array_equal(v, c.get_params()[k])
    d = VAE(16, 4, hidden=(32,), seed=5)
    d.fit(X, epochs=4, seed=99, **kw)  # an explicit seed changes shuffling and noise, not the init
    assert not np.array_equal(d.get_params()["enc.0.W"], a.get_params()["enc.0.W"])
    assert a.step == 4 * math.ceil(300 / 64) and a.epoch == 4


THREAD_SCRIPT = textwrap.dedent("""
    import hashlib, numpy as np, vaekernels as vk
    X = np.random.default_rng(0).uniform(0, 1, (1024, 256)).astype(np.float32)
    m = vk.VAE(256, 32, hidden=(512,), seed=1)
    m.fit(X, epochs=1, batch_size=256, binarize="dynamic", progress=False)
    print(hashlib.sha256(m._params.flat.tobytes()).hexdigest())
""")


def test_fit_bit_identical_across_thread_counts():
    # big enough that OpenBLAS splits its GEMMs and the thread team's kernels (adam_step over 270k parameters,
    # rand over 65k pixels) run in parallel when allowed two threads
    digests = []
    for threads in ("1", "2"):
        env = dict(os.environ, OMP_NUM_THREADS=threads, OPENBLAS_NUM_THREADS=threads)
        r = subprocess.run([sys.executable, "-c", THREAD_SCRIPT], env=env, capture_output=True, text=True,
                           timeout=120)
        assert r.returncode == 0, r.stderr
        digests.append(r.stdout.strip())
    assert digests[0] == digests[1]


def test_fit_history_validation_callback_and_schedules():
    X = digits_like()
    m = VAE(16, 4, hidden=(32,), seed=0)
    seen = []

    def callback(model, record):
        seen.append(record["epoch"])
        return record["epoch"] == 2  # stop after the third epoch

    h = m.fit(X[:200], epochs=10, validation_data=X[200:], kl_weight=vk.vae.linear_warmup(2),
              lr=lambda e: 1e-3 / (1 + e), callback=callback, progress=False)
    assert seen == [0, 1, 2] and h["epoch"] == [0, 1, 2]
    assert set(h) >= {"elbo", "recon", "kl", "kl_weight", "lr", "seconds", "val_elbo", "val_recon", "val_kl"}
    np.testing.assert_allclose(h["elbo"], np.array(h["recon"]) - np.array(h["kl"]))
    assert h["lr"] == [1e-3, 5e-4, 1e-3 / 3]
    assert h["kl_weight"][0] < h["kl_weight"][1] <= h["kl_weight"][2] == 1.0
    assert m.history["epoch"] == [0, 1, 2]


def test_training_improves_the_elbo():
    X = (digits_like(600) > 0.5).astype(np.float32)
    X[:, 8:] = X[:, :8]  # structure to learn: half the pixels copy the other half
    m = VAE(16, 4, hidden=(32,), seed=0)
    before = m.elbo(X).mean()
    m.fit(X, epochs=30, batch_size=50, lr=3e-3, progress=False)
    after = m.elbo(X).mean()
    # 16 fair-coin pixels with 8 copied: log p(x) >= -8 log 2 = -5.5 is achievable; a constant model gets
    # -11.1. The untrained model is worse than that; 30 epochs must get well past the constant model
    assert before < -11.1 and after > -10.0


def test_progress_bar_only_on_a_terminal(capsys):
    X = digits_like(64)
    VAE(16, 2, hidden=(8,)).fit(X, epochs=2, progress=True)  # pytest's stderr is not a terminal
    assert capsys.readouterr().err == ""


def test_bad_data_is_rejected_before_training():
    m = VAE(16, 2, hidden=(8,))
    X = digits_like(64)
    X[10, 3] = np.nan
    before = m.get_params()
    with pytest.raises(ValueError, match=r"NaN or inf \(first at row 10, column 3\)"):
        m.fit(X, epochs=1, progress=False)
    X[10, 3] = np.inf
    with pytest.raises(ValueError, match="NaN or inf"):
        m.fit(X, epochs=1, progress=False)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        m.fit(digits_like(64) * 255, epochs=1, progress=False)
    with pytest.raises(ValueError, match=r"shape \(n, 16\)"):
        m.fit(np.zeros((4, 15), np.float32), epochs=1, progress=False)
    with pytest.raises(ValueError, match="binarize"):
        m.fit(digits_like(64), binarize="static", progress=False)
    with pytest.raises(ValueError, match="validation_data contains NaN"):
        m.fit(digits_like(64), validation_data=X, progress=False)
    assert m.step == 0
    for k, v in before.items():
        np.testing.assert_array_equal(v, m.get_params()[k])


def test_non_finite_loss_stops_and_keeps_last_finite_parameters():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((100, 16)).astype(np.float32)
    X[45] = 1e30  # finite, but overflows the encoder's logvar -> exp -> inf in batch 2 (rows 40..59)
    kw = dict(batch_size=20, shuffle=False, progress=False)
    m = VAE(16, 2, hidden=(8,), likelihood="gaussian", seed=0)
    with pytest.raises(FloatingPointError, match="epoch 0 .*batch 2 of 5"):
        m.fit(X, epochs=1, **kw)
    ref = VAE(16, 2, hidden=(8,), likelihood="gaussian", seed=0)
    ref.fit(X[:40], epochs=1, **kw)  # the two finite steps
    assert m.step == 2
    for k, v in ref.get_params().items():
        np.testing.assert_array_equal(v, m.get_params()[k])


def test_constructor_and_set_params_validation():
    with pytest.raises(ValueError, match="likelihood"):
        VAE(4, 2, likelihood="poisson")
    with pytest.raises(ValueError, match="activation"):
        VAE(4, 2, activation="gelu")
    with pytest.raises(TypeError, match="dtype"):
        VAE(4, 2, dtype=np.int32)
    with pytest.raises(ValueError, match="n_latent"):
        VAE(4, 0)
    m = VAE(4, 2, hidden=(3,))
    p = m.get_params()
    p["enc.0.W"][:] = 7  # a copy: the model is unchanged
    assert not np.all(m.get_params()["enc.0.W"] == 7)
    with pytest.raises(ValueError, match=r"missing \['dec.0.b'\]"):
        m.set_params({k: v for k, v in p.items() if k != "dec.0.b"})
    with pytest.raises(ValueError, match=r"unexpected \['extra'\]"):
        m.set_params(dict(p, extra=np.zeros(1)))
    with pytest.raises(ValueError, match=r"params\['enc.0.b'\] must have shape \(3,\)"):
        m.set_params(dict(p, **{"enc.0.b": np.zeros(4, np.float32)}))
    with pytest.raises(TypeError, match="float32"):
        m.set_params(dict(p, **{"enc.0.b": np.zeros(3)}))
    m.set_params(p)
    assert np.all(m.get_params()["enc.0.W"] == 7)


# -------------------------------------------------------------------------------------------------
# checkpoints
# -------------------------------------------------------------------------------------------------
def test_save_load_round_trip_and_resume(tmp_path):
    X = digits_like()
    kw = dict(batch_size=64, binarize="dynamic", progress=False)
    a = VAE(16, 4, hidden=(32,), activation="relu", seed=5)
    a.fit(X, epochs=2, **kw)
    path = tmp_path / "model.npz"
    a.save(path)
    assert not [p for p in os.listdir(tmp_path) if p != "model.npz"]  # no temporary left behind
    b = VAE.load(path)
    assert b.config() == a.config() and b.step == a.step and b.epoch == a.epoch
    assert b.history == a.history
    for k, v in a.get_params().items():
        np.testing.assert_array_equal(v, b.get_params()[k])
    a.fit(X, epochs=1, **kw)  # optimiser state and streams continue identically after a reload
    b.fit(X, epochs=1, **kw)
    for k, v in a.get_params().items():
        np.testing.assert_array_equal(v, b.get_params()[k])


def test_save_overwrites_atomically(tmp_path):
    path = tmp_path / "m.npz"
    VAE(4, 2, hidden=(3,), seed=1).save(path)
    VAE(4, 2, hidden=(3,), seed=2).save(path)
    assert VAE.load(path).seed == 2
    assert os.listdir(tmp_path) == ["m.npz"]


def _rewrite(src, dst, change):
    with np.load(src) as f:
        data = {k: f[k] for k in f.files}
    change(data)
    with open(dst, "wb") as f:
        np.savez(f, **data)


def test_corrupt_truncated_and_mismatched_checkpoints(tmp_path):
    good = tmp_path / "good.npz"
    VAE(4, 2, hidden=(3,)).save(good)
    raw = good.read_bytes()
    cases = {"truncated": raw[: len(raw) // 2], "garbage": b"not a zip file at all" * 10, "empty": b""}
    for name, content in cases.items():
        p = tmp_path / f"{name}.npz"
        p.write_bytes(content)
        with pytest.raises(ValueError, match="not a valid vaekernels checkpoint"):
            VAE.load(p)
    flipped = bytearray(raw)
    flipped[len(raw) // 3] ^= 0xFF  # a flipped byte inside an array: zip's CRC check catches it
    (tmp_path / "flipped.npz").write_bytes(bytes(flipped))
    with pytest.raises(ValueError, match="not a valid vaekernels checkpoint"):
        VAE.load(tmp_path / "flipped.npz")
    changes = {
        "version": (lambda d: d.update(format_version=np.array(99)), "format version 99"),
        "shape": (lambda d: d.update({"param/enc.0.W": np.zeros((5, 3), np.float32)}), "shape"),
        "missing": (lambda d: d.pop("adam_m"), "'adam_m' is missing"),
        "config": (lambda d: d.update(config=np.array('{"n_inputs": -1}')), "configuration is invalid"),
        "adam": (lambda d: d.update(adam_v=np.zeros(3, np.float32)), "adam_v has shape"),
    }
    for name, (change, msg) in changes.items():
        p = tmp_path / f"{name}.npz"
        _rewrite(good, p, change)
        with pytest.raises(ValueError, match=msg):
            VAE.load(p)
    with pytest.raises(FileNotFoundError):
        VAE.load(tmp_path / "nope.npz")


def test_loss_and_grad_argument_errors():
    m = VAE(4, 2, hidden=(3,))
    with pytest.raises(ValueError, match=r"shape \(n, 4\)"):
        m.loss_and_grad(np.zeros((2, 5), np.float32), seed=0)
    with pytest.raises(ValueError, match="seed"):
        m.loss_and_grad(np.zeros((2, 4), np.float32), seed=-1)
    with pytest.raises(TypeError, match="real numeric"):
        m.loss_and_grad(np.array([["a"] * 4]), seed=0)


def test_parameter_digest_changes_with_seed():
    # the initial weights come from the model seed through randn: distinct seeds, distinct models
    digests = {hashlib.sha256(VAE(8, 2, hidden=(4,), seed=s)._params.flat.tobytes()).hexdigest() for s in range(4)}
    assert len(digests) == 4


# -------------------------------------------------------------------------------------------------
# schedules on the global epoch, streams keyed by derive_seed
# -------------------------------------------------------------------------------------------------
SCHEDULE_KW = dict(batch_size=64, binarize="dynamic", progress=False, kl_weight=vk.vae.linear_warmup(3),
                   lr=lambda epoch: 3e-3 / (1 + epoch))


def _same_params(a, b):
    for k, v in a.get_params().items():
        np.testing.assert_array_equal(v, b.get_params()[k], err_msg=k)


def test_fit_in_parts_equals_fit_at_once_with_schedules():
    """fit(1); fit(1) == fit(2) with a KL warm-up and an lr schedule: both take the model's global epoch."""
    X = digits_like()
    a, b = VAE(16, 4, hidden=(32,), seed=5), VAE(16, 4, hidden=(32,), seed=5)
    ha = a.fit(X, epochs=2, **SCHEDULE_KW)
    b.fit(X, epochs=1, **SCHEDULE_KW)
    hb = b.fit(X, epochs=1, **SCHEDULE_KW)
    _same_params(a, b)
    assert hb["lr"] == [3e-3 / 2] and ha["lr"] == [3e-3, 3e-3 / 2]
    assert hb["kl_weight"] == ha["kl_weight"][1:] and b.history["kl_weight"] == ha["kl_weight"]


def test_reloaded_checkpoint_continues_the_warmup(tmp_path):
    X = digits_like()
    a = VAE(16, 4, hidden=(32,), seed=5)
    a.fit(X, epochs=2, **SCHEDULE_KW)
    b = VAE(16, 4, hidden=(32,), seed=5)
    b.fit(X, epochs=1, **SCHEDULE_KW)
    b.save(tmp_path / "m.npz")
    c = VAE.load(tmp_path / "m.npz")
    c.fit(X, epochs=1, **SCHEDULE_KW)           # the warm-up resumes at epoch 1, not at 0
    _same_params(a, c)
    assert c.history["kl_weight"] == a.history["kl_weight"] and c.history["lr"] == a.history["lr"]


def test_fit_keys_its_noise_stream_with_derive_seed():
    """The ELBO fit reports for an epoch with lr=0 (one full batch, no shuffle) is the loss of loss_and_grad
    on the stream derive_seed(seed, "vae", "noise") at offset 0 (step 0 of the stream layout)."""
    X = (digits_like(64) > 0.5).astype(np.float64)
    m = VAE(16, 4, hidden=(8,), seed=11, dtype=np.float64)
    h = m.fit(X, epochs=1, batch_size=64, lr=0.0, shuffle=False, progress=False, seed=77)
    loss, _ = m.loss_and_grad(X, seed=vk.random.derive_seed(77, "vae", "noise"), offset=0)
    assert h["elbo"][0] == pytest.approx(-loss, rel=1e-12)
    other, _ = m.loss_and_grad(X, seed=vk.random.derive_seed(77, "vae", "binarize"), offset=0)
    assert other != pytest.approx(loss, rel=1e-6)


# -------------------------------------------------------------------------------------------------
# the public decoder API
# -------------------------------------------------------------------------------------------------
def reference_decoder_ll(model, X, Z):
    """log p(x_i | z_ik) in plain NumPy from get_params(): X (n, D), Z (n, K, L) -> (n, K)."""
    p = {k: v.astype(np.float64) for k, v in model.get_params().items()}
    return _log_likelihood(model, p, X[:, None, :], _mlp(p, "dec", ACT[model.activation], Z.astype(np.float64)))


@pytest.mark.parametrize("likelihood,activation,hidden", CASES)
def test_decoder_log_likelihood_and_its_gradient(likelihood, activation, hidden):
    m = small_model(likelihood, activation, hidden)
    rng = np.random.default_rng(4)
    X = small_data(4, likelihood)
    Z = rng.standard_normal((4, 3, 3))
    ll = m.decoder_log_likelihood(X, Z, batch_size=5)             # chunks cross data rows
    np.testing.assert_allclose(ll, reference_decoder_ll(m, X, Z), rtol=1e-12, atol=1e-12)
    ll2, g = m.decoder_log_likelihood(X, Z, grad=True, batch_size=7)
    np.testing.assert_array_equal(ll2, ll)
    h = 1e-6
    fd = np.empty_like(Z)
    for i in np.ndindex(Z.shape):
        zp, zm = Z.copy(), Z.copy()
        zp[i] += h
        zm[i] -= h
        fd[i] = (reference_decoder_ll(m, X, zp)[i[:2]] - reference_decoder_ll(m, X, zm)[i[:2]]) / (2 * h)
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-7)
    # (n, L): one latent row per data row, the K axis left out
    one, g1 = m.decoder_log_likelihood(X, Z[:, 0], grad=True)
    np.testing.assert_array_equal(one, ll[:, 0])
    np.testing.assert_array_equal(g1, g[:, 0])
    # the gradient pass leaves the model's parameter gradients alone
    before = m._params.grad_flat.copy()
    m.decoder_log_likelihood(X, Z, grad=True)
    np.testing.assert_array_equal(m._params.grad_flat, before)


def test_decoder_log_likelihood_errors():
    m = small_model()
    X = small_data(2)
    with pytest.raises(ValueError, match=r"Z must have shape \(2, K, 3\)"):
        m.decoder_log_likelihood(X, np.zeros((3, 4, 3)))
    with pytest.raises(ValueError, match="Z must have shape"):
        m.decoder_log_likelihood(X, np.zeros((2, 4, 2)))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        m.decoder_log_likelihood(X + 2, np.zeros((2, 3)))
    with pytest.raises(TypeError, match="real numeric"):
        m.decoder_log_likelihood(X, np.array([["a"] * 3] * 2))
