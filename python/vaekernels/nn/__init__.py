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
from .activations import ACTIVATIONS, ELU, Identity, ReLU, Sigmoid, Softplus, Tanh, activation, apply_activation
from .layers import MLP, Linear, MLPBuffers
from .parameters import Parameters

__all__ = ["Parameters", "Linear", "MLP", "MLPBuffers", "ACTIVATIONS", "activation", "apply_activation",
           "Identity", "Tanh", "ReLU", "Sigmoid", "Softplus", "ELU"]
