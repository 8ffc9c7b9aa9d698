"""``Linear`` and ``MLP`` with hand-written backward passes, on buffers the caller owns (``MLPBuffers``).

``Linear`` is ``y = x @ W + b`` with ``W`` of shape (n_in, n_out): one BLAS GEMM forward (``np.dot`` with
``out=``), two backward (``dW = x^T dy``, ``dx = dy W^T``; transposes are free, BLAS reads them as flags).
``MLP`` chains them with an activation after every layer but the last.

Threads: forward passes only read the weights and write the caller's buffers (one set of buffers per
thread); backward passes also write the shared gradient vector (one thread per instance).
"""
from __future__ import annotations

import math

import numpy as np

from ..kernels import randn
from .activations import GAIN, activation, apply_activation

__all__ = ["Linear", "MLP", "MLPBuffers"]


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
        randn(self.W.shape, seed, offset, self.W.dtype, out=self.W)
        self.W *= gain / math.sqrt(self.n_in)
        self.b[...] = 0
        return offset + self.W.size

    def forward(self, x, out):
        """out (B, n_out) = x (B, n_in) @ W + b."""
        np.dot(x, self.W, out=out)
        out += self.b
        return out

    def backward(self, x, dy, dx=None, params=True):
        """Write dW = x^T dy and db = sum_rows dy into the gradient views (unless params is False: then
        only the input gradient is formed); dx = dy W^T if dx is given."""
        if params:
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
        gain = GAIN[self.act.name]
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

    def backward(self, x, dout, buf, dx=None, params=True):
        """Given dout = d loss / d output (B, n_out), fill every layer's parameter gradients (params=False:
        skip them, for the input gradient alone); write d loss / d x into dx if given. dout and buf.dh are
        overwritten."""
        d = dout
        for i in range(len(self.layers) - 1, -1, -1):
            layer = self.layers[i]
            inp = x if i == 0 else buf.h[i - 1]
            if i == 0:
                layer.backward(inp, d, dx, params)
            else:
                layer.backward(inp, d, buf.dh[i - 1], params)
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
