"""``vaekernels tour``: a short demonstration of the kernels, each timed
against the plain NumPy formula it replaces and checked against it, at one batch size.

For the full comparison against NumPy, PyTorch and JAX (several sizes, bandwidth, best configurations)
run ``python benchmarks/compare.py`` from a source checkout.
"""
from __future__ import annotations

import time

import numpy as np

from .. import kernels as ops
from ..testing import reference


def _median_ms(fn, repeat=9):
    fn()
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(samples))


def kernel_demo(batch=4096, dim=256, dtype=np.float32, seed=0, print_fn=print):
    """Run each kernel on (batch, dim) data, compare with NumPy, print a table; returns the rows."""
    from .. import _core

    rng = np.random.default_rng(seed)
    mu = rng.standard_normal((batch, dim)).astype(dtype)
    logvar = (0.5 * rng.standard_normal((batch, dim))).astype(dtype)
    logits = (3.0 * rng.standard_normal((batch, dim))).astype(dtype)
    x = (rng.random((batch, dim)) < 0.5).astype(dtype)
    np_rng = np.random.default_rng(seed)

    cases = [
        ("randn", lambda: ops.randn((batch, dim), seed, dtype=dtype),
         lambda: np_rng.standard_normal((batch, dim), dtype=dtype), None),
        ("reparameterize", lambda: ops.reparameterize(mu, logvar, seed),
         lambda: mu + np.exp(0.5 * logvar) * np_rng.standard_normal(mu.shape, dtype=dtype),
         lambda: reference.reparameterize(mu, logvar, seed)),
        ("kl_standard_normal", lambda: ops.kl_standard_normal(mu, logvar),
         lambda: 0.5 * np.sum(mu * mu + np.exp(logvar) - 1.0 - logvar, axis=-1),
         lambda: reference.kl_standard_normal(mu, logvar)),
        ("bernoulli_log_prob_and_grad", lambda: ops.bernoulli_log_prob_and_grad(x, logits)[0],
         lambda: (np.sum(x * logits - np.logaddexp(0, logits), axis=-1), x - 1 / (1 + np.exp(-logits)))[0],
         lambda: reference.bernoulli_log_prob(x, logits)),
        ("normal_log_prob_and_grad", lambda: ops.normal_log_prob_and_grad(x, mu, logvar)[0],
         lambda: -0.5 * np.sum(np.log(2 * np.pi) + logvar + (x - mu) ** 2 * np.exp(-logvar), axis=-1),
         lambda: reference.normal_log_prob(x, mu, logvar)),
        ("latent_forward", lambda: ops.latent_forward(mu, logvar, seed)[0],
         lambda: (mu + np.exp(0.5 * logvar) * np_rng.standard_normal(mu.shape, dtype=dtype),
                  0.5 * np.sum(mu * mu + np.exp(logvar) - 1.0 - logvar, axis=-1))[0],
         lambda: reference.reparameterize(mu, logvar, seed)),
    ]
    print_fn(f"vaekernels kernel demo: ({batch}, {dim}) {np.dtype(dtype).name}, SIMD level {_core.simd_level}, "
             f"{_core.team_size()} threads")
    print_fn(f"{'kernel':<30}{'vaekernels ms':>15}{'NumPy ms':>12}{'speed-up':>10}{'max |diff| vs reference':>26}")
    rows = []
    for name, fast, slow, ref in cases:
        t_fast, t_slow = _median_ms(fast), _median_ms(slow)
        diff = float(np.max(np.abs(fast().astype(np.float64) - ref().astype(np.float64)))) if ref else float("nan")
        rows.append(dict(kernel=name, vaekernels_ms=t_fast, numpy_ms=t_slow, speedup=t_slow / t_fast, max_abs_diff=diff))
        diff_s = f"{diff:.2e}" if ref else "(RNGs differ)"
        print_fn(f"{name:<30}{t_fast:>15.3f}{t_slow:>12.3f}{t_slow / t_fast:>9.1f}x{diff_s:>26}")
    stream = ops.randn(15, 42)
    print_fn(f"stream contract: randn(10, 42, offset=5) == randn(15, 42)[5:] -> "
             f"{bool(np.array_equal(ops.randn(10, 42, offset=5), stream[5:]))}")
    return rows
