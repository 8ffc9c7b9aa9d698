"""Every kernel against vaekernels.testing.reference and SciPy, float32 and float64, on ordinary and extreme inputs,
and the IEEE behaviour of NaN and inf.

Tolerance rule (flash-attention's): the "exact" value is the reference formula evaluated one precision up
(float64 for float32 kernels, long double for float64 kernels); the kernel may differ from it by at most
twice what the same textbook formula evaluated naively in the kernel's own precision differs from it,
plus eps * max|exact| in case the naive formula happens to be exact on the sample. A kernel that is
merely as good as NumPy passes; a wrong term, a dropped factor or a bad summation does not.
"""
import numpy as np
import pytest
from scipy import integrate, special, stats

from conftest import EXTENDED_LD, LD, R, assert_bitwise, assert_close, eps, higher, naive_error, vk

SHAPES = [(64, 37), (4, 2500), (2000, 40), (7,), (3, 4, 19)]
# (64, 37): rows shorter than the 16 reduction lanes' multiple; (4, 2500): rows longer than the kernels'
# 1024-element chunk (the other row_reduce path); (2000, 40): 80 000 elements, above the OpenMP threshold;
# (7,): a single row; (3, 4, 19): a 3-D batch.


def _grad(shape, rng):
    return rng.normal(size=shape[:-1])


# name -> argument maker (float64 arrays; the test casts them). Ranges: mu ~ N(0, 2^2), logvar ~ U(-6, 6),
# logits ~ N(0, 5^2), x in {0, 1} or grey levels in [0, 1].
ARGS = {
    "kl_standard_normal": lambda s, r: [r.normal(0, 2, s), r.uniform(-6, 6, s)],
    "kl_standard_normal_backward": lambda s, r: [_grad(s, r), r.normal(0, 2, s), r.uniform(-6, 6, s)],
    "kl_normal": lambda s, r: [r.normal(0, 2, s), r.uniform(-6, 6, s), r.normal(0, 2, s), r.uniform(-6, 6, s)],
    "kl_normal_backward": lambda s, r: [_grad(s, r), r.normal(0, 2, s), r.uniform(-6, 6, s), r.normal(0, 2, s),
                                        r.uniform(-6, 6, s)],
    "bernoulli_log_prob": lambda s, r: [np.where(r.uniform(size=s) < 0.5, r.integers(0, 2, s), r.uniform(size=s)),
                                        r.normal(0, 5, s)],
    "normal_log_prob": lambda s, r: [r.normal(0, 2, s), r.normal(0, 2, s), r.uniform(-6, 6, s)],
    "standard_normal_log_prob": lambda s, r: [r.normal(0, 2, s)],
}
ARGS["bernoulli_log_prob_and_grad"] = ARGS["bernoulli_log_prob"]
ARGS["normal_log_prob_and_grad"] = ARGS["normal_log_prob"]
ARGS["standard_normal_log_prob_and_grad"] = ARGS["standard_normal_log_prob"]


def _as_tuple(x):
    return x if isinstance(x, tuple) else (x,)


def _need_ld(dtype):
    if dtype == np.float64 and not EXTENDED_LD:
        pytest.skip("long double is double here: no higher-precision reference for float64")


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("name", sorted(ARGS))
def test_kernel_against_reference(name, shape, dtype, rng):
    _need_ld(dtype)
    args = [a.astype(dtype) for a in ARGS[name](shape, rng)]
    exact, naive = naive_error(getattr(R, name), args, dtype)
    got = _as_tuple(getattr(vk, name)(*args))
    assert len(got) == len(exact)
    for i, (g, e, err) in enumerate(zip(got, exact, naive)):
        assert g.dtype == dtype and g.shape == e.shape
        assert_close(g, e, atol=2 * err + eps(dtype) * float(np.max(np.abs(e), initial=0)), rtol=0,
                     name=f"{name}[{i}] {dtype}")


