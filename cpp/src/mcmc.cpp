// mcmc.cpp: the CPU batched Metropolis-Hastings sampler. Compiled once per instruction-set level like
// kernels.cpp (CMake sets VK_ISA_NAMESPACE and the -m flags); every level gives the same bits. The tile
// state and its steps (random walk, independence, MALA/HMC trajectories, accept, adaptation, recording) are
// in mcmc_sampler.hpp; this file drives them and holds the built-in targets.
//
// Built-in targets: every tile runs its whole chain loop in one task of the thread team (parallel.hpp).
// Batch (Python) targets: one step at a time for all chains, the target called once per step between
// the proposal and the accept pass (MALA/HMC: once per leapfrog step, between the kicks).
#include "mcmc_sampler.hpp"

#define VK_CAT2(a, b) a##b
#define VK_CAT(a, b) VK_CAT2(a, b)

VK_BEGIN_NAMESPACE
namespace {

// ---------------------------------------------------------------------------------------------
// Built-in targets: each tile runs its chain loop in one task
// ---------------------------------------------------------------------------------------------
// eval(tile, x (dim, kTile) lanes, lp (kTile,), g (dim, kTile) lanes or null) evaluates the target (and its
// gradient when g is not null) for the tile's lanes.
// Steps run in chunks (cpu::mcmc::Poll) between which progress is reported and Ctrl-C can stop the run;
// each tile's steps run in the same order whatever the chunking.
template <class Eval>
void run_builtin(const Config& cfg, Outputs& out, Eval eval) {
    Sampler s(cfg, out);
    cpu::mcmc::Poll poll(cfg.progress, s.n_steps());
    const int64_t n_tiles = s.n_tiles();
    const bool gradient = s.gradient();
    cpu::parallel_tasks(n_tiles, [&](int64_t b) {
        Tile& t = s.tile(b);
        eval(t, t.x.data(), t.lp, gradient ? t.g.data() : nullptr);
    });
    for (const Phase& seg : s.segments()) {
        if (seg.begin == s.covariance_step()) s.estimate_covariance();
        for (int64_t c0 = seg.begin; c0 < seg.end;) {
            const int64_t c1 = std::min(seg.end, c0 + poll.chunk());
            cpu::parallel_tasks(n_tiles, [&](int64_t b) {
                Tile& t = s.tile(b);
                for (int64_t step = c0; step < c1; ++step) {
                    if (gradient) {
                        s.start_trajectory(t, step);
                        for (int64_t i = 0; i < s.n_leapfrog(); ++i) {
                            eval(t, t.xp.data(), t.lpp, t.gp.data());
                            s.continue_trajectory(t, i);
                        }
                    } else {
                        s.propose(t, step);
                        eval(t, t.xp.data(), t.lpp, nullptr);
                    }
                    s.accept(t, step);
                }
            });
            poll.after(c1 - c0, c1);
            c0 = c1;
        }
    }
    s.finish();
}

// The targets outside the sampler: points (chains, dim) through the same tile evaluation, for the tests of
// the gradients and Target.log_prob_and_grad.
template <class Eval>
void evaluate(int64_t chains, int64_t dim, const double* z, double* lp, double* grad, Eval eval) {
    cpu::parallel_tasks((chains + kTile - 1) / kTile, [&](int64_t b) {
        Tile t;
        t.row0 = b * kTile;
        t.n = static_cast<int>(std::min<int64_t>(kTile, chains - t.row0));
        t.x.assign(dim * kTile, 0.0);
        t.g.assign(dim * kTile, 0.0);
        t.scratch.assign(dim * kPack, 0.0);
        for (int l = 0; l < kTile; ++l)
            for (int64_t j = 0; j < dim; ++j) t.x[j * kTile + l] = z[(t.row0 + (l < t.n ? l : 0)) * dim + j];
        eval(t, t.x.data(), t.lp, grad != nullptr ? t.g.data() : nullptr);
        for (int l = 0; l < t.n; ++l) {
            lp[t.row0 + l] = t.lp[l];
            for (int64_t j = 0; grad != nullptr && j < dim; ++j) grad[(t.row0 + l) * dim + j] = t.g[j * kTile + l];
        }
    });
}

// The densities of targets.hpp on Packs: half h of the tile is Pack h of each row (stride kHalves).
// `Run` is run_builtin (the sampler) or evaluate.
template <class Run>
void gaussian_target(const GaussianParams& p, Run run) {
    run([&p](Tile& t, const double* x, double* lp, double* g) {
        for (int h = 0; h < kHalves; ++h) {
            const Pack r = g == nullptr
                ? gaussian_log_prob<Pack>(p, packs(x) + h, kHalves, packs(t.scratch.data()))
                : gaussian_log_prob_grad<Pack>(p, packs(x) + h, kHalves, packs(t.scratch.data()), packs(g) + h);
            std::memcpy(lp + h * kPack, &r, sizeof r);
        }
    });
}

template <class Run>
void banana_target(const BananaParams& p, Run run) {
    run([&p](Tile&, const double* x, double* lp, double* g) {
        for (int h = 0; h < kHalves; ++h) {
            const Pack r = g == nullptr ? banana_log_prob<Pack>(p, packs(x) + h, kHalves)
                                        : banana_log_prob_grad<Pack>(p, packs(x) + h, kHalves, packs(g) + h);
            std::memcpy(lp + h * kPack, &r, sizeof r);
        }
    });
}

// Observations in blocks: the linear predictors of a block for all lanes, then one vectorised pass of the
// Bernoulli term (and its derivative in eta), then the terms added to each lane in observation order (the
// order of the one-chain logistic_log_prob) and, for the gradient, d eta_n X_n added observation by
// observation.
constexpr int64_t kObsBlock = 32;

template <class Run>
void logistic_target(const LogisticParams& p, Run run) {
    run([&p](Tile&, const double* x, double* lp, double* g) {
        alignas(64) double eta[kObsBlock][kTile], deta[kObsBlock][kTile];
        for (int h = 0; h < kHalves; ++h) {
            const Pack r = logistic_log_prior<Pack>(p, packs(x) + h, kHalves);
            std::memcpy(lp + h * kPack, &r, sizeof r);
            if (g != nullptr) logistic_prior_grad<Pack>(p, packs(x) + h, kHalves, packs(g) + h);
        }
        for (int64_t n0 = 0; n0 < p.n_obs; n0 += kObsBlock) {
            const int64_t nn = std::min(kObsBlock, p.n_obs - n0);
            for (int64_t i = 0; i < nn; ++i)
                for (int h = 0; h < kHalves; ++h) {
                    const Pack e = logistic_eta<Pack>(p, n0 + i, packs(x) + h, kHalves);
                    std::memcpy(&eta[i][h * kPack], &e, sizeof e);
                }
            if (g == nullptr) {
                for (int64_t i = 0; i < nn; ++i) {
                    const double y = p.y[n0 + i];
                    for (int l = 0; l < kTile; ++l) eta[i][l] = bernoulli_log_prob_term(y, eta[i][l]);
                }
            } else {
                for (int64_t i = 0; i < nn; ++i) {
                    const double y = p.y[n0 + i];
                    for (int l = 0; l < kTile; ++l) eta[i][l] = bernoulli_log_prob_term_grad(y, eta[i][l], deta[i][l]);
                }
                for (int64_t i = 0; i < nn; ++i) {
                    const double* xn = p.X + (n0 + i) * p.dim;
                    for (int64_t j = 0; j < p.dim; ++j)
                        for (int l = 0; l < kTile; ++l) g[j * kTile + l] = g[j * kTile + l] + deta[i][l] * xn[j];
                }
            }
            for (int64_t i = 0; i < nn; ++i)
                for (int l = 0; l < kTile; ++l) lp[l] = lp[l] + eta[i][l];
        }
    });
}

#define VK_BUILTIN_TARGET(name, Params)                                                                   \
    void run_##name(const Params& p, const Config& cfg, Outputs& out) {                                 \
        name##_target(p, [&](auto eval) { run_builtin(cfg, out, eval); });                                \
    }                                                                                                   \
    void evaluate_##name(const Params& p, int64_t chains, const double* z, double* lp, double* grad) {   \
        name##_target(p, [&](auto eval) { evaluate(chains, p.dim, z, lp, grad, eval); });                 \
    }
