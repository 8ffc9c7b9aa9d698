"""Accuracy of the hand-written exp / expm1 / e^x-1-x / softplus (cpp/include/vaekernels/math.hpp) in ulp,
measured through kernels whose output is exactly one of those functions, against long double (float64)
or float64 (float32) evaluations of the same function on the same (exactly representable) argument.

Probes (each exact by construction, so the kernel output *is* the function value):
  exp(-lv)              = dmean of normal_log_prob_and_grad(x=1, mean=0, lv): (1 - 0) * exp(-lv)
  (e^lv - 1) / 2        = dlogvar of kl_standard_normal_backward(grad=1, mu=0, lv)
  (e^lv - 1 - lv) / 2   = kl_standard_normal(mu=0, lv) with one column (a one-term row sum is exact)
  -log(1 + e^-|l|)      = bernoulli_log_prob(x=0, l=-|l|) with one column
  exp(lv / 2) * eps     = reparameterize(mu=0, lv) (eps = randn, exact input)
Budgets are the ones math.hpp documents (exp <= 2 ulp, e^x-1-x <= 4 ulp relative, log1p on [0,1] <= 3
ulp; a composition adds the inner error times the outer function's condition number, <= 1 here).
"""
import numpy as np
import pytest

from conftest import EXTENDED_LD, LD, ulp_error, vk

N = 400_000


@pytest.fixture(autouse=True)
def _need_long_double(dtype):
    if dtype == np.float64 and not EXTENDED_LD:
        pytest.skip("long double is double here: no higher-precision reference for float64")


def _exp_args(dtype, rng, lo, hi):
    # Uniform over the range plus a log-uniform cluster near 0 (where relative accuracy is hardest for
    # expm1-like functions) and the exact endpoints.
    x = np.concatenate([rng.uniform(lo, hi, N), np.sign(rng.uniform(-1, 1, N // 4)) * 10.0 ** rng.uniform(-12, 0, N // 4),
                        [lo, hi, 0.0, -0.5, 0.5, np.nextafter(0.5, 0), np.nextafter(-0.5, 0)]])
    return x.astype(dtype)


def _worst(err, x, what):
    err = err.reshape(-1)
    i = int(np.argmax(err))
    return float(err[i]), f"{what}: worst {float(err[i]):.3f} ulp at {x.reshape(-1)[i]!r}"


def test_exp_ulp(dtype, rng):
    # Full finite range including results in the subnormal range (lv up to 103.9 in float32).
    lo, hi = (-88.7, 103.9) if dtype == np.float32 else (-709.7, 745.1)
    lv = _exp_args(dtype, rng, lo, hi)[:, None]
    _, dmean, _ = vk.normal_log_prob_and_grad(np.ones_like(lv), np.zeros_like(lv), lv)
    err = ulp_error(dmean, np.exp(-lv.astype(LD)), dtype)
    worst, msg = _worst(err, lv, "exp")
    assert worst <= 2.0, msg


def test_expm1_ulp(dtype, rng):
    lo, hi = (-80.0, 88.0) if dtype == np.float32 else (-700.0, 709.0)
    lv = _exp_args(dtype, rng, lo, hi)[:, None]
    ones = np.ones(lv.shape[0], dtype)
    _, dlv = vk.kl_standard_normal_backward(ones, np.zeros_like(lv), lv)
    err = ulp_error(dlv, np.expm1(lv.astype(LD)) / 2, dtype)
    worst, msg = _worst(err, lv, "expm1")
    assert worst <= 3.0, msg


def _exp_m1_mx_exact(x):
    """e^x - 1 - x in long double: the series sum_{k>=2} x^k / k! where |x| < 1/2 (expm1(x) - x would lose
    log2(2 / |x|) bits to cancellation), expm1(x) - x elsewhere (at most 2 bits lost)."""
    small = np.abs(x) < 0.5
    xs = np.where(small, x, 0)
    term, series = xs * xs / 2, np.zeros_like(xs)
    for k in range(3, 40):                      # 0.5^40 / 40! is far below long double precision
        series += term
        term = term * xs / k
    return np.where(small, series, np.expm1(x) - x)


def test_exp_m1_mx_ulp(dtype, rng):
    # e^x - 1 - x has no cancellation-free textbook form near 0: the reference is a long double series there.
    lo, hi = (-80.0, 88.0) if dtype == np.float32 else (-700.0, 709.0)
    lv = _exp_args(dtype, rng, lo, hi)[:, None]
    kl = vk.kl_standard_normal(np.zeros_like(lv), lv)
    exact = _exp_m1_mx_exact(lv[:, 0].astype(LD)) / 2
    # Near 0 the value is ~ x^2 / 4: it can underflow below the smallest normal (x ~ 1e-19 in float32);
    # measure relative accuracy where the result is normal.
    normal = np.abs(exact) >= np.finfo(dtype).tiny
    err = ulp_error(kl[normal], exact[normal], dtype)
    worst, msg = _worst(err, lv[normal], "e^x - 1 - x")
    assert worst <= 4.0, msg


def test_softplus_ulp(dtype, rng):
    # -log1p(e^-|l|): l from 0 to where e^-|l| underflows.
    hi = 104.0 if dtype == np.float32 else 745.0
    l = -np.abs(_exp_args(dtype, rng, 0.0, hi))[:, None]
    out = vk.bernoulli_log_prob(np.zeros_like(l), l)
    exact = -np.log1p(np.exp(l[:, 0].astype(LD)))
    nz = exact != 0
    err = ulp_error(out[nz], exact[nz], dtype)
    worst, msg = _worst(err, l[nz], "softplus")
    assert worst <= 5.0, msg


def test_reparameterize_scale_ulp(dtype, rng):
    # z = exp(lv / 2) * eps with mu = 0: exp (2 ulp) then one rounded product (0.5 ulp).
    lv = rng.uniform(-60, 60, N).astype(dtype)
    z = vk.reparameterize(np.zeros_like(lv), lv, 77)
    eps = vk.randn(lv.shape, 77, 0, dtype)
    err = ulp_error(z, np.exp(lv.astype(LD) / 2) * eps.astype(LD), dtype)
    worst, msg = _worst(err, lv, "exp(lv/2) * eps")
    assert worst <= 2.5, msg
