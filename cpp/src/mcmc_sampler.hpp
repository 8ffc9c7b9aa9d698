// mcmc_sampler.hpp (CPU, internal): the batched sampler's state and the steps of one tile of chains, for
// cpp/src/mcmc.cpp only, which drives them (the tile loop of the built-in targets, the step-major loop of
// Python targets). Included inside mcmc.cpp's per-instruction-set build: internal linkage, one copy per level.
//
// MALA and HMC run a trajectory per step in three parts, start_trajectory (momentum, first kick, drift),
// continue_trajectory (after each evaluation: kick, and drift again unless it was the last) and accept,
// so that both loops share them.
#pragma once

#include "mcmc_tile.hpp"

VK_BEGIN_NAMESPACE
namespace {

class Sampler {
public:
    Sampler(const Config& cfg, Outputs& out)
        : cfg_(cfg), out_(out), dim_(cfg.dim),
          gradient_(cfg.proposal == Proposal::kMala || cfg.proposal == Proposal::kHmc),
          n_leapfrog_(cfg.proposal == Proposal::kHmc ? cfg.n_leapfrog : 1),
          jitter_(cfg.proposal == Proposal::kHmc ? cfg.jitter : 0.0),
          blocks_per_step_(mcmc_blocks_per_step(cfg.dim, cfg.proposal != Proposal::kRandomWalk)),
          n_normal_blocks_(mcmc_normal_blocks(cfg.dim, cfg.proposal != Proposal::kRandomWalk)),
          uniform_shared_(mcmc_uniform_in_last_normal_block(cfg.dim, cfg.proposal != Proposal::kRandomWalk)),
          n_steps_(cfg.n_warmup + cfg.n_draws * cfg.thin),
          n_tiles_((cfg.chains + kTile - 1) / kTile), rec_depth_(record_depth(cfg.dim)) {
        tiles_ = std::unique_ptr<Tile[]>(new Tile[static_cast<size_t>(n_tiles_)]);
        const int64_t w = cfg.n_warmup;
        if (cfg.adapt_metric && gradient_ && w >= 8) {
            // Two metric windows, as Stan's expanding ones: [w/4, w/2) under the identity (which explores the
            // wide directions slowly), then [w/2, 3w/4) under that first estimate; the step sizes adapt anew
            // after each (phases [0, w/2), [w/2, 3w/4), [3w/4, w)).
            phases_ = {{0, w / 2}, {w / 2, 3 * w / 4}, {3 * w / 4, w}};
            metric_windows_ = {{w / 4, w / 2}, {w / 2, 3 * w / 4}};
            collect_ = {0, 0};
        } else if (cfg.adapt_covariance && cfg.proposal == Proposal::kRandomWalk && w >= 4) {
            // phase 0 with the isotropic proposal, its second half estimating the pooled covariance, phase 1
            // adapting the step sizes anew under it
            phases_.push_back({0, w / 2});
            phases_.push_back({w / 2, w});
            collect_ = {w / 4, w / 2};
        } else {
            phases_.push_back({0, cfg.n_warmup});
            collect_ = {0, 0};
        }
        for (int64_t i = 0; i < dim_ * dim_; ++i) out_.proposal_chol[i] = 0.0;
        for (int64_t i = 0; i < dim_; ++i) out_.proposal_chol[i * dim_ + i] = 1.0;
        for (int64_t b = 0; b < n_tiles_; ++b) init_tile(tiles_[b], b * kTile);
    }

    int64_t n_steps() const { return n_steps_; }
    bool gradient() const { return gradient_; }
    int64_t n_leapfrog() const { return n_leapfrog_; }
    int64_t n_tiles() const { return n_tiles_; }
    Tile& tile(int64_t b) { return tiles_[b]; }
    // Step at which the pooled covariance is estimated (from the draws before it), or -1.
    int64_t covariance_step() const { return collect_.end > collect_.begin ? collect_.end : -1; }
    // Segments of [0, n_steps) separated by the covariance barrier.
    std::vector<Phase> segments() const {
        const int64_t c = covariance_step();
        if (c < 0) return {{0, n_steps_}};
        return {{0, c}, {c, n_steps_}};
    }

