"""Activations, applied in place and differentiated from their *output* alone, so the pre-activation values
need not be kept: tanh' = 1 - y^2, relu' = [y > 0], sigmoid' = y (1 - y), softplus' = 1 - e^-y,
elu' = min(y, 0) + 1.

The formulas live once, in C++ (cpp/include/vaekernels/activations.hpp), and run as the epilogues of the
MLP's GEMMs (``MLP``); the functions here apply them to whole arrays (float32 or float64, C-contiguous, any
shape): the same bits as inside an MLP on every SIMD level and thread count. NaN stays NaN.
"""
from __future__ import annotations

import math

import numpy as np

from .. import _core

__all__ = ["ACTIVATIONS", "activation", "apply_activation", "Identity", "Tanh", "ReLU", "Sigmoid", "Softplus",
           "ELU", "GAIN"]


def _rows(a, name):
    """a as a 2-d view (rows, last axis) sharing its memory; a must be a C-contiguous float array."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a NumPy array, got {type(a).__name__}")
    if not a.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous (the activations work in place)")
    return a.reshape(-1, a.shape[-1]) if a.ndim >= 1 else a.reshape(1, 1)


class _Activation:
    """An activation: ``forward(x)`` in place, ``backward(y, dy, scratch)`` -> dy * f'(x) in place in dy,
    from the output y = f(x). ``code`` is its number in the C++ kernels."""
    name = ""
    code = -1

    @classmethod
    def forward(cls, x, scratch=None):
        _core.bias_activation(_rows(x, "x"), None, cls.code)
        return x

    @classmethod
    def backward(cls, y, dy, scratch=None):
        d = _rows(dy, "dy")
        if y.shape != dy.shape:
            raise ValueError(f"y and dy must have the same shape, got {y.shape} and {dy.shape}")
        _core.activation_grad(d, _rows(y, "y"), None, cls.code, 1.0)
        return dy


class Identity(_Activation):
    name, code = "linear", 0


class Tanh(_Activation):
    name, code = "tanh", 1


class ReLU(_Activation):
    name, code = "relu", 2


class Sigmoid(_Activation):
    name, code = "sigmoid", 3


class Softplus(_Activation):
    name, code = "softplus", 4


class ELU(_Activation):
    name, code = "elu", 5


ACTIVATIONS = {cls.name: cls for cls in (Identity, Tanh, ReLU, Sigmoid, Softplus, ELU)}

# Initial weight scale per activation (std = gain / sqrt(fan_in)): He for the rectifiers, LeCun otherwise.
GAIN = {"linear": 1.0, "tanh": 1.0, "relu": math.sqrt(2.0), "sigmoid": 1.0, "softplus": 1.0,
        "elu": math.sqrt(2.0)}


def activation(name):
    """The activation class for a name in ``ACTIVATIONS`` (ValueError otherwise)."""
    if not isinstance(name, str):
        raise TypeError(f"activation must be a string, one of {sorted(ACTIVATIONS)}, got {type(name).__name__}")
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {name!r}") from None


def apply_activation(act, x, scratch=None):
    """Apply ``act`` in place on x and return x (scratch: unused, kept for compatibility)."""
    return act.forward(x)
