# Type stub for the private C++ extension vaekernels._core (generated with pybind11-stubgen from the built
# module; regenerate after changing cpp/bindings). Public API: the functions in vaekernels.ops.
"""
vaekernels CPU kernels (private: use the functions in the vaekernels package)
"""
from __future__ import annotations
import collections.abc
import numpy
import numpy.typing
import typing
__all__: list[str] = ['adam_step', 'bernoulli_log_prob', 'bernoulli_log_prob_and_grad', 'kl_normal', 'kl_normal_backward', 'kl_standard_normal', 'kl_standard_normal_backward', 'latent_backward', 'latent_forward', 'mcmc_factor_covariance', 'mcmc_run_banana', 'mcmc_run_callable', 'mcmc_run_gaussian', 'mcmc_run_logistic', 'normal_log_prob', 'normal_log_prob_and_grad', 'openmp', 'philox4x32_10', 'rand', 'randn', 'reparameterize', 'simd_level', 'simd_levels', 'standard_normal_log_prob', 'standard_normal_log_prob_and_grad']
@typing.overload
def adam_step(param: numpy.typing.NDArray[numpy.float32], grad: numpy.typing.NDArray[numpy.float32], m: numpy.typing.NDArray[numpy.float32], v: numpy.typing.NDArray[numpy.float32], step: typing.SupportsInt | typing.SupportsIndex, lr: typing.SupportsFloat | typing.SupportsIndex, beta1: typing.SupportsFloat | typing.SupportsIndex, beta2: typing.SupportsFloat | typing.SupportsIndex, eps: typing.SupportsFloat | typing.SupportsIndex, weight_decay: typing.SupportsFloat | typing.SupportsIndex) -> None:
    ...
@typing.overload
def adam_step(param: numpy.typing.NDArray[numpy.float64], grad: numpy.typing.NDArray[numpy.float64], m: numpy.typing.NDArray[numpy.float64], v: numpy.typing.NDArray[numpy.float64], step: typing.SupportsInt | typing.SupportsIndex, lr: typing.SupportsFloat | typing.SupportsIndex, beta1: typing.SupportsFloat | typing.SupportsIndex, beta2: typing.SupportsFloat | typing.SupportsIndex, eps: typing.SupportsFloat | typing.SupportsIndex, weight_decay: typing.SupportsFloat | typing.SupportsIndex) -> None:
    ...
@typing.overload
def bernoulli_log_prob(x: numpy.typing.NDArray[numpy.float32], logits: numpy.typing.NDArray[numpy.float32], out: numpy.typing.NDArray[numpy.float32]) -> None:
    ...
@typing.overload
def bernoulli_log_prob(x: numpy.typing.NDArray[numpy.float64], logits: numpy.typing.NDArray[numpy.float64], out: numpy.typing.NDArray[numpy.float64]) -> None:
    ...
@typing.overload
def bernoulli_log_prob_and_grad(x: numpy.typing.NDArray[numpy.float32], logits: numpy.typing.NDArray[numpy.float32], out: numpy.typing.NDArray[numpy.float32], dlogits: numpy.typing.NDArray[numpy.float32]) -> None:
    ...
@typing.overload
def bernoulli_log_prob_and_grad(x: numpy.typing.NDArray[numpy.float64], logits: numpy.typing.NDArray[numpy.float64], out: numpy.typing.NDArray[numpy.float64], dlogits: numpy.typing.NDArray[numpy.float64]) -> None:
    ...
@typing.overload
def kl_normal(mu_q: numpy.typing.NDArray[numpy.float32], logvar_q: numpy.typing.NDArray[numpy.float32], mu_p: numpy.typing.NDArray[numpy.float32], logvar_p: numpy.typing.NDArray[numpy.float32], out: numpy.typing.NDArray[numpy.float32]) -> None:
    ...
@typing.overload
def kl_normal(mu_q: numpy.typing.NDArray[numpy.float64], logvar_q: numpy.typing.NDArray[numpy.float64], mu_p: numpy.typing.NDArray[numpy.float64], logvar_p: numpy.typing.NDArray[numpy.float64], out: numpy.typing.NDArray[numpy.float64]) -> None:
    ...
