"""The kernel table (vaekernels/kernels/table.py) and what is derived from it: the generated files are
current, the public functions and both extensions expose exactly the table's kernels with its signatures,
every backward recipe is the gradient of its forward kernel (central differences in float64), and every
declared stream use is what the validation enforces."""
import inspect
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, assert_close, vk

from vaekernels.kernels import BY_NAME, KERNELS
from vaekernels.kernels.autodiff import differentiable, vjp
from vaekernels.kernels.spec import BATCH, CREATION, ELEMENTWISE, FULL, PHILOX, REQUIRED, ROWS, Array

CODEGEN = os.path.join(REPO, "python", "vaekernels", "kernels", "codegen.py")


def test_generated_files_are_current():
    r = subprocess.run([sys.executable, CODEGEN, "--check", "--root", REPO], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


def test_public_functions_have_the_tables_signatures_and_docs():
    assert sorted(k.name for k in KERNELS) == sorted(n for n in vk.kernels.functions.__all__)
    for k in KERNELS:
        fn = getattr(vk, k.name)
        params = list(inspect.signature(fn).parameters.values())
        expected = [p.name for p in k.params] + (["out"] if k.outputs else []) + (
            ["device"] if k.layout == CREATION else [])
        assert [p.name for p in params] == expected, k.name
        for p, spec in zip(params, k.params):
            required = isinstance(spec, Array) or spec.default is REQUIRED
            assert (p.default is inspect.Parameter.empty) == required, (k.name, p.name)
        assert fn.__doc__.startswith(k.summary), k.name
        assert fn.__module__ == "vaekernels.kernels.functions"


def test_extensions_register_exactly_the_tables_kernels():
    from vaekernels import _core
    from vaekernels.kernels import cuda
    modules = [_core] + ([cuda.module()] if vk.cuda_built() else [])
    for mod in modules:
        for sub, dtype in (("f32", "float32"), ("f64", "float64"), ("u32", "uint32")):
            names = sorted(n for n in dir(getattr(mod, sub)) if not n.startswith("_"))
            assert names == sorted(k.name for k in KERNELS if dtype in k.dtypes), (mod.__name__, sub)


def test_core_binding_checks_every_array_of_a_record():
    """A direct _core call with a wrong size, dtype, layout or a read-only output is refused by name."""
    from vaekernels import _core
    mu = np.zeros((3, 4))
    kl = np.zeros(3)
    _core.f64.kl_standard_normal((mu, mu, kl), (3, 4), ())
    with pytest.raises(ValueError, match="kl_standard_normal argument kl must hold 3 elements"):
        _core.f64.kl_standard_normal((mu, mu, np.zeros(2)), (3, 4), ())
    with pytest.raises(TypeError, match="logvar must have dtype float64"):
        _core.f64.kl_standard_normal((mu, mu.astype(np.float32), kl), (3, 4), ())
    with pytest.raises(ValueError, match="C-contiguous"):
        _core.f64.kl_standard_normal((mu, np.zeros((4, 3)).T, kl), (3, 4), ())
    ro = np.zeros(3)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        _core.f64.kl_standard_normal((mu, mu, ro), (3, 4), ())
    with pytest.raises(ValueError, match="expected 3 arrays"):
        _core.f64.kl_standard_normal((mu, mu), (3, 4), ())
    with pytest.raises(ValueError, match="extent"):
        _core.f64.kl_standard_normal((mu, mu, kl), (12,), ())


@pytest.mark.parametrize("n_samples", [2**62, 2**40])
def test_core_refuses_size_products_that_overflow(n_samples):
    """mu.size * n_samples beyond int64 is refused, never written out of bounds."""
    from vaekernels import _core
    mu = np.zeros(2**23, np.float32)
    with pytest.raises(ValueError, match="overflow|must hold"):
        _core.f32.reparameterize((mu, mu, np.zeros(4, np.float32)), (mu.size,), (1, 0, n_samples))
    with pytest.raises(ValueError, match="overflow"):
        _core.f32.kl_standard_normal((mu, mu, np.zeros(4, np.float32)), (2**40, 2**40), ())


# -------------------------------------------------------------------------------------------------
# Backward recipes against central differences (float64)
# -------------------------------------------------------------------------------------------------
def _inputs(k, rng, shape=(3, 5), n_samples=None):
    """Arguments for kernel k: arrays of the kernel's shape (logvars moderate), scalars at fixed values."""
    args = {}
    for p in k.params:
        if isinstance(p, Array):
            s = shape[:-1] if p.role == BATCH else shape
            a = rng.standard_normal(s)
            if p.name == "x" and k.name.startswith("bernoulli"):
                a = rng.random(s)
            args[p.name] = a * (0.5 if "logvar" in p.name else 1.0)
        elif p.kind == "seed":
            args[p.name] = 12345
        elif p.kind == "offset":
            args[p.name] = 7
        elif p.kind == "n_samples":
            args[p.name] = n_samples
    return args


def _call(k, args):
    return getattr(vk, k.name)(*[args[p.name] for p in k.params if p.name in args])


@pytest.mark.parametrize("name,n_samples", [(k.name, None) for k in KERNELS if k.backward is not None]
                         + [("reparameterize", 3)])
def test_backward_recipe_is_the_gradient(name, n_samples):
    k = BY_NAME[name]
    rng = np.random.default_rng(3)
    args = _inputs(k, rng, n_samples=n_samples)
    outs = _call(k, args)
    outs = outs if isinstance(outs, tuple) else (outs,)
    upstream = {o.name: rng.standard_normal(v.shape) for o, v in zip(k.outputs, outs)}

    def objective(a):
        res = _call(k, a)
        res = res if isinstance(res, tuple) else (res,)
        return sum(float(np.sum(upstream[o.name] * r)) for o, r in zip(k.outputs, res))

    grads = vjp(name, args, upstream)
    assert set(grads) == set(differentiable(name))
    h = 1e-6
    for wrt, g in grads.items():
        assert g.shape == np.shape(args[wrt]), (name, wrt)
        fd = np.empty_like(g)
        for i in np.ndindex(g.shape):
            plus, minus = dict(args), dict(args)
            plus[wrt] = args[wrt].copy()
            minus[wrt] = args[wrt].copy()
            plus[wrt][i] += h
            minus[wrt][i] -= h
            fd[i] = (objective(plus) - objective(minus)) / (2 * h)
        # central differences: O(h^2) truncation plus ~1e-16 / h cancellation in each difference
        assert_close(g, fd, atol=2e-7, rtol=2e-7, name=f"{name} d/d{wrt}")


def test_missing_upstream_counts_as_zero():
    rng = np.random.default_rng(0)
    mu, lv = rng.standard_normal((2, 3)), rng.standard_normal((2, 3))
    g = vjp("latent_forward", {"mu": mu, "logvar": lv, "seed": 1}, {"kl": np.ones(2)})
    np.testing.assert_array_equal(g["mu"], mu)                         # d kl / d mu = mu
    with pytest.raises(ValueError, match="no backward"):
        vjp("latent_backward", {}, {})


# -------------------------------------------------------------------------------------------------
# Declared stream use = what the validation enforces
# -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", [k.name for k in KERNELS if k.stream is not None])
def test_declared_stream_positions_reach_exactly_the_stream_end(name):
    k = BY_NAME[name]
    shape, n_samples = (2, 3), (2 if k.stream.count == "samples" else None)
    count = 6 * (n_samples or 1)
    args = _inputs(k, np.random.default_rng(1), shape, n_samples)
    if k.layout == CREATION:
        args.update(shape=shape, dtype=np.float64)
    args["offset"] = 2**64 - count
    _call(k, args)                                      # the last `count` positions: allowed
    args["offset"] += 1
    with pytest.raises(ValueError, match="2\\*\\*64"):
        _call(k, args)


def test_table_is_consistent():
    for k in KERNELS:
        assert k.layout in (ROWS, ELEMENTWISE, CREATION, PHILOX), k.name
        names = [p.name for p in k.params] + [o.name for o in k.outputs]
        assert len(set(names)) == len(names), k.name
        if k.layout in (ROWS, ELEMENTWISE):
            assert any(p.role == FULL for p in k.arrays), k.name
        if k.backward is not None:
            for c in k.backward.calls:
                assert c.kernel in BY_NAME and len(c.args) == len(BY_NAME[c.kernel].params), (k.name, c.kernel)
            assert set(k.backward.grads) <= {p.name for p in k.arrays}, k.name
