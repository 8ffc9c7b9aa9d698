"""Every kernel against vaekernels.testing.reference and SciPy, float32 and float64, on ordinary and extreme inputs,
and the IEEE behaviour of NaN and inf.

Tolerance rule (per element, from a forward-error analysis of each kernel's own formula): the "exact" value is
the reference formula evaluated one precision up (float64 for float32 kernels, long double for float64
kernels) on the kernel's (rounded) inputs. The kernel may differ from it, element by element, by

    K (eps mag + smallest_subnormal)  +  K_ref eps_hi mag_ref

where mag is the sum of the magnitudes of the terms the kernel's formula adds (per element; summed over the row
for row sums), K the number of eps those terms can be off by (rounding budget of the formula, see MAGNITUDES,
plus (ceil(D/16) + 4) / 2 for the 16-lane row sum), and the second part the same bound for the reference's
textbook formula in its own precision (K_ref = 8, plus D/2 for its row sum). These are first-order bounds:
the neglected terms are below (K eps)^2 relative. The tolerance is strong enough that a 0.1% error in any
element whose terms do not cancel fails (checked, and shown by a mutation, in each test below).
"""
import math
from typing import Callable, NamedTuple

import numpy as np
import pytest
from scipy import integrate, special, stats

from conftest import (EXTENDED_LD, LD, R, assert_bitwise, assert_close, assert_mutation_detected,
                      assert_tolerance_strength, eps, higher, vk)

SHAPES = [(64, 37), (4, 2500), (2000, 40), (7,), (3, 4, 19)]
# (64, 37): rows shorter than the 16 reduction lanes' multiple; (4, 2500): rows longer than the kernels'
# 1024-element chunk (the other row_reduce path); (2000, 40): 80 000 elements, above the parallel threshold (kParallelMin);
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
ARGS["bernoulli_log_prob_backward"] = lambda s, r: [_grad(s, r)] + ARGS["bernoulli_log_prob"](s, r)
ARGS["normal_log_prob_and_grad"] = ARGS["normal_log_prob"]
ARGS["normal_log_prob_backward"] = lambda s, r: [_grad(s, r)] + ARGS["normal_log_prob"](s, r)
ARGS["standard_normal_log_prob_and_grad"] = ARGS["standard_normal_log_prob"]


# -------------------------------------------------------------------------------------------------
# Magnitudes: per kernel, per output, the sum of |terms| its formula (cpp/include/vaekernels/gaussian.hpp)
# adds, and the rounding budget of those terms in eps. Budgets: a rounded + - * / errs by <= eps/2 of its
# result; exp <= 2 ulp, expm1 <= 3, e^x - 1 - x <= 4, log1p(e^-|l|) <= 5, exp(lv/2) eps <= 2.5 (math.hpp,
# enforced in test_math.py); 1 ulp <= eps |value|. An input rounded once (x - m, g * ...) counts eps/2 per
# use. Row sums add (ceil(D/16) + 4) / 2 (see _allowed). The "ref" magnitudes are those of the textbook
# formula in vaekernels.testing.reference (its cancellations: e^lv - 1 - lv, x l - softplus(l), 1 - sigmoid).
# Arguments arrive in the higher precision; g (the upstream gradient, one per row) is broadcast.
# -------------------------------------------------------------------------------------------------
class Mag(NamedTuple):
    ulps: tuple          # per output: K of the kernel's terms, in eps
    kernel: Callable     # (*args) -> per output, |terms| of the kernel's formula, per element
    ref: Callable        # (*args) -> per output, |terms| of the reference's textbook formula, per element


LOG2PI = float(np.log(2 * np.pi))


def _em1mx(x):
    """e^x - 1 - x >= 0 (a magnitude: a few digits suffice)."""
    return np.expm1(x) - x


def _sig_small(l):
    """sigmoid(-|l|)."""
    e = np.exp(-np.abs(l))
    return e / (1 + e)


def _row(g):
    return np.abs(g)[..., None]


