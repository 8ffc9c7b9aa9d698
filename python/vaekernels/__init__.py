"""vaekernels: fused C++/CUDA kernels for variational autoencoders and MCMC.

The kernels (``vaekernels.ops``) are exported here; see ``help(vaekernels.randn)`` etc. for shapes,
formulas and the random-stream positions each one consumes.
"""
from . import _core
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