@typing.overload
def kl_normal_backward(grad: numpy.typing.NDArray[numpy.float32], mu_q: numpy.typing.NDArray[numpy.float32], logvar_q: numpy.typing.NDArray[numpy.float32], mu_p: numpy.typing.NDArray[numpy.float32], logvar_p: numpy.typing.NDArray[numpy.float32], dmu_q: numpy.typing.NDArray[numpy.float32], dlogvar_q: numpy.typing.NDArray[numpy.float32], dmu_p: numpy.typing.NDArray[numpy.float32], dlogvar_p: numpy.typing.NDArray[numpy.float32]) -> None:
    ...
@typing.overload
def kl_normal_backward(grad: numpy.typing.NDArray[numpy.float64], mu_q: numpy.typing.NDArray[numpy.float64], logvar_q: numpy.typing.NDArray[numpy.float64], mu_p: numpy.typing.NDArray[numpy.float64], logvar_p: numpy.typing.NDArray[numpy.float64], dmu_q: numpy.typing.NDArray[numpy.float64], dlogvar_q: numpy.typing.NDArray[numpy.float64], dmu_p: numpy.typing.NDArray[numpy.float64], dlogvar_p: numpy.typing.NDArray[numpy.float64]) -> None:
    ...
@typing.overload
def kl_standard_normal(mu: numpy.typing.NDArray[numpy.float32], logvar: numpy.typing.NDArray[numpy.float32], out: numpy.typing.NDArray[numpy.float32]) -> None:
    ...
@typing.overload
def kl_standard_normal(mu: numpy.typing.NDArray[numpy.float64], logvar: numpy.typing.NDArray[numpy.float64], out: numpy.typing.NDArray[numpy.float64]) -> None:
    ...
@typing.overload
def kl_standard_normal_backward(grad: numpy.typing.NDArray[numpy.float32], mu: numpy.typing.NDArray[numpy.float32], logvar: numpy.typing.NDArray[numpy.float32], dmu: numpy.typing.NDArray[numpy.float32], dlogvar: numpy.typing.NDArray[numpy.float32]) -> None:
    ...
@typing.overload
def kl_standard_normal_backward(grad: numpy.typing.NDArray[numpy.float64], mu: numpy.typing.NDArray[numpy.float64], logvar: numpy.typing.NDArray[numpy.float64], dmu: numpy.typing.NDArray[numpy.float64], dlogvar: numpy.typing.NDArray[numpy.float64]) -> None:
    ...
@typing.overload
def latent_backward(dz: numpy.typing.NDArray[numpy.float32], mu: numpy.typing.NDArray[numpy.float32], logvar: numpy.typing.NDArray[numpy.float32], seed: typing.SupportsInt | typing.SupportsIndex, offset: typing.SupportsInt | typing.SupportsIndex, kl_weight: typing.SupportsFloat | typing.SupportsIndex, dmu: numpy.typing.NDArray[numpy.float32], dlogvar: numpy.typing.NDArray[numpy.float32]) -> None:
    ...
@typing.overload
def latent_backward(dz: numpy.typing.NDArray[numpy.float64], mu: numpy.typing.NDArray[numpy.float64], logvar: numpy.typing.NDArray[numpy.float64], seed: typing.SupportsInt | typing.SupportsIndex, offset: typing.SupportsInt | typing.SupportsIndex, kl_weight: typing.SupportsFloat | typing.SupportsIndex, dmu: numpy.typing.NDArray[numpy.float64], dlogvar: numpy.typing.NDArray[numpy.float64]) -> None:
    ...
@typing.overload
def latent_forward(mu: numpy.typing.NDArray[numpy.float32], logvar: numpy.typing.NDArray[numpy.float32], seed: typing.SupportsInt | typing.SupportsIndex, offset: typing.SupportsInt | typing.SupportsIndex, z: numpy.typing.NDArray[numpy.float32], kl: numpy.typing.NDArray[numpy.float32]) -> None:
    ...
@typing.overload
def latent_forward(mu: numpy.typing.NDArray[numpy.float64], logvar: numpy.typing.NDArray[numpy.float64], seed: typing.SupportsInt | typing.SupportsIndex, offset: typing.SupportsInt | typing.SupportsIndex, z: numpy.typing.NDArray[numpy.float64], kl: numpy.typing.NDArray[numpy.float64]) -> None:
    ...
def mcmc_factor_covariance(cov: numpy.typing.NDArray[numpy.float64]) -> tuple:
    """
    (L, L^-1) for a symmetric positive definite matrix; ValueError otherwise.
    """
