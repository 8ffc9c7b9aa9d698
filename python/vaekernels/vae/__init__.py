"""The variational autoencoder: ``VAE`` (model.py) with its training (training.py), evaluation
(evaluation.py) and checkpoints (checkpoint.py), on the layers of ``vaekernels.nn`` and the fused kernels."""
from .checkpoint import FORMAT_VERSION
from .model import VAE
from .training import linear_warmup

__all__ = ["VAE", "linear_warmup", "FORMAT_VERSION"]
