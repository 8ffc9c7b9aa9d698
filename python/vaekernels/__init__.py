"""vaekernels: fused C++/CUDA kernels for variational autoencoders and MCMC.

The kernels (``vaekernels.ops``) are exported here; see ``help(vaekernels.randn)`` etc. for shapes,
formulas and the random-stream positions each one consumes.
"""
import os as _os

# OpenMP threads that have finished a kernel spin for a while before sleeping (GNU libgomp: 300,000 spins by
# default). Next to BLAS's own thread pool, or on a busy machine, those spinning threads steal the cores
# the other work needs (measured here: a VAE step 10x slower). A short spin keeps back-to-back kernel calls
# fast and yields the cores soon after. Read by libgomp when it loads, so it must be set before _core is
# imported; a value the user set (or OMP_WAIT_POLICY) wins.
if "GOMP_SPINCOUNT" not in _os.environ and "OMP_WAIT_POLICY" not in _os.environ:
    _os.environ["GOMP_SPINCOUNT"] = "10000"

from . import _core  # noqa: E402
from ._cuda_dispatch import cuda_available, cuda_built
from .ops import *  # noqa: F401,F403
from .ops import __all__ as _ops_all
from . import datasets, nn  # noqa: E402  (the VAE layer, built on the kernels above)
from .vae import VAE  # noqa: E402
from . import mcmc  # noqa: E402  (batched Metropolis-Hastings)

__version__ = "0.1.0"


def simd_levels():
    """Instruction-set levels compiled in and usable on this CPU (all give identical results)."""
    return list(_core.simd_levels())


def simd_level():
    """The level in use (the best available, or the one named by the VAEKERNELS_SIMD environment variable)."""
    return _core.simd_level


__all__ = list(_ops_all) + ["simd_levels", "simd_level", "cuda_built", "cuda_available", "__version__",
                              "VAE", "datasets", "nn"]
