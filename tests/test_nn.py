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


# -------------------------------------------------------------------------------------------------
# The C++ MLP (cpp/src/dense.cpp): forward against NumPy in float64, bits across thread counts, the
# built-in GEMM, the fused epilogues, bad arguments
# -------------------------------------------------------------------------------------------------
from vaekernels import _blas, _core  # noqa: E402


def _mlp(sizes, act, dtype, seed=0, rows=5):
    rng = np.random.default_rng(seed)
    p = nn.Parameters(nn.MLP.spec("m", sizes), dtype)
    mlp = nn.MLP(p, "m", sizes, act)
    mlp.init(seed, 0)
    for layer in mlp.layers:
        layer.b[:] = 0.3 * rng.standard_normal(layer.b.shape)
    x = rng.standard_normal((rows, sizes[0])).astype(dtype)
    return p, mlp, x, nn.MLPBuffers(mlp, rows, dtype)


def _numpy_forward(mlp, x, name):
    """The same network in float64 NumPy, with |x| |W| bounds for the GEMMs' rounding."""
    h, bound = x.astype(np.float64), np.zeros((x.shape[0], mlp.sizes[0]))
    for i, layer in enumerate(mlp.layers):
        W, b = layer.W.astype(np.float64), layer.b.astype(np.float64)
        pre = h @ W + b
        bound = (np.abs(h) @ np.abs(W) + np.abs(b)) + bound @ np.abs(W)   # |error| grows through the layers
        h = pre if i == len(mlp.layers) - 1 else REFERENCE[name](pre)
    return h, bound


@pytest.mark.parametrize("name", sorted(REFERENCE))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("sizes,rows", [((7, 9, 3), 5), ((200, 300, 50), 70), ((33, 1, 64, 17), 130)])
def test_mlp_forward_matches_numpy(name, dtype, sizes, rows):
    _, mlp, x, buf = _mlp(sizes, name, dtype, rows=rows)
    got = mlp.forward(x, buf)
    want, bound = _numpy_forward(mlp, x, name)
    # A GEMM of inner length K rounds within K eps sum |x||W| (Higham's gamma_K); the activations are
    # 1-Lipschitz and add a few ulp. 4x margin on both.
    eps = np.finfo(dtype).eps
    tol = 4 * max(sizes) * eps * bound + 16 * eps * np.abs(want)
    assert np.all(np.abs(got - want) <= tol + np.finfo(dtype).tiny)


def _pass(mlp, x, buf, p, rows):
    mlp.forward(x, buf)
    g = np.random.default_rng(9).standard_normal((rows, mlp.sizes[-1])).astype(x.dtype)
    dx = np.empty_like(x)
    finite = mlp.backward(x, g, buf, dx=dx, scale=0.25)
    return [buf.out.copy(), *(h.copy() for h in buf.h), p.grad_flat.copy(), dx], finite


@pytest.mark.parametrize("name", ["tanh", "relu", "softplus"])
def test_mlp_bits_do_not_depend_on_the_thread_count(name):
    # big enough for several GEMM blocks per layer in both split directions
    p, mlp, x, buf = _mlp((300, 200, 96, 784), name, np.float32, rows=100)
    results = []
    try:
        for threads in (1, 2, 3):
            _core.set_team_size(threads)
            results.append(_pass(mlp, x, buf, p, 100)[0])
    finally:
        _core.set_team_size(0)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert np.array_equal(a.view(np.uint32), b.view(np.uint32))


def test_builtin_gemm_agrees_with_the_blas():
    p, mlp, x, buf = _mlp((64, 48, 10), "elu", np.float64, rows=40)
    with_blas, _ = _pass(mlp, x, buf, p, 40)
    try:
        _core.set_blas(0, 0, True)
        assert not _core.have_blas()
        builtin, _ = _pass(mlp, x, buf, p, 40)
    finally:
        _blas._gemm_source = None
        _blas.use_numpy_gemm()
    assert _core.have_blas() == (_blas.use_numpy_gemm() != "built-in GEMM")
    for a, b in zip(with_blas, builtin):   # float64: the two summation orders agree to ~K eps relative
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-12)


# REFERENCE with the two formulas that cancel near 0 (e^x - 1, log(1 + e^x) for very negative x) replaced by
# NumPy's accurate ones, for relative bounds in float64
ACCURATE = dict(REFERENCE, elu=lambda x: np.where(x > 0, x, np.expm1(x)), softplus=lambda x: np.logaddexp(0.0, x))

SLOPE = {  # d activation / dx, written from x (the kernels use the output y)
    "linear": lambda x: np.ones_like(x),
    "tanh": lambda x: 1.0 / np.cosh(x) ** 2,
    "relu": lambda x: (x > 0).astype(np.float64),
    "sigmoid": lambda x: np.exp(-np.abs(x)) / (1.0 + np.exp(-np.abs(x))) ** 2,
    "softplus": lambda x: 1.0 / (1.0 + np.exp(-x)),
    "elu": lambda x: np.where(x > 0, 1.0, np.exp(x)),
}