    // ---- one step of one tile -------------------------------------------------------------------
    // Fills xp (and qxp, u) from the tile's stream at `step`.
    void propose(Tile& t, int64_t step) const {
        const uint64_t s = static_cast<uint64_t>(step);
        const uint64_t seed = cfg_.seed;
        const int64_t bps = blocks_per_step_;
        const int64_t dim = dim_;
        double* e = t.eps.data();
        if (cfg_.proposal == Proposal::kIndependent) {
            for (int64_t k = 0; k < n_normal_blocks_; ++k) {
                double* e0 = e + (2 * k) * kTile;
                double* e1 = e0 + kTile;
                for (int l = 0; l < kTile; ++l) mcmc_independent_normals(seed, t.chain[l], s, bps, k, e0[l], e1[l]);
            }
        } else {
            // t.u ends with the last block's spare-word uniform, which is the acceptance uniform when shared
            for (int64_t k = 0; k < n_normal_blocks_; ++k) {
                double* e0 = e + (4 * k) * kTile;
                double *e1 = e0 + kTile, *e2 = e1 + kTile, *e3 = e2 + kTile;
                for (int l = 0; l < kTile; ++l)
                    mcmc_rw_normals(seed, t.chain[l], s, bps, k, e0[l], e1[l], e2[l], e3[l], t.u[l]);
            }
        }
        if (!uniform_shared_)
            for (int l = 0; l < kTile; ++l) t.u[l] = mcmc_accept_uniform(seed, t.chain[l], s, bps);

        const double* x = t.x.data();
        double* xp = t.xp.data();
        if (cfg_.proposal == Proposal::kIndependent) {
            // x' = m + sd eps; log q(x') up to its per-chain constant, which cancels in the MH ratio.
            const double *m = t.q_mean.data(), *sd = t.q_sd.data(), *isd = t.q_inv_sd.data();
            alignas(64) double q[kTile] = {};
            for (int64_t j = 0; j < dim; ++j)
                for (int l = 0; l < kTile; ++l) {
                    const int64_t i = j * kTile + l;
                    xp[i] = m[i] + sd[i] * e[i];
                    const double z = (xp[i] - m[i]) * isd[i];
                    q[l] = q[l] + z * z;
                }
            for (int l = 0; l < kTile; ++l) t.qxp[l] = q[l] * -0.5;
        } else if (have_chol_) {
            // x' = x + s L eps, L the pooled warm-up covariance factor.
            for (int64_t j = 0; j < dim; ++j) {
                const double* lj = chol_.data() + j * dim;
                alignas(64) double v[kTile];
                for (int l = 0; l < kTile; ++l) v[l] = e[l] * lj[0];
                for (int64_t k = 1; k <= j; ++k)
                    for (int l = 0; l < kTile; ++l) v[l] = v[l] + e[k * kTile + l] * lj[k];
                for (int l = 0; l < kTile; ++l) xp[j * kTile + l] = x[j * kTile + l] + t.step[l] * v[l];
            }
        } else {
            for (int64_t j = 0; j < dim; ++j)
                for (int l = 0; l < kTile; ++l) xp[j * kTile + l] = x[j * kTile + l] + t.step[l] * e[j * kTile + l];
        }
    }

