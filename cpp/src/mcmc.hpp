// mcmc.hpp (CPU): the batched Metropolis-Hastings sampler's interface. mcmc.cpp is compiled once per
// instruction-set level like kernels.cpp; mcmc_setup.cpp picks the level kernels() uses and holds the
// host-only set-up (Cholesky factors, the pooled warm-up covariance). No Python types here.
//
// Layout: x0, proposal_mean, proposal_logvar (chains, dim); samples (chains, draws, dim); log_prob
// (chains, draws); per-chain outputs (chains,). All C-contiguous float64.
#pragma once

#include <cstdint>
#include <vector>

#include "vaekernels/targets.hpp"

namespace vk::cpu::mcmc {

enum class Proposal : int { kRandomWalk = 0, kIndependent = 1, kMala = 2, kHmc = 3 };

// Per-draw sample statistics, in this order along the last axis of Outputs::stats / warmup_stats.
enum Stat : int {
    kStatAcceptProb = 0,   // min(1, e^delta) of the iteration's proposal (0 for an invalid one)
    kStatStepSize = 1,     // the step size the iteration used (HMC: after jitter; independence: 1)
    kStatEnergy = 2,       // MALA/HMC: the Hamiltonian -log p(x) + |p|^2 / 2 at the end of the iteration; NaN else
    kStatDiverging = 3,    // MALA/HMC: 1 if the trajectory's energy error exceeded kDivergence or was not finite
    kNumStats = 4
};
// Energy error H(end) - H(start) above which a trajectory counts as divergent (Stan's threshold).
constexpr double kDivergence = 1000.0;

// Told about the run's progress between chunks of steps, on the calling thread and outside any parallel
// region, about every Poll::kSeconds; report may throw to stop the run (the binding throws when a signal
// handler raised, e.g. KeyboardInterrupt on Ctrl-C): the sampler then returns through the exception with no
// worker thread computing.
struct Progress {
    virtual void report(int64_t steps_done, int64_t steps_total) = 0;
    virtual ~Progress() = default;
};

// The chunking of the step loop for Progress: chunks grow until one takes about kSeconds, so a report (and
// with it an interrupt) is never further away than that plus one step. Chunking changes no draw. Defined
// in mcmc_setup.cpp (one build: it reads the clock), used by every instruction-set build of the sampler.
class Poll {
public:
    static constexpr double kSeconds = 0.05;
    Poll(Progress* progress, int64_t total);
    // Steps to run before calling after(); the whole run when nobody listens. (Out of line, as every
    // member: an inline one would be one shared copy for all the instruction-set builds.)
    int64_t chunk() const;
    // After `steps` more steps (done in all): adapts the chunk, reports when due. May throw.
    void after(int64_t steps, int64_t done);

private:
    Progress* progress_;
    int64_t total_, chunk_ = 1;
    double last_report_ = 0.0;
    double chunk_start_ = 0.0;
};

struct Config {
    int64_t chains = 0, dim = 0;
    uint64_t seed = 0;
    uint64_t chain_offset = 0;          // chain id of row 0; ids chain_offset + row must fit in 32 bits
    int64_t n_warmup = 0, n_draws = 0, thin = 1;
    Proposal proposal = Proposal::kRandomWalk;
    bool adapt_step = true;             // Robbins-Monro on each chain's log step during warm-up
    bool adapt_covariance = false;      // pooled proposal covariance from warm-up draws (couples chains)
    double target_accept = 0.234;
    int64_t n_leapfrog = 1;             // HMC: leapfrog steps per iteration (MALA: 1)
    double jitter = 0.0;                // HMC: step sizes drawn uniformly from s (1 +- jitter), jitter in [0, 1)
    bool keep_warmup = false;           // record warm-up iterations into Outputs::warmup_*
    bool adapt_metric = false;          // MALA/HMC: a diagonal inverse metric per chain from its own warm-up draws
    const double* x0 = nullptr;               // (chains, dim)
    const double* step0 = nullptr;            // (chains,) initial (or fixed) step sizes of any proposal
    const double* proposal_mean = nullptr;    // (chains, dim), independence proposal
    const double* proposal_logvar = nullptr;  // (chains, dim)
    Progress* progress = nullptr;             // optional: progress reports and interrupts (see Progress)
};

struct Outputs {
    double* samples = nullptr;       // (chains, n_draws, dim)
    double* log_prob = nullptr;      // (chains, n_draws)
    double* accept_rate = nullptr;   // (chains,) over the n_draws * thin post-warm-up steps
    double* step_size = nullptr;     // (chains,) the frozen step sizes
    int64_t* n_nan = nullptr;        // (chains,) NaN/+inf proposals over all steps
    double* proposal_chol = nullptr; // (dim, dim) lower Cholesky factor of the proposal covariance (identity
                                     // unless adapt_covariance)
    double* stats = nullptr;         // (chains, n_draws, kNumStats), see Stat
    int64_t* n_divergent = nullptr;  // (chains,) divergent MALA/HMC iterations after warm-up (thinned or not)
    double* inv_metric = nullptr;    // (chains, dim) MALA/HMC: the diagonal inverse metric used after warm-up
                                     // (ones unless adapt_metric)
    // With Config::keep_warmup: every warm-up iteration, unthinned.
    double* warmup_samples = nullptr;   // (chains, n_warmup, dim)
    double* warmup_log_prob = nullptr;  // (chains, n_warmup)
    double* warmup_stats = nullptr;     // (chains, n_warmup, kNumStats)
};

// A target evaluated by the caller for all chains at once (a Python callable): once per step, or once per
// leapfrog step for MALA/HMC. begin_step returns a (chains, dim) buffer the sampler fills with the points;
// end_step evaluates it and writes the (chains,) log-densities and, when grad is not null, the (chains, dim)
// gradients. Either may throw; the sampler lets the exception through unchanged.
struct BatchTarget {
    virtual double* begin_step() = 0;
    virtual void end_step(double* log_prob, double* grad) = 0;
    virtual ~BatchTarget() = default;
};

struct Table {
    void (*run_gaussian)(const GaussianParams&, const Config&, Outputs&);
    void (*run_banana)(const BananaParams&, const Config&, Outputs&);
    void (*run_logistic)(const LogisticParams&, const Config&, Outputs&);
    void (*run_batch)(BatchTarget&, const Config&, Outputs&);
    // log p at z (chains, dim) into lp (chains,), and its gradient into grad (chains, dim) unless null:
    // the sampler's own evaluation (same tiles, same bits), for tests and Target.log_prob_and_grad.
    void (*evaluate_gaussian)(const GaussianParams&, int64_t chains, const double* z, double* lp, double* grad);
    void (*evaluate_banana)(const BananaParams&, int64_t chains, const double* z, double* lp, double* grad);
    void (*evaluate_logistic)(const LogisticParams&, int64_t chains, const double* z, double* lp, double* grad);
};

// The table for the instruction-set level cpu::kernels() runs at (same choice, same VAEKERNELS_SIMD).
const Table& table();

// Host-side helpers (mcmc_setup.cpp).
// Lower Cholesky factor of a symmetric (n, n) matrix; false if it is not positive definite.
bool cholesky(const double* a, int64_t n, double* l);
// Inverse of a lower-triangular (n, n) matrix (forward substitution), lower triangle written, rest 0.
void invert_lower(const double* l, int64_t n, double* inv);

// Pooled covariance of warm-up draws, accumulated per chain with a per-chain shift (the chain's state
// when collection starts) so that large means cost no precision.
struct CovarianceAccumulator {
    int64_t dim = 0, count = 0;            // draws per chain
    std::vector<double> shift, sum, scatter;   // (chains, dim), (chains, dim), (chains, dim, dim) lower
    void reset(int64_t chains, int64_t d);
    // Lower Cholesky factor of the pooled covariance (all chains' draws together); falls back to a
    // diagonal factor when the estimate is singular. Deterministic: chains combined in order.
    std::vector<double> pooled_cholesky(int64_t chains) const;
};

}  // namespace vk::cpu::mcmc
