"""Layers with hand-written forward and backward passes, on preallocated buffers.

Everything here works in place on arrays the caller owns, so a training loop allocates nothing per step:

* ``Parameters`` keeps all weights of a model in one flat vector (and the gradients in another), with a
  named, C-contiguous view per tensor. Layers read and write those views; the optimiser updates the whole
  flat vector with a single fused ``adam_step`` call.
* ``Linear`` is ``y = x @ W + b`` with ``W`` of shape (n_in, n_out): one GEMM forward, two backward
  (``dW = x^T dy``, ``dx = dy W^T``).
* Activations apply in place and differentiate from their *output* alone, so the pre-activation values
  need not be kept: tanh' = 1 - y^2, relu' = [y > 0], sigmoid' = y (1 - y), softplus' = 1 - e^-y,
  elu' = min(y, 0) + 1. The formulas are C++ (cpp/include/vaekernels/activations.hpp).
* ``MLP`` chains them, one C++ call per pass for the whole network (cpp/src/dense.cpp: GEMM blocks on
  NumPy's BLAS across the kernels' thread team, bias and activation fused onto each block; the same bits
  on any thread count); ``MLPBuffers`` holds one batch size's activations and gradients.
* ``staggered_zeros`` allocates long vectors that are streamed together (parameters, gradients, Adam
  moments) at different offsets within a page.

Shapes: a batch of rows ``(B, n)``; all arrays of one model share one dtype (float32 or float64).
"""
from .activations import ACTIVATIONS, ELU, Identity, ReLU, Sigmoid, Softplus, Tanh, activation, apply_activation
from .layers import MLP, Linear, MLPBuffers
from .parameters import Parameters, staggered_zeros

__all__ = ["Parameters", "staggered_zeros", "Linear", "MLP", "MLPBuffers", "ACTIVATIONS", "activation", "apply_activation",
           "Identity", "Tanh", "ReLU", "Sigmoid", "Softplus", "ELU"]
