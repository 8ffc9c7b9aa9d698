"""Every backward / value-and-gradient kernel against central finite differences of the forward kernel, in
float64 (micrograd / tinygrad gradcheck style; gradient tolerances separate from forward ones), and the float32
kernels against central differences of the float64 forward kernel with per-element tolerances (second half).

Each loss below is a per-row vector (rows are independent), so perturbing column j of every row at once
gives the derivative with respect to every element of that column in one pair of calls.
"""
import math

import numpy as np
import pytest

from conftest import assert_close, assert_mutation_detected, assert_tolerance_strength, vk

F64 = np.float64
# Central differences with step h = 1e-5 * max(1, |x|): truncation error h^2 |f'''| / 6 ~ 2e-11 |f'''| and
# rounding error ~ eps |f| / h ~ 2e-11 |f|. Every function here is built from exp, so |f'''| is of the order
# of |f| + |f'|. A gradient tolerance of 1e-7 (1 + |f| + |grad|) is 5000x that bound yet 1e7x below the
# O(1) error of a wrong sign, factor or term.
REL_STEP = 1e-5
GRAD_TOL = 1e-7


def numeric_grad(row_loss, args, k):
    """d row_loss / d args[k], elementwise, by central differences (args[k] is (..., D))."""
    x = args[k]
    grad = np.empty_like(x)
    for j in range(x.shape[-1]):
        h = np.zeros_like(x)
        h[..., j] = REL_STEP * np.maximum(1.0, np.abs(x[..., j]))
        xp, xm = x + h, x - h
        plus = row_loss(*[xp if i == k else a for i, a in enumerate(args)])
        minus = row_loss(*[xm if i == k else a for i, a in enumerate(args)])
        step = (xp - xm)[..., j]                  # the steps actually taken, after rounding
        grad[..., j] = (plus - minus) / step
    return grad


def check(row_loss, args, analytic, wrt, name):
    scale = 1.0 + np.abs(row_loss(*args))[..., None]
    for k, g in zip(wrt, analytic):
        num = numeric_grad(row_loss, args, k)
        assert_close(g, num, atol=GRAD_TOL * (scale + np.abs(num)), rtol=0, name=f"{name}: d/d arg {k}")


SHAPES = [(40, 1), (6, 7), (2, 3, 5)]
# (40, 1): one element per row, so the vectorised columns cover 40 values at once; (6, 7) and (2, 3, 5):
# several columns and a 3-D batch.


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_kl_standard_normal_backward(shape, rng):
    g = rng.normal(size=shape[:-1])
    mu, lv = rng.normal(0, 2, shape), rng.uniform(-8, 8, shape)
    check(lambda m, l: g * vk.kl_standard_normal(m, l), [mu, lv], vk.kl_standard_normal_backward(g, mu, lv),
          [0, 1], "kl_standard_normal_backward")


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_kl_normal_backward(shape, rng):
    g = rng.normal(size=shape[:-1])
    args = [rng.normal(0, 2, shape), rng.uniform(-6, 6, shape), rng.normal(0, 2, shape), rng.uniform(-6, 6, shape)]
    check(lambda *a: g * vk.kl_normal(*a), args, vk.kl_normal_backward(g, *args), [0, 1, 2, 3], "kl_normal_backward")


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_bernoulli_log_prob_and_grad(shape, rng):
    x = np.where(rng.uniform(size=shape) < 0.5, rng.integers(0, 2, shape), rng.uniform(size=shape)).astype(F64)
    logits = rng.normal(0, 6, shape)
    _, dl = vk.bernoulli_log_prob_and_grad(x, logits)
    check(lambda xx, l: vk.bernoulli_log_prob(xx, l), [x, logits], [dl], [1], "bernoulli_log_prob_and_grad")


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_normal_log_prob_and_grad(shape, rng):
    args = [rng.normal(0, 2, shape), rng.normal(0, 2, shape), rng.uniform(-5, 5, shape)]
    _, dm, dlv = vk.normal_log_prob_and_grad(*args)
    check(vk.normal_log_prob, args, [dm, dlv], [1, 2], "normal_log_prob_and_grad")


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_standard_normal_log_prob_and_grad(shape, rng):
    z = rng.normal(0, 3, shape)
    _, dz = vk.standard_normal_log_prob_and_grad(z)
    check(vk.standard_normal_log_prob, [z], [dz], [0], "standard_normal_log_prob_and_grad")