def test_random_kernels_against_reference(dtype, rng):
    # Given the kernel's eps (randn, itself checked against the reference transform in test_random.py),
    # reparameterize / latent_* are plain formulas; same tolerance rule as above.
    _need_ld(dtype)
    shape = (300, 37)
    mu, lv, dz = (rng.normal(0, 2, shape).astype(dtype), rng.uniform(-6, 6, shape).astype(dtype),
                  rng.normal(size=shape).astype(dtype))
    seed, off = 1234, 77
    eps_k = vk.randn(shape, seed, off, dtype)
    w = 0.7

    def z_ref(mu, lv):
        return mu + np.exp(lv / 2) * eps_k.astype(mu.dtype)

    def back_ref(dz, mu, lv):
        e = eps_k.astype(mu.dtype)
        return dz + w * mu, dz * np.exp(lv / 2) * e / 2 + w * np.expm1(lv) / 2

    exact, (err,) = naive_error(z_ref, [mu, lv], dtype)
    tol = 2 * err + eps(dtype) * float(np.abs(exact[0]).max())
    assert_close(vk.reparameterize(mu, lv, seed, off), exact[0], atol=tol, rtol=0, name="reparameterize")
    z, kl = vk.latent_forward(mu, lv, seed, off)
    assert_close(z, exact[0], atol=tol, rtol=0, name="latent_forward z")
    ekl, (err,) = naive_error(R.kl_standard_normal, [mu, lv], dtype)
    assert_close(kl, ekl[0], atol=2 * err + eps(dtype) * float(np.abs(ekl[0]).max()), rtol=0, name="latent kl")
    exact, errs = naive_error(back_ref, [dz, mu, lv], dtype)
    for g, e, err, nm in zip(vk.latent_backward(dz, mu, lv, seed, off, kl_weight=w), exact, errs, ("dmu", "dlv")):
        assert_close(g, e, atol=2 * err + eps(dtype) * float(np.abs(e).max()), rtol=0, name=f"latent_backward {nm}")


def test_reference_random_kernels_match(dtype, rng):
    # The reference's own randn (Box-Muller in higher precision) drives reparameterize/latent_*: agreement
    # to within the randn ulp budget (4 ulp of eps, scaled by sigma) plus the affine transform's rounding.
    mu, lv = rng.normal(0, 2, (20, 33)).astype(dtype), rng.uniform(-6, 6, (20, 33)).astype(dtype)
    def tol(offset):
        sig_eps = np.exp(lv.astype(np.float64) / 2) * np.abs(R.randn(mu.shape, 5, offset, dtype))
        return 8 * eps(dtype) * (np.abs(mu) + sig_eps)

    assert_close(vk.reparameterize(mu, lv, 5, 3, n_samples=2)[1], R.reparameterize(mu, lv, 5, 3 + mu.size),
                 atol=tol(3 + mu.size), rtol=0, name="reparameterize vs reference stream")
    assert_close(vk.reparameterize(mu, lv, 5, 3, n_samples=2), R.reparameterize(mu, lv, 5, 3, n_samples=2),
                 atol=np.stack([tol(3), tol(3 + mu.size)]), rtol=0, name="reparameterize n_samples vs reference")
    tol = tol(3)
    z, kl = vk.latent_forward(mu, lv, 5, 3)
    assert_close(z, R.latent_forward(mu, lv, 5, 3)[0], atol=tol, rtol=0, name="latent_forward vs reference")


# -------------------------------------------------------------------------------------------------
# Against SciPy
# -------------------------------------------------------------------------------------------------
def _bern_scipy(x, l):
    return np.sum(x * special.log_expit(l) + (1 - x) * special.log_expit(-l), axis=-1), x - special.expit(l)


SCIPY = {
    "bernoulli_log_prob_and_grad": _bern_scipy,
    "normal_log_prob": lambda x, m, lv: np.sum(stats.norm.logpdf(x, loc=m, scale=np.exp(lv / 2)), axis=-1),
    "standard_normal_log_prob": lambda z: np.sum(stats.norm.logpdf(z), axis=-1),
}


