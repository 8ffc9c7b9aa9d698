"""Random streams: the counter-based generators and independent keys for every part of a pipeline.

Every random number of vaekernels is a pure function of a 64-bit ``seed`` (the stream key) and a position
``offset``: ``randn(n, seed, offset)`` returns positions offset .. offset + n - 1 of the normal stream of
``seed`` (``rand`` the uniform stream, a separate Philox tag). To give every part of a pipeline its own
independent stream without bookkeeping, derive its key from one base seed and a path of names or
integers::

    import vaekernels as vk
    base = 1234
    noise = vk.random.derive_seed(base, "vae", "noise")          # the latent noise of a training run
    shard = vk.random.derive_seed(base, "mcmc", 7)               # MCMC shard 7
    z = vk.randn((128, 16), noise, offset=step * 2**32)

``derive_seed`` is frozen: its outputs are part of the stream contract (tests/test_random.py pins known
answers), so results keyed this way replay across versions. ``VAE.fit`` derives its streams with it.
"""
from __future__ import annotations

import numbers

import numpy as np

from .kernels.functions import philox4x32_10, rand, randn
from .kernels.validate import integer

__all__ = ["derive_seed", "randn", "rand", "philox4x32_10"]

_MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15


def _splitmix64(x):
    """One step of SplitMix64's output function (Steele, Lea, Flood 2014): a bijection of 64-bit words."""
    x = (x + _GOLDEN) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def _fnv1a64(data):
    """FNV-1a over bytes: a fixed, platform-independent 64-bit digest of a name."""
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & _MASK64
    return h


def _word(part):
    """A path component as a 64-bit word; names and integers never collide (different tweaks)."""
    if isinstance(part, str):
        return _splitmix64(_fnv1a64(part.encode("utf-8")) ^ 0x6E616D65)         # tweak: "name"
    if isinstance(part, (bool, np.bool_)) or not isinstance(part, (numbers.Integral, np.integer)):
        raise TypeError(f"derive_seed path components must be str or int, got {type(part).__name__}")
    return _splitmix64(integer("derive_seed path integer", part) ^ 0x696E7465)   # tweak: "inte"


def derive_seed(seed, *path):
    """A 64-bit stream key for ``path`` (names and/or non-negative integers below 2**64) under ``seed``.

    Different paths give unrelated keys (SplitMix64 mixing of the seed and each component in turn, names
    hashed with FNV-1a), so streams keyed by different paths do not overlap in any useful sense; the same
    (seed, path) always gives the same key, on every platform and version. ``derive_seed(s)`` (empty path)
    is a mixed version of ``s`` itself. Returns a Python int in [0, 2**64).
    """
    key = _splitmix64(integer("seed", seed))
    for part in path:
        key = _splitmix64(key ^ _word(part))
    return key
