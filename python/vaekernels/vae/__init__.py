"""The variational autoencoder: ``VAE`` (model.py) with its training (training.py), evaluation
(evaluation.py), checkpoints (checkpoint.py) and the inference gaps (gaps.py: the best Gaussian q* per data
point, approximation and amortisation gaps), on the layers of ``vaekernels.nn`` and the fused kernels."""
from .checkpoint import FORMAT_VERSION
from .model import VAE
from .training import linear_warmup
from .gaps import InferenceGaps, OptimalGaussian, inference_gaps, optimal_gaussian_elbo, plot_gaps

__all__ = ["VAE", "linear_warmup", "FORMAT_VERSION", "optimal_gaussian_elbo", "inference_gaps", "plot_gaps",
           "OptimalGaussian", "InferenceGaps"]
