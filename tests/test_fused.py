"""Fused kernels equal the composition of the unfused ones: latent_forward is reparameterize + KL to the bit,
latent_backward is the reparameterisation gradient + kl_standard_normal_backward to rounding, every
*_and_grad value is bit for bit the value-only kernel, and the per-row backward kernels (latent_vjp,
*_log_prob_backward) are bit for bit the row weight times their one-weight / unit-weight counterparts."""
import numpy as np
import pytest

from conftest import assert_bitwise, assert_close, eps, vk

SHAPES = [(1, 1), (64, 37), (5, 2500), (1500, 48), (3, 4, 19)]
# (5, 2500): rows longer than the 1024-element chunk; (1500, 48): 72 000 elements, split across threads.
OFFSETS = [0, 1, 3, 4093]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_latent_forward_is_reparameterize_plus_kl(shape, dtype, rng):
    mu = rng.normal(0, 2, shape).astype(dtype)
    lv = rng.uniform(-6, 6, shape).astype(dtype)
    for offset in OFFSETS:
        z, kl = vk.latent_forward(mu, lv, 31, offset)
        assert_bitwise(z, vk.reparameterize(mu, lv, 31, offset), f"latent_forward z, offset {offset}")
        assert_bitwise(kl, vk.kl_standard_normal(mu, lv), "latent_forward kl")


