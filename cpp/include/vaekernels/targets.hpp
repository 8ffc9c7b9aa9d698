// targets.hpp: log-densities of the built-in MCMC targets, shared by the CPU sampler (cpp/src/mcmc.cpp)
// and the CUDA random-walk step (cuda/mcmc.cu).
//
// Each density is one template over the value type V, evaluated for one chain or a pack of chains:
//   V = double      one chain per call (the GPU: one thread per chain);
//   V = a vector    a tile of chains at once (the CPU: GCC/Clang vector extensions, one lane per chain).
// x points at coordinate 0 of the chain(s) and coordinate j is x[j * stride] (stride = number of chains
// for a (dim, chains) device layout; 1 for a CPU tile stored as V[dim]). Only +, -, * on V and V-with-
// double are used, so both instantiations run the same IEEE operations in the same order and agree to
// the bit (contraction is off on both compilers).
//
// The parameter structs are plain data outside the per-ISA namespace (config.hpp), so that every
// instruction-set build of the sampler and the bindings share one type.
//
// All densities are log-densities in float64, normalised where the normaliser is known (Gaussian, Banana)
// and up to a constant otherwise (LogisticRegression: the likelihood times a normalised prior).
// Each target also has its gradient in x (for the MALA and HMC proposals), written below its density;
// grad is laid out like x (coordinate j at grad[j * stride]).
#pragma once

#include <cmath>

#include "gaussian.hpp"

VK_BEGIN_NAMESPACE

// ---------------------------------------------------------------------------------------------
// Gaussian N(mean, Sigma), Sigma = L L^T.
//   log p(x) = -0.5 |M (x - mean)|^2 + log_norm,  M = L^-1 (lower triangular, row-major (dim, dim)),
//   log_norm = -sum_i log L_ii - dim/2 log(2 pi).
// w = M (x - mean) is a triangular product: dim (dim + 1) / 2 multiply-adds per evaluation.
// ---------------------------------------------------------------------------------------------
VK_END_NAMESPACE
namespace vk {
struct GaussianParams {
    const double* mean;       // (dim,)
    const double* inv_chol;   // (dim, dim) row-major, lower triangle used
    double log_norm;
    int64_t dim;
};
}  // namespace vk
VK_BEGIN_NAMESPACE


// Rows of w are computed four at a time (independent accumulators keep the FP pipelines busy on both
// devices); each w_i still sums j = 0..i in order and q sums w_i^2 in order i = 0, 1, ...
template <class V>
VK_HD V gaussian_log_prob(const GaussianParams& p, const V* x, int64_t stride, V* centred /* (dim,) scratch */) {
    const int64_t d = p.dim;
    const double* m = p.inv_chol;
    for (int64_t j = 0; j < d; ++j) centred[j] = x[j * stride] - p.mean[j];
    V q{};
    int64_t i = 0;
    for (; i + 4 <= d; i += 4) {
        const double *m0 = m + i * d, *m1 = m0 + d, *m2 = m1 + d, *m3 = m2 + d;
        V w0 = centred[0] * m0[0], w1 = centred[0] * m1[0], w2 = centred[0] * m2[0], w3 = centred[0] * m3[0];
        for (int64_t j = 1; j <= i; ++j) {
            const V c = centred[j];
            w0 = w0 + c * m0[j];
            w1 = w1 + c * m1[j];
            w2 = w2 + c * m2[j];
            w3 = w3 + c * m3[j];
        }
        w1 = w1 + centred[i + 1] * m1[i + 1];
        w2 = w2 + centred[i + 1] * m2[i + 1];
        w3 = w3 + centred[i + 1] * m3[i + 1];
        w2 = w2 + centred[i + 2] * m2[i + 2];
        w3 = w3 + centred[i + 2] * m3[i + 2];
        w3 = w3 + centred[i + 3] * m3[i + 3];
        q = q + w0 * w0;
        q = q + w1 * w1;
        q = q + w2 * w2;
        q = q + w3 * w3;
    }
    for (; i < d; ++i) {
        const double* mi = m + i * d;
        V w = centred[0] * mi[0];
        for (int64_t j = 1; j <= i; ++j) w = w + centred[j] * mi[j];
        q = q + w * w;
    }
    return q * -0.5 + p.log_norm;
}

// Value and gradient: w = M (x - mean), log p = -0.5 |w|^2 + log_norm, grad = -M^T w. Rows of w in order,
// then grad_j = -sum_{i >= j} M_ij w_i accumulated row by row (i ascending). dim^2 multiply-adds.
template <class V>
VK_HD V gaussian_log_prob_grad(const GaussianParams& p, const V* x, int64_t stride, V* w /* (dim,) scratch */,
                               V* grad) {
    const int64_t d = p.dim;
    const double* m = p.inv_chol;
    V q{};
    for (int64_t i = 0; i < d; ++i) {
        const double* mi = m + i * d;
        V wi = (x[0] - p.mean[0]) * mi[0];
        for (int64_t j = 1; j <= i; ++j) wi = wi + (x[j * stride] - p.mean[j]) * mi[j];
        w[i] = wi;
        q = q + wi * wi;
        grad[i * stride] = V{};
    }
    for (int64_t i = 0; i < d; ++i) {
        const double* mi = m + i * d;
        const V wi = w[i];
        for (int64_t j = 0; j <= i; ++j) grad[j * stride] = grad[j * stride] - wi * mi[j];
    }
    return q * -0.5 + p.log_norm;
}

