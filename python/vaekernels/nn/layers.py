"""``Linear`` and ``MLP`` with hand-written backward passes, on buffers the caller owns (``MLPBuffers``).

``Linear`` is ``y = x @ W + b`` with ``W`` of shape (n_in, n_out): one GEMM forward, two backward
(``dW = x^T dy``, ``dx = dy W^T``). ``MLP`` chains them with an activation after every layer but the last.
Both run in C++ (cpp/src/dense.cpp), one call per pass for the whole network: every GEMM is split into blocks
fixed by the shapes, the blocks run on the kernels' thread team, each on a single-threaded GEMM of NumPy's
own BLAS (``vaekernels._blas.use_numpy_gemm``), with the bias and activation (backward: the activation's
derivative and the bias gradient's column sums) applied to the block while it is in cache. The bits do not
depend on the number of threads. The BLAS runs one thread per call during these passes (pinned as
``_blas.blas_threads(1)``, process-wide while a pass runs).

Threads: forward passes only read the weights and write the caller's buffers (one set of buffers per
thread); backward passes also write the shared gradient vector (one thread per instance).
"""
from __future__ import annotations

import math

import numpy as np

from .. import _blas, _core
from ..kernels import randn
from .activations import GAIN, activation

__all__ = ["Linear", "MLP", "MLPBuffers"]


# -------------------------------------------------------------------------------------------------
# Linear layer
# -------------------------------------------------------------------------------------------------
class Linear:
    """y = x @ W + b, W (n_in, n_out), b (n_out,), both views into a ``Parameters`` object."""

    def __init__(self, params, prefix):
        _blas.use_numpy_gemm()
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
        with _blas.single_threaded():
            _core.mlp_forward(x, [self.W], [self.b], [out], 0)
        return out

    def backward(self, x, dy, dx=None, params=True):
        """Write dW = x^T dy and db = sum_rows dy into the gradient views (unless params is False: then
        only the input gradient is formed); dx = dy W^T if dx is given. dy is not modified."""
        with _blas.single_threaded():
            _core.mlp_backward(x, [self.W], [], dy, [], [self.dW] if params else None, [self.db], dx, 0, 1.0)
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
        self._W = [layer.W for layer in self.layers]
        self._b = [layer.b for layer in self.layers]
        self._dW = [layer.dW for layer in self.layers]
        self._db = [layer.db for layer in self.layers]

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
        with _blas.single_threaded():
            _core.mlp_forward(x, self._W, self._b, buf.outputs, self.act.code)
        return buf.out

    def backward(self, x, dout, buf, dx=None, params=True, scale=1.0):
        """Given dout = d loss / d output (B, n_out), times ``scale``, fill every layer's parameter gradients
        (params=False: skip them, for the input gradient alone); write d loss / d x into dx if given. dout
        and buf.dh are overwritten. Returns whether every parameter gradient is finite."""
        with _blas.single_threaded():
            return _core.mlp_backward(x, self._W, buf.h, dout, buf.dh, self._dW if params else None, self._db, dx,
                                      self.act.code, scale)


class MLPBuffers:
    """Work buffers of one MLP for batches of B rows: activations h, their gradients dh, the output."""

    def __init__(self, mlp, batch, dtype, arrays=None):
        if arrays is None:
            hidden = mlp.sizes[1:-1]
            arrays = {"h": [np.empty((batch, n), dtype) for n in hidden],
                      "dh": [np.empty((batch, n), dtype) for n in hidden],
                      "out": np.empty((batch, mlp.sizes[-1]), dtype)}
        self.h, self.dh, self.out = list(arrays["h"]), list(arrays["dh"]), arrays["out"]
        self.outputs = self.h + [self.out]