    // ---- MALA and HMC: one leapfrog trajectory per step (vaekernels/mcmc.hpp) ---------------------------
    // Momentum from the step's normals, the jittered step size, the first half kick and the first drift:
    // xp is then ready to be evaluated (into lpp, gp).
    void start_trajectory(Tile& t, int64_t step) const {
        const uint64_t s = static_cast<uint64_t>(step);
        const int64_t bps = blocks_per_step_;
        double* p = t.mom.data();
        for (int64_t k = 0; k < n_normal_blocks_; ++k) {
            double* p0 = p + (2 * k) * kTile;
            double* p1 = p0 + kTile;
            for (int l = 0; l < kTile; ++l) mcmc_independent_normals(cfg_.seed, t.chain[l], s, bps, k, p0[l], p1[l]);
        }
        alignas(64) double v[kTile];
        for (int l = 0; l < kTile; ++l) mcmc_accept_jitter_uniforms(cfg_.seed, t.chain[l], s, bps, t.u[l], v[l]);
        for (int l = 0; l < kTile; ++l) t.h[l] = t.step[l] * (1.0 + jitter_ * (2.0 * v[l] - 1.0));
        const double *x = t.x.data(), *g = t.g.data(), *m = t.m.data(), *isd = t.m_isd.data();
        for (int64_t i = 0; i < dim_ * kTile; ++i) p[i] = p[i] * isd[i];   // p ~ N(0, diag(1 / m))
        kinetic(t, p, t.k0);
        double* xp = t.xp.data();
        for (int64_t j = 0; j < dim_; ++j)
            for (int l = 0; l < kTile; ++l) {
                const int64_t i = j * kTile + l;
                p[i] = p[i] + (0.5 * t.h[l]) * g[i];
                xp[i] = x[i] + t.h[l] * (m[i] * p[i]);
            }
    }

    // After leapfrog step i's evaluation at xp: the full kick and the next drift, or the final half kick.
    void continue_trajectory(Tile& t, int64_t i) const {
        double *p = t.mom.data(), *xp = t.xp.data();
        const double *gp = t.gp.data(), *m = t.m.data();
        if (i + 1 == n_leapfrog_) {
            for (int64_t j = 0; j < dim_ * kTile; j += kTile)
                for (int l = 0; l < kTile; ++l) p[j + l] = p[j + l] + (0.5 * t.h[l]) * gp[j + l];
            return;
        }
        for (int64_t j = 0; j < dim_ * kTile; j += kTile)
            for (int l = 0; l < kTile; ++l) {
                p[j + l] = p[j + l] + t.h[l] * gp[j + l];
                xp[j + l] = xp[j + l] + t.h[l] * (m[j + l] * p[j + l]);
            }
    }

    // Accept/reject with t.lpp holding log p(xp) (and t.gp its gradient, the momentum at the trajectory's
    // end for MALA/HMC); adapts the step size in warm-up; records draws and their statistics.
    void accept(Tile& t, int64_t step) {
        const bool independent = cfg_.proposal == Proposal::kIndependent;
        const bool post_warmup = step >= cfg_.n_warmup;
        alignas(64) double alpha[kTile], delta[kTile], lp_new[kTile], energy[kTile], diverging[kTile], used[kTile];
        alignas(64) int64_t take[kTile];
        if (gradient_) {
            // delta = H(start) - H(end); a non-finite end energy (log p, or a gradient that reached the
            // momentum) is an invalid proposal: lp_new = +inf makes mcmc_accept reject it and n_nan count it.
            alignas(64) double k1[kTile];
            kinetic(t, t.mom.data(), k1);
            for (int l = 0; l < kTile; ++l) {
                const bool bad = mcmc_invalid_log_prob(t.lpp[l]) || !(k1[l] < FloatTraits<double>::kInf);
                lp_new[l] = bad ? FloatTraits<double>::kInf : t.lpp[l];
                delta[l] = (t.lpp[l] - t.lp[l]) + (t.k0[l] - k1[l]);
                diverging[l] = (bad || -delta[l] > cpu::mcmc::kDivergence) ? 1.0 : 0.0;
                energy[l] = -t.lpp[l] + k1[l];   // chosen below: the end state if accepted
                used[l] = t.h[l];
            }
        } else {
            for (int l = 0; l < kTile; ++l) {
                const double dq = independent ? t.qx[l] - t.qxp[l] : 0.0;   // + 0.0: delta unchanged
                lp_new[l] = t.lpp[l];
                delta[l] = (t.lpp[l] - t.lp[l]) + dq;
                diverging[l] = 0.0;
                energy[l] = __builtin_nan("");
                used[l] = independent ? 1.0 : t.step[l];
            }
        }
        for (int l = 0; l < kTile; ++l) take[l] = mcmc_accept(t.u[l], lp_new[l], delta[l], alpha[l]);
        for (int l = 0; l < kTile; ++l) {
            t.n_nan[l] += mcmc_invalid_log_prob(lp_new[l]) ? 1 : 0;
            t.n_div[l] += (post_warmup && diverging[l] != 0.0) ? 1 : 0;
            t.accepted[l] += post_warmup ? -take[l] : 0;
        }
        double* x = t.x.data();
        const double* xp = t.xp.data();
        for (int64_t j = 0; j < dim_; ++j)
            for (int l = 0; l < kTile; ++l) x[j * kTile + l] = take[l] ? xp[j * kTile + l] : x[j * kTile + l];
        if (gradient_) {
            double* g = t.g.data();
            const double* gp = t.gp.data();
            for (int64_t j = 0; j < dim_; ++j)
                for (int l = 0; l < kTile; ++l) g[j * kTile + l] = take[l] ? gp[j * kTile + l] : g[j * kTile + l];
            for (int l = 0; l < kTile; ++l) energy[l] = take[l] ? energy[l] : -t.lp[l] + t.k0[l];
        }
        for (int l = 0; l < kTile; ++l) t.lp[l] = take[l] ? t.lpp[l] : t.lp[l];
        for (int l = 0; l < kTile; ++l) t.qx[l] = take[l] ? t.qxp[l] : t.qx[l];

        const double* stats[kNumStats] = {alpha, used, energy, diverging};
        if (!post_warmup) {
            if (cfg_.keep_warmup) record_warmup(t, step, stats);
            adapt(t, step, alpha);
            if (step >= collect_.begin && step < collect_.end) collect(t, step);
            for (const Phase& win : metric_windows_)
                if (step >= win.begin && step < win.end) collect_metric(t, win, step);
        } else if ((step - cfg_.n_warmup + 1) % cfg_.thin == 0) {
            record(t, (step - cfg_.n_warmup) / cfg_.thin, stats);
        }
    }

