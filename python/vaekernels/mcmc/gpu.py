"""One batched random-walk Metropolis-Hastings step on the GPU, for the built-in targets of vaekernels.mcmc.

The kernel (cuda/mcmc.cu) runs one thread per chain with the CPU sampler's random stream, proposal and
accept rule (cpp/include/vaekernels/mcmc.hpp) and the same target log-densities (targets.hpp), so
stepping a chain here with a fixed step size reproduces ``vaekernels.mcmc.sample(..., n_warmup=0,
step_size=s)`` bit for bit. Warm-up adaptation stays on the caller's side (or on the CPU sampler).

    import cupy as cp, vaekernels as vk
    from vaekernels.mcmc import gpu
    target = gpu.DeviceTarget(vk.mcmc.Banana())          # constants uploaded once
    x = cp.asfortranarray(cp.asarray(x0))                        # (chains, dim), coordinate-major storage
    lp = gpu.log_prob(target, x)
    accepted = n_nan = None
    for step in range(n_steps):
        accepted, n_nan = gpu.mh_step(target, x, lp, 3.0, seed, step, accepted=accepted, n_nan=n_nan)

State layout: ``x`` has the logical shape (chains, dim) and must be F-contiguous (stored as (dim, chains),
so the threads of a warp read consecutive addresses); it and ``lp`` are updated in place.
"""
from __future__ import annotations

import numpy as np

from ..kernels import cuda as G
from ..kernels import validate as V

_KINDS = {"Gaussian": "gaussian", "Banana": "banana", "LogisticRegression": "logistic"}


class DeviceTarget:
    """A built-in target (vaekernels.mcmc.Gaussian, Banana or LogisticRegression) with its arrays on a GPU.

    device: None (CuPy's current device) or a GPU index. Build it once and reuse it for every step; its
    arrays are read-only, so steps on several streams of that device may share it.
    """

    def __init__(self, target, device=None):
        self.kind = _KINDS.get(type(target).__name__)
        if self.kind is None:
            raise TypeError(f"target must be a built-in vaekernels.mcmc target (Gaussian, Banana, LogisticRegression), "
                            f"got {type(target).__name__}")
        self.mod = G.require_device()
        cp = self.cp = G.cupy()
        self.target, self.dim = target, int(target.dim)
        self.device = cp.cuda.Device(device) if device is not None else cp.cuda.Device()
        with self.device:
            if self.kind == "gaussian":
                self.arrays = (cp.asarray(target.mean), cp.asarray(target.inv_chol))
                self.params = (self.arrays[0].data.ptr, self.arrays[1].data.ptr, float(target.log_norm), self.dim)
            elif self.kind == "banana":
                self.arrays = ()
                self.params = (float(target.b), float(target.sigma1), self.dim)
            else:
                self.arrays = (cp.asarray(target.X), cp.asarray(target.y))
                self.params = (self.arrays[0].data.ptr, self.arrays[1].data.ptr, int(target.X.shape[0]), self.dim,
                               float(target.prior_scale))


def _device_target(target):
    return target if isinstance(target, DeviceTarget) else DeviceTarget(target)


def _state(t, x):
    """Checks the (chains, dim) F-contiguous float64 state array on the target's device."""
    cp = t.cp
    if not isinstance(x, cp.ndarray):
        raise TypeError(f"x must be a CuPy array, got {type(x).__name__}")
    if x.dtype != np.float64:
        raise TypeError(f"x must have dtype float64, got {x.dtype}")
    if x.ndim != 2 or x.shape[1] != t.dim:
        raise ValueError(f"x must have shape (chains, {t.dim}), got {x.shape}")
    if not x.flags.f_contiguous:
        raise ValueError("x must be F-contiguous, (dim, chains) in memory: pass cupy.asfortranarray(x)")
    if x.device.id != t.device.id:
        raise ValueError(f"x is on GPU {x.device.id} but the target's arrays are on GPU {t.device.id}")
    return x.shape[0]