def _normal_terms(x, m, lv):
    sq = (x - m) ** 2 * np.exp(-lv)
    return 0.5 * (LOG2PI + np.abs(lv) + sq), np.abs(x - m) * np.exp(-lv), 0.5 * (sq + 1)


def _bern_value(x, l):
    return np.abs((x - (l >= 0)) * l) + np.log1p(np.exp(-np.abs(l)))


def _bern_value_ref(x, l):
    return np.abs(x * l) + np.maximum(l, 0) + np.log1p(np.exp(-np.abs(l)))


MAGNITUDES = {
    # 0.5 (mu^2 + q(lv)), q = e^lv - 1 - lv >= 0: both terms >= 0, nothing cancels. mu*mu 0.5, q 4, sum 0.5.
    "kl_standard_normal": Mag(
        (4.5,), lambda mu, lv: (0.5 * (mu * mu + _em1mx(lv)),),
        lambda mu, lv: (0.5 * (mu * mu + np.exp(lv) + 1 + np.abs(lv)),)),
    # g mu (one product: 0.5); g * 0.5 expm1(lv) (expm1 3, product 0.5). One term each: no cancellation.
    "kl_standard_normal_backward": Mag(
        (0.5, 3.5), lambda g, mu, lv: (_row(g) * np.abs(mu), _row(g) / 2 * np.abs(np.expm1(lv))),
        lambda g, mu, lv: (_row(g) * np.abs(mu), _row(g) / 2 * (np.exp(lv) + 1))),
    # 0.5 ((e^d - 1 - d) + (mq - mp)^2 e^-lp), d = lq - lp exact by TwoSum plus a first-order correction
    # (<= 6 eps/2 of the term, its own rounding second order): e^d-1-d 4 + its correction's add 0.5 + the
    # final add 0.5 = 5; the Mahalanobis part: mq - mp rounded (2 x 0.5 in the square), two products 1,
    # exp 2, final add 0.5 = 4.5. Both terms >= 0.
    "kl_normal": Mag(
        (5,), lambda mq, lq, mp, lp: (0.5 * (_em1mx(lq - lp) + (mq - mp) ** 2 * np.exp(-lp)),),
        lambda mq, lq, mp, lp: (0.5 * (np.abs(lq - lp) + np.exp(lq - lp) + (mq - mp) ** 2 * np.exp(-lp) + 1),)),
    # dmq = g diff e^-lp (diff 0.5, exp 2, two products 1 = 3.5), dmp = -dmq; dlq = g (e^d - 1 +
    # correction) / 2 (expm1 3, add 0.5, g 0.5 = 4); dlp = -g ((e^d - 1) + diff^2 e^-lp) / 2: the two
    # summands can cancel (e^d < 1), so mag = |g| (|e^d - 1| + diff^2 e^-lp) / 2; budget: half (e^d - 1) 3.5,
    # (diff / 2) diff e^-lp 4 (diff 1, two products 1, exp 2), the subtraction and g 1: max(4.5, 5) = 5.
    "kl_normal_backward": Mag(
        (3.5, 4, 3.5, 5),
        lambda g, mq, lq, mp, lp: (_row(g) * np.abs(mq - mp) * np.exp(-lp), _row(g) / 2 * np.abs(np.expm1(lq - lp)),
                                   _row(g) * np.abs(mq - mp) * np.exp(-lp),
                                   _row(g) / 2 * (np.abs(np.expm1(lq - lp)) + (mq - mp) ** 2 * np.exp(-lp))),
        lambda g, mq, lq, mp, lp: (_row(g) * np.abs(mq - mp) * np.exp(-lp), _row(g) / 2 * (np.exp(lq - lp) + 1),
                                   _row(g) * np.abs(mq - mp) * np.exp(-lp),
                                   _row(g) / 2 * (1 + np.exp(lq - lp) + (mq - mp) ** 2 * np.exp(-lp)))),
    # (x - [l >= 0]) l - log1p(e^-|l|): both terms <= 0 for x in [0, 1] (no cancellation at any |l|). x - 1
    # and the product 1, log1p(e^-|l|) 5 (composite budget), the subtraction 0.5 on both: max(1.5, 5.5).
    "bernoulli_log_prob": Mag((5.5,), lambda x, l: (_bern_value(x, l),), lambda x, l: (_bern_value_ref(x, l),)),
    # ... and x - sigmoid(l) = (x - [l >= 0]) + sigmoid(-|l|) with sign: sigmoid(-|l|) = e / (1 + e) (exp 2,
    # add and divide 1, product 0.5 = 3.5), x - 1 0.5, the final add 0.5 -> 4. The two summands cancel where
    # a grey level x matches sigmoid(l). The textbook x - sigmoid(l) cancels at saturated logits (ref).
    "bernoulli_log_prob_and_grad": Mag(
        (5.5, 4), lambda x, l: (_bern_value(x, l), np.abs(x - (l >= 0)) + _sig_small(l)),
        lambda x, l: (_bern_value_ref(x, l), np.abs(x) + 1 / (1 + np.exp(-l)))),
    # g (x - sigmoid(l)): the gradient above (4) times g (0.5).
    "bernoulli_log_prob_backward": Mag(
        (4.5,), lambda g, x, l: (_row(g) * (np.abs(x - (l >= 0)) + _sig_small(l)),),
        lambda g, x, l: (_row(g) * (np.abs(x) + 1 / (1 + np.exp(-l))),)),
    # -0.5 ((log 2pi + lv) + (x - m)^2 e^-lv): the rounded constant and the add 1, the outer add 0.5 ->
    # 1.5 on log 2pi + |lv|; (x - m)^2 e^-lv: diff 1, two products 1, exp 2, outer add 0.5 = 4.5. Terms of
    # either sign (lv < -log 2pi): mag = 0.5 (log 2pi + |lv| + (x - m)^2 e^-lv).
    "normal_log_prob": Mag((4.5,), lambda x, m, lv: _normal_terms(x, m, lv)[:1],
                           lambda x, m, lv: _normal_terms(x, m, lv)[:1]),
    # ... dmean = (x - m) e^-lv: diff 0.5, exp 2, product 0.5 = 3; dlogvar = ((x - m)^2 e^-lv - 1) / 2:
    # the square 4, the subtraction 0.5 = 4.5, and it cancels where (x - m)^2 = e^lv.
    "normal_log_prob_and_grad": Mag((4.5, 3, 4.5), _normal_terms, _normal_terms),
    # g times dmean (3 + 0.5) and dlogvar (4.5 + 0.5).
    "normal_log_prob_backward": Mag((3.5, 5), lambda g, x, m, lv: [_row(g) * t for t in _normal_terms(x, m, lv)[1:]],
                                    lambda g, x, m, lv: [_row(g) * t for t in _normal_terms(x, m, lv)[1:]]),
    # -0.5 (log 2pi + z^2): constant, square, add: 1.5; both terms of one sign. dz = -z is exact (0).
    "standard_normal_log_prob": Mag((1.5,), lambda z: (0.5 * (LOG2PI + z * z),),
                                    lambda z: (0.5 * (LOG2PI + z * z),)),
    "standard_normal_log_prob_and_grad": Mag((1.5, 0), lambda z: (0.5 * (LOG2PI + z * z), np.abs(z)),
                                             lambda z: (0.5 * (LOG2PI + z * z), np.abs(z))),
    # z = mu + e^(lv/2) eps (eps = the kernel's randn, an exact input): e^(lv/2) eps 2.5, the add 0.5 = 3;
    # cancels where mu = -sigma eps.
    "reparameterize": Mag((3,), lambda mu, lv, e: (np.abs(mu) + np.exp(lv / 2) * np.abs(e),),
                          lambda mu, lv, e: (np.abs(mu) + np.exp(lv / 2) * np.abs(e),)),
    # dmu = dz + w mu (w = the kernel's T(kl_weight)): product and add, 1. dlv = dz (eps e^(lv/2) / 2) +
    # w expm1(lv) / 2: exp 2 + two products 1 = 3 on the first, expm1 3 + product 0.5 on the second, add
    # 0.5 -> 4. Both cancel for some dz.
    "latent_backward": Mag(
        (1, 4), lambda dz, mu, lv, e, w: (np.abs(dz) + np.abs(w * mu),
                                          np.abs(dz * e) * np.exp(lv / 2) / 2 + np.abs(w * np.expm1(lv)) / 2),
        lambda dz, mu, lv, e, w: (np.abs(dz) + np.abs(w * mu),
                                  np.abs(dz * e) * np.exp(lv / 2) / 2 + np.abs(w * np.expm1(lv)) / 2)),
}
MAGNITUDES["latent_forward"] = Mag(MAGNITUDES["reparameterize"].ulps + MAGNITUDES["kl_standard_normal"].ulps,
                                   lambda mu, lv, e: MAGNITUDES["reparameterize"].kernel(mu, lv, e)
                                   + MAGNITUDES["kl_standard_normal"].kernel(mu, lv),
                                   lambda mu, lv, e: MAGNITUDES["reparameterize"].ref(mu, lv, e)
                                   + MAGNITUDES["kl_standard_normal"].ref(mu, lv))