def mcmc_run_banana(b: typing.SupportsFloat | typing.SupportsIndex, sigma1: typing.SupportsFloat | typing.SupportsIndex, x0: numpy.typing.NDArray[numpy.float64], step0: numpy.typing.NDArray[numpy.float64], proposal_mean: typing.Any, proposal_logvar: typing.Any, settings: tuple[typing.SupportsInt | typing.SupportsIndex, typing.SupportsInt | typing.SupportsIndex, typing.SupportsInt | typing.SupportsIndex, typing.SupportsInt | typing.SupportsIndex, typing.SupportsInt | typing.SupportsIndex, bool, bool, bool, typing.SupportsFloat | typing.SupportsIndex], samples: numpy.typing.NDArray[numpy.float64], log_prob: numpy.typing.NDArray[numpy.float64], accept_rate: numpy.typing.NDArray[numpy.float64], step_size: numpy.typing.NDArray[numpy.float64], n_nan: numpy.typing.NDArray[numpy.int64], proposal_chol: numpy.typing.NDArray[numpy.float64]) -> None:
    ...
def mcmc_run_callable(log_prob: collections.abc.Callable, x0: numpy.typing.NDArray[numpy.float64], step0: numpy.typing.NDArray[numpy.float64], proposal_mean: typing.Any, proposal_logvar: typing.Any, settings: tuple[typing.SupportsInt | typing.SupportsIndex, typing.SupportsInt | typing.SupportsIndex, typing.SupportsInt | typing.SupportsIndex, typing.SupportsInt | typing.SupportsIndex, typing.SupportsInt | typing.SupportsIndex, bool, bool, bool, typing.SupportsFloat | typing.SupportsIndex], samples: numpy.typing.NDArray[numpy.float64], log_prob: numpy.typing.NDArray[numpy.float64], accept_rate: numpy.typing.NDArray[numpy.float64], step_size: numpy.typing.NDArray[numpy.float64], n_nan: numpy.typing.NDArray[numpy.int64], proposal_chol: numpy.typing.NDArray[numpy.float64]) -> None:
    ...
def mcmc_run_gaussian(mean: numpy.typing.NDArray[numpy.float64], inv_chol: numpy.typing.NDArray[numpy.float64], log_norm: typing.SupportsFloat | typing.SupportsIndex, x0: numpy.typing.NDArray[numpy.float64], step0: numpy.typing.NDArray[numpy.float64], proposal_mean: typing.Any, proposal_logvar: typing.Any, settings: tuple[typing.SupportsInt | typing.SupportsIndex, typing.SupportsInt | typing.SupportsIndex, typing.SupportsInt | typing.SupportsIndex, typing.SupportsInt | typing.SupportsIndex, typing.SupportsInt | typing.SupportsIndex, bool, bool, bool, typing.SupportsFloat | typing.SupportsIndex], samples: numpy.typing.NDArray[numpy.float64], log_prob: numpy.typing.NDArray[numpy.float64], accept_rate: numpy.typing.NDArray[numpy.float64], step_size: numpy.typing.NDArray[numpy.float64], n_nan: numpy.typing.NDArray[numpy.int64], proposal_chol: numpy.typing.NDArray[numpy.float64]) -> None:
    ...
def mcmc_run_logistic(X: numpy.typing.NDArray[numpy.float64], y: numpy.typing.NDArray[numpy.float64], prior_scale: typing.SupportsFloat | typing.SupportsIndex, x0: numpy.typing.NDArray[numpy.float64], step0: numpy.typing.NDArray[numpy.float64], proposal_mean: typing.Any, proposal_logvar: typing.Any, settings: tuple[typing.SupportsInt | typing.SupportsIndex, typing.SupportsInt | typing.SupportsIndex, typing.SupportsInt | typing.SupportsIndex, typing.SupportsInt | typing.SupportsIndex, typing.SupportsInt | typing.SupportsIndex, bool, bool, bool, typing.SupportsFloat | typing.SupportsIndex], samples: numpy.typing.NDArray[numpy.float64], log_prob: numpy.typing.NDArray[numpy.float64], accept_rate: numpy.typing.NDArray[numpy.float64], step_size: numpy.typing.NDArray[numpy.float64], n_nan: numpy.typing.NDArray[numpy.int64], proposal_chol: numpy.typing.NDArray[numpy.float64]) -> None:
    ...
