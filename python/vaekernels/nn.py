"""Layers with hand-written forward and backward passes, on preallocated buffers.

Everything here works in place on arrays the caller owns, so a training loop allocates nothing per step:

* ``Parameters`` keeps all weights of a model in one flat vector (and the gradients in another), with a
  named, C-contiguous view per tensor. Layers read and write those views; the optimiser updates the whole
  flat vector with a single fused ``adam_step`` call.
* ``Linear`` is ``y = x @ W + b`` with ``W`` of shape (n_in, n_out): one BLAS GEMM forward (``np.dot`` with
  ``out=``), two backward (``dW = x^T dy``, ``dx = dy W^T``; transposes are free, BLAS reads them as flags).
* Activations apply in place and differentiate from their *output* alone, so the pre-activation values
  need not be kept: tanh' = 1 - y^2, relu' = [y > 0], sigmoid' = y (1 - y), softplus' = 1 - e^-y,
  elu' = min(y, 0) + 1.
* ``MLP`` chains them; ``MLPBuffers`` holds one batch size's activations and gradients.

Shapes: a batch of rows ``(B, n)``; all arrays of one model share one dtype (float32 or float64).
"""
from __future__ import annotations

import math

import numpy as np

from . import ops

__all__ = ["Parameters", "Linear", "MLP", "MLPBuffers", "ACTIVATIONS", "activation"]


# -------------------------------------------------------------------------------------------------
# Parameters: one flat vector, named views
# -------------------------------------------------------------------------------------------------
class Parameters:
    """Named tensors stored back to back in one flat vector, with a gradient vector of the same layout.

    spec: sequence of (name, shape). ``values[name]`` and ``grads[name]`` are C-contiguous views into
    ``flat`` and ``grad_flat``; writing through a view updates the flat vector, and vice versa.
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
_GAIN = {"linear": 1.0, "tanh": 1.0, "relu": math.sqrt(2.0), "sigmoid": 1.0, "softplus": 1.0,
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


# -------------------------------------------------------------------------------------------------
# Linear layer
# -------------------------------------------------------------------------------------------------
class Linear:
    """y = x @ W + b, W (n_in, n_out), b (n_out,), both views into a ``Parameters`` object."""

    def __init__(self, params, prefix):
        self.W = params.values[prefix + ".W"]
        self.b = params.values[prefix + ".b"]
        self.dW = params.grads[prefix + ".W"]
        self.db = params.grads[prefix + ".b"]
        self.n_in, self.n_out = self.W.shape

    @staticmethod
    def spec(prefix, n_in, n_out):
        return [(prefix + ".W", (n_in, n_out)), (prefix + ".b", (n_out,))]

    def init(self, seed, offset, gain):
        """W ~ N(0, gain^2 / n_in) from stream positions offset .. offset + W.size - 1; b = 0."""
        ops.randn(self.W.shape, seed, offset, self.W.dtype, out=self.W)
        self.W *= gain / math.sqrt(self.n_in)
        self.b[...] = 0
        return offset + self.W.size

    def forward(self, x, out):
        """out (B, n_out) = x (B, n_in) @ W + b."""
        np.dot(x, self.W, out=out)
        out += self.b
        return out

    def backward(self, x, dy, dx=None):
        """Write dW = x^T dy and db = sum_rows dy into the gradient views; dx = dy W^T if dx is given."""
        np.dot(x.T, dy, out=self.dW)
        np.add.reduce(dy, axis=0, out=self.db)
        if dx is not None:
            np.dot(dy, self.W.T, out=dx)
        return dx


# -------------------------------------------------------------------------------------------------
# Multi-layer perceptron
# -------------------------------------------------------------------------------------------------
class MLP:
    """Linear layers with an activation after every layer but the last (whose output is linear).

    sizes: (n_in, h1, ..., n_out). Parameter names: ``{prefix}.{i}.W`` / ``.b`` for i = 0 .. len(sizes) - 2.
    """

    def __init__(self, params, prefix, sizes, activation_name):
        self.sizes = tuple(sizes)
        self.act = activation(activation_name)
        self.layers = [Linear(params, f"{prefix}.{i}") for i in range(len(sizes) - 1)]

    @staticmethod
    def spec(prefix, sizes):
        out = []
        for i in range(len(sizes) - 1):
            out += Linear.spec(f"{prefix}.{i}", sizes[i], sizes[i + 1])
        return out

    def init(self, seed, offset):
        gain = _GAIN[self.act.name]
        for i, layer in enumerate(self.layers):
            # the output layer feeds a likelihood or the latent head, not an activation: LeCun scale
            offset = layer.init(seed, offset, gain if i < len(self.layers) - 1 else 1.0)
        return offset

    def forward(self, x, buf):
        """Run x (B, n_in) through the network; returns buf.out (B, n_out). Activations stay in buf.h."""
        h = x
        for i, layer in enumerate(self.layers):
            y = buf.out if i == len(self.layers) - 1 else buf.h[i]
            layer.forward(h, y)
            if i < len(self.layers) - 1:
                apply_activation(self.act, y, buf.scratch[i])
            h = y
        return buf.out

    def backward(self, x, dout, buf, dx=None):
        """Given dout = d loss / d output (B, n_out), fill every layer's parameter gradients; write
        d loss / d x into dx if given. dout and buf.dh are overwritten."""
        d = dout
        for i in range(len(self.layers) - 1, -1, -1):
            layer = self.layers[i]
            inp = x if i == 0 else buf.h[i - 1]
            if i == 0:
                layer.backward(inp, d, dx)
            else:
                layer.backward(inp, d, buf.dh[i - 1])
                d = self.act.backward(buf.h[i - 1], buf.dh[i - 1], buf.scratch[i - 1])
        return dx


class MLPBuffers:
    """Work buffers of one MLP for batches of B rows: activations h, their gradients dh, scratch, output."""

    def __init__(self, mlp, batch, dtype):
        hidden = mlp.sizes[1:-1]
        self.h = [np.empty((batch, n), dtype) for n in hidden]
        self.dh = [np.empty((batch, n), dtype) for n in hidden]
        self.scratch = [np.empty((batch, n), dtype) for n in hidden]
        self.out = np.empty((batch, mlp.sizes[-1]), dtype)