VK_BUILTIN_TARGET(gaussian, GaussianParams)
VK_BUILTIN_TARGET(banana, BananaParams)
VK_BUILTIN_TARGET(logistic, LogisticParams)
#undef VK_BUILTIN_TARGET

// ---------------------------------------------------------------------------------------------
// Batch targets: step-major, the caller's target evaluated once per step for all chains
// ---------------------------------------------------------------------------------------------
// Chain-coordinates per step below which the batch path stays on one thread: a parallel region per step
// (two per step) costs more than it saves for small states, and its idle threads would spin while the
// Python target runs.
constexpr int64_t kParallelMin = 1 << 18;

template <class F>
void tiles(bool parallel, int64_t n_tiles, F&& f) {
    if (parallel) cpu::parallel_tasks(n_tiles, f);
    else for (int64_t b = 0; b < n_tiles; ++b) f(b);
}

void run_batch(cpu::mcmc::BatchTarget& target, const Config& cfg, Outputs& out) {
    Sampler s(cfg, out);
    cpu::mcmc::Poll poll(cfg.progress, s.n_steps());
    const int64_t n_tiles = s.n_tiles();
    const bool par = cfg.chains * (cfg.dim + 4) >= kParallelMin;
    const bool gradient = s.gradient();
    Buffer<double> lp, grad;
    lp.assign(cfg.chains, 0.0);
    if (gradient) grad.assign(cfg.chains * cfg.dim, 0.0);
    double* g = gradient ? grad.data() : nullptr;

    double* z = target.begin_step();
    for (int64_t i = 0; i < cfg.chains * cfg.dim; ++i) z[i] = cfg.x0[i];
    target.end_step(lp.data(), g);
    for (int64_t c = 0; c < cfg.chains; ++c) {
        if (mcmc_invalid_log_prob(lp[c]))
            throw std::invalid_argument("log_prob(x0) must not be NaN or +inf; got " + std::to_string(lp[c]) +
                                        " for row " + std::to_string(c) + " of x0");
        for (int64_t j = 0; gradient && j < cfg.dim; ++j)
            if (!(g[c * cfg.dim + j] - g[c * cfg.dim + j] == 0.0))
                throw std::invalid_argument("the gradient at x0 must be finite; got " + std::to_string(g[c * cfg.dim + j]) +
                                            " for row " + std::to_string(c) + " of x0");
    }
    for (int64_t b = 0; b < n_tiles; ++b) {
        Sampler::read_log_prob(s.tile(b), lp.data(), s.tile(b).lp);
        if (gradient) s.read_grad(s.tile(b), g, s.tile(b).g.data());
    }

    for (int64_t step = 0; step < s.n_steps(); ++step) {
        if (step == s.covariance_step()) s.estimate_covariance();
        z = target.begin_step();
        tiles(par, n_tiles, [&](int64_t b) {
            if (gradient) s.start_trajectory(s.tile(b), step);
            else s.propose(s.tile(b), step);
            s.write_proposals(s.tile(b), z);
        });
        const int64_t n_evals = gradient ? s.n_leapfrog() : 1;
        for (int64_t i = 0; i < n_evals; ++i) {
            target.end_step(lp.data(), g);
            const bool last = i + 1 == n_evals;
            if (!last) z = target.begin_step();
            tiles(par, n_tiles, [&](int64_t b) {
                Tile& t = s.tile(b);
                Sampler::read_log_prob(t, lp.data(), t.lpp);
                if (gradient) {
                    s.read_grad(t, g, t.gp.data());
                    s.continue_trajectory(t, i);
                    if (!last) s.write_proposals(t, z);
                }
                if (last) s.accept(t, step);
            });
        }
        poll.after(1, step + 1);
    }
    s.finish();
}

}  // namespace
VK_END_NAMESPACE

namespace vk::cpu::mcmc {
// One getter per compiled level, e.g. mcmc_table_isa_avx2(); mcmc_setup.cpp declares them.
const Table& VK_CAT(mcmc_table_, VK_ISA_NAMESPACE)() {
    static const Table t{VK_ISA_NAMESPACE::run_gaussian,      VK_ISA_NAMESPACE::run_banana,
                         VK_ISA_NAMESPACE::run_logistic,      VK_ISA_NAMESPACE::run_batch,
                         VK_ISA_NAMESPACE::evaluate_gaussian, VK_ISA_NAMESPACE::evaluate_banana,
                         VK_ISA_NAMESPACE::evaluate_logistic};
    return t;
}
}  // namespace vk::cpu::mcmc