# Reference budget per term: the textbook formulas apply at most 6 operations of <= 1 ulp each (libm's
# long double exp / log1p are within 1 ulp); 8 eps_hi covers them.
REF_ULPS = 8
# The 0.1% self-check: an element whose own terms cancel (|terms| > CANCEL |exact|) is checked to K eps
# |terms| only; every other element with exact != 0 must fail at a 0.1% error, i.e. K eps CANCEL < 1e-3.
# Elementwise outputs have K <= 5 (float32: 5 eps 1000 = 6e-4); row sums K <= 86 (D = 2500 in float32:
# 86 eps 64 = 6.6e-4). Cancelling elements occur only in outputs that subtract (dlogvar_p, the Bernoulli
# gradient with grey x, dlogvar of the normal, z and latent_backward); they must stay rare: at most 0.2% of
# an output's elements (at least 1 allowed, for the 7-element outputs).
CANCEL, CANCEL_ROW = 1000, 64
MAX_EXCEPTED = 0.002


def _allowed(name, args_hi, dtype, out_shapes, ref_dtype=None):
    """Per output: (allowed |kernel - exact| per element, |terms| per element (summed over rows), the
    cancellation factor up to which the tolerance sees a 0.1% error)."""
    entry = MAGNITUDES[name]
    e, sub = eps(dtype), float(np.finfo(dtype).smallest_subnormal)
    e_ref = eps(ref_dtype or higher(dtype))
    res = []
    for k, km, rm, shape in zip(entry.ulps, entry.kernel(*args_hi), entry.ref(*args_hi), out_shapes):
        km, rm = np.asarray(km, LD), np.asarray(rm, LD)
        kk, kr, cancel = k, REF_ULPS, CANCEL
        if km.ndim == len(shape) + 1:          # a row sum: 16 lanes of ceil(D/16) adds, then a 4-level tree
            d = km.shape[-1]
            kk, kr = k + (math.ceil(d / 16) + 4) / 2, REF_ULPS + d / 2   # numpy's sum: <= D roundings
            km, rm, cancel = km.sum(-1), rm.sum(-1), CANCEL_ROW
        km, rm = np.broadcast_to(km, shape), np.broadcast_to(rm, shape)
        # Below the normal range a rounding errs by up to half the smallest subnormal, not eps/2 |value|.
        res.append((kk * (e * km + sub) + kr * e_ref * rm, km, cancel))
    return res