@typing.overload
def normal_log_prob(x: numpy.typing.NDArray[numpy.float32], mean: numpy.typing.NDArray[numpy.float32], logvar: numpy.typing.NDArray[numpy.float32], out: numpy.typing.NDArray[numpy.float32]) -> None:
    ...
@typing.overload
def normal_log_prob(x: numpy.typing.NDArray[numpy.float64], mean: numpy.typing.NDArray[numpy.float64], logvar: numpy.typing.NDArray[numpy.float64], out: numpy.typing.NDArray[numpy.float64]) -> None:
    ...
@typing.overload
def normal_log_prob_and_grad(x: numpy.typing.NDArray[numpy.float32], mean: numpy.typing.NDArray[numpy.float32], logvar: numpy.typing.NDArray[numpy.float32], out: numpy.typing.NDArray[numpy.float32], dmean: numpy.typing.NDArray[numpy.float32], dlogvar: numpy.typing.NDArray[numpy.float32]) -> None:
    ...
@typing.overload
def normal_log_prob_and_grad(x: numpy.typing.NDArray[numpy.float64], mean: numpy.typing.NDArray[numpy.float64], logvar: numpy.typing.NDArray[numpy.float64], out: numpy.typing.NDArray[numpy.float64], dmean: numpy.typing.NDArray[numpy.float64], dlogvar: numpy.typing.NDArray[numpy.float64]) -> None:
    ...
def philox4x32_10(counters: numpy.typing.NDArray[numpy.uint32], keys: numpy.typing.NDArray[numpy.uint32], out: numpy.typing.NDArray[numpy.uint32]) -> None:
    ...
@typing.overload
def rand(out: numpy.typing.NDArray[numpy.float32], seed: typing.SupportsInt | typing.SupportsIndex, offset: typing.SupportsInt | typing.SupportsIndex) -> None:
    ...
@typing.overload
def rand(out: numpy.typing.NDArray[numpy.float64], seed: typing.SupportsInt | typing.SupportsIndex, offset: typing.SupportsInt | typing.SupportsIndex) -> None:
    ...
@typing.overload
def randn(out: numpy.typing.NDArray[numpy.float32], seed: typing.SupportsInt | typing.SupportsIndex, offset: typing.SupportsInt | typing.SupportsIndex) -> None:
    ...
@typing.overload
def randn(out: numpy.typing.NDArray[numpy.float64], seed: typing.SupportsInt | typing.SupportsIndex, offset: typing.SupportsInt | typing.SupportsIndex) -> None:
    ...
@typing.overload
def reparameterize(mu: numpy.typing.NDArray[numpy.float32], logvar: numpy.typing.NDArray[numpy.float32], seed: typing.SupportsInt | typing.SupportsIndex, offset: typing.SupportsInt | typing.SupportsIndex, n_samples: typing.SupportsInt | typing.SupportsIndex, out: numpy.typing.NDArray[numpy.float32]) -> None:
    ...
@typing.overload
def reparameterize(mu: numpy.typing.NDArray[numpy.float64], logvar: numpy.typing.NDArray[numpy.float64], seed: typing.SupportsInt | typing.SupportsIndex, offset: typing.SupportsInt | typing.SupportsIndex, n_samples: typing.SupportsInt | typing.SupportsIndex, out: numpy.typing.NDArray[numpy.float64]) -> None:
    ...
def simd_levels() -> list[str]:
    """
    Instruction-set levels compiled in and usable on this CPU.
    """
@typing.overload
def standard_normal_log_prob(z: numpy.typing.NDArray[numpy.float32], out: numpy.typing.NDArray[numpy.float32]) -> None:
    ...
@typing.overload
def standard_normal_log_prob(z: numpy.typing.NDArray[numpy.float64], out: numpy.typing.NDArray[numpy.float64]) -> None:
    ...
@typing.overload
def standard_normal_log_prob_and_grad(z: numpy.typing.NDArray[numpy.float32], out: numpy.typing.NDArray[numpy.float32], dz: numpy.typing.NDArray[numpy.float32]) -> None:
    ...
@typing.overload
def standard_normal_log_prob_and_grad(z: numpy.typing.NDArray[numpy.float64], out: numpy.typing.NDArray[numpy.float64], dz: numpy.typing.NDArray[numpy.float64]) -> None:
    ...
openmp: bool = True
simd_level: str = 'avx512'
