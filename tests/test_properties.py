"""Hypothesis property tests: random shapes (zero-size, 1-D, 3-D batches, rows across the 16 reduction
lanes) and values against vaekernels.testing.reference, and the stream contract for random (seed, offset, n).

Tolerance: forward-error bounds from magnitudes. A row sum of D terms, each computed to a few ulp (exp/log
<= 2-4 ulp, test_math.py) and summed in 16 lanes + a 4-level tree (at most D/16 + 4 roundings per lane
path), is within (4 + D/16 + 4) eps * sum_j |largest intermediate of term j| of the exact value; the
reference (one precision up, or float64 itself where long double is double) adds as much again. We allow
16 eps (+ D/16 eps) times those magnitudes, computed per row (per element for elementwise outputs).
"""
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from conftest import R, assert_bitwise, assert_close, higher, vk

# The suite is a gate, so by default the examples are derandomised (the same 40 on every run and machine);
# HYPOTHESIS_PROFILE=explore searches afresh with 10x the examples (how the subnormal dlogvar case was found).
settings.register_profile("gate", max_examples=40, derandomize=True, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("explore", max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SETTINGS = settings(settings.get_profile(os.environ.get("HYPOTHESIS_PROFILE", "gate")))


@st.composite
def shapes(draw):
    batch = draw(st.lists(st.integers(0, 4), min_size=0, max_size=2))
    last = draw(st.sampled_from([0, 1, 2, 5, 15, 16, 17, 33, 64]))
    return tuple(batch) + (last,)


@st.composite
def case(draw, n_arrays, ranges):
    """(dtype, list of arrays) with a common random shape; ranges[i] = (lo, hi) for array i."""
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    shape = draw(shapes())
    width = 32 if dtype == np.float32 else 64
    arrs = [draw(hnp.arrays(dtype, shape, elements=st.floats(lo, hi, width=width))) for lo, hi in ranges[:n_arrays]]
    return np.dtype(dtype), arrs


def _tol(dtype, mag, cols):
    # Plus 4 units of the smallest subnormal: results in the subnormal range have that absolute resolution.
    fi = np.finfo(dtype)
    return (16 + cols / 16) * float(fi.eps) * mag + 4 * float(fi.smallest_subnormal)


def _hi(arrs, dtype):
    return [a.astype(higher(dtype)) for a in arrs]


MU, LV, LOGIT, UNIT = (-50.0, 50.0), (-20.0, 20.0), (-1e4, 1e4), (0.0, 1.0)


@SETTINGS
@given(case(2, [MU, LV]))
def test_kl_standard_normal_property(c):
    dtype, (mu, lv) = c
    M, L = _hi([mu, lv], dtype)
    cols = mu.shape[-1]
    mag = np.sum(M * M + np.exp(L) + 1 + np.abs(L), axis=-1)
    assert_close(vk.kl_standard_normal(mu, lv), R.kl_standard_normal(M, L), atol=_tol(dtype, mag, cols), rtol=0,
                 name="kl_standard_normal")
    g = np.linspace(-2, 2, int(np.prod(mu.shape[:-1]))).reshape(mu.shape[:-1]).astype(dtype)
    dmu, dlv = vk.kl_standard_normal_backward(g, mu, lv)
    G = g.astype(higher(dtype))[..., None]
    rmu, rlv = R.kl_standard_normal_backward(G[..., 0], M, L)
    assert_close(dmu, rmu, atol=_tol(dtype, np.abs(G * M), 0), rtol=0, name="dmu")
    assert_close(dlv, rlv, atol=_tol(dtype, np.abs(G) * (np.exp(L) + 1), 0), rtol=0, name="dlogvar")


@SETTINGS
@given(case(4, [MU, LV, MU, LV]))
def test_kl_normal_property(c):
    dtype, arrs = c
    MQ, LQ, MP, LP = _hi(arrs, dtype)
    cols = arrs[0].shape[-1]
    ratio = np.exp(LQ - LP)
    maha = (MQ - MP) ** 2 * np.exp(-LP)
    # |lq - lp| enters too: the terms' inputs are rounded, and d(e^d - 1 - d)/dd = e^d - 1.
    mag_el = ratio + 1 + np.abs(LQ - LP) + maha
    assert_close(vk.kl_normal(*arrs), R.kl_normal(MQ, LQ, MP, LP), atol=_tol(dtype, np.sum(mag_el, -1), cols),
                 rtol=0, name="kl_normal")
    g = np.ones(arrs[0].shape[:-1], dtype)
    got = vk.kl_normal_backward(g, *arrs)
    ref = R.kl_normal_backward(g.astype(higher(dtype)), MQ, LQ, MP, LP)
    mags = [np.abs(MQ - MP) * np.exp(-LP), ratio + 1, np.abs(MQ - MP) * np.exp(-LP), ratio + 1 + maha]
    for i, (a, r, m) in enumerate(zip(got, ref, mags)):
        assert_close(a, r, atol=_tol(dtype, m, 0), rtol=0, name=f"kl_normal_backward[{i}]")


@SETTINGS
@given(case(2, [UNIT, LOGIT]))
def test_bernoulli_property(c):
    dtype, (x, l) = c
    X, L = _hi([x, l], dtype)
    cols = x.shape[-1]
    mag = np.sum(np.abs(X * L) + np.abs(L) + 1, axis=-1)
    lp, dl = vk.bernoulli_log_prob_and_grad(x, l)
    assert_close(lp, R.bernoulli_log_prob(X, L), atol=_tol(dtype, mag, cols), rtol=0, name="bernoulli_log_prob")
    assert_bitwise(vk.bernoulli_log_prob(x, l), lp, "value kernel == value of value-and-grad")
    assert_close(dl, R.bernoulli_log_prob_and_grad(X, L)[1], atol=_tol(dtype, np.abs(X) + 1, 0), rtol=0,
                 name="bernoulli grad")


@SETTINGS
@given(case(3, [MU, MU, LV]))
def test_normal_log_prob_property(c):
    dtype, (x, m, lv) = c
    X, M, L = _hi([x, m, lv], dtype)
    cols = x.shape[-1]
    sq = (X - M) ** 2 * np.exp(-L)
    lp, dm, dlv = vk.normal_log_prob_and_grad(x, m, lv)
    ref = R.normal_log_prob_and_grad(X, M, L)
    assert_close(lp, ref[0], atol=_tol(dtype, np.sum(2 + np.abs(L) + sq, -1), cols), rtol=0, name="normal_log_prob")
    assert_close(dm, ref[1], atol=_tol(dtype, np.abs(X - M) * np.exp(-L), 0), rtol=0, name="dmean")
    assert_close(dlv, ref[2], atol=_tol(dtype, sq + 1, 0), rtol=0, name="dlogvar")
    assert_bitwise(vk.normal_log_prob(x, m, lv), lp, "value kernel == value of value-and-grad")


@SETTINGS
@given(case(1, [MU]))
def test_standard_normal_property(c):
    dtype, (z,) = c
    (Z,) = _hi([z], dtype)
    lp, dz = vk.standard_normal_log_prob_and_grad(z)
    assert_close(lp, R.standard_normal_log_prob(Z), atol=_tol(dtype, np.sum(2 + Z * Z, -1), z.shape[-1]), rtol=0,
                 name="standard_normal_log_prob")
    assert_bitwise(dz, -z, "dz")


@SETTINGS
@given(case(3, [MU, LV, MU]), st.integers(0, 2**64 - 1), st.integers(0, 2**40), st.floats(0, 2))
def test_latent_property(c, seed, offset, w):
    dtype, (mu, lv, dz) = c
    M, L, DZ = _hi([mu, lv, dz], dtype)
    eps = vk.randn(mu.shape, seed, offset, dtype)
    E = eps.astype(higher(dtype))
    z, kl = vk.latent_forward(mu, lv, seed, offset)
    sig = np.exp(L / 2)
    assert_close(z, M + sig * E, atol=_tol(dtype, np.abs(M) + sig * np.abs(E), 0), rtol=0, name="z")
    assert_bitwise(z, vk.reparameterize(mu, lv, seed, offset), "latent z == reparameterize")
    assert_bitwise(kl, vk.kl_standard_normal(mu, lv), "latent kl == kl_standard_normal")
    dmu, dlv = vk.latent_backward(dz, mu, lv, seed, offset, kl_weight=w)
    W = higher(dtype)(dtype.type(w))
    assert_close(dmu, DZ + W * M, atol=_tol(dtype, np.abs(DZ) + W * np.abs(M), 0), rtol=0, name="dmu")
    ref = DZ * E * sig / 2 + W * np.expm1(L) / 2
    assert_close(dlv, ref, atol=_tol(dtype, np.abs(DZ * E) * sig + W * (np.exp(L) + 1), 0), rtol=0, name="dlogvar")


@SETTINGS
@given(st.sampled_from(["randn", "rand"]), st.sampled_from([np.float32, np.float64]), st.integers(0, 2**64 - 1),
       st.integers(0, 2**64 - 5000), st.integers(0, 2000), st.integers(0, 64))
def test_stream_slicing_property(fn, dtype, seed, offset, n, k):
    f = getattr(vk, fn)
    whole = f(n + k, seed, offset, dtype)
    assert_bitwise(f(n, seed, offset + k, dtype), whole[k:], f"{fn} slice")
    if fn == "rand":
        assert_bitwise(whole, R.rand(n + k, seed, offset, dtype), "rand vs reference")
    else:
        eps_ = float(np.finfo(dtype).eps)
        assert_close(whole, R.randn(n + k, seed, offset, dtype), atol=0, rtol=8 * eps_, name="randn vs reference")