@pytest.mark.parametrize("kl_weight", [0.0, 0.37, 1.0])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_latent_backward(shape, kl_weight, rng):
    # Loss per row: sum_j dz * z + w * kl, with (z, kl) = latent_forward(mu, logvar, seed, offset): eps is a
    # function of (seed, offset) only, so the differences see exactly the noise the backward regenerates.
    dz = rng.normal(size=shape)
    mu, lv = rng.normal(0, 2, shape), rng.uniform(-6, 6, shape)
    seed, offset = 2024, 13

    def row_loss(m, l):
        z, kl = vk.latent_forward(m, l, seed, offset)
        return np.sum(dz * z, axis=-1) + kl_weight * kl

    check(row_loss, [mu, lv], vk.latent_backward(dz, mu, lv, seed, offset, kl_weight=kl_weight), [0, 1],
          "latent_backward")


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_log_prob_backward_kernels(shape, rng):
    # The per-row backward kernels: d sum(g * log_prob) with a different upstream g in each row.
    g = rng.normal(size=shape[:-1])
    x = np.where(rng.uniform(size=shape) < 0.5, rng.integers(0, 2, shape), rng.uniform(size=shape)).astype(F64)
    logits = rng.normal(0, 6, shape)
    check(lambda xx, l: g * vk.bernoulli_log_prob(xx, l), [x, logits], [vk.bernoulli_log_prob_backward(g, x, logits)],
          [1], "bernoulli_log_prob_backward")
    args = [rng.normal(0, 2, shape), rng.normal(0, 2, shape), rng.uniform(-5, 5, shape)]
    check(lambda *a: g * vk.normal_log_prob(*a), args, vk.normal_log_prob_backward(g, *args), [1, 2],
          "normal_log_prob_backward")


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_latent_vjp(shape, rng):
    # Loss per row: sum_j dz * z + dkl[row] * kl, a different KL cotangent per row.
    dz, dkl = rng.normal(size=shape), rng.normal(size=shape[:-1])
    mu, lv = rng.normal(0, 2, shape), rng.uniform(-6, 6, shape)
    seed, offset = 2024, 13

    def row_loss(m, l):
        z, kl = vk.latent_forward(m, l, seed, offset)
        return np.sum(dz * z, axis=-1) + dkl * kl

    check(row_loss, [mu, lv], vk.latent_vjp(dz, dkl, mu, lv, seed, offset), [0, 1], "latent_vjp")


def test_gradients_at_wide_logvar_range(rng):
    # One column, many rows: logvar over [-20, 20] and logits over [-30, 30] in one vectorised check.
    n = 400
    lv = np.linspace(-20, 20, n)[:, None]
    mu = rng.normal(0, 3, (n, 1))
    g = np.ones(n)
    check(lambda m, l: g * vk.kl_standard_normal(m, l), [mu, lv], vk.kl_standard_normal_backward(g, mu, lv),
          [0, 1], "kl_standard_normal_backward wide")
    lp = rng.uniform(-20, 20, (n, 1))
    args = [mu, lv, rng.normal(0, 3, (n, 1)), lp]
    check(lambda *a: vk.kl_normal(*a), args, vk.kl_normal_backward(g, *args), [0, 1, 2, 3], "kl_normal_backward wide")
    logits = np.linspace(-30, 30, n)[:, None]
    x = rng.uniform(size=(n, 1))
    check(vk.bernoulli_log_prob, [x, logits], [vk.bernoulli_log_prob_and_grad(x, logits)[1]], [1],
          "bernoulli grad wide")


