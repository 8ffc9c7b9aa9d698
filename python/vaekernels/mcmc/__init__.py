"""Batched Metropolis-Hastings in C++ (random walk, independence, MALA, HMC): many chains at once, built-in
and Python targets, warm-up adaptation, diagnostics (bulk ESS, rank-normalised R-hat), the posterior p(z|x)
of a trained VAE, and its evidence log p(x) by annealed importance sampling with BDMC bounds (annealing.py).

Example::

    import numpy as np, vaekernels as vk
    target = vk.mcmc.Banana()                       # log p = -x1^2/200 - (x2 + 0.1 x1^2 - 10)^2/2 + c
    x0 = np.zeros((1024, 2))
    res = vk.mcmc.sample(target, x0, n_draws=2000, seed=0)
    res.samples.shape                               # (1024, 2000, 2)
    vk.mcmc.ess(res.samples), vk.mcmc.rhat(res.samples)
"""
from .annealing import AISProblem, AISResult, BDMCResult, VAEProblem, ais, bdmc, schedule, simulate
from .diagnostics import ess, rhat
from .sampler import MCMCResult, sample
from .targets import Banana, Gaussian, LogisticRegression, Target
from .vae_posterior import VAEPosterior, compare_posterior, demo_section, vae_posterior

__all__ = ["sample", "MCMCResult", "Target", "Gaussian", "Banana", "LogisticRegression", "ess", "rhat",
           "vae_posterior", "VAEPosterior", "compare_posterior", "demo_section", "ais", "bdmc", "simulate", "schedule", "AISProblem",
           "VAEProblem", "AISResult", "BDMCResult"]
