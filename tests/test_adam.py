"""adam_step against the NumPy AdamW in vaekernels.testing.reference (float32 and float64) and, when installed,
torch.optim.AdamW in float64 over several steps."""
import math

import numpy as np
import pytest

from conftest import (R, assert_close, assert_mutation_detected, assert_tolerance_strength, eps, higher,
                      vk)

HYPER = [dict(lr=1e-3), dict(lr=0.05, weight_decay=0.01), dict(lr=0.1, beta1=0.5, beta2=0.9, eps=1e-6),
         dict(lr=1e-2, beta1=0.0, beta2=0.0, weight_decay=0.1)]
STEPS = 12


def _run(step_fn, p, grads, hp):
    p, m, v = p.copy(), np.zeros_like(p), np.zeros_like(p)
    for t, g in enumerate(grads, start=1):
        out = step_fn(p, g.astype(p.dtype), m, v, t, **hp)
        assert out is p
    return p, m, v


def adam_exact_and_bounds(p0, grads, hp, dtype):
    """The reference AdamW one precision up on the kernel's (rounded) inputs, and per element a first-order
    forward-error bound of the kernel's update (cpp/include/vaekernels/adam.hpp) in ``dtype`` and the sums of
    |terms| of the closed forms, accumulated over the steps.

    Per step, in units of u = eps/2 (each rounded + - * / sqrt errs by <= u of its result; each constant
    rounded to T once, <= u; ib = 1/sqrt(1 - beta2^t) two roundings):
      m = beta1 m + (1 - beta1) g          E_m <- beta1 E_m + 3u (beta1 |m| + (1 - beta1) |g|)
      v = beta2 v + (1 - beta2) g g        E_v <- beta2 E_v + 3u beta2 v + 4u (1 - beta2) g^2
      s = sqrt(v) ib, den = s + eps        rel(s) <= E_v / (2 v) + 4u,  rel(den) <= (s rel(s) + u eps) / den + u
      U = step_size (m / den)              E_U <= step_size E_m / den + |U| (rel(den) + 3u)
      p = p decay - U                      E_p <- decay E_p + 3u |p| decay + u |U| + E_U
    (old errors propagate with the recurrences' own factors beta1, beta2, decay). Magnitudes: m is
    sum_s (1 - beta1) beta1^(t-s) g_s, so mag_m <- beta1 mag_m + (1 - beta1) |g|; v >= 0 is its own; p is
    p0 decay^t - sum_s decay^(t-s) U_s with U_s made of step_size m_s / den_s, so
    mag_p <- decay mag_p + step_size mag_m / den.
    Returns (exact (p, m, v), bounds (E_p, E_m, E_v), magnitudes (mag_p, mag_m, mag_v))."""
    hi = higher(dtype)
    u = eps(dtype) / 2
    lr, b1, b2 = hp["lr"], hp.get("beta1", 0.9), hp.get("beta2", 0.999)
    e, wd = hp.get("eps", 1e-8), hp.get("weight_decay", 0.0)
    decay = 1 - lr * wd
    p = p0.astype(dtype).astype(hi)
    m, v = np.zeros_like(p), np.zeros_like(p)
    e_p, e_m, e_v = np.zeros_like(p), np.zeros_like(p), np.zeros_like(p)
    mag_p, mag_m = np.abs(p), np.zeros_like(p)
    for t, g in enumerate(grads, start=1):
        g = g.astype(dtype).astype(hi)
        p_old, m_old, v_old = p.copy(), m.copy(), v.copy()
        R.adam_step(p, g, m, v, t, **hp)
        step_size, ib = lr / (1 - b1 ** t), 1 / math.sqrt(1 - b2 ** t)
        e_m = b1 * e_m + 3 * u * (b1 * np.abs(m_old) + (1 - b1) * np.abs(g))
        e_v = b2 * e_v + 3 * u * b2 * v_old + 4 * u * (1 - b2) * g * g
        s = np.sqrt(v) * ib
        den = s + e
        rel_v = np.divide(e_v, 2 * v, out=np.zeros_like(v), where=v > 0)    # v = 0: every g so far was 0
        rel_den = (s * (rel_v + 4 * u) + u * e) / den + u
        upd = step_size * m / den
        e_p = decay * e_p + 3 * u * np.abs(p_old) * decay + u * np.abs(upd) + (
            step_size * e_m / den + np.abs(upd) * (rel_den + 3 * u))
        mag_m = b1 * mag_m + (1 - b1) * np.abs(g)
        mag_p = decay * mag_p + step_size * mag_m / den
    return (p, m, v), (e_p, e_m, e_v), (mag_p, mag_m, v)