@pytest.mark.parametrize("name", sorted(SCIPY))
def test_kernel_against_scipy(name, dtype, rng):
    # SciPy evaluates in float64 on the kernel's (rounded) inputs. Tolerance: twice the naive error of the
    # textbook formula in the kernel's precision (for float32: against float64; for float64: against long
    # double) plus 4 ulp of the largest value to cover SciPy's own float64 rounding.
    args = [a.astype(dtype) for a in ARGS[name](SHAPES[0], rng)]
    ref = _as_tuple(SCIPY[name](*[a.astype(np.float64) for a in args]))
    _, naive = naive_error(getattr(R, name), args, dtype)
    got = _as_tuple(getattr(vk, name)(*args))
    for i, (g, r, err) in enumerate(zip(got, ref, naive)):
        assert_close(g, r, atol=2 * err + 4 * eps(dtype) * float(np.abs(r).max()), rtol=0, name=f"{name}[{i}] scipy")


@pytest.mark.parametrize("case", [(0.3, -1.2, 0.0, 0.0), (-2.0, 2.5, 0.0, 0.0), (1.0, 0.7, -0.5, 1.3),
                                  (0.0, -4.0, 3.0, -2.0), (5.0, 0.0, -5.0, 0.0)])
def test_kl_against_numerical_integration(case, dtype):
    # KL(q || p) = integral of q (log q - log p), by adaptive quadrature on q's +-12 sigma support.
    mq, lq, mp, lp = case
    sq, sp = np.exp(lq / 2), np.exp(lp / 2)
    q, p = stats.norm(mq, sq), stats.norm(mp, sp)
    val, abserr = integrate.quad(lambda t: q.pdf(t) * (q.logpdf(t) - p.logpdf(t)), mq - 12 * sq, mq + 12 * sq,
                                 epsabs=1e-13, epsrel=1e-12, limit=200)
    # Tolerance: quadrature error estimate + the kernel's rounding (a few ulp of the terms, which are O(10)).
    tol = abserr + 1e-12 + 64 * eps(dtype) * (1 + abs(val))
    a = [np.array([[v]], dtype) for v in case]
    assert_close(vk.kl_normal(*a), np.array([val]), atol=tol, rtol=0, name="kl_normal vs quad")
    if mp == 0 and lp == 0:
        assert_close(vk.kl_standard_normal(a[0], a[1]), np.array([val]), atol=tol, rtol=0,
                     name="kl_standard_normal vs quad")


def test_standard_normal_grad_is_exact_negation(dtype, rng):
    z = rng.normal(size=(9, 21)).astype(dtype)
    assert_bitwise(vk.standard_normal_log_prob_and_grad(z)[1], -z, "dz = -z")


# -------------------------------------------------------------------------------------------------
# Extreme inputs
# -------------------------------------------------------------------------------------------------
def test_bernoulli_large_logits_exact(dtype):
    # |l| = 1e4: x l - softplus(l) is exactly (x - 1) l for l > 0 and x l for l < 0 in any finite precision
    # (log1p(e^-1e4) underflows to 0); the naive formula would lose everything to 1e4 - 1e4 cancellation.
    x = np.array([0.0, 1.0, 0.5, 0.25, 0.0, 1.0, 0.5, 0.25], dtype)
    l = np.array([1e4, 1e4, 1e4, 1e4, -1e4, -1e4, -1e4, -1e4], dtype)
    expected = np.where(l > 0, (x - 1) * l, x * l)
    # Compared by value (-0.0 == 0.0: a row sum starts from +0, so x l = -0 comes out as +0).
    lp, dl = vk.bernoulli_log_prob_and_grad(x[:, None], l[:, None])
    np.testing.assert_array_equal(lp, expected, "bernoulli log_prob at |l| = 1e4")
    np.testing.assert_array_equal(vk.bernoulli_log_prob(x[:, None], l[:, None]), expected, "log_prob at |l| = 1e4")
    # Gradient x - sigmoid(l): sigmoid(1e4) = 1, sigmoid(-1e4) = e^-1e4 = 0 in both precisions.
    np.testing.assert_array_equal(dl[:, 0], np.where(l > 0, x - 1, x), "bernoulli grad at |l| = 1e4")
    # Summed over a row: still exact (every term is a multiple of 2500, sums exact).
    row = vk.bernoulli_log_prob(x[None, :], l[None, :])
    assert row[0] == expected.sum()


