"""Layers of vaekernels.nn: forward against independent NumPy formulas, backward against central finite
differences in float64.

Tolerances: central differences with h = 1e-6 on smooth float64 functions have truncation error O(h^2 f''')
~1e-12 and rounding error ~eps |f| / h ~ 1e-10 |f|; we compare with rtol 1e-6 and atol 1e-8, far above both
and far below any real gradient bug (a wrong factor or sign is O(1)).
"""
import numpy as np
import pytest

from vaekernels import nn

H = 1e-6
RTOL, ATOL = 1e-6, 1e-8


def numeric_grad(f, x):
    """Central differences of the scalar f() with respect to every element of x (modified in place)."""
    g = np.zeros_like(x)
    flat, gflat = x.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + H
        fp = f()
        flat[i] = old - H
        fm = f()
        flat[i] = old
        gflat[i] = (fp - fm) / (2 * H)
    return g


REFERENCE = {  # written without the module's tricks
    "linear": lambda x: x,
    "tanh": np.tanh,
    "relu": lambda x: np.where(x > 0, x, 0.0),
    "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
    "softplus": lambda x: np.log(1.0 + np.exp(x)),
    "elu": lambda x: np.where(x > 0, x, np.exp(x) - 1.0),
}


def test_every_activation_has_a_reference():
    assert set(REFERENCE) == set(nn.ACTIVATIONS)


@pytest.mark.parametrize("name", sorted(REFERENCE))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_activation_forward_matches_reference(name, dtype):
    rng = np.random.default_rng(0)
    x = (3 * rng.standard_normal((7, 5))).astype(dtype)
    want = REFERENCE[name](x.astype(np.float64))
    got = nn.apply_activation(nn.activation(name), x.copy(), np.empty_like(x))
    # float32: a few ulps of the result (the sigmoid goes through tanh, softplus through log1p/exp)
    tol = 1e-6 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(got, want, rtol=4 * tol, atol=4 * tol)
    assert got.dtype == dtype


@pytest.mark.parametrize("name", ["softplus", "sigmoid"])
def test_activation_is_finite_for_large_inputs(name):
    x = np.array([[-1e4, -100.0, 0.0, 100.0, 1e4]])
    y = nn.apply_activation(nn.activation(name), x.copy(), np.empty_like(x))
    assert np.all(np.isfinite(y))
    if name == "softplus":
        np.testing.assert_allclose(y[0, [0, 4]], [0.0, 1e4])


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_activation_backward_vs_finite_differences(name):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 6))
    x[np.abs(x) < 0.05] = 0.3  # keep the relu/elu kink out of the difference stencil
    g = rng.standard_normal(x.shape)
    act = nn.activation(name)

    def f():
        return float(np.sum(g * nn.apply_activation(act, x.copy(), np.empty_like(x))))

    y = nn.apply_activation(act, x.copy(), np.empty_like(x))
    dx = act.backward(y, g.copy(), np.empty_like(x))
    np.testing.assert_allclose(dx, numeric_grad(f, x), rtol=RTOL, atol=ATOL)


def test_unknown_activation():
    with pytest.raises(ValueError, match="activation must be one of"):
        nn.activation("swish")
    with pytest.raises(TypeError):
        nn.activation(3)


def test_parameters_views_share_the_flat_vector():
    p = nn.Parameters([("a.W", (3, 2)), ("a.b", (2,)), ("c", (4,))], np.float32)
    assert p.size == 12 and p.flat.shape == (12,)
    p.values["a.b"][:] = [7, 8]
    assert list(p.flat[6:8]) == [7, 8]
    p.grad_flat[:] = np.arange(12)
    np.testing.assert_array_equal(p.grads["a.W"], np.arange(6).reshape(3, 2))
    assert all(v.flags.c_contiguous for v in p.values.values())
    with pytest.raises(ValueError, match="duplicate"):
        nn.Parameters([("x", (1,)), ("x", (2,))], np.float64)


def _linear(n_in, n_out, seed=0):
    p = nn.Parameters(nn.Linear.spec("l", n_in, n_out), np.float64)
    layer = nn.Linear(p, "l")
    layer.init(seed, 0, 1.0)
    layer.b[:] = np.random.default_rng(seed).standard_normal(n_out)
    return p, layer


def test_linear_forward_and_backward():
    rng = np.random.default_rng(2)
    p, layer = _linear(5, 3)
    x = rng.standard_normal((4, 5))
    g = rng.standard_normal((4, 3))
    y = layer.forward(x, np.empty((4, 3)))
    np.testing.assert_allclose(y, np.einsum("bi,io->bo", x, layer.W) + layer.b, rtol=1e-13)

    def f():
        return float(np.sum(g * layer.forward(x, np.empty((4, 3)))))

    dx = np.empty_like(x)
    layer.backward(x, g, dx)
    np.testing.assert_allclose(layer.dW, numeric_grad(f, layer.W), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(layer.db, numeric_grad(f, layer.b), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(dx, numeric_grad(f, x), rtol=RTOL, atol=ATOL)


def test_linear_init_is_seeded_and_scaled():
    _, a = _linear(400, 300, seed=5)
    _, b = _linear(400, 300, seed=5)
    _, c = _linear(400, 300, seed=6)
    np.testing.assert_array_equal(a.W, b.W)
    assert not np.array_equal(a.W, c.W)
    # std 1/sqrt(400) = 0.05; with 120,000 draws the sample std is within 1% (sd of the estimate 0.2%)
    assert abs(a.W.std() - 0.05) < 5e-4


@pytest.mark.parametrize("name", ["tanh", "relu", "softplus", "elu"])
def test_mlp_backward_vs_finite_differences(name):
    rng = np.random.default_rng(3)
    sizes = (5, 7, 6, 3)
    p = nn.Parameters(nn.MLP.spec("m", sizes), np.float64)
    mlp = nn.MLP(p, "m", sizes, name)
    mlp.init(11, 0)
    for layer in mlp.layers:
        layer.b[:] = 0.1 * rng.standard_normal(layer.b.shape)
    x = rng.standard_normal((4, 5))
    g = rng.standard_normal((4, 3))
    buf = nn.MLPBuffers(mlp, 4, np.float64)

    def f():
        return float(np.sum(g * mlp.forward(x, buf)))

    mlp.forward(x, buf)
    dx = np.empty_like(x)
    mlp.backward(x, g.copy(), buf, dx=dx)
    analytic = p.grad_flat.copy()
    numeric = numeric_grad(f, p.flat)
    np.testing.assert_allclose(analytic, numeric, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(dx, numeric_grad(f, x), rtol=RTOL, atol=ATOL)
