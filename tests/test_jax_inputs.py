"""vaekernels.jax: what reaches the kernels as traced values is checked where it exists (the XLA FFI
handler), with the Python API's rules, and named in the error; jax.random keys as seeds; the two-word
offset helper's carry; half precision computed in float32. Table-driven: every bounded scalar of every
kernel is tried with a bad value, traced (an error at run time naming it) and as a Python value (the
same rule at trace time)."""
import math
import os

import numpy as np
import pytest

from conftest import vk

from vaekernels.kernels import KERNELS
from vaekernels.kernels.spec import CREATION, PHILOX, Array

jax = pytest.importorskip("jax")
try:
    import vaekernels.jax as vkj
except ImportError as e:                    # the JAX module is built on request only
    if os.environ.get("VAEKERNELS_EXPECT_JAX") == "1":
        raise
    pytest.skip(f"the JAX module is not built ({e})", allow_module_level=True)
import jax.numpy as jnp  # noqa: E402


def _args(k):
    out = []
    for p in k.params:
        if isinstance(p, Array):
            shape = (2, 3) if p.role != "batch" else (2,)
            out.append(jnp.full(shape, 0.5, jnp.float32))
        else:
            out.append({"seed": 7, "offset": 3, "n_samples": 2, "real": 0.25, "step": 3, "shape": (2, 3),
                        "dtype": np.float32}[p.kind])
    return out


def _bad_values(p):
    """(traced value, Python value, the message's pattern) for scalar p of the table."""
    if p.kind == "real":
        cases = [(jnp.float32(np.nan), math.nan, f"{p.name} must be a number, got nan")]
        if p.lo is not None:
            cases.append((jnp.float32(p.lo - 1), p.lo - 1, rf"{p.name} must be (>=|in \[)"))
        if p.hi is not None:
            bad = p.hi if p.hi_open else p.hi + 1
            cases.append((jnp.float32(bad), bad, rf"{p.name} must be in \["))
        return cases
    if p.kind == "step":
        return [(jnp.int32(0), 0, rf"{p.name} must be in \[1, 2\*\*62\), got 0"),
                (jnp.int32(-1), -1, rf"{p.name} must be .*got -1")]
    if p.kind in ("seed", "offset"):
        return [(jnp.int32(-1), -1, rf"{p.name} must be .*got -1")]
    return []


CASES = [(k, i, traced, value, pattern) for k in KERNELS if k.layout != PHILOX
         for i, p in enumerate(k.params) if not isinstance(p, Array)
         for traced, value, pattern in _bad_values(p)]


@pytest.mark.parametrize("k,i,traced,value,pattern", CASES,
                         ids=[f"{k.name}-{k.params[i].name}-{v}" for k, i, _, v, _ in CASES])
def test_a_bad_traced_scalar_is_an_error_naming_it(k, i, traced, value, pattern):
    args = _args(k)
    fn = getattr(vkj, k.name)

    def call(s):
        a = list(args)
        a[i] = s
        out = fn(*a)
        return out
    with pytest.raises(jax.errors.JaxRuntimeError, match=pattern):
        jax.block_until_ready(jax.jit(call)(traced))
    with pytest.raises(ValueError, match=k.params[i].name):
        call(value)
    good = list(args)
    jax.block_until_ready(jax.jit(lambda s: fn(*good[:i], s, *good[i + 1:]))(   # the same slot accepts a good value
        jnp.float32(args[i]) if k.params[i].kind == "real" else jnp.int32(args[i])))


def test_jax_random_keys_are_seeds():
    typed = jax.random.key(42)
    data = np.asarray(jax.random.key_data(typed))
    seed = int(data[0]) | int(data[1]) << 32
    np.testing.assert_array_equal(vkj.randn(5, typed), vk.randn(5, seed))
    np.testing.assert_array_equal(jax.jit(lambda key: vkj.randn(5, key, 3))(typed), vk.randn(5, seed, 3))
    legacy = jax.random.PRNGKey(42)                         # uint32[2]: the same words
    np.testing.assert_array_equal(vkj.randn(5, legacy), vk.randn(5, seed))
    sub = jax.random.split(typed)[1]
    assert not np.array_equal(vkj.randn(5, sub), vkj.randn(5, typed))
    mu = jnp.zeros((3, 4))
    z, _ = jax.jit(lambda key: vkj.latent_forward(mu, mu, key, 0))(typed)
    np.testing.assert_array_equal(z, vk.randn((3, 4), seed))
    rbg = jax.random.key(1, impl="rbg")                     # four words: two drawn from the key
    assert vkj.randn(3, rbg).shape == (3,)
    with pytest.raises(TypeError, match="offset must be an integer, not a jax.random key"):
        vkj.randn(3, 1, typed)


