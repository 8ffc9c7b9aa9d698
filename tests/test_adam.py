"""adam_step against the NumPy AdamW in vaekernels.testing.reference (float32 and float64) and, when installed,
torch.optim.AdamW in float64 over several steps."""
import numpy as np
import pytest

from conftest import R, assert_close, eps, vk

HYPER = [dict(lr=1e-3), dict(lr=0.05, weight_decay=0.01), dict(lr=0.1, beta1=0.5, beta2=0.9, eps=1e-6),
         dict(lr=1e-2, beta1=0.0, beta2=0.0, weight_decay=0.1)]
STEPS = 12


def _run(step_fn, p, grads, hp):
    p, m, v = p.copy(), np.zeros_like(p), np.zeros_like(p)
    for t, g in enumerate(grads, start=1):
        out = step_fn(p, g.astype(p.dtype), m, v, t, **hp)
        assert out is p
    return p, m, v


@pytest.mark.parametrize("hp", HYPER, ids=str)
def test_adam_against_numpy_reference(hp, dtype, rng):
    # Tolerance rule: twice the error the NumPy AdamW makes in `dtype` against the same AdamW run in
    # float64 (float32 kernels) or long double (float64 kernels), plus one ulp of the largest parameter.
    shape = (37, 29)
    p0 = rng.normal(size=shape)
    grads = [rng.normal(0, 1 + t, shape) * (rng.uniform(size=shape) < 0.9) for t in range(STEPS)]   # some zeros
    hi = np.float64 if dtype == np.float32 else np.longdouble
    exact = _run(R.adam_step, p0.astype(dtype).astype(hi), [g.astype(dtype).astype(hi) for g in grads], hp)
    naive = _run(R.adam_step, p0.astype(dtype), [g.astype(dtype) for g in grads], hp)
    got = _run(vk.adam_step, p0.astype(dtype), grads, hp)
    for name, g, n, e in zip(("param", "m", "v"), got, naive, exact):
        err = float(np.max(np.abs(n.astype(np.longdouble) - e)))
        assert_close(g, e, atol=2 * err + eps(dtype) * float(np.max(np.abs(e))), rtol=0, name=f"adam {name}")


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
