"""``Parameters``: every weight of a model in one flat vector (and the gradients in another), with a named,
C-contiguous view per tensor, so the optimiser updates the whole model with one fused ``adam_step`` call."""
from __future__ import annotations

import math

import numpy as np

__all__ = ["Parameters"]


# -------------------------------------------------------------------------------------------------
# Parameters: one flat vector, named views
# -------------------------------------------------------------------------------------------------
class Parameters:
    """Named tensors stored back to back in one flat vector, with a gradient vector of the same layout.

    spec: sequence of (name, shape). ``values[name]`` and ``grads[name]`` are C-contiguous views into
    ``flat`` and ``grad_flat``; writing through a view updates the flat vector, and vice versa. Not
    synchronised: one thread writes an instance at a time.
    """

    def __init__(self, spec, dtype):
        self.dtype = np.dtype(dtype)
        self.shapes = {}
        self.slices = {}
        start = 0
        for name, shape in spec:
            if name in self.shapes:
                raise ValueError(f"duplicate parameter name {name!r}")
            shape = tuple(int(s) for s in shape)
            size = math.prod(shape)
            self.shapes[name] = shape
            self.slices[name] = slice(start, start + size)
            start += size
        self.size = start
        self.flat = np.zeros(start, self.dtype)
        self.grad_flat = np.zeros(start, self.dtype)
        self.values = self._views(self.flat)
        self.grads = self._views(self.grad_flat)

    def _views(self, flat):
        return {n: flat[self.slices[n]].reshape(self.shapes[n]) for n in self.shapes}

    def names(self):
        return list(self.shapes)