@pytest.mark.parametrize("kl_weight", [0.0, 0.25, 1.0])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_latent_backward_is_composition(shape, kl_weight, dtype, rng):
    # d/dmu [dz * (mu + sigma eps)] = dz;  d/dlogvar = dz * eps * sigma / 2 (sigma = exp(logvar / 2));
    # plus kl_weight times kl_standard_normal_backward. The composition uses NumPy's exp, so agreement is to
    # rounding: each product is a few ulp (exp <= 2 ulp in the kernel, <= 1 in NumPy, 3 roundings), so
    # 8 eps times the magnitudes of the two summands bounds the difference.
    mu = rng.normal(0, 2, shape).astype(dtype)
    lv = rng.uniform(-6, 6, shape).astype(dtype)
    dz = rng.normal(size=shape).astype(dtype)
    w = dtype.type(kl_weight)
    for offset in (0, 3):
        eps_k = vk.randn(shape, 17, offset, dtype)
        sigma = np.exp(lv / 2)
        kdmu, kdlv = vk.kl_standard_normal_backward(np.full(shape[:-1], w, dtype), mu, lv)
        reparam_dlv = dz * eps_k * sigma / 2
        dmu, dlv = vk.latent_backward(dz, mu, lv, 17, offset, kl_weight=kl_weight)
        # dmu = dz + w mu has one rounding after the exact-or-same product w * mu: equal values.
        assert_close(dmu, dz + kdmu, atol=0, rtol=0, name="latent_backward dmu")
        assert_close(dlv, reparam_dlv + kdlv, atol=8 * eps(dtype) * (np.abs(reparam_dlv) + np.abs(kdlv)), rtol=0,
                     name=f"latent_backward dlogvar, offset {offset}")


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_value_and_grad_values_equal_value_kernels(shape, dtype, rng):
    x = rng.uniform(size=shape).astype(dtype)
    logits = rng.normal(0, 5, shape).astype(dtype)
    assert_bitwise(vk.bernoulli_log_prob_and_grad(x, logits)[0], vk.bernoulli_log_prob(x, logits), "bernoulli")
    mean, lv = rng.normal(size=shape).astype(dtype), rng.uniform(-4, 4, shape).astype(dtype)
    assert_bitwise(vk.normal_log_prob_and_grad(x, mean, lv)[0], vk.normal_log_prob(x, mean, lv), "normal")
    assert_bitwise(vk.standard_normal_log_prob_and_grad(x)[0], vk.standard_normal_log_prob(x), "standard normal")


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_per_row_backward_kernels_are_row_weights_times_the_others(shape, dtype, rng):
    mu = rng.normal(0, 2, shape).astype(dtype)
    lv = rng.uniform(-6, 6, shape).astype(dtype)
    dz = rng.normal(size=shape).astype(dtype)
    x = np.where(rng.uniform(size=shape) < 0.5, rng.integers(0, 2, shape), rng.uniform(size=shape)).astype(dtype)
    for offset in OFFSETS:
        # One weight for every row: latent_vjp is latent_backward (the same term per element, w = dkl[row]).
        for w in (0.0, 0.3):
            got = vk.latent_vjp(dz, np.full(shape[:-1], w, dtype), mu, lv, 31, offset)
            want = vk.latent_backward(dz, mu, lv, 31, offset, kl_weight=w)
            for g, e, nm in zip(got, want, ("dmu", "dlogvar")):
                assert_bitwise(g, e, f"latent_vjp {nm} weight {w} offset {offset}")
    # Weights differing per row: each row is latent_backward with its own weight (rows placed so that the
    # kernel's 1024-element chunks straddle rows).
    dkl = rng.normal(size=shape[:-1]).astype(dtype)
    got = vk.latent_vjp(dz, dkl, mu, lv, 31, 5)
    flat = [a.reshape(-1, shape[-1]) for a in (dz, mu, lv) + got]
    for r in {0, len(flat[0]) // 2, len(flat[0]) - 1}:
        want = vk.latent_backward(flat[0][r:r + 1], flat[1][r:r + 1], flat[2][r:r + 1], 31, 5 + r * shape[-1],
                                  kl_weight=dkl.reshape(-1)[r])
        assert_bitwise(flat[3][r:r + 1], want[0], f"latent_vjp dmu row {r}")
        assert_bitwise(flat[4][r:r + 1], want[1], f"latent_vjp dlogvar row {r}")
    g = rng.normal(size=shape[:-1]).astype(dtype)
    _, dl = vk.bernoulli_log_prob_and_grad(x, mu)
    assert_bitwise(vk.bernoulli_log_prob_backward(g, x, mu), g[..., None] * dl, "bernoulli_log_prob_backward")
    _, dm, dv = vk.normal_log_prob_and_grad(x, mu, lv)
    got = vk.normal_log_prob_backward(g, x, mu, lv)
    assert_bitwise(got[0], g[..., None] * dm, "normal_log_prob_backward dmean")
    assert_bitwise(got[1], g[..., None] * dv, "normal_log_prob_backward dlogvar")


def test_kl_normal_to_standard_normal_is_kl_standard_normal(dtype, rng):
    # KL(q || N(0, I)) two ways: kl_normal with mu_p = 0, logvar_p = 0 and kl_standard_normal. Different
    # code paths; the same terms up to rounding (4 ulp of the terms' magnitudes per row).
    shape = (40, 23)
    mu = rng.normal(0, 2, shape).astype(dtype)
    lv = rng.uniform(-6, 6, shape).astype(dtype)
    zero = np.zeros_like(mu)
    scale = np.sum(mu.astype(np.float64) ** 2 + np.exp(lv.astype(np.float64)) + 1 + np.abs(lv), -1)
    assert_close(vk.kl_normal(mu, lv, zero, zero), vk.kl_standard_normal(mu, lv), atol=4 * eps(dtype) * scale,
                 rtol=0, name="kl_normal(q, N(0,1))")
    g = rng.normal(size=shape[:-1]).astype(dtype)
    dmq, dlq, dmp, dlp = vk.kl_normal_backward(g, mu, lv, zero, zero)
    dmu, dlv = vk.kl_standard_normal_backward(g, mu, lv)
    assert_close(dmq, dmu, atol=0, rtol=2 * eps(dtype), name="dmu_q")
    assert_close(dlq, dlv, atol=0, rtol=4 * eps(dtype), name="dlogvar_q")
    assert_bitwise(dmp, -dmq, "dmu_p = -dmu_q")