def test_bernoulli_moderate_large_logits(dtype):
    # |l| in [20, 200], x in {0, 1}: the log-probability is -l - log1p(e^-l) or -log1p(e^-|l|) ~ -e^-|l|,
    # tiny but nonzero, which x l - softplus(l) cannot resolve even in long double. SciPy's log_expit is
    # accurate to a few ulp in relative terms there: x log_expit(l) + (1 - x) log_expit(-l), with x in {0, 1}
    # selecting one term exactly. Tolerance: 4 ulp relative (kernel <= 2-3 ulp, SciPy ~1 ulp), and 4 units of
    # the smallest subnormal where the value underflows (float32 beyond |l| ~ 87).
    l = np.concatenate([np.linspace(20, 200, 91), -np.linspace(20, 200, 91)]).astype(dtype)
    x = np.tile(np.array([0.0, 1.0], dtype), 91)
    lp, dl = vk.bernoulli_log_prob_and_grad(x[:, None], l[:, None])
    L, X = l.astype(np.float64), x.astype(np.float64)
    exact = X * special.log_expit(L) + (1 - X) * special.log_expit(-L)
    sub = 4 * float(np.finfo(dtype).smallest_subnormal)
    assert_close(lp, exact, atol=sub, rtol=4 * eps(dtype), name="bernoulli large logits")
    assert_close(vk.bernoulli_log_prob(x[:, None], l[:, None]), exact, atol=sub, rtol=4 * eps(dtype),
                 name="bernoulli_log_prob large logits")
    # x - sigmoid(l) for x in {0, 1}: -sigmoid(l) or 1 - sigmoid(l) = sigmoid(-l), tiny values where the
    # logit saturates; relative accuracy again (1 - expit(l) itself would cancel to 0 or 1 ulp of 1).
    grad_exact = np.where(X == 1, special.expit(-L), -special.expit(L))
    assert_close(dl[:, 0], grad_exact, atol=sub, rtol=4 * eps(dtype), name="bernoulli grad large logits")


def test_logvar_extremes(dtype, rng):
    # logvar in [-30, 30]: e^30 = 1.07e13 and e^-30 = 9.4e-14 are finite in both precisions. Compared with
    # the long double (float64 for float32) textbook formula; the kernel's terms are each a few ulp
    # (test_math.py), so 8 ulp of the row's sum of |terms| bounds the error of a row sum.
    _need_ld(dtype)
    shape = (50, 24)
    lv = rng.uniform(-30, 30, shape).astype(dtype)
    lv[0, :2] = [-30, 30]
    mu = rng.normal(0, 3, shape).astype(dtype)
    x = rng.normal(0, 3, shape).astype(dtype)
    lvp = rng.uniform(-30, 30, shape).astype(dtype)
    hi = higher(dtype)
    M, L, X, LP = (a.astype(hi) for a in (mu, lv, x, lvp))
    scale_kl = np.sum(M * M + np.exp(L) + 1 + np.abs(L), -1)
    assert_close(vk.kl_standard_normal(mu, lv), R.kl_standard_normal(M, L), atol=8 * eps(dtype) * scale_kl, rtol=0,
                 name="kl_standard_normal, logvar in [-30, 30]")
    scale_kln = np.sum(np.exp(L - LP) + 1 + np.abs(L - LP) + (M - X) ** 2 * np.exp(-LP), -1)
    assert_close(vk.kl_normal(mu, lv, x, lvp), R.kl_normal(M, L, X, LP), atol=8 * eps(dtype) * scale_kln, rtol=0,
                 name="kl_normal, logvars in [-30, 30]")
    scale_n = np.sum(2 + np.abs(L) + (X - M) ** 2 * np.exp(-L), -1)
    assert_close(vk.normal_log_prob(x, mu, lv), R.normal_log_prob(X, M, L), atol=8 * eps(dtype) * scale_n, rtol=0,
                 name="normal_log_prob, logvar in [-30, 30]")
    z = vk.reparameterize(mu, lv, 3)
    eps_k = vk.randn(shape, 3, 0, dtype).astype(hi)
    assert_close(z, M + np.exp(L / 2) * eps_k, atol=4 * eps(dtype) * (np.abs(M) + np.exp(L / 2) * np.abs(eps_k)),
                 rtol=0, name="reparameterize, logvar in [-30, 30]")
    dmu, dlv = vk.kl_standard_normal_backward(np.ones(50, dtype), mu, lv)
    assert_close(dlv, np.expm1(L) / 2, atol=0, rtol=4 * eps(dtype), name="dlogvar, logvar in [-30, 30]")