    // ---- batch targets: proposals out, log-densities in ------------------------------------------
    void write_proposals(const Tile& t, double* z) const {
        for (int l = 0; l < t.n; ++l)
            for (int64_t j = 0; j < dim_; ++j) z[(t.row0 + l) * dim_ + j] = t.xp[j * kTile + l];
    }
    // Padding lanes copy lane 0 (they follow the tile's first chain and are never written out).
    static void read_log_prob(const Tile& t, const double* lp, double* dst) {
        for (int l = 0; l < kTile; ++l) dst[l] = lp[t.row0 + (l < t.n ? l : 0)];
    }
    // (chains, dim) gradients into the tile's (dim, kTile) lanes.
    void read_grad(const Tile& t, const double* grad, double* dst) const {
        for (int l = 0; l < kTile; ++l) {
            const double* row = grad + (t.row0 + (l < t.n ? l : 0)) * dim_;
            for (int64_t j = 0; j < dim_; ++j) dst[j * kTile + l] = row[j];
        }
    }

    // ---- pooled covariance (between the two warm-up phases) ---------------------------------------
    void estimate_covariance() {
        cpu::mcmc::CovarianceAccumulator acc;
        acc.reset(cfg_.chains, dim_);
        acc.count = collect_.end - collect_.begin;
        for (int64_t b = 0; b < n_tiles_; ++b) {
            const Tile& t = tiles_[b];
            for (int l = 0; l < t.n; ++l) {
                const int64_t c = t.row0 + l;
                for (int64_t j = 0; j < dim_; ++j) {
                    acc.shift[c * dim_ + j] = t.cov_shift[j * kTile + l];
                    acc.sum[c * dim_ + j] = t.cov_sum[j * kTile + l];
                }
                for (int64_t i = 0, p = 0; i < dim_; ++i)
                    for (int64_t j = 0; j <= i; ++j, ++p)
                        acc.scatter[(c * dim_ + i) * dim_ + j] = t.cov_scatter[p * kTile + l];
            }
        }
        const std::vector<double> l = acc.pooled_cholesky(cfg_.chains);
        chol_.assign(dim_ * dim_, 0.0);
        for (int64_t i = 0; i < dim_ * dim_; ++i) chol_[i] = out_.proposal_chol[i] = l[static_cast<size_t>(i)];
        have_chol_ = true;
        // Phase 1 adapts the step sizes afresh for the new proposal shape.
        const double s0 = 2.38 / vsqrt(static_cast<double>(dim_));
        for (int64_t b = 0; b < n_tiles_; ++b) {
            Tile& t = tiles_[b];
            if (cfg_.adapt_step)
                for (int l = 0; l < kTile; ++l) {
                    t.log_step[l] = vlog(s0);
                    t.step[l] = s0;
                }
            t.cov_shift.clear(); t.cov_sum.clear(); t.cov_scatter.clear();
        }
    }