@pytest.mark.parametrize("start,n", [(2**32 - 1, 1), (2**32 - 3, 2**31 - 1), (5, 2**40 + 7), (2**63, 2**63 - 1)])
def test_advance_carries_into_the_high_word(start, n):
    want = vkj.words(start + n)
    np.testing.assert_array_equal(vkj.advance(start, n), want)
    np.testing.assert_array_equal(jax.jit(lambda o: vkj.advance(o, n))(vkj.words(start)), want)   # n static
    if n < 2**31:                                           # a traced int32 count
        np.testing.assert_array_equal(jax.jit(vkj.advance)(vkj.words(start), jnp.int32(n)), want)
    if start + n <= 2**64 - 4:          # the advanced words address the stream where the Python int would
        np.testing.assert_array_equal(vkj.randn(4, 9, vkj.advance(start, n)), vk.randn(4, 9, start + n))


def test_a_jitted_loop_keeps_a_64_bit_offset_as_words():
    """A scan whose offset crosses 2**32 (where an int32 counter would wrap) draws what the NumPy API draws
    at the same 64-bit positions."""
    def body(offset, _):
        return vkj.advance(offset, 6), vkj.randn(6, 3, offset)
    _, draws = jax.lax.scan(body, vkj.words(2**32 - 12), None, length=4)
    want = vk.randn(24, 3, 2**32 - 12).reshape(4, 6)
    np.testing.assert_array_equal(np.asarray(draws), want)


@pytest.mark.parametrize("half", [jnp.float16, jnp.bfloat16], ids=["float16", "bfloat16"])
def test_half_precision_is_computed_in_float32(half):
    for k in KERNELS:
        if k.layout == PHILOX:
            continue
        args = _args(k)
        if k.layout == CREATION:
            args = [half if p.kind == "dtype" else a for p, a in zip(k.params, args)]
            want = getattr(vkj, k.name)(*_args(k))
        else:
            args = [a.astype(half) if isinstance(p, Array) else a for p, a in zip(k.params, args)]
            want = getattr(vkj, k.name)(*[a.astype(jnp.float32) if isinstance(p, Array) else a
                                          for p, a in zip(k.params, args)])
        got = getattr(vkj, k.name)(*args)
        for g, w in zip(got if isinstance(got, tuple) else (got,), want if isinstance(want, tuple) else (want,)):
            assert g.dtype == half, k.name
            np.testing.assert_array_equal(np.asarray(g), np.asarray(w.astype(half)), err_msg=k.name)
    with pytest.raises(TypeError, match="mixed dtypes"):
        vkj.kl_standard_normal(jnp.ones((2, 2), half), jnp.ones((2, 2), jnp.float32))
    mu = jnp.full((2, 3), 0.3, half)
    g = jax.grad(lambda m: vkj.kl_standard_normal(m, m).sum())(mu)
    assert g.dtype == half


def test_forward_mode_is_jaxs_custom_vjp_error():
    mu = jnp.full((2, 3), 0.5)
    with pytest.raises(TypeError, match="custom_vjp"):
        jax.jvp(lambda m: vkj.kl_standard_normal(m, m), (mu,), (mu,))


def test_rematerialisation_replays_the_same_noise():
    """Under jax.checkpoint the forward is recomputed with the same (seed, offset): the gradients equal the
    plain ones bit for bit (the noise is a function of its arguments, never of hidden state)."""
    mu = jnp.linspace(-1, 1, 12).reshape(3, 4)

    def f(m, lv, offset):
        z, kl = vkj.latent_forward(jnp.sin(m), lv, 5, offset)
        return jnp.sum(jnp.tanh(z) ** 2) + kl.sum()
    plain = jax.jit(jax.grad(f, (0, 1)))(mu, 0.3 * mu, vkj.words(7))
    remat = jax.jit(jax.grad(jax.checkpoint(f), (0, 1)))(mu, 0.3 * mu, vkj.words(7))
    for a, b in zip(plain, remat):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
