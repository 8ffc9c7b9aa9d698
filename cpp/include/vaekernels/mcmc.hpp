// mcmc.hpp: the per-chain pieces of one Metropolis-Hastings step, shared by the CPU sampler
// (cpp/src/mcmc.cpp) and the CUDA random-walk step (cuda/mcmc.cu): where its random numbers come from, the accept decision and
// the Robbins-Monro step-size update.
//
// Random stream of the sampler (Philox4x32-10, philox.hpp):
//   key      the user's 64-bit seed
//   c2       kTagMcmc (2)
//   c3       the chain id = chain_offset + row of x0 (so chain ids must be < 2^32)
//   c0, c1   the block index step * B + k, with B blocks per step (below) and step = 0, 1, ... the global
//            iteration (warm-up included, every iteration counted, thinned or not)
// Within a step, for the random walk:
//   block k < ceil(dim / 4)   eps[4k], eps[4k + 1] = box_muller_f32(w0, w1) and eps[4k + 2], eps[4k + 3] =
//                             box_muller_f32(w2, w3) (r cos, r sin), converted to double (unused beyond dim)
//   the acceptance uniform    if dim % 4 is 1 or 2, u = uniform_open_f64(w2, w3) of the last normal block
//                             (words no normal uses; B = ceil(dim / 4)); otherwise u = uniform_open_f64(w0, w1)
//                             of one more block (B = ceil(dim / 4) + 1; its w2, w3 unused)
// for the independence proposal, MALA and HMC (B = ceil(dim / 2) + 1):
//   block k < ceil(dim / 2)   eps[2k], eps[2k + 1] = box_muller_f64(w0, w1, w2, w3) (the proposal's normals;
//                             for MALA and HMC the momentum p)
//   block B - 1               u = uniform_open_f64(w0, w1); v = uniform_open_f64(w2, w3), HMC's step-size
//                             jitter (unused otherwise).
// u and v lie in (0, 1).
// Why float32 normals for the random walk: only the symmetry of the increment matters for the MH ratio,
// and the float32 transform is exactly symmetric (the angle words k and k + 2^23 mod 2^24 give the same
// reduced angle two quadrants apart, so both normals negate bit for bit; checked for all 2^24 k), so the
// chain targets p exactly, at a fraction of the cost of float64 normals (the increments have 24-bit
// resolution and |eps| <= 5.77). The independence proposal's density enters the ratio, so its normals are
// float64 (|eps| <= 8.49, 52-bit resolution).
// A chain's numbers depend on (seed, chain id, step) only: not on the thread count, on which other chains
// run in the same call, or on the device.
//
// The momentum and the MALA/independence normals are float64: their density enters the acceptance ratio.
//
// Accept rule: accept iff u < exp(delta), delta = log p(x') - log p(x) (+ log q(x) - log q(x') for the
// independence proposal; - K(p') + K(p), K = |p|^2 / 2, for MALA and HMC). A proposal whose log p is NaN or
// +inf (or, for MALA and HMC, whose trajectory met a non-finite gradient) is rejected and counted (n_nan);
// -inf is zero density, an ordinary rejection.
//
// MALA and HMC (cpp/src/mcmc.cpp): leapfrog with step h = s (1 + jitter (2 v - 1)) and a diagonal inverse
// metric m (ones unless adapted; p = eps / sqrt(m) ~ N(0, diag(1/m)), K = sum m p^2 / 2) from (x, p):
//   p += h/2 grad(x);  L times { x += h m p;  p += h grad(x) }, the last kick halved to h/2.
// MALA is the one-step case, L = 1, jitter 0: x' = x + h^2/2 grad(x) + h p, and its acceptance ratio
// q(x | x') / q(x' | x) with q = N(x + h^2/2 grad(x), h^2 I) is exactly e^(K(p) - K(p')) of that step.
#pragma once

#include "random.hpp"

VK_BEGIN_NAMESPACE

// Normal blocks per step; whether the acceptance uniform shares the last of them; blocks per step.
// f64_normals: the independence, MALA and HMC layout (two float64 normals a block), else the random walk's.
VK_HD int64_t mcmc_normal_blocks(int64_t dim, bool f64_normals) { return f64_normals ? (dim + 1) / 2 : (dim + 3) / 4; }
VK_HD bool mcmc_uniform_in_last_normal_block(int64_t dim, bool f64_normals) {
    return !f64_normals && (dim % 4 == 1 || dim % 4 == 2);
}
VK_HD int64_t mcmc_blocks_per_step(int64_t dim, bool f64_normals) {
    return mcmc_normal_blocks(dim, f64_normals) + (mcmc_uniform_in_last_normal_block(dim, f64_normals) ? 0 : 1);
}

