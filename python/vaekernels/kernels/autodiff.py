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
from .spec import (BATCH, FULL, REQUIRED, SAMPLES, Add, Const, In, Neg, Repeat, Result, RowScale, Scalar,
                   SumSamples, Upstream)
from .table import BY_NAME

__all__ = ["vjp", "differentiable"]


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
    results = []
    for c in k.backward.calls:
        fn = getattr(functions, c.kernel)
        out = fn(*[ctx.eval(a, results) for a in c.args])
        results.append(out if isinstance(out, tuple) else (out,))
    return {name_: ctx.eval(expr, results) for name_, expr in k.backward.grads.items()}


class _Context:
    def __init__(self, kernel, values, upstream):
        self.kernel, self.values = kernel, values
        self.upstream = dict(upstream)
        ref = values[next(p.name for p in kernel.arrays if p.role == FULL)]
        self.ref = ref if hasattr(ref, "shape") and hasattr(ref, "dtype") else np.asarray(ref)
        self.n_samples = values.get("n_samples")

    def _zeros_like_output(self, name):
        """A zero upstream gradient for output ``name`` (its shape follows from its role)."""
        role = next(o.role for o in self.kernel.outputs if o.name == name)
        shape = tuple(self.ref.shape)
        if role == BATCH:
            shape = shape[:-1]
        elif role == SAMPLES and self.n_samples is not None:
            shape = (self.n_samples,) + shape
        return _namespace(self.ref).zeros(shape, dtype=self.ref.dtype)

    def eval(self, e, results):
        if isinstance(e, In):
            return self.values[e.name]
        if isinstance(e, Upstream):
            g = self.upstream.get(e.name)
            return self._zeros_like_output(e.name) if g is None else g
        if isinstance(e, Const):
            return e.value
        if isinstance(e, Result):
            return results[e.call][e.index]
        if isinstance(e, Neg):
            return -self.eval(e.expr, results)
        if isinstance(e, Add):
            return self.eval(e.a, results) + self.eval(e.b, results)
        if isinstance(e, RowScale):
            rows = self.eval(e.rows, results)
            return self.eval(e.expr, results) * rows[..., None]
        if isinstance(e, Repeat):
            v = self.eval(e.expr, results)
            if self.n_samples is None:
                return v
            xp = _namespace(v)
            return xp.broadcast_to(v, (self.n_samples,) + tuple(v.shape))
        if isinstance(e, SumSamples):
            v = self.eval(e.expr, results)
            return v if self.n_samples is None else v.sum(axis=0)
        raise TypeError(f"unknown recipe expression {e!r}")


def _namespace(a):
    """NumPy for host arrays, CuPy for device arrays (imported only then)."""
    if type(a) is not np.ndarray and hasattr(a, "__cuda_array_interface__"):
        from .cuda import cupy
        return cupy()
    return np