def test_large_mu(dtype):
    # mu up to 1e15 (float32: 1e18): mu^2 dominates and is computed to rounding. Beyond sqrt(max float)
    # (1.8e19 in float32, 1.3e154 in float64) mu^2 overflows to +inf: the KL is +inf, as IEEE gives.
    big = 1e18 if dtype == np.float32 else 1e15
    mu = np.array([[big, -big, 3.0]], dtype)
    lv = np.zeros_like(mu)
    kl = vk.kl_standard_normal(mu, lv)
    expected = 0.5 * (2 * np.float64(mu[0, 0]) ** 2 + 9.0)
    assert abs(float(kl[0]) - expected) <= 4 * eps(dtype) * expected
    huge = np.array([[1e20 if dtype == np.float32 else 1e155]], dtype)
    assert vk.kl_standard_normal(huge, np.zeros_like(huge))[0] == np.inf
    z = vk.reparameterize(mu, lv, 1)
    eps_k = vk.randn(mu.shape, 1, 0, dtype)
    assert_close(z, mu.astype(np.float64) + eps_k, atol=0, rtol=eps(dtype), name="reparameterize, large mu")
    lp = vk.normal_log_prob(mu, -mu, lv)
    exact = -0.5 * np.sum(np.log(2 * np.pi) + (2 * mu.astype(np.float64)) ** 2, -1)
    assert_close(lp, exact, atol=0, rtol=4 * eps(dtype), name="normal_log_prob, large mu")


# -------------------------------------------------------------------------------------------------
# NaN and inf (IEEE semantics, documented in ops.py: NaN poisons the rows it touches)
# -------------------------------------------------------------------------------------------------
def test_nan_propagates_to_its_row_only(dtype, rng):
    shape = (6, 19)
    for name, make in ARGS.items():
        args = [a.astype(dtype) for a in make(shape, rng)]
        # Poison one element of the last argument (an (B, D) array for every kernel), at row 2.
        args[-1][2, 5] = np.nan
        outs = _as_tuple(getattr(vk, name)(*args))
        for o in outs:
            if o.shape == shape[:-1]:            # row reductions: row 2 NaN, the others finite
                assert np.isnan(o[2]) and np.isfinite(np.delete(o, 2)).all(), name
            else:                                 # elementwise gradients: NaN at most at that element
                bad = ~np.isfinite(o)
                assert not bad[np.arange(6) != 2].any(), name
                assert not np.delete(bad[2], 5).any(), name