    void finish() {
        const double post = static_cast<double>(cfg_.n_draws * cfg_.thin);
        for (int64_t b = 0; b < n_tiles_; ++b) {
            Tile& t = tiles_[b];
            flush(t);
            for (int l = 0; l < t.n; ++l) {
                const int64_t c = t.row0 + l;
                out_.accept_rate[c] = static_cast<double>(t.accepted[l]) / post;
                out_.step_size[c] = cfg_.proposal == Proposal::kIndependent ? 1.0 : t.step[l];
                out_.n_nan[c] = t.n_nan[l];
                out_.n_divergent[c] = t.n_div[l];
                for (int64_t j = 0; j < dim_; ++j) out_.inv_metric[c * dim_ + j] = gradient_ ? t.m[j * kTile + l] : 1.0;
            }
        }
    }

private:
    void init_tile(Tile& t, int64_t row0) {
        t.row0 = row0;
        t.n = static_cast<int>(std::min<int64_t>(kTile, cfg_.chains - row0));
        t.x.assign(dim_ * kTile, 0.0);
        t.xp.assign(dim_ * kTile, 0.0);
        t.scratch.assign(dim_ * kPack, 0.0);
        // rows of normals: 4 per random-walk block, 2 per independence block (MALA/HMC draw into mom)
        if (!gradient_) t.eps.assign(4 * n_normal_blocks_ * kTile, 0.0);
        t.rec_x.assign(rec_depth_ * dim_ * kTile, 0.0);
        t.rec_lp.assign(rec_depth_ * kTile, 0.0);
        t.rec_stats.assign(rec_depth_ * kNumStats * kTile, 0.0);
        if (gradient_) {
            t.g.assign(dim_ * kTile, 0.0);
            t.gp.assign(dim_ * kTile, 0.0);
            t.mom.assign(2 * n_normal_blocks_ * kTile, 0.0);
            t.m.assign(dim_ * kTile, 1.0);
            t.m_isd.assign(2 * n_normal_blocks_ * kTile, 1.0);   // as long as mom: momentum rows beyond dim unused
            if (!metric_windows_.empty()) {
                t.w_mean.assign(dim_ * kTile, 0.0);
                t.w_m2.assign(dim_ * kTile, 0.0);
            }
        }
        // Padding lanes copy the tile's first chain: they compute valid values and are never written out.
        for (int l = 0; l < kTile; ++l) {
            const int64_t c = row0 + (l < t.n ? l : 0);
            t.chain[l] = static_cast<uint32_t>(cfg_.chain_offset + static_cast<uint64_t>(c));
            for (int64_t j = 0; j < dim_; ++j) t.x[j * kTile + l] = cfg_.x0[c * dim_ + j];
            t.step[l] = cfg_.step0[c];
            t.log_step[l] = vlog(cfg_.step0[c]);
            t.log_step_sum[l] = 0.0;
            t.accepted[l] = 0;
            t.n_nan[l] = 0;
            t.n_div[l] = 0;
            t.h[l] = t.k0[l] = 0.0;
            t.lp[l] = t.lpp[l] = t.qx[l] = t.qxp[l] = 0.0;
        }
        if (cfg_.proposal == Proposal::kIndependent) {
            t.q_mean.assign(dim_ * kTile, 0.0);
            t.q_sd.assign(dim_ * kTile, 0.0);
            t.q_inv_sd.assign(dim_ * kTile, 0.0);
            for (int l = 0; l < kTile; ++l) {
                const int64_t c = row0 + (l < t.n ? l : 0);
                double q = 0.0;
                for (int64_t j = 0; j < dim_; ++j) {
                    const int64_t i = j * kTile + l;
                    const double lv = cfg_.proposal_logvar[c * dim_ + j];
                    t.q_mean[i] = cfg_.proposal_mean[c * dim_ + j];
                    t.q_sd[i] = vexp(0.5 * lv);
                    t.q_inv_sd[i] = vexp(-0.5 * lv);
                    const double z = (t.x[i] - t.q_mean[i]) * t.q_inv_sd[i];
                    q = q + z * z;
                }
                t.qx[l] = q * -0.5;
            }
        }
        if (collect_.end > collect_.begin) {
            t.cov_shift.assign(dim_ * kTile, 0.0);
            t.cov_sum.assign(dim_ * kTile, 0.0);
            t.cov_scatter.assign(dim_ * (dim_ + 1) / 2 * kTile, 0.0);
        }
    }

