// mcmc.cu: one batched random-walk Metropolis-Hastings step for the built-in targets, one thread per chain.
//
// Everything a chain does comes from the shared headers: its random numbers and accept rule from
// vaekernels/mcmc.hpp (the Philox stream layout keyed by (seed, chain id, step)), its log-density from
// vaekernels/targets.hpp (instantiated on double with stride = chains). The proposal arithmetic is the
// CPU sampler's (cpp/src/mcmc_sampler.hpp:propose), so a chain stepped here follows the CPU chain with
// the same (seed, chain id, step, step size) bit for bit.
//
// State layout: x and the proposal buffer xp are (dim, chains) coordinate-major, so consecutive threads
// read consecutive addresses; scratch is (chains, dim), one contiguous row per thread (proposal normals,
// then the Gaussian target's centred vector).
#include "common.cuh"
#include "vaekernels/mcmc.hpp"
#include "vaekernels/targets.hpp"

namespace vk::gpu {

namespace {
struct GaussianTarget {
    GaussianParams p;
    __device__ double operator()(const double* x, int64_t stride, double* scratch) const {
        return gaussian_log_prob<double>(p, x, stride, scratch);
    }
};
struct BananaTarget {
    BananaParams p;
    __device__ double operator()(const double* x, int64_t stride, double*) const {
        return banana_log_prob<double>(p, x, stride);
    }
};
struct LogisticTarget {
    LogisticParams p;
    __device__ double operator()(const double* x, int64_t stride, double*) const {
        return logistic_log_prob(p, x, stride);
    }
};
}  // namespace

// ----------------------------------------------------------------------------
// kernels

// lp[c] = log p(x[:, c]); x (dim, chains), lp (chains,), scratch (chains, dim)
template <class Target>
__global__ void target_log_prob_kernel(Target target, const double* x, int64_t chains, int64_t dim, double* scratch,
                                       double* lp) {
    for (int64_t c = global_thread(); c < chains; c += grid_threads())
        lp[c] = target(x + c, chains, scratch + c * dim);
}

// One MH step of every chain at iteration `step`:
//   eps and u from the random-walk layout of vaekernels/mcmc.hpp: float32 Box-Muller normals, 4 per block
//   k < ceil(dim/4); u from the spare words of the last of them when dim % 4 is 1 or 2, else from one more block;
//   x' = x + s eps (or x + s L eps with a lower-triangular proposal factor L, (dim, dim) row-major);
//   accept iff u < exp(log p(x') - log p(x)); NaN/+inf log p(x') is a rejection counted in n_nan.
// x (dim, chains) and lp (chains,) are updated in place; accepted and n_nan (chains,) are incremented.
template <class Target>
__global__ void mh_step_kernel(Target target, double* x, double* lp, const double* step_size, const double* chol,
                               int64_t chains, int64_t dim, uint64_t seed, uint64_t step, uint64_t chain_offset,
                               double* xp, double* scratch, int64_t* accepted, int64_t* n_nan) {
    for (int64_t c = global_thread(); c < chains; c += grid_threads()) {
        const uint32_t chain = static_cast<uint32_t>(chain_offset + static_cast<uint64_t>(c));
        double* eps = scratch + c * dim;
        const int64_t bps = mcmc_blocks_per_step(dim, false);
        double u = 0.0;  // ends as the last normal block's spare-word uniform
        for (int64_t k = 0; 4 * k < dim; ++k) {
            double z[4];
            mcmc_rw_normals(seed, chain, step, bps, k, z[0], z[1], z[2], z[3], u);
            for (int64_t i = 0; i < 4 && 4 * k + i < dim; ++i) eps[4 * k + i] = z[i];
        }
        if (!mcmc_uniform_in_last_normal_block(dim, false)) u = mcmc_accept_uniform(seed, chain, step, bps);
        const double s = step_size[c];
        for (int64_t j = 0; j < dim; ++j) {
            double v = eps[j];
            if (chol != nullptr) {
                const double* lj = chol + j * dim;
                v = eps[0] * lj[0];
                for (int64_t k = 1; k <= j; ++k) v = v + eps[k] * lj[k];
            }
            xp[j * chains + c] = x[j * chains + c] + s * v;
        }
        const double lpp = target(xp + c, chains, scratch + c * dim);
        double alpha;  // min(1, e^delta): what a caller's step-size adaptation would track (unused here)
        if (mcmc_accept(u, lpp, lpp - lp[c], alpha)) {
            for (int64_t j = 0; j < dim; ++j) x[j * chains + c] = xp[j * chains + c];
            lp[c] = lpp;
            accepted[c] += 1;
        }
        n_nan[c] += mcmc_invalid_log_prob(lpp) ? 1 : 0;
    }
}

// ----------------------------------------------------------------------------
// launchers
#if !defined(VK_CUDA_EMULATION)  // the host emulation in tests/cuda_emulation runs the kernels only

namespace {
template <class Target>
void log_prob_launch(const Target& t, const double* x, int64_t chains, int64_t dim, double* scratch, double* lp,
                     cudaStream_t s) {
    if (chains <= 0) return;
    target_log_prob_kernel<<<grid_for(chains, kThreads), kThreads, 0, s>>>(t, x, chains, dim, scratch, lp);
    check_launch("target_log_prob_kernel");
}

template <class Target>
void mh_launch(const Target& t, const MhState& st, cudaStream_t s) {
    if (st.chains <= 0) return;
    mh_step_kernel<<<grid_for(st.chains, kThreads), kThreads, 0, s>>>(
        t, st.x, st.lp, st.step_size, st.chol, st.chains, st.dim, st.seed, st.step, st.chain_offset, st.xp,
        st.scratch, st.accepted, st.n_nan);
    check_launch("mh_step_kernel");
}
}  // namespace

void target_log_prob_gaussian(const GaussianParams& p, const double* x, int64_t chains, double* scratch, double* lp,
                              cudaStream_t s) {
    log_prob_launch(GaussianTarget{p}, x, chains, p.dim, scratch, lp, s);
}
void target_log_prob_banana(const BananaParams& p, const double* x, int64_t chains, double* scratch, double* lp,
                            cudaStream_t s) {
    log_prob_launch(BananaTarget{p}, x, chains, p.dim, scratch, lp, s);
}
void target_log_prob_logistic(const LogisticParams& p, const double* x, int64_t chains, double* scratch, double* lp,
                              cudaStream_t s) {
    log_prob_launch(LogisticTarget{p}, x, chains, p.dim, scratch, lp, s);
}

void mh_step_gaussian(const GaussianParams& p, const MhState& st, cudaStream_t s) { mh_launch(GaussianTarget{p}, st, s); }
void mh_step_banana(const BananaParams& p, const MhState& st, cudaStream_t s) { mh_launch(BananaTarget{p}, st, s); }
void mh_step_logistic(const LogisticParams& p, const MhState& st, cudaStream_t s) { mh_launch(LogisticTarget{p}, st, s); }

#endif  // !VK_CUDA_EMULATION

}  // namespace vk::gpu
