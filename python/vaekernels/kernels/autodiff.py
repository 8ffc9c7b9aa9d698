"""Vector-Jacobian products from the kernel descriptions: ``vjp(name, args, upstream)`` evaluates the
backward recipe of a kernel (``Kernel.backward`` in table.py) with the public kernel functions, so it runs
on NumPy and on device arrays alike. The framework adapters map the same recipes onto their autograd;
the tests check every recipe against central finite differences.

    z, kl = vk.latent_forward(mu, logvar, seed, offset)
    grads = vjp("latent_forward", {"mu": mu, "logvar": logvar, "seed": seed, "offset": offset},
                {"z": dz, "kl": dkl})          # -> {"mu": dmu, "logvar": dlogvar}

An upstream gradient left out (or None) counts as zero.
"""
from __future__ import annotations

import numpy as np

from . import functions
from .spec import (BATCH, FULL, REQUIRED, SAMPLES, Const, In, Neg, Repeat, Result, RowScale, Scalar,
                   SumSamples, Upstream)
from .table import BY_NAME

__all__ = ["vjp", "differentiable", "evaluate"]


def evaluate(e, env):
    """The value of backward-recipe expression ``e``: the one interpreter of the recipe language, shared by
    ``vjp`` and the PyTorch and JAX adapters. ``env`` supplies what depends on the array library and the
    call: ``value(name)`` (a parameter), ``upstream(name)`` (an output's cotangent), ``result(call, index)``
    (an output of the recipe's call-th kernel call), ``repeat(v, n)`` (v broadcast over n leading samples)
    and ``n_samples`` (None when the kernel has no sample axis)."""
    if isinstance(e, In):
        return env.value(e.name)
    if isinstance(e, Upstream):
        return env.upstream(e.name)
    if isinstance(e, Const):
        return e.value
    if isinstance(e, Result):
        return env.result(e.call, e.index)
    if isinstance(e, Neg):
        return -evaluate(e.expr, env)
    if isinstance(e, RowScale):
        return evaluate(e.expr, env) * evaluate(e.rows, env)[..., None]
    if isinstance(e, Repeat):
        v = evaluate(e.expr, env)
        return v if env.n_samples is None else env.repeat(v, env.n_samples)
    if isinstance(e, SumSamples):
        v = evaluate(e.expr, env)
        return v if env.n_samples is None else v.sum(0)
    raise TypeError(f"unknown recipe expression {e!r}")


def differentiable(name):
    """The inputs of kernel ``name`` that have a gradient (empty when the kernel has no backward)."""
    k = BY_NAME[name]
    return () if k.backward is None else k.backward.differentiable


def vjp(name, args, upstream):
    """{input name: gradient} of sum_o <upstream[o], output o> for kernel ``name`` called with ``args``
    (a dict by parameter name; defaults apply to scalars left out). Gradients have their inputs' shapes."""
    k = BY_NAME[name]
    if k.backward is None:
        raise ValueError(f"{name} has no backward recipe (value-and-gradient, backward and in-place kernels "
                         f"are not differentiated again)")
    values = {}
    for p in k.params:
        if p.name in args:
            values[p.name] = args[p.name]
        elif isinstance(p, Scalar) and p.default is not REQUIRED:
            values[p.name] = p.default
    missing = [p.name for p in k.params if p.name not in values]
    if missing:
        raise ValueError(f"vjp({name!r}): missing arguments {missing}")
    ctx = _Context(k, values, upstream)
    for c in k.backward.calls:
        out = getattr(functions, c.kernel)(*[evaluate(a, ctx) for a in c.args])
        ctx.results.append(out if isinstance(out, tuple) else (out,))
    return {name_: evaluate(expr, ctx) for name_, expr in k.backward.grads.items()}


class _Context:
    """``evaluate``'s environment for host and device arrays (the public kernel functions)."""

    def __init__(self, kernel, values, upstream):
        self.kernel, self.values = kernel, values
        self.upstream_given = dict(upstream)
        self.results = []
        ref = values[next(p.name for p in kernel.arrays if p.role == FULL)]
        self.ref = ref if hasattr(ref, "shape") and hasattr(ref, "dtype") else np.asarray(ref)
        self.n_samples = values.get("n_samples")

    def value(self, name):
        return self.values[name]

    def upstream(self, name):
        g = self.upstream_given.get(name)
        return self._zeros_like_output(name) if g is None else g

    def result(self, call, index):
        return self.results[call][index]

    @staticmethod
    def repeat(v, n):
        return _namespace(v).broadcast_to(v, (n,) + tuple(v.shape))

    def _zeros_like_output(self, name):
        """A zero upstream gradient for output ``name`` (its shape follows from its role)."""
        role = next(o.role for o in self.kernel.outputs if o.name == name)
        shape = tuple(self.ref.shape)
        if role == BATCH:
            shape = shape[:-1]
        elif role == SAMPLES and self.n_samples is not None:
            shape = (self.n_samples,) + shape
        return _namespace(self.ref).zeros(shape, dtype=self.ref.dtype)


def _namespace(a):
    """NumPy for host arrays, CuPy for device arrays (imported only then)."""
    if type(a) is not np.ndarray and hasattr(a, "__cuda_array_interface__"):
        from .cuda import cupy
        return cupy()
    return np