def _check(got, exact, tol, name):
    """Per-element comparison; the 0.1% self-check of its tolerance; a 0.1% mutation that must fail."""
    allowed, mag, cancel = tol
    assert_close(got, exact, atol=allowed, rtol=0, name=name)
    covered = assert_tolerance_strength(allowed, exact, mag, name, cancel,
                                        max_excepted=max(1, math.floor(MAX_EXCEPTED * np.size(exact))))
    assert_mutation_detected(got, exact, allowed, covered, name)


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
    args_hi = [a.astype(higher(dtype)) for a in args]
    exact = _as_tuple(getattr(R, name)(*args_hi))
    got = _as_tuple(getattr(vk, name)(*args))
    assert len(got) == len(exact) == len(MAGNITUDES[name].ulps)
    for i, (g, e, tol) in enumerate(zip(got, exact, _allowed(name, args_hi, dtype, [e.shape for e in exact]))):
        assert g.dtype == dtype and g.shape == e.shape
        _check(g, e, tol, f"{name}[{i}] {dtype}")


def test_random_kernels_against_reference(dtype, rng):
    # Given the kernel's eps (randn, itself checked against the reference transform in test_random.py),
    # reparameterize / latent_* are plain formulas; same per-element tolerance rule as above.
    _need_ld(dtype)
    hi = higher(dtype)
    shape = (300, 37)
    mu, lv, dz = (rng.normal(0, 2, shape).astype(dtype), rng.uniform(-6, 6, shape).astype(dtype),
                  rng.normal(size=shape).astype(dtype))
    seed, off = 1234, 77
    eps_k = vk.randn(shape, seed, off, dtype)
    # The kernel multiplies by T(kl_weight): the exact value is the one for that weight.
    w = 0.7
    M, L, DZ, E, W = mu.astype(hi), lv.astype(hi), dz.astype(hi), eps_k.astype(hi), hi(dtype.type(w))
    z_exact = M + np.exp(L / 2) * E
    tol_z, = _allowed("reparameterize", [M, L, E], dtype, [shape])
    _check(vk.reparameterize(mu, lv, seed, off), z_exact, tol_z, "reparameterize")
    z, kl = vk.latent_forward(mu, lv, seed, off)
    tol_z, tol_kl = _allowed("latent_forward", [M, L, E], dtype, [shape, shape[:-1]])
    _check(z, z_exact, tol_z, "latent_forward z")
    _check(kl, R.kl_standard_normal(M, L), tol_kl, "latent_forward kl")
    exact = (DZ + W * M, DZ * np.exp(L / 2) * E / 2 + W * np.expm1(L) / 2)
    tols = _allowed("latent_backward", [DZ, M, L, E, W], dtype, [shape, shape])
    for g, e, tol, nm in zip(vk.latent_backward(dz, mu, lv, seed, off, kl_weight=w), exact, tols, ("dmu", "dlv")):
        _check(g, e, tol, f"latent_backward {nm}")
    # latent_vjp: a KL weight per row (signs and magnitudes vary), same formula and budget per element.
    dkl = rng.normal(0, 2, shape[0]).astype(dtype)
    WR = dkl.astype(hi)[:, None]
    exact = (DZ + WR * M, DZ * np.exp(L / 2) * E / 2 + WR * np.expm1(L) / 2)
    tols = _allowed("latent_backward", [DZ, M, L, E, WR], dtype, [shape, shape])
    for g, e, tol, nm in zip(vk.latent_vjp(dz, dkl, mu, lv, seed, off), exact, tols, ("dmu", "dlv")):
        _check(g, e, tol, f"latent_vjp {nm}")


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
    # SciPy evaluates in float64 on the kernel's (rounded) inputs. Per-element tolerance as above, with SciPy
    # in the reference's place: its log_expit / expit / norm.logpdf are within a few ulp of float64 on terms
    # no larger than the textbook formula's, so the reference part uses float64's eps (for float64 kernels
    # SciPy is no more precise than the kernel; the two budgets add).
    args = [a.astype(dtype) for a in ARGS[name](SHAPES[0], rng)]
    args64 = [a.astype(np.float64) for a in args]
    ref = _as_tuple(SCIPY[name](*args64))
    got = _as_tuple(getattr(vk, name)(*args))
    tols = _allowed(name, [a.astype(LD) for a in args], dtype, [r.shape for r in ref], ref_dtype=np.float64)
    for i, (g, r, (allowed, _, _)) in enumerate(zip(got, ref, tols)):
        assert_close(g, r, atol=allowed, rtol=0, name=f"{name}[{i}] scipy")


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