def _vector(cp, name, a, chains, dtype, device):
    if not isinstance(a, cp.ndarray):
        raise TypeError(f"{name} must be a CuPy array, got {type(a).__name__}")
    if a.dtype != dtype or a.shape != (chains,) or not a.flags.c_contiguous:
        raise ValueError(f"{name} must be a contiguous {np.dtype(dtype)} array of shape ({chains},), got "
                         f"{a.dtype} {a.shape}")
    if a.device.id != device.id:
        raise ValueError(f"{name} is on GPU {a.device.id}, not GPU {device.id}")
    return a


def log_prob(target, x, *, out=None):
    """log p of every chain: x (chains, dim) F-contiguous float64 CuPy array -> (chains,) float64."""
    t = _device_target(target)
    chains = _state(t, x)
    cp = t.cp
    with t.device:
        lp = cp.empty(chains, np.float64) if out is None else _vector(cp, "out", out, chains, np.float64, t.device)
        scratch = cp.empty((chains, t.dim), np.float64)
        fn = getattr(t.mod, f"target_log_prob_{t.kind}")
        fn(*t.params, x.data.ptr, chains, scratch.data.ptr, lp.data.ptr, cp.cuda.get_current_stream().ptr)
    return lp


def mh_step(target, x, lp, step_size, seed, step, *, chain_offset=0, proposal_chol=None, accepted=None,
            n_nan=None):
    """One random-walk MH step of every chain, in place on ``x`` and ``lp``.

    x: (chains, dim) F-contiguous float64; lp: (chains,) its log-densities (from ``log_prob``);
    step_size: a positive float or a (chains,) array; seed, step: the stream key and the global iteration
    (0, 1, ...; each step must be used once per chain); chain_offset: chain id of row 0 (ids < 2**32);
    proposal_chol: optional (dim, dim) lower-triangular factor L (x' = x + s L eps).
    accepted, n_nan: (chains,) int64 counters incremented in place (allocated as zeros when None).
    Returns (accepted, n_nan).
    """
    t = _device_target(target)
    chains = _state(t, x)
    cp = t.cp
    seed = V.integer("seed", seed)
    step = V.integer("step", step, 0, 1 << 63)
    chain_offset = V.integer("chain_offset", chain_offset, 0, 1 << 32)
    if chain_offset + chains > 1 << 32:
        raise ValueError(f"chain ids chain_offset + row must be < 2**32, got {chain_offset} + {chains} chains")
    with t.device:
        lp = _vector(cp, "lp", lp, chains, np.float64, t.device)
        if isinstance(step_size, cp.ndarray):
            ss = _vector(cp, "step_size", step_size, chains, np.float64, t.device)
        else:
            s = float(step_size)
            if not (s > 0 and np.isfinite(s)):
                raise ValueError(f"step_size must be positive and finite, got {step_size!r}")
            ss = cp.full(chains, s, np.float64)
        chol = 0
        if proposal_chol is not None:
            L = cp.ascontiguousarray(cp.asarray(proposal_chol, dtype=np.float64))
            if L.shape != (t.dim, t.dim):
                raise ValueError(f"proposal_chol must have shape ({t.dim}, {t.dim}), got {L.shape}")
            chol = L.data.ptr
        accepted = cp.zeros(chains, np.int64) if accepted is None else _vector(cp, "accepted", accepted, chains,
                                                                               np.int64, t.device)
        n_nan = cp.zeros(chains, np.int64) if n_nan is None else _vector(cp, "n_nan", n_nan, chains, np.int64,
                                                                         t.device)
        xp = cp.empty((t.dim, chains), np.float64)
        scratch = cp.empty((chains, t.dim), np.float64)
        fn = getattr(t.mod, f"mh_step_{t.kind}")
        fn(*t.params, x.data.ptr, lp.data.ptr, ss.data.ptr, chol, chains, seed, step, chain_offset, xp.data.ptr,
           scratch.data.ptr, accepted.data.ptr, n_nan.data.ptr, cp.cuda.get_current_stream().ptr)
    return accepted, n_nan