// ---------------------------------------------------------------------------------------------
// Banana: Haario et al. (1999)'s twisted Gaussian, x1 ~ N(0, sigma1^2), x2 | x1 ~ N(b (sigma1^2 - x1^2), 1),
// further coordinates independent N(0, 1):
//   log p(x) = -x1^2 / (2 sigma1^2) - (x2 + b x1^2 - b sigma1^2)^2 / 2 - sum_{j>=3} x_j^2 / 2 + log_norm,
//   log_norm = -log(sigma1) - dim/2 log(2 pi).
// Exact moments: E x = 0; Var x1 = sigma1^2, Var x2 = 1 + 2 b^2 sigma1^4, Var x_j = 1; Cov(x1, x2) = 0.
// The benchmark target (b = 0.1, sigma1 = 10): log p = -x1^2/200 - (x2 + 0.1 x1^2 - 10)^2/2 + const.
// ---------------------------------------------------------------------------------------------
VK_END_NAMESPACE
namespace vk {
struct BananaParams {
    double b;
    double half_inv_var1;   // 1 / (2 sigma1^2)
    double shift;           // b sigma1^2
    double log_norm;
    int64_t dim;            // >= 2
};
}  // namespace vk
VK_BEGIN_NAMESPACE

// The constants both samplers use (host side, once per run).
inline BananaParams make_banana_params(double b, double sigma1, int64_t dim) {
    const double log_norm = -std::log(sigma1) - 0.5 * static_cast<double>(dim) * kLog2Pi;
    return BananaParams{b, 0.5 / (sigma1 * sigma1), b * sigma1 * sigma1, log_norm, dim};
}


template <class V>
VK_HD V banana_log_prob(const BananaParams& p, const V* x, int64_t stride) {
    const V x1 = x[0];
    const V t = x[stride] + x1 * x1 * p.b - p.shift;
    V lp = x1 * x1 * -p.half_inv_var1 - t * t * 0.5;
    for (int64_t j = 2; j < p.dim; ++j) {
        const V xj = x[j * stride];
        lp = lp - xj * xj * 0.5;
    }
    return lp + p.log_norm;
}

// d/dx1 = -x1 / sigma1^2 - 2 b x1 t, d/dx2 = -t (t = x2 + b x1^2 - b sigma1^2), d/dxj = -xj.
template <class V>
VK_HD V banana_log_prob_grad(const BananaParams& p, const V* x, int64_t stride, V* grad) {
    const V x1 = x[0];
    const V t = x[stride] + x1 * x1 * p.b - p.shift;
    grad[0] = x1 * (-2.0 * p.half_inv_var1) - t * x1 * (2.0 * p.b);
    grad[stride] = -t;
    for (int64_t j = 2; j < p.dim; ++j) grad[j * stride] = -x[j * stride];
    return banana_log_prob(p, x, stride);
}

// ---------------------------------------------------------------------------------------------
// Bayesian logistic regression: y_n ~ Bernoulli(sigmoid(X_n . beta)), beta_j ~ N(0, prior_scale^2).
//   log p(beta) = sum_n [y_n eta_n - softplus(eta_n)] - |beta|^2 / (2 prior_scale^2) + log_norm,
//   eta = X beta, log_norm = -dim (log prior_scale + log(2 pi)/2) (the evidence is not included).
// The likelihood term is bernoulli_log_prob_term (gaussian.hpp). It needs exp/log, which the CPU applies
// lane by lane, so the density is split into its linear part (eta, the prior) and that scalar term.
// ---------------------------------------------------------------------------------------------
VK_END_NAMESPACE
namespace vk {
struct LogisticParams {
    const double* X;          // (n_obs, dim) row-major
    const double* y;          // (n_obs,) in {0, 1} (or [0, 1])
    int64_t n_obs;
    int64_t dim;
    double half_inv_prior_var;
    double log_norm;
};
}  // namespace vk
VK_BEGIN_NAMESPACE

// The constants both samplers use (host side, once per run); X and y are host or device pointers.
inline LogisticParams make_logistic_params(const double* X, const double* y, int64_t n_obs, int64_t dim,
                                           double prior_scale) {
    const double log_norm = -static_cast<double>(dim) * (std::log(prior_scale) + 0.5 * kLog2Pi);
    return LogisticParams{X, y, n_obs, dim, 0.5 / (prior_scale * prior_scale), log_norm};
}


template <class V>
VK_HD V logistic_eta(const LogisticParams& p, int64_t n, const V* beta, int64_t stride) {
    const double* xn = p.X + n * p.dim;
    V eta = beta[0] * xn[0];
    for (int64_t j = 1; j < p.dim; ++j) eta = eta + beta[j * stride] * xn[j];
    return eta;
}

template <class V>
VK_HD V logistic_log_prior(const LogisticParams& p, const V* beta, int64_t stride) {
    V ss = beta[0] * beta[0];
    for (int64_t j = 1; j < p.dim; ++j) ss = ss + beta[j * stride] * beta[j * stride];
    return ss * -p.half_inv_prior_var + p.log_norm;
}

// Gradient of the prior, -beta / prior_scale^2, the start of the gradient's sum; the likelihood adds
// (y_n - sigmoid(eta_n)) X_n (bernoulli_log_prob_term_grad) observation by observation.
template <class V>
VK_HD void logistic_prior_grad(const LogisticParams& p, const V* beta, int64_t stride, V* grad) {
    for (int64_t j = 0; j < p.dim; ++j) grad[j * stride] = beta[j * stride] * (-2.0 * p.half_inv_prior_var);
}

// One chain (GPU): prior first, then the observations in order (the CPU tile sums in the same order).
VK_HD double logistic_log_prob(const LogisticParams& p, const double* beta, int64_t stride) {
    double lp = logistic_log_prior(p, beta, stride);
    for (int64_t n = 0; n < p.n_obs; ++n) lp = lp + bernoulli_log_prob_term(p.y[n], logistic_eta(p, n, beta, stride));
    return lp;
}

VK_END_NAMESPACE
