"""pytest-benchmark suite for the core kernels: each kernel and its NumPy formula, at (4096, 256) float32.

Run:  python -m pytest benchmarks/test_bench_kernels.py --benchmark-only --benchmark-group-by=param:kernel
Compare the `vaekernels` and `numpy` rows of each group (same run, same data, preallocated outputs).
For PyTorch/JAX peers, several sizes and bandwidth figures use benchmarks/compare.py.
"""
import numpy as np
import pytest

pytest.importorskip("pytest_benchmark")

from compare import numpy_peer, vaekernels_peer  # noqa: E402  (benchmarks/ is on sys.path under pytest)

B, D = 4096, 256
KERNELS = ["randn", "reparameterize", "kl_forward", "kl_backward", "bernoulli_value_grad", "normal_value_grad",
           "latent_forward", "latent_backward", "adam_step"]
_IMPLS = {}


def _impl(name):
    if name not in _IMPLS:
        _IMPLS[name] = {"vaekernels": vaekernels_peer, "numpy": numpy_peer}[name](B, D, np.float32)
    return _IMPLS[name]


@pytest.mark.parametrize("impl", ["vaekernels", "numpy"])
@pytest.mark.parametrize("kernel", KERNELS)
def test_kernel(benchmark, kernel, impl):
    benchmark.group = kernel
    benchmark(_impl(impl)[kernel])
