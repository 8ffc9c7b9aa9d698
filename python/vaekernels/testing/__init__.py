"""The independent NumPy oracle: ``vaekernels.testing.reference`` re-implements every kernel with textbook
formulas (and Philox in vectorised NumPy), for the tests and benchmarks. Not the runtime API."""
from . import reference

__all__ = ["reference"]