# -------------------------------------------------------------------------------------------------
# float32 kernels against central differences of the float64 forward kernel
# -------------------------------------------------------------------------------------------------
# Each float32 backward kernel runs on float32 inputs; its gradient is compared with central differences of
# the float64 forward kernel at the same (float32-representable) inputs. The forward losses are sums of one
# term per element, so the float64 forward kernel is evaluated with every element as its own one-term row
# (a one-term row sum is exact): the difference quotient of element i then carries only element i's own
# rounding, not that of large neighbours in its row. Per element the allowed difference is the sum of
#   * the float32 kernel's rounding, K (eps32 |terms| + smallest_subnormal32), with K and |terms| of the
#     gradient's own formula from test_kernels.MAGNITUDES (e.g. dlogvar_p of kl_normal_backward:
#     5 eps32 |g| (|e^d - 1| + diff^2 e^-lp) / 2): about 6e-7 of the gradient where its terms do not cancel;
#   * the central difference's error, h^2 / 6 max|f'''| + delta / h + eps64 |quotient|: truncation with a
#     bound on |f'''| over [x - h, x + h] written out for each loss below; delta bounds the float64 value's
#     rounding at x + h and at x - h (the forward kernel's K from MAGNITUDES times eps64 |terms|, plus the
#     product by g); eps64 |quotient| is the rounding of the subtraction. The step h is a power of two, so
#     x +- h is exact for a float32 x (24 significant bits; checked) and the division by 2h is exact; h is
#     near the minimiser (3 delta / |f'''|)^(1/3) of the bound, within [2^-20, 2^-6] max(1, |x|). This
#     part is below 1e-5 of the gradient here (mostly below 1e-7; the largest where a gradient is small
#     beside its element's loss term), far below 0.1%.
# The sum stays below 1e-3 |gradient| wherever the gradient's terms cancel by at most CANCEL32 (self-check),
# so a 0.1% error in a float32 gradient element fails (mutation check).
F32 = np.float32
EPS32, SUB32 = float(np.finfo(F32).eps), float(np.finfo(F32).smallest_subnormal)
EPS64 = float(np.finfo(F64).eps)
# As in test_kernels: elementwise K <= 5, and 5 eps32 1000 = 6e-4 < 1e-3; elements whose terms cancel by
# more (z-like sums of random signs: dlogvar_p, grey-level Bernoulli, latent_backward) at most 1%.
CANCEL32 = 1000


def _magnitudes():
    from test_kernels import MAGNITUDES        # the one table of kernel formulas' magnitudes and budgets
    return MAGNITUDES


def per_element(kernel, g=None):
    """The float64 forward kernel with every element as its own row, times g (broadcast per row) if given."""
    def value(*args):
        v = kernel(*[np.reshape(a, (-1, 1)) for a in args]).reshape(args[0].shape)
        return v if g is None else np.asarray(g, F64)[..., None] * v
    return value


def rounding(name, g=None):
    """delta(*args): the float64 forward kernel's rounding bound per element (one-term rows: the term's K
    eps64 |terms|), with 0.5 eps64 more for the product by g if given."""
    entry = _magnitudes()[name]

    def delta(*args):
        terms = np.asarray(entry.kernel(*args)[0], F64)
        if g is None:
            return entry.ulps[0] * EPS64 * terms
        return (entry.ulps[0] + 0.5) * EPS64 * np.abs(np.asarray(g, F64))[..., None] * terms
    return delta


