"""Activations, applied in place and differentiated from their *output* alone, so the pre-activation values
need not be kept: tanh' = 1 - y^2, relu' = [y > 0], sigmoid' = y (1 - y), softplus' = 1 - e^-y,
elu' = min(y, 0) + 1."""
from __future__ import annotations

import math

import numpy as np

__all__ = ["ACTIVATIONS", "activation", "apply_activation", "Identity", "Tanh", "ReLU", "Sigmoid", "Softplus",
           "ELU", "GAIN"]


# -------------------------------------------------------------------------------------------------
# Activations (in place; backward from the output)
# -------------------------------------------------------------------------------------------------
class Identity:
    name = "linear"

    @staticmethod
    def forward(x):
        return x

    @staticmethod
    def backward(y, dy, scratch):
        return dy


class Tanh:
    name = "tanh"

    @staticmethod
    def forward(x):
        np.tanh(x, out=x)
        return x

    @staticmethod
    def backward(y, dy, scratch):
        # dx = dy (1 - y^2) = dy - dy y y
        np.multiply(dy, y, out=scratch)
        scratch *= y
        np.subtract(dy, scratch, out=dy)
        return dy


class ReLU:
    name = "relu"

    @staticmethod
    def forward(x):
        np.maximum(x, 0, out=x)
        return x

    @staticmethod
    def backward(y, dy, scratch):
        np.greater(y, 0, out=scratch)  # 1.0 where the unit was active, else 0.0
        dy *= scratch
        return dy


class Sigmoid:
    name = "sigmoid"

    @staticmethod
    def forward(x):
        # sigmoid(x) = (1 + tanh(x / 2)) / 2: no exp overflow for large |x|
        x *= 0.5
        np.tanh(x, out=x)
        x += 1
        x *= 0.5
        return x

    @staticmethod
    def backward(y, dy, scratch):
        # dx = dy y (1 - y)
        np.subtract(1, y, out=scratch)
        scratch *= y
        dy *= scratch
        return dy


class Softplus:
    name = "softplus"

    @staticmethod
    def forward(x, scratch=None):
        # softplus(x) = max(x, 0) + log1p(exp(-|x|)): finite for any finite x
        s = np.abs(x) if scratch is None else np.abs(x, out=scratch)
        np.negative(s, out=s)
        np.exp(s, out=s)
        np.log1p(s, out=s)
        np.maximum(x, 0, out=x)
        x += s
        return x

    @staticmethod
    def backward(y, dy, scratch):
        # softplus'(x) = sigmoid(x) = 1 - exp(-y) = -expm1(-y), y = softplus(x) > 0
        np.negative(y, out=scratch)
        np.expm1(scratch, out=scratch)
        np.negative(scratch, out=scratch)
        dy *= scratch
        return dy


class ELU:
    name = "elu"

    @staticmethod
    def forward(x, scratch=None):
        s = np.minimum(x, 0) if scratch is None else np.minimum(x, 0, out=scratch)
        np.expm1(s, out=s)
        np.maximum(x, 0, out=x)
        x += s
        return x

    @staticmethod
    def backward(y, dy, scratch):
        # elu'(x) = 1 for x > 0, exp(x) = y + 1 otherwise: min(y, 0) + 1 covers both
        np.minimum(y, 0, out=scratch)
        scratch += 1
        dy *= scratch
        return dy


ACTIVATIONS = {cls.name: cls for cls in (Identity, Tanh, ReLU, Sigmoid, Softplus, ELU)}
_NEEDS_SCRATCH_FORWARD = (Softplus, ELU)

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


def apply_activation(act, x, scratch):
    """Apply ``act`` in place on x (scratch: a buffer of x's shape for the activations that need one)."""
    if act in _NEEDS_SCRATCH_FORWARD:
        return act.forward(x, scratch)
    return act.forward(x)


