"""vaekernels: fused C++/CUDA kernels for variational autoencoders and MCMC.

The kernels (``vaekernels.kernels``) are exported here; see ``help(vaekernels.randn)`` etc. for shapes,
formulas and the random-stream positions each one consumes. Areas: ``random`` (streams and keys),
``nn`` (layers with hand-written backward passes), ``VAE`` (``vaekernels.vae``), ``mcmc``, ``datasets``;
``vaekernels.testing`` holds the independent NumPy reference used by the tests and benchmarks.
"""
from . import _core
from .kernels import *  # noqa: F401,F403
from .kernels import __all__ as _kernels_all
from . import random  # noqa: E402
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


__all__ = [n for n in _kernels_all if n not in ("KERNELS", "BY_NAME")] + [
    "simd_levels", "simd_level", "__version__", "VAE", "datasets", "nn", "mcmc", "random"]