def check_float32(name, value, args32, outputs, delta, mag_args=None):
    """outputs: (k, the float32 kernel's gradient w.r.t. args32[k], index of that output in MAGNITUDES[name],
    third(x, h): a bound on |d^3 value / dx^3| over [x - h, x + h]). mag_args: the arguments of
    MAGNITUDES[name] in float64 (default: args32)."""
    args64 = [a.astype(F64) for a in args32]
    entry = _magnitudes()[name]
    mags = entry.kernel(*(args64 if mag_args is None else mag_args))
    for k, g, out, third in outputs:
        assert g.dtype == F32
        x = args64[k]

        def at(y):
            return [y if i == k else a for i, a in enumerate(args64)]

        scale = np.maximum(1.0, np.abs(x))
        h = np.cbrt(3 * delta(*args64) / np.maximum(third(x, 0.0 * x), 1e-300))
        h = 2.0 ** np.round(np.log2(np.clip(h, 2.0 ** -20 * scale, 2.0 ** -6 * scale)))
        xp, xm = x + h, x - h
        assert np.all(xp - x == h) and np.all(x - xm == h), "x +- h not exact"
        num = (value(*at(xp)) - value(*at(xm))) / (2 * h)
        fd = h * h / 6 * third(x, h) + np.maximum(delta(*at(xp)), delta(*at(xm))) / h + EPS64 * np.abs(num)
        mag = np.broadcast_to(mags[out], g.shape)
        allowed = entry.ulps[out] * (EPS32 * mag + SUB32) + fd
        label = f"{name} float32: d/d arg {k}"
        assert_close(g, num, atol=allowed, rtol=0, name=label)
        covered = assert_tolerance_strength(allowed, num, mag, label, CANCEL32, max_excepted=max(1, g.size // 100))
        assert_mutation_detected(g, num, allowed, covered, label)


def _f32(*arrays):
    return [np.asarray(a).astype(F32) for a in arrays]


def _no_third(x, h):
    return 0.0 * x                        # the loss is at most quadratic in this argument: f''' = 0


F32_SHAPES = [(40, 1), (6, 7), (2, 3, 5), (300, 37)]     # the last: 11 100 elements per gradient


@pytest.mark.parametrize("shape", F32_SHAPES, ids=str)
def test_float32_kl_standard_normal_backward(shape, rng):
    g, mu, lv = _f32(rng.normal(size=shape[:-1]), rng.normal(0, 2, shape), rng.uniform(-8, 8, shape))
    G = g.astype(F64)
    dmu, dlv = vk.kl_standard_normal_backward(g, mu, lv)
    # g 0.5 (mu^2 + e^lv - 1 - lv): quadratic in mu; in lv f''' = g e^lv / 2, at most e^h times that on the
    # interval.
    check_float32("kl_standard_normal_backward", per_element(vk.kl_standard_normal, G), [mu, lv],
                  [(0, dmu, 0, _no_third), (1, dlv, 1, lambda l, h: np.abs(G)[..., None] * np.exp(l + h) / 2)],
                  rounding("kl_standard_normal", G), [G] + [a.astype(F64) for a in (mu, lv)])


@pytest.mark.parametrize("shape", F32_SHAPES, ids=str)
def test_float32_kl_normal_backward(shape, rng):
    g, *a = _f32(rng.normal(size=shape[:-1]), rng.normal(0, 2, shape), rng.uniform(-6, 6, shape),
                 rng.normal(0, 2, shape), rng.uniform(-6, 6, shape))
    G = g.astype(F64)
    MQ, LQ, MP, LP = (x.astype(F64) for x in a)
    grads = vk.kl_normal_backward(g, *a)
    # g 0.5 ((e^d - 1 - d) + (mq - mp)^2 e^-lp), d = lq - lp: quadratic in mq and mp; in lq f''' = g e^d / 2;
    # in lp f''' = -g (e^d + (mq - mp)^2 e^-lp) / 2. Over [x - h, x + h] each exponential grows by <= e^h.
    gr = np.abs(G)[..., None] / 2
    thirds = [_no_third, lambda lq, h: gr * np.exp(lq - LP + h), _no_third,
              lambda lp, h: gr * np.exp(h) * (np.exp(LQ - lp) + (MQ - MP) ** 2 * np.exp(-lp))]
    check_float32("kl_normal_backward", per_element(vk.kl_normal, G), a,
                  [(i, grads[i], i, thirds[i]) for i in range(4)], rounding("kl_normal", G), [G, MQ, LQ, MP, LP])


@pytest.mark.parametrize("shape", F32_SHAPES, ids=str)
def test_float32_bernoulli_log_prob_and_grad(shape, rng):
    x, logits = _f32(np.where(rng.uniform(size=shape) < 0.5, rng.integers(0, 2, shape), rng.uniform(size=shape)),
                     rng.normal(0, 6, shape))
    _, dl = vk.bernoulli_log_prob_and_grad(x, logits)

    def third(l, h):
        # x l - softplus(l): f''' = -s (1 - s) (1 - 2 s), s = sigmoid(l); |f'''| <= s (1 - s) <= e^-|l|, and
        # s (1 - s) >= e^-|l| / 4, so on [l - h, l + h] |f'''| <= e^-(|l| - h) <= 4 e^h s (1 - s)(l).
        s = 1 / (1 + np.exp(-l))
        return 4 * np.exp(h) * s * (1 - s)

    check_float32("bernoulli_log_prob_and_grad", per_element(vk.bernoulli_log_prob), [x, logits],
                  [(1, dl, 1, third)], rounding("bernoulli_log_prob"))


@pytest.mark.parametrize("shape", F32_SHAPES, ids=str)
def test_float32_normal_log_prob_and_grad(shape, rng):
    args = _f32(rng.normal(0, 2, shape), rng.normal(0, 2, shape), rng.uniform(-5, 5, shape))
    X, M, _ = (a.astype(F64) for a in args)
    _, dm, dlv = vk.normal_log_prob_and_grad(*args)
    # -0.5 (log 2pi + lv + (x - m)^2 e^-lv): quadratic in m; in lv f''' = (x - m)^2 e^-lv / 2, <= e^h times
    # that on the interval.
    check_float32("normal_log_prob_and_grad", per_element(vk.normal_log_prob), args,
                  [(1, dm, 1, _no_third), (2, dlv, 2, lambda lv, h: (X - M) ** 2 * np.exp(h - lv) / 2)],
                  rounding("normal_log_prob"))


@pytest.mark.parametrize("shape", F32_SHAPES, ids=str)
def test_float32_standard_normal_log_prob_and_grad(shape, rng):
    (z,) = _f32(rng.normal(0, 3, shape))
    _, dz = vk.standard_normal_log_prob_and_grad(z)
    # -0.5 (log 2pi + z^2): quadratic; dz = -z is exact (K = 0).
    check_float32("standard_normal_log_prob_and_grad", per_element(vk.standard_normal_log_prob), [z],
                  [(0, dz, 1, _no_third)], rounding("standard_normal_log_prob"))


@pytest.mark.parametrize("kl_weight", [0.0, 0.37, 1.0])
@pytest.mark.parametrize("shape", F32_SHAPES, ids=str)
def test_float32_latent_backward(shape, kl_weight, rng):
    dz, mu, lv = _f32(rng.normal(size=shape), rng.normal(0, 2, shape), rng.uniform(-6, 6, shape))
    seed, offset = 2024, 13
    DZ = dz.astype(F64)
    # The float32 kernel uses its float32 noise and T(kl_weight); the float64 loss gets the same values.
    E = vk.randn(shape, seed, offset, F32).astype(F64)
    W = F64(F32(kl_weight))
    kl = per_element(vk.kl_standard_normal)
    kl_delta = rounding("kl_standard_normal")

    def value(m, l):
        # per element: dz z + w kl with z = m + e^(l/2) eps (float64 NumPy), kl from the float64 kernel.
        return DZ * (m + np.exp(l / 2) * E) + W * kl(m, l)

    def delta(m, l):
        # NumPy's exp (<= 1 ulp; 2 budgeted), the product by eps and the add: 3 eps64 (|m| + e^(l/2)|eps|);
        # times dz 0.5; w kl: the kernel's bound plus 0.5; the final add 0.5 (of a sum <= the terms).
        return (4 * EPS64 * np.abs(DZ) * (np.abs(m) + np.exp(l / 2) * np.abs(E))
                + W * (kl_delta(m, l) + EPS64 * kl(m, l)))

    dmu, dlv = vk.latent_backward(dz, mu, lv, seed, offset, kl_weight=kl_weight)
    # f''' = 0 in mu (linear and quadratic); in lv dz eps e^(lv/2) / 8 + w e^lv / 2, <= e^h times that.
    check_float32("latent_backward", value, [mu, lv],
                  [(0, dmu, 0, _no_third),
                   (1, dlv, 1, lambda l, h: np.exp(h) * (np.abs(DZ * E) * np.exp(l / 2) / 8 + W * np.exp(l) / 2))],
                  delta, [DZ, mu.astype(F64), lv.astype(F64), E, W])