# The 0.1% self-check: the bounds above are at most 19 eps (p), 8 eps (m), 13 eps (v) of the magnitudes
# after 12 steps, so every element whose terms cancel by at most 256x (19 eps 256 = 5.8e-4 in float32) fails
# at a 0.1% error. m averages gradients of random sign and cancels more than that at a few elements (6 of
# 1073 here); at most 1% may be excepted.
CANCEL = 256
MAX_EXCEPTED = 0.01


@pytest.mark.parametrize("hp", HYPER, ids=str)
def test_adam_against_numpy_reference(hp, dtype, rng):
    # Per element: |kernel - exact| <= E (the kernel's first-order bound above; second-order terms are
    # below (19 eps)^2 relative) + the same bound for the reference's textbook AdamW in its own precision
    # (twice the roundings per step: m_hat, v_hat and the update are divided and multiplied separately;
    # float64 for float32 kernels, long double for float64 kernels, where long double is wider) + a floor
    # of 12 steps x 8 roundings x half the smallest subnormal for results below the normal range.
    shape = (37, 29)
    p0 = rng.normal(size=shape)
    grads = [rng.normal(0, 1 + t, shape) * (rng.uniform(size=shape) < 0.9) for t in range(STEPS)]   # some zeros
    exact, bounds, mags = adam_exact_and_bounds(p0, grads, hp, dtype)
    ref_scale = 2 * eps(higher(dtype)) / eps(dtype)
    floor = STEPS * 4 * float(np.finfo(dtype).smallest_subnormal)
    got = _run(vk.adam_step, p0.astype(dtype), grads, hp)
    for name, g, e, b, mag in zip(("param", "m", "v"), got, exact, bounds, mags):
        allowed = b * (1 + ref_scale) + floor
        assert_close(g, e, atol=allowed, rtol=0, name=f"adam {name}")
        covered = assert_tolerance_strength(allowed, e, mag, f"adam {name}", CANCEL,
                                            max_excepted=math.floor(MAX_EXCEPTED * e.size))
        assert_mutation_detected(g, e, allowed, covered, f"adam {name}")


def test_adam_moves_against_the_gradient(rng):
    # The first step of Adam is -lr * sign(g) (m_hat / sqrt(v_hat) = g / |g|) up to eps: a sharp, independent
    # check of the bias corrections.
    p = np.zeros(1000)
    g = rng.normal(size=1000)
    vk.adam_step(p, g, np.zeros_like(p), np.zeros_like(p), 1, lr=0.01, eps=0.0)
    assert_close(p, -0.01 * np.sign(g), atol=0, rtol=4 * eps(np.float64), name="first Adam step")


@pytest.mark.parametrize("hp", HYPER, ids=str)
def test_adam_against_torch(hp):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    shape = (64, 33)
    p0 = rng.normal(size=shape)
    grads = [rng.normal(0, 1 + t, shape) for t in range(STEPS)]
    tp = torch.tensor(p0, dtype=torch.float64, requires_grad=True)
    kw = dict(lr=hp["lr"], betas=(hp.get("beta1", 0.9), hp.get("beta2", 0.999)), eps=hp.get("eps", 1e-8),
              weight_decay=hp.get("weight_decay", 0.0))
    opt = torch.optim.AdamW([tp], foreach=False, **kw)
    p, m, v = p0.copy(), np.zeros(shape), np.zeros(shape)
    for t, g in enumerate(grads, start=1):
        tp.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
        vk.adam_step(p, g, m, v, t, **hp)
    st = opt.state[tp]
    # Same algorithm, different operation order (torch: lerp for m, sqrt(v)/sqrt(bc2) + eps): per step a few
    # ulp of |p| and of the update (<= lr in size). Bound: 8 eps per step on |p| + lr.
    tol = 8 * eps(np.float64) * STEPS * (np.abs(p0) + hp["lr"] * STEPS)
    assert_close(p, tp.detach().numpy(), atol=tol, rtol=0, name="param vs torch AdamW")
    # m and v are convex combinations of g and g^2, which can nearly cancel in m: bound by the terms' size.
    gmax = np.max(np.abs(grads), axis=0)
    assert_close(m, st["exp_avg"].numpy(), atol=8 * STEPS * eps(np.float64) * gmax, rtol=0, name="exp_avg vs torch")
    assert_close(v, st["exp_avg_sq"].numpy(), atol=8 * STEPS * eps(np.float64) * gmax**2, rtol=0,
                 name="exp_avg_sq vs torch")
