"""Every backward / value-and-gradient kernel against central finite differences of the forward kernel, in
float64 (micrograd / tinygrad gradcheck style: float64 only; gradient tolerances separate from forward ones).

Each loss below is a per-row vector (rows are independent), so perturbing column j of every row at once
gives the derivative with respect to every element of that column in one pair of calls.
"""
import numpy as np
import pytest

from conftest import assert_close, vk

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