VK_HD PhiloxWords mcmc_block(uint64_t seed, uint32_t chain, uint64_t step, int64_t blocks_per_step, int64_t k) {
    return philox_stream_block(seed, step * static_cast<uint64_t>(blocks_per_step) + static_cast<uint64_t>(k),
                               kTagMcmc, chain);
}

// Random-walk normals 4k .. 4k + 3 of (chain, step), and uniform_open_f64(w2, w3) of the same block (the
// acceptance uniform when this is the last normal block and mcmc_uniform_in_last_normal_block).
VK_HD void mcmc_rw_normals(uint64_t seed, uint32_t chain, uint64_t step, int64_t blocks_per_step, int64_t k,
                           double& z0, double& z1, double& z2, double& z3, double& u_spare) {
    const PhiloxWords w = mcmc_block(seed, chain, step, blocks_per_step, k);
    float a, b, c, d;
    box_muller_f32(w.w0, w.w1, a, b);
    box_muller_f32(w.w2, w.w3, c, d);
    z0 = a; z1 = b; z2 = c; z3 = d;
    u_spare = uniform_open_f64(w.w2, w.w3);
}

// Independence-proposal normals 2k, 2k + 1 of (chain, step).
VK_HD void mcmc_independent_normals(uint64_t seed, uint32_t chain, uint64_t step, int64_t blocks_per_step, int64_t k,
                                    double& z0, double& z1) {
    const PhiloxWords w = mcmc_block(seed, chain, step, blocks_per_step, k);
    box_muller_f64(w.w0, w.w1, w.w2, w.w3, z0, z1);
}

// The acceptance uniform from its own block (the last of the step), when it does not share a normal block.
VK_HD double mcmc_accept_uniform(uint64_t seed, uint32_t chain, uint64_t step, int64_t blocks_per_step) {
    const PhiloxWords w = mcmc_block(seed, chain, step, blocks_per_step, blocks_per_step - 1);
    return uniform_open_f64(w.w0, w.w1);
}

// The acceptance uniform u and HMC's jitter uniform v from the last block of a float64-normal step.
VK_HD void mcmc_accept_jitter_uniforms(uint64_t seed, uint32_t chain, uint64_t step, int64_t blocks_per_step,
                                       double& u, double& v) {
    const PhiloxWords w = mcmc_block(seed, chain, step, blocks_per_step, blocks_per_step - 1);
    u = uniform_open_f64(w.w0, w.w1);
    v = uniform_open_f64(w.w2, w.w3);
}

// NaN or +inf: a failed evaluation, rejected and counted.
VK_HD bool mcmc_invalid_log_prob(double lp) { return !(lp < FloatTraits<double>::kInf); }

// One MH decision for a proposal with log-density lp_new and log acceptance ratio delta. Returns -1 (all
// bits set) to accept, 0 to reject: an integer mask, so that CPU lane loops over it vectorise.
// alpha = min(1, e^delta), 0 for an invalid proposal or a NaN delta, is what the step-size adaptation tracks.
VK_HD int64_t mcmc_accept(double u, double lp_new, double delta, double& alpha) {
    const double ratio = vexp(delta);
    const bool valid = lp_new < FloatTraits<double>::kInf;   // false for NaN and +inf
    double a = ratio >= 1.0 ? 1.0 : ratio;
    a = a > 0.0 ? a : 0.0;                                    // NaN -> 0
    alpha = valid ? a : 0.0;
    return (u < ratio && valid) ? -1 : 0;                     // NaN ratio compares false: rejected
}

// Robbins-Monro on the log step size toward the target acceptance probability:
//   log s <- log s + gamma_t (alpha_t - target),  gamma_t = 1 / sqrt(t + 1)  (t counts from 0 in each phase)
// At the end of a warm-up phase [b, e) the step is frozen at log s = (sum of the updated log s over steps
// b + (e - b) / 2 .. e - 1, added in order) * (1.0 / count), s = vexp(log s) (cpp/src/mcmc_sampler.hpp:adapt).
// The CPU and GPU use the same IEEE-exact sqrt, so the adapted step sizes agree to the bit.
VK_HD double mcmc_adapt_log_step(double log_step, double alpha, double target_accept, int64_t t) {
    return log_step + (alpha - target_accept) / vsqrt(static_cast<double>(t + 1));
}

VK_END_NAMESPACE