    void adapt(Tile& t, int64_t step, const double* alpha) {
        if (!cfg_.adapt_step || cfg_.proposal == Proposal::kIndependent) return;
        for (const Phase& ph : phases_) {
            if (step < ph.begin || step >= ph.end) continue;
            const int64_t local = step - ph.begin;
            for (int l = 0; l < kTile; ++l)
                t.log_step[l] = mcmc_adapt_log_step(t.log_step[l], alpha[l], cfg_.target_accept, local);
            if (step >= ph.average_from())
                for (int l = 0; l < kTile; ++l) t.log_step_sum[l] = t.log_step_sum[l] + t.log_step[l];
            if (step == ph.end - 1) {
                const double inv = 1.0 / static_cast<double>(ph.end - ph.average_from());
                for (int l = 0; l < kTile; ++l) {
                    t.log_step[l] = t.log_step_sum[l] * inv;
                    t.log_step_sum[l] = 0.0;
                }
            }
            for (int l = 0; l < kTile; ++l) t.step[l] = vexp(t.log_step[l]);
        }
    }

    void collect(Tile& t, int64_t step) {
        const double* x = t.x.data();
        double *shift = t.cov_shift.data(), *sum = t.cov_sum.data(), *sc = t.cov_scatter.data();
        if (step == collect_.begin)
            for (int64_t i = 0; i < dim_ * kTile; ++i) shift[i] = x[i];
        double* c = t.xp.data();   // the centred draw; xp is free until the next proposal
        for (int64_t i = 0; i < dim_ * kTile; ++i) c[i] = x[i] - shift[i];
        for (int64_t i = 0, p = 0; i < dim_; ++i) {
            for (int l = 0; l < kTile; ++l) sum[i * kTile + l] = sum[i * kTile + l] + c[i * kTile + l];
            for (int64_t j = 0; j <= i; ++j, ++p)
                for (int l = 0; l < kTile; ++l)
                    sc[p * kTile + l] = sc[p * kTile + l] + c[i * kTile + l] * c[j * kTile + l];
        }
    }

    // K = sum_j m_j p_j^2 / 2 per lane, coordinates summed in order.
    void kinetic(const Tile& t, const double* p, double* k) const {
        const double* m = t.m.data();
        alignas(64) double acc[kTile] = {};
        for (int64_t j = 0; j < dim_ * kTile; j += kTile)
            for (int l = 0; l < kTile; ++l) acc[l] = acc[l] + (m[j + l] * p[j + l]) * p[j + l];
        for (int l = 0; l < kTile; ++l) k[l] = 0.5 * acc[l];
    }

