"""What a torch VAE uses: the latent layer ``GaussianLatent`` and the Bernoulli negative log-likelihood
``bernoulli_nll`` / ``BernoulliNLLLoss`` (torch's argument order: prediction first, then target).

The layer holds no stream state. Each call draws a fresh 63-bit key with torch's random number generator
(``torch.randint``: the default CPU generator, or the layer's ``generator``) and runs the fused kernel at
(key, offset 0). So ``torch.manual_seed`` governs the noise as it governs ``torch.randn``; two layers draw
different keys; activation checkpointing, which restores torch's generator before it recomputes a block,
replays the same noise; the backward regenerates the noise from the key its forward saved; and under
``torch.compile`` the key is data of the graph (drawn by the compiled code: with the default inductor
backend from inductor's own generator, seeded by torch's, unless ``torch._inductor.config.fallback_random``
is set), so nothing recompiles and nothing mutates.
"""
from __future__ import annotations

import warnings

import torch

_KEY_HIGH = 2 ** 63 - 1          # keys in [0, 2**63 - 1): torch.randint's widest int64 range


def noise_key(generator=None):
    """A fresh stream key, a 0-d int64 tensor drawn with torch's generator (``generator``, or the default
    CPU generator): what ``GaussianLatent`` passes as ``seed`` at each call."""
    return torch.randint(0, _KEY_HIGH, (), dtype=torch.int64, generator=generator)


class GaussianLatent(torch.nn.Module):
    """The VAE latent layer: ``z, kl = layer(mu, logvar)`` with z = mu + exp(logvar / 2) eps and kl =
    KL(N(mu, exp(logvar)) || N(0, I)) per row, in one fused kernel; the backward regenerates eps from the
    key instead of storing it.

    Each call (training and evaluation alike) draws a new key with torch's generator (``generator``: a
    ``torch.Generator`` on the CPU, or None for the default one; under ``torch.compile`` use None), so
    ``torch.manual_seed`` makes a run reproducible, checkpointing replays the same noise, and the layer has
    no state: its state dict is empty (a state dict from vaekernels <= 0.2, with ``seed`` and ``offset``
    buffers, still loads; those entries are ignored).
    """

    def __init__(self, *, generator=None, **legacy):
        super().__init__()
        if legacy:
            unknown = sorted(set(legacy) - {"seed", "offset"})
            if unknown:
                raise TypeError(f"GaussianLatent got unexpected keyword arguments {unknown}")
            warnings.warn("GaussianLatent(seed=..., offset=...) is deprecated and ignored: the layer draws its "
                          "noise keys from torch's generator (seed it with torch.manual_seed, or pass "
                          "generator=torch.Generator().manual_seed(s))", FutureWarning, stacklevel=2)
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
        self.generator = generator

    def forward(self, mu, logvar):
        from . import latent_forward
        return latent_forward(mu, logvar, noise_key(self.generator), torch.zeros((), dtype=torch.int64))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        for name in ("seed", "offset"):            # the stream buffers of vaekernels <= 0.2
            state_dict.pop(prefix + name, None)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


_REDUCTIONS = ("batch_mean", "sum", "mean", "none")


def bernoulli_nll(logits, target, reduction="batch_mean"):
    """-log Bernoulli(target | sigmoid(logits)), the value and its gradient each from one fused pass.

    logits, target: (..., D), torch's order (prediction, then target, as in
    ``binary_cross_entropy_with_logits``). The kernel sums each row over its last axis; ``reduction`` says
    what happens to those row sums (..., ):

    * ``"batch_mean"`` (default): the mean over rows of the per-row sums, the per-example NLL of a VAE;
    * ``"sum"``: the sum over everything;
    * ``"mean"``: torch's meaning, the mean over all elements (the sum divided by ``logits.numel()``);
    * ``"none"``: the per-row sums, shape (...) (not per element: the kernel reduces each row).
    """
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    from . import bernoulli_log_prob
    nll = -bernoulli_log_prob(target, logits)
    if reduction == "none":
        return nll
    if reduction == "sum":
        return nll.sum()
    if reduction == "mean":
        return nll.sum() / logits.numel()
    return nll.mean()


class BernoulliNLLLoss(torch.nn.Module):
    """``bernoulli_nll`` as a loss module: ``BernoulliNLLLoss(reduction)(logits, target)``."""

    def __init__(self, reduction="batch_mean"):
        super().__init__()
        if reduction not in _REDUCTIONS:
            raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
        self.reduction = reduction

    def forward(self, logits, target):
        return bernoulli_nll(logits, target, self.reduction)


# -------------------------------------------------------------------------------------------------
# deprecated names (vaekernels <= 0.2): same results, with a FutureWarning
# -------------------------------------------------------------------------------------------------
def bernoulli_logits_loss(x, logits):
    """Deprecated: ``bernoulli_nll(logits, x, reduction="none")`` (note the argument order)."""
    warnings.warn("bernoulli_logits_loss(x, logits) is deprecated: use bernoulli_nll(logits, x, reduction='none') "
                  "(torch's argument order)", FutureWarning, stacklevel=2)
    return bernoulli_nll(logits, x, "none")


class BernoulliLogitsLoss(BernoulliNLLLoss):
    """Deprecated: ``BernoulliNLLLoss``; its reduction "mean" averaged the row sums, now called "batch_mean"."""

    def __init__(self, reduction="mean"):
        warnings.warn("BernoulliLogitsLoss is deprecated: use BernoulliNLLLoss; its reduction 'mean' (the mean of "
                      "the row sums) is BernoulliNLLLoss's 'batch_mean'", FutureWarning, stacklevel=2)
        super().__init__({"mean": "batch_mean"}.get(reduction, reduction))
