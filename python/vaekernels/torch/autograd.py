"""Autograd of the operators: each differentiable kernel's backward is the table's recipe
(``kernels.autodiff.evaluate``) with the operators as its kernel calls, registered with
``torch.library.register_autograd`` (so ``torch.func.grad`` and ``vmap`` of the gradient work too).

What the backward reads, it reads from ``save_for_backward``: every tensor operand, the seed and the
offset included. The noise a backward regenerates is therefore the noise its forward drew, and an
in-place change of a saved operand between the forward and the backward (an offset advanced with
``add_``, an input edited) is refused by autograd's version check, as for native operators.

Second derivatives are not implemented: a gradient computed with ``create_graph=True`` (or under
``torch.func.grad`` of ``torch.func.grad``) carries a node that raises a RuntimeError naming the operator
if it is differentiated again, instead of a silently missing term (PyTorch's once-differentiable pattern,
with public APIs only).
"""
from __future__ import annotations

import torch

from ..kernels.autodiff import evaluate
from ..kernels.spec import Array
from .operators import NAMESPACE, TENSOR_SCALARS, full_args


class _NotTwiceDifferentiable(torch.autograd.Function):
    """The identity on gradients, whose own backward raises: marks the result of a backward that is not
    differentiable itself (``anchor`` is any input that requires grad, so the node is recorded)."""

    @staticmethod
    def forward(name, anchor, *grads):
        return tuple(g.clone() for g in grads)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.name = inputs[0]

    @staticmethod
    def backward(ctx, *_):
        raise RuntimeError(
            f"vaekernels.{ctx.name}: second derivatives are not implemented (its backward is not differentiable "
            f"again); double backward, create_graph=True followed by another grad, and nested torch.func.grad "
            f"are unsupported through this operator")

    @staticmethod
    def vmap(info, in_dims, name, anchor, *grads):
        return tuple(g.clone() for g in grads), tuple(in_dims[2:])


def register(k, lib):
    """Register kernel ``k``'s autograd formula (its table recipe) on ``lib``, and return the
    ``torch.autograd.Function`` (setup_context style) that the Python functions apply: torch's generated
    Function of ``register_autograd`` refuses functorch transforms (pytorch issue #170834), this one runs
    under ``torch.func.grad`` and ``vmap``, with the same setup_context and backward."""
    names = [p.name for p in k.params]
    saved = tuple(i for i, p in enumerate(k.params) if isinstance(p, Array) or p.kind in TENSOR_SCALARS)
    plain = tuple(i for i in range(len(k.params)) if i not in saved)
    grads_of = k.backward.grads

    def setup_context(ctx, inputs, output):
        full = full_args(k, inputs)[0]
        ctx.save_for_backward(*(full[i] for i in saved))
        ctx.plain = {names[i]: full[i] for i in plain}
        outs = output if isinstance(output, tuple) else (output,)
        ctx.out_meta = [(tuple(o.shape), o.dtype) for o in outs]

    def backward(ctx, *upstream):
        tensors = ctx.saved_tensors
        named = dict(ctx.plain)
        named.update((names[i], t) for i, t in zip(saved, tensors))
        with torch.no_grad():
            env = _RecipeEnv(k, named, ctx.out_meta, upstream)
            grads = [evaluate(grads_of[n], env) if n in grads_of and need else None
                     for n, need in zip(names, ctx.needs_input_grad)]
        if torch.is_grad_enabled():            # create_graph=True: differentiating again must raise
            anchor = next((t for t in tuple(tensors) + tuple(upstream)
                           if isinstance(t, torch.Tensor) and t.requires_grad), None)
            given = [i for i, g in enumerate(grads) if g is not None]
            if anchor is not None and given:
                marked = _NotTwiceDifferentiable.apply(k.name, anchor, *(grads[i] for i in given))
                for i, g in zip(given, marked):
                    grads[i] = g
        return tuple(grads)

    torch.library.register_autograd(f"{NAMESPACE}::{k.name}", backward, setup_context=setup_context, lib=lib)
    op = getattr(torch.ops.vaekernels, k.name).default

    def forward(*args):
        return op(*args)

    def setup_context_function(ctx, inputs, output):
        setup_context(ctx, inputs, output)
        ctx.set_materialize_grads(False)

    return type(f"{k.name}_function", (torch.autograd.Function,), {
        "forward": staticmethod(forward), "setup_context": staticmethod(setup_context_function),
        "backward": staticmethod(backward), "generate_vmap_rule": True})


class _RecipeEnv:
    """``kernels.autodiff.evaluate``'s environment for torch: the recipe's kernel calls as operators, made
    only when a needed gradient reads them."""

    def __init__(self, k, named, out_meta, upstream):
        self.k, self.named, self.out_meta = k, named, out_meta
        self.up = dict(zip((o.name for o in k.outputs), upstream))
        self.n_samples = named.get("n_samples")
        self.results = {}

    def value(self, name):
        return self.named[name]

    def upstream(self, name):
        g = self.up.get(name)
        if g is None:
            shape, dtype = self.out_meta[[o.name for o in self.k.outputs].index(name)]
            ref = next(v for v in self.named.values() if isinstance(v, torch.Tensor) and v.is_floating_point())
            g = ref.new_zeros(shape, dtype=dtype)
        return g

    def result(self, call, index):
        if call not in self.results:
            c = self.k.backward.calls[call]
            res = getattr(torch.ops.vaekernels, c.kernel)(*[evaluate(a, self) for a in c.args])
            self.results[call] = res if isinstance(res, tuple) else (res,)
        return self.results[call][index]

    @staticmethod
    def repeat(v, n):
        return v.expand((n,) + tuple(v.shape)).contiguous()