    // Welford's running mean and sum of squares of each chain's state over a metric window (>= 2 draws); at
    // its end the inverse metric is the regularised variance (Stan's: n/(n+5) var + 1e-3 5/(n+5)), chain by
    // chain (no pooling: the draws stay independent of the chain partition), and the sums restart.
    void collect_metric(Tile& t, const Phase& win, int64_t step) {
        const double n = static_cast<double>(step - win.begin + 1);
        double *mean = t.w_mean.data(), *m2 = t.w_m2.data();
        const double* x = t.x.data();
        for (int64_t i = 0; i < dim_ * kTile; ++i) {
            const double d = x[i] - mean[i];
            mean[i] = mean[i] + d / n;
            m2[i] = m2[i] + d * (x[i] - mean[i]);
        }
        if (step + 1 != win.end) return;
        const double shrink = n / (n + 5.0), prior = 1e-3 * (5.0 / (n + 5.0));
        for (int64_t i = 0; i < dim_ * kTile; ++i) {
            const double v = shrink * (m2[i] / (n - 1.0)) + prior;
            t.m[i] = v;
            t.m_isd[i] = 1.0 / vsqrt(v);
            mean[i] = m2[i] = 0.0;
        }
    }

    void record(Tile& t, int64_t draw, const double* const* stats) {
        if (t.rec_n == 0) t.rec_first = draw;
        double* rx = t.rec_x.data() + t.rec_n * dim_ * kTile;
        const double* x = t.x.data();
        for (int64_t i = 0; i < dim_ * kTile; ++i) rx[i] = x[i];
        for (int l = 0; l < kTile; ++l) t.rec_lp[t.rec_n * kTile + l] = t.lp[l];
        double* rs = t.rec_stats.data() + t.rec_n * kNumStats * kTile;
        for (int k = 0; k < kNumStats; ++k)
            for (int l = 0; l < kTile; ++l) rs[k * kTile + l] = stats[k][l];
        if (++t.rec_n == rec_depth_) flush(t);
    }

    // Warm-up iterations go straight out (only when asked for: keep_warmup).
    void record_warmup(const Tile& t, int64_t step, const double* const* stats) {
        const int64_t nw = cfg_.n_warmup;
        for (int l = 0; l < t.n; ++l) {
            const int64_t c = t.row0 + l;
            double* s = out_.warmup_samples + (c * nw + step) * dim_;
            for (int64_t j = 0; j < dim_; ++j) s[j] = t.x[j * kTile + l];
            out_.warmup_log_prob[c * nw + step] = t.lp[l];
            for (int k = 0; k < kNumStats; ++k) out_.warmup_stats[(c * nw + step) * kNumStats + k] = stats[k][l];
        }
    }

public:
    void flush(Tile& t) {
        const int64_t nd = cfg_.n_draws;
        for (int l = 0; l < t.n; ++l) {
            const int64_t c = t.row0 + l;
            double* s = out_.samples + (c * nd + t.rec_first) * dim_;
            double* lp = out_.log_prob + c * nd + t.rec_first;
            for (int r = 0; r < t.rec_n; ++r) {
                const double* rx = t.rec_x.data() + r * dim_ * kTile;
                for (int64_t j = 0; j < dim_; ++j) s[r * dim_ + j] = rx[j * kTile + l];
                lp[r] = t.rec_lp[r * kTile + l];
                double* st = out_.stats + ((c * nd + t.rec_first) + r) * kNumStats;
                for (int k = 0; k < kNumStats; ++k) st[k] = t.rec_stats[(r * kNumStats + k) * kTile + l];
            }
        }
        t.rec_n = 0;
    }

private:
    const Config& cfg_;
    Outputs& out_;
    int64_t dim_;
    bool gradient_;
    int64_t n_leapfrog_;
    double jitter_;
    int64_t blocks_per_step_, n_normal_blocks_;
    bool uniform_shared_;
    int64_t n_steps_;
    int64_t n_tiles_;
    int rec_depth_;
    std::unique_ptr<Tile[]> tiles_;
    std::vector<Phase> phases_;
    Phase collect_{0, 0};          // the random walk's pooled covariance window
    std::vector<Phase> metric_windows_;   // MALA/HMC with adapt_metric: each chain's diagonal metric windows
    Buffer<double> chol_;
    bool have_chol_ = false;
};

}  // namespace
VK_END_NAMESPACE