def test_inf_follows_ieee(dtype):
    inf, nan = np.inf, np.nan

    def one(fn, *vals):
        return fn(*[np.array([[v]], dtype) for v in vals])

    # KL(N(mu, e^lv) || N(0,1)) = (mu^2 + e^lv - 1 - lv) / 2: lv = +inf -> e^lv = inf; lv = -inf -> -lv = inf;
    # mu = +-inf -> mu^2 = inf. All +inf, the true limits.
    for mu, lv in [(0.0, inf), (0.0, -inf), (inf, 0.0), (-inf, 1.0)]:
        assert one(vk.kl_standard_normal, mu, lv)[0] == inf, (mu, lv)
    # Bernoulli: (x - [l >= 0]) l - log1p(e^-|l|). l = +inf, x = 0.5: -0.5 * inf = -inf (the limit).
    # x = 1, l = +inf: 0 * inf = NaN under IEEE although the limit is 0; documented, not special-cased.
    assert one(vk.bernoulli_log_prob, 0.5, inf)[0] == -inf
    assert one(vk.bernoulli_log_prob, 0.5, -inf)[0] == -inf
    assert np.isnan(one(vk.bernoulli_log_prob, 1.0, inf)[0])
    assert np.isnan(one(vk.bernoulli_log_prob, 0.0, -inf)[0])
    # Standard normal: z = +-inf -> -0.5 (log 2 pi + inf) = -inf; dz = -z = -+inf.
    lp, dz = one(vk.standard_normal_log_prob_and_grad, inf)
    assert lp[0] == -inf and dz[0, 0] == -inf
    # Normal: logvar = +inf -> -0.5 (log 2 pi + inf + d^2 * 0) = -inf; logvar = -inf with x != mean ->
    # (-inf) + (d^2 * inf) = NaN: IEEE inf - inf.
    assert one(vk.normal_log_prob, 1.0, 0.0, inf)[0] == -inf
    assert np.isnan(one(vk.normal_log_prob, 1.0, 0.0, -inf)[0])
    # reparameterize: logvar = -inf -> sigma = 0 -> z = mu exactly; mu = inf -> inf; logvar = +inf -> +-inf.
    z = vk.reparameterize(np.full((1, 8), 2.5, dtype), np.full((1, 8), -inf, dtype), 1)
    assert (z == 2.5).all()
    z = vk.reparameterize(np.zeros((1, 8), dtype), np.full((1, 8), inf, dtype), 1)
    assert (np.abs(z) == inf).all() and (np.sign(z) == np.sign(vk.randn((1, 8), 1, 0, dtype))).all()
    assert np.isnan(one(vk.kl_normal, 0.0, 0.0, 0.0, nan)[0])


def test_reference_has_the_kernels_api():
    # vaekernels.testing.reference mirrors the public kernels: same names, same parameters in the same order.
    import inspect

    from vaekernels.kernels import functions as ops
    for name in ops.__all__:
        kernel, ref = getattr(ops, name), getattr(R, name)
        assert list(inspect.signature(ref).parameters) == list(inspect.signature(kernel).parameters), name


def test_nan_in_random_kernels_and_adam_stays_local(dtype, rng):
    mu, lv = rng.normal(size=(4, 9)).astype(dtype), rng.normal(size=(4, 9)).astype(dtype)
    mu[1, 3] = np.nan
    only = np.zeros((4, 9), bool)
    only[1, 3] = True
    z = vk.reparameterize(mu, lv, 1)
    assert np.array_equal(np.isnan(z), only)
    z, kl = vk.latent_forward(mu, lv, 1)
    assert np.array_equal(np.isnan(z), only) and np.array_equal(np.isnan(kl), [False, True, False, False])
    dmu, dlv = vk.latent_backward(np.ones_like(mu), mu, lv, 1)
    assert np.array_equal(np.isnan(dmu), only) and not np.isnan(dlv).any()   # dlogvar does not involve mu
    p, g = rng.normal(size=(4, 9)).astype(dtype), rng.normal(size=(4, 9)).astype(dtype)
    g[1, 3] = np.nan
    m, v = np.zeros_like(p), np.zeros_like(p)
    vk.adam_step(p, g, m, v, 1)
    assert np.array_equal(np.isnan(p), only) and np.array_equal(np.isnan(m), only)


def test_latent_backward_tiny_upstream_gradient_rounds_once():
    # dz at the smallest float32 subnormal: the old order (dz * eps) * e^(lv/2) / 2 rounded dz * eps to the
    # subnormal grid and then multiplied that rounding error by e^(lv/2) / 2 = 16.6 (found by hypothesis).
    mu = np.zeros(5, np.float32)
    lv = np.array([0, 0, 7, 0, 0], np.float32)
    dz = np.full(5, np.finfo(np.float32).smallest_subnormal, np.float32)
    e = vk.randn(5, 0, 0).astype(np.float64)
    exact = dz.astype(np.float64) * e * np.exp(lv.astype(np.float64) / 2) / 2
    _, dlv = vk.latent_backward(dz, mu, lv, 0, 0, kl_weight=0.0)
    # one rounding to the subnormal grid: within half a unit of the smallest subnormal
    assert np.all(np.abs(dlv.astype(np.float64) - exact) <= 0.5 * float(np.finfo(np.float32).smallest_subnormal))