@pytest.mark.parametrize("name", sorted(REFERENCE))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_epilogues_against_numpy(name, dtype):
    rng = np.random.default_rng(4)
    code = nn.activation(name).code
    pre = (2 * rng.standard_normal((37, 19))).astype(dtype)
    b = rng.standard_normal(19).astype(dtype)
    y = pre.copy()
    _core.bias_activation(y, b, code)
    x64 = pre.astype(np.float64) + b.astype(np.float64)
    eps = np.finfo(dtype).eps
    # Forward: the rounded sum x + b (eps |x|, times a slope <= 1) plus the activation's own error (at most
    # 3 ulp measured for tanh, the worst; exp/log1p-based ones 2-3): 16 eps of max(|y|, |x|, tiny) bounds both.
    want_y = ACCURATE[name](x64)
    assert np.all(np.abs(y - want_y) <= 16 * eps * np.maximum(np.abs(want_y), np.abs(x64)) + np.finfo(dtype).tiny)
    # Backward from the output: d' = (d scale) f'(x), db = column sums of d'. The kernel evaluates f' from the
    # rounded y; every slope-from-output formula has |d slope / dy| <= 2 (tanh: 2|y|), so the slope is off by
    # at most 2 * 16 eps max(|y|, |x|) plus 4 eps for its own two or three roundings.
    d = rng.standard_normal((37, 19)).astype(dtype)
    d0 = d.astype(np.float64)
    db = np.empty(19, dtype)
    _core.activation_grad(d, y, db, code, -0.5)
    want_d = d0 * -0.5 * SLOPE[name](x64)
    slope_err = 32 * eps * np.maximum(np.abs(want_y), np.abs(x64)) + 4 * eps
    assert np.all(np.abs(d - want_d) <= np.abs(0.5 * d0) * slope_err + np.finfo(dtype).tiny)
    # db sums 37 rounded terms in order: within 37 eps sum |d'| of the float64 sum of the same d'
    d64 = d.astype(np.float64)
    assert np.all(np.abs(db - d64.sum(axis=0)) <= 37 * eps * np.abs(d64).sum(axis=0))


def test_backward_reports_non_finite_gradients():
    p, mlp, x, buf = _mlp((6, 5, 4), "tanh", np.float32, rows=3)
    mlp.forward(x, buf)
    g = np.ones((3, 4), np.float32)
    assert mlp.backward(x, g.copy(), buf)
    g[1, 2] = np.inf
    assert not mlp.backward(x, g, buf)


def test_mlp_arguments_are_checked():
    p, mlp, x, buf = _mlp((6, 5, 4), "tanh", np.float32, rows=3)
    with pytest.raises(TypeError, match=r"argument W\[0\] must have dtype float64"):
        # x float64 selects the float64 path, whose weights are float32: named, not misread
        _core.mlp_forward(x.astype(np.float64), mlp._W, mlp._b, buf.outputs, 1)
    with pytest.raises(ValueError, match=r"argument x must have shape \(3, 6\)"):
        _core.mlp_forward(x[:, :5].copy(), mlp._W, mlp._b, buf.outputs, 1)
    with pytest.raises(ValueError, match=r"argument out\[1\] must have shape \(3, 4\)"):
        _core.mlp_forward(x, mlp._W, mlp._b, [buf.h[0], np.empty((3, 5), np.float32)], 1)
    with pytest.raises(ValueError, match="must hold 2 arrays"):
        _core.mlp_forward(x, mlp._W, mlp._b[:1], buf.outputs, 1)
    with pytest.raises(ValueError, match="activation code"):
        _core.mlp_forward(x, mlp._W, mlp._b, buf.outputs, 9)
    big = np.empty(40, np.float32)
    with pytest.raises(ValueError, match=r"out\[0\] overlaps out\[1\]"):
        _core.mlp_forward(x, mlp._W, mlp._b, [big[:15].reshape(3, 5), big[10:22].reshape(3, 4)], 1)
    ro = np.empty((3, 4), np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        _core.mlp_forward(x, mlp._W, mlp._b, [buf.h[0], ro], 1)
    with pytest.raises(ValueError, match="C-contiguous"):
        _core.mlp_forward(np.asfortranarray(x), mlp._W, mlp._b, buf.outputs, 1)
    with pytest.raises(ValueError, match="overlaps"):   # the input gradient written over the data
        _core.mlp_backward(x, mlp._W, buf.h, np.ones((3, 4), np.float32), buf.dh, mlp._dW, mlp._db, x, 1, 1.0)
    with pytest.raises(ValueError, match="y is needed"):
        _core.activation_grad(np.ones((2, 2)), None, None, 1, 1.0)
    with pytest.raises(TypeError, match="must be a NumPy array"):
        nn.Tanh.forward([1.0, 2.0])
