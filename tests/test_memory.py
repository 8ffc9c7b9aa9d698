"""Memory: resident memory is stable over 10^5 calls of every kernel and over repeated mcmc.sample and
VAE.fit calls (no leak in the bindings, the dispatch or the C++ core), and arrays of more than 2^31 elements
are indexed correctly (slow: 8 GiB each)."""
import os

import numpy as np
import pytest

from conftest import vk

from vaekernels.kernels import KERNELS
from vaekernels.kernels.spec import BATCH, Array

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="reads /proc/self/statm (Linux)")
PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def _args(k, shape=(8, 16)):
    rng = np.random.default_rng(0)
    out = []
    for p in k.params:
        if isinstance(p, Array):
            if k.dtypes == ("uint32",):
                out.append(rng.integers(0, 2**32, (8, 4 if p.name == "counters" else 2), dtype=np.uint32))
            else:
                out.append(rng.uniform(0.1, 0.9, shape[:-1] if p.role == BATCH else shape).astype(np.float32))
        else:
            out.append({"seed": 3, "offset": 5, "n_samples": 2, "real": 0.5, "step": 1, "shape": shape,
                        "dtype": np.float32}[p.kind])
    return out


def test_rss_is_stable_over_100k_calls_of_every_kernel():
    """A leak of one Python object (>= 16 bytes with its header) or one C++ allocation (>= 32 bytes with
    malloc's header) per call would grow resident memory by >= 1.6 MB over 10^5 calls; the tolerance is
    1 MiB per kernel after a warm-up that brings the allocator to its steady state."""
    calls = []
    for k in KERNELS:
        args, fn = _args(k), getattr(vk, k.name)
        first = fn(*args)
        first = first if isinstance(first, tuple) else (first,)
        if k.returns == "outputs" and k.outputs:         # the out= path too
            outs = tuple(np.empty_like(o) for o in first)
            calls.append((k.name + " out=", lambda fn=fn, a=args, o=outs: fn(*a, out=o[0] if len(o) == 1 else o)))
        calls.append((k.name, lambda fn=fn, a=args: fn(*a)))
    for name, call in calls:
        for _ in range(5_000):
            call()
        before = rss()
        for _ in range(100_000):
            call()
        grown = rss() - before
        assert grown < 1 << 20, f"{name}: resident memory grew by {grown} bytes over 10^5 calls"


def test_rss_is_stable_over_repeated_sampling_and_training():
    target = vk.mcmc.Banana()
    x0 = np.zeros((1024, 2))
    X = (np.random.default_rng(0).random((512, 32)) < 0.4).astype(np.float32)
    model = vk.VAE(32, 4, hidden=(64,), seed=0)
    runs = {
        "mcmc.sample (C++ target)": lambda: vk.mcmc.sample(target, x0, n_draws=200, n_warmup=50, seed=1,
                                                            progress=False),
        "mcmc.sample (callable)": lambda: vk.mcmc.sample(target.log_prob, x0[:256], n_draws=100, n_warmup=20,
                                                          seed=1, progress=False),
        "VAE.fit": lambda: model.fit(X, epochs=1, batch_size=64, progress=False),
        "VAE.iwae": lambda: model.iwae(X[:64], k=100, seed=0),
    }
    # Each run allocates its results (the samples: 3.3 MB for the C++ target); a leak of them, or of any
    # buffer of the size of the state, would grow memory by megabytes per run: tolerance 2 MiB over 30 runs.
    for name, run in runs.items():
        for _ in range(5):
            run()
        before = rss()
        for _ in range(30):
            run()
        grown = rss() - before
        assert grown < 2 << 20, f"{name}: resident memory grew by {grown} bytes over 30 runs"


def _available_bytes():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


NEEDED = 10 << 30             # 8 GiB for the array and room for the rest of the process


@pytest.mark.slow
@pytest.mark.skipif(_available_bytes() < NEEDED, reason="needs about 10 GiB of free memory")
def test_randn_beyond_2_to_the_31_elements():
    n = 2**31 + 5
    a = vk.randn(n, 17)                                # float32: 8 GiB
    tail = vk.randn(13, 17, offset=2**31 - 8)          # the same positions, drawn on their own
    np.testing.assert_array_equal(a[2**31 - 8:], tail)
    np.testing.assert_array_equal(a[:4], vk.randn(4, 17))
    del a


@pytest.mark.slow
@pytest.mark.skipif(_available_bytes() < NEEDED, reason="needs about 10 GiB of free memory")
def test_row_kernel_beyond_2_to_the_31_elements():
    rows, cols = 2**27 + 3, 16                         # 2^31 + 48 elements in float32: 8 GiB
    z = np.empty((rows, cols), np.float32)
    vk.randn(z.shape, 5, out=z)
    lp, dz = vk.standard_normal_log_prob_and_grad(z[-40:])
    full = vk.standard_normal_log_prob(z)
    np.testing.assert_array_equal(full[-40:], lp)     # the last rows, indexed past 2^31
    np.testing.assert_array_equal(full[:7], vk.standard_normal_log_prob(z[:7]))
    del z
