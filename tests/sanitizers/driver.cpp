// driver.cpp: every CPU kernel and the MH sampler over edge cases, for a build with AddressSanitizer and
// UndefinedBehaviorSanitizer (tests/test_sanitizers.py builds cpp/src with them and runs this). It checks
// nothing itself: any out-of-bounds access, use after free, leak, signed overflow, misaligned access or
// other undefined behaviour makes the sanitizer report and exit non-zero.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "dense.hpp"
#include "kernels.hpp"
#include "mcmc.hpp"
#include "vaekernels/targets.hpp"

namespace vk::cpu {
const Kernels& kernels_isa_scalar();
const Kernels& kernels_isa_baseline();
}  // namespace vk::cpu

namespace mc = vk::cpu::mcmc;

namespace {

template <class T>
std::vector<T> values(int64_t n, uint64_t salt) {
    static const double special[] = {0.0, -0.0, 1.0, -1.0, 0.5, 3.0, -7.5, 88.7, -88.7, 709.0, -745.0, 1e-40, 1e-310,
                                     1e30, -1e30, 1e4, -1e4, std::numeric_limits<double>::infinity(),
                                     -std::numeric_limits<double>::infinity(), std::nan("")};
    std::vector<T> v(static_cast<size_t>(n));
    uint64_t s = salt * 0x9E3779B97F4A7C15ull + 1;
    for (int64_t i = 0; i < n; ++i) {
        s ^= s << 13; s ^= s >> 7; s ^= s << 17;
        const double u = static_cast<double>(s >> 11) * 0x1.0p-53;
        v[i] = (s & 7) == 0 ? T(special[(s >> 3) % (sizeof special / sizeof special[0])]) : T(8 * u - 4);
    }
    return v;
}

template <class A>
A rows_args(int64_t rows, int64_t cols) { A a; a.rows = rows; a.cols = cols; return a; }

template <class T>
void run_kernels(const vk::cpu::KernelTable<T>& k, int64_t rows, int64_t cols, uint64_t offset, int64_t samples) {
    const int64_t n = rows * cols;
    auto a = values<T>(n, 1), b = values<T>(n, 2), c = values<T>(n, 3), d = values<T>(n, 4), g = values<T>(rows, 5);
    auto x01 = values<T>(n, 6);
    for (auto& v : x01) v = std::isfinite(v) ? T(v > 0) : v;
    // outputs exactly as large as their roles say (ASan catches any write past them)
    std::vector<T> o1(n), o2(n), o3(n), o4(n), row(rows), z(n * samples);

    vk::RandnArgs<T> rn; rn.n = n; rn.seed = offset ^ 5; rn.offset = offset; rn.out = o1.data(); k.randn(rn);
    vk::RandArgs<T> ru; ru.n = n; ru.seed = 7; ru.offset = offset; ru.out = o1.data(); k.rand(ru);
    vk::ReparameterizeArgs<T> rp; rp.n = n; rp.mu = a.data(); rp.logvar = b.data(); rp.seed = 3;
    rp.offset = offset; rp.n_samples = samples; rp.z = z.data(); k.reparameterize(rp);

    auto ks = rows_args<vk::KlStandardNormalArgs<T>>(rows, cols);
    ks.mu = a.data(); ks.logvar = b.data(); ks.kl = row.data(); k.kl_standard_normal(ks);
    auto ksb = rows_args<vk::KlStandardNormalBackwardArgs<T>>(rows, cols);
    ksb.grad = g.data(); ksb.mu = a.data(); ksb.logvar = b.data(); ksb.dmu = o1.data(); ksb.dlogvar = o2.data();
    k.kl_standard_normal_backward(ksb);
    auto kn = rows_args<vk::KlNormalArgs<T>>(rows, cols);
    kn.mu_q = a.data(); kn.logvar_q = b.data(); kn.mu_p = c.data(); kn.logvar_p = d.data(); kn.kl = row.data();
    k.kl_normal(kn);
    auto knb = rows_args<vk::KlNormalBackwardArgs<T>>(rows, cols);
    knb.grad = g.data(); knb.mu_q = a.data(); knb.logvar_q = b.data(); knb.mu_p = c.data(); knb.logvar_p = d.data();
    knb.dmu_q = o1.data(); knb.dlogvar_q = o2.data(); knb.dmu_p = o3.data(); knb.dlogvar_p = o4.data();
    k.kl_normal_backward(knb);
    auto bl = rows_args<vk::BernoulliLogProbArgs<T>>(rows, cols);
    bl.x = x01.data(); bl.logits = a.data(); bl.log_prob = row.data(); k.bernoulli_log_prob(bl);
    auto blg = rows_args<vk::BernoulliLogProbAndGradArgs<T>>(rows, cols);
    blg.x = x01.data(); blg.logits = a.data(); blg.log_prob = row.data(); blg.dlogits = o1.data();
    k.bernoulli_log_prob_and_grad(blg);
    auto blb = rows_args<vk::BernoulliLogProbBackwardArgs<T>>(rows, cols);
    blb.grad = g.data(); blb.x = x01.data(); blb.logits = a.data(); blb.dlogits = o1.data();
    k.bernoulli_log_prob_backward(blb);
    auto nl = rows_args<vk::NormalLogProbArgs<T>>(rows, cols);
    nl.x = a.data(); nl.mean = b.data(); nl.logvar = c.data(); nl.log_prob = row.data(); k.normal_log_prob(nl);
    auto nlg = rows_args<vk::NormalLogProbAndGradArgs<T>>(rows, cols);
    nlg.x = a.data(); nlg.mean = b.data(); nlg.logvar = c.data(); nlg.log_prob = row.data(); nlg.dmean = o1.data();
    nlg.dlogvar = o2.data(); k.normal_log_prob_and_grad(nlg);
    auto nlb = rows_args<vk::NormalLogProbBackwardArgs<T>>(rows, cols);
    nlb.grad = g.data(); nlb.x = a.data(); nlb.mean = b.data(); nlb.logvar = c.data(); nlb.dmean = o1.data();
    nlb.dlogvar = o2.data(); k.normal_log_prob_backward(nlb);
    auto sl = rows_args<vk::StandardNormalLogProbArgs<T>>(rows, cols);
    sl.z = a.data(); sl.log_prob = row.data(); k.standard_normal_log_prob(sl);
    auto slg = rows_args<vk::StandardNormalLogProbAndGradArgs<T>>(rows, cols);
    slg.z = a.data(); slg.log_prob = row.data(); slg.dz = o1.data(); k.standard_normal_log_prob_and_grad(slg);
    auto lf = rows_args<vk::LatentForwardArgs<T>>(rows, cols);
    lf.mu = a.data(); lf.logvar = b.data(); lf.seed = 11; lf.offset = offset; lf.z = o1.data(); lf.kl = row.data();
    k.latent_forward(lf);
    auto lb = rows_args<vk::LatentBackwardArgs<T>>(rows, cols);
    lb.dz = c.data(); lb.mu = a.data(); lb.logvar = b.data(); lb.seed = 11; lb.offset = offset; lb.kl_weight = 0.5;
    lb.dmu = o1.data(); lb.dlogvar = o2.data(); k.latent_backward(lb);
    auto lvj = rows_args<vk::LatentVjpArgs<T>>(rows, cols);
    lvj.dz = c.data(); lvj.dkl = g.data(); lvj.mu = a.data(); lvj.logvar = b.data(); lvj.seed = 11; lvj.offset = offset;
    lvj.dmu = o1.data(); lvj.dlogvar = o2.data(); k.latent_vjp(lvj);
    vk::AdamStepArgs<T> ad; ad.n = n; ad.param = o3.data(); ad.grad = a.data(); ad.m = o4.data(); ad.v = o2.data();
    for (auto& v : o2) v = std::fabs(v);
    for (int64_t step : {int64_t(1), int64_t(2), int64_t(1) << 40}) {
        ad.step = step; ad.lr = 1e-3; ad.beta1 = 0.9; ad.beta2 = 0.999; ad.eps = 1e-8; ad.weight_decay = 0.01;
        k.adam_step(ad);
    }
}

// A batch target in C++ (what a Python callable is to the binding): a standard normal, NaN beyond 2.5
// (the value, and for MALA/HMC the gradient too).
struct NormalBatch final : mc::BatchTarget {
    int64_t chains, dim;
    std::vector<double> z;
    NormalBatch(int64_t c, int64_t d) : chains(c), dim(d), z(static_cast<size_t>(c * d)) {}
    double* begin_step() override { return z.data(); }
    void end_step(double* lp, double* grad) override {
        for (int64_t c = 0; c < chains; ++c) {
            double s = 0;
            for (int64_t j = 0; j < dim; ++j) s -= 0.5 * z[c * dim + j] * z[c * dim + j];
            const bool bad = z[c * dim] > 2.5;                 // for some proposals, never at x0
            lp[c] = bad ? std::nan("") : s;
            for (int64_t j = 0; grad != nullptr && j < dim; ++j) grad[c * dim + j] = bad ? std::nan("") : -z[c * dim + j];
        }
    }
};

struct StopAfter final : mc::Progress {
    int left;
    explicit StopAfter(int n) : left(n) {}
    void report(int64_t, int64_t) override { if (--left < 0) throw std::runtime_error("stop"); }
};

void run_sampler(int64_t chains, int64_t dim, mc::Proposal proposal, bool adapt_cov, int64_t thin, mc::Progress* progress) {
    const int64_t draws = 7, warmup = 12;
    std::vector<double> x0 = values<double>(chains * dim, 9), step0(static_cast<size_t>(chains), 0.7);
    for (auto& v : x0) v = std::isfinite(v) ? std::fmod(v, 2.0) : 0.1;
    std::vector<double> qm(x0), qlv(static_cast<size_t>(chains * dim), -0.5);
    std::vector<double> samples(static_cast<size_t>(chains * draws * dim)), lp(static_cast<size_t>(chains * draws));
    std::vector<double> acc(static_cast<size_t>(chains)), ss(static_cast<size_t>(chains)),
        chol(static_cast<size_t>(dim * dim));
    std::vector<int64_t> nn(static_cast<size_t>(chains)), ndiv(static_cast<size_t>(chains));
    std::vector<double> inv_metric(static_cast<size_t>(chains * dim));
    std::vector<double> stats(static_cast<size_t>(chains * draws * mc::kNumStats));
    std::vector<double> w_samples(static_cast<size_t>(chains * warmup * dim)), w_lp(static_cast<size_t>(chains * warmup)),
        w_stats(static_cast<size_t>(chains * warmup * mc::kNumStats));
    mc::Config cfg;
    cfg.chains = chains; cfg.dim = dim; cfg.seed = 99; cfg.chain_offset = 4; cfg.n_warmup = warmup;
    cfg.n_draws = draws; cfg.thin = thin; cfg.adapt_covariance = adapt_cov; cfg.x0 = x0.data();
    cfg.step0 = step0.data(); cfg.progress = progress;
    cfg.proposal = proposal;
    if (proposal == mc::Proposal::kIndependent) { cfg.proposal_mean = qm.data(); cfg.proposal_logvar = qlv.data(); }
    const bool gradient = proposal == mc::Proposal::kMala || proposal == mc::Proposal::kHmc;
    if (proposal == mc::Proposal::kHmc) { cfg.n_leapfrog = 3; cfg.jitter = 0.3; }
    cfg.keep_warmup = gradient;
    cfg.adapt_metric = proposal == mc::Proposal::kHmc;
    mc::Outputs out;
    out.samples = samples.data(); out.log_prob = lp.data(); out.accept_rate = acc.data(); out.step_size = ss.data();
    out.n_nan = nn.data(); out.proposal_chol = chol.data(); out.stats = stats.data(); out.n_divergent = ndiv.data();
    out.inv_metric = inv_metric.data();
    if (cfg.keep_warmup) { out.warmup_samples = w_samples.data(); out.warmup_log_prob = w_lp.data(); out.warmup_stats = w_stats.data(); }

    std::vector<double> cov(static_cast<size_t>(dim * dim), 0.2), L(cov.size()), inv(cov.size()), mean(dim, 0.3);
    for (int64_t i = 0; i < dim; ++i) cov[i * dim + i] = 1.0 + dim;
    if (!mc::cholesky(cov.data(), dim, L.data())) throw std::logic_error("cholesky");
    mc::invert_lower(L.data(), dim, inv.data());
    double log_norm = -0.5 * static_cast<double>(dim) * vk::kLog2Pi;
    for (int64_t i = 0; i < dim; ++i) log_norm -= std::log(L[i * dim + i]);
    const vk::GaussianParams gp{mean.data(), inv.data(), log_norm, dim};
    std::vector<double> X = values<double>(23 * dim, 10), y(23);
    for (int64_t i = 0; i < 23; ++i) y[i] = (i % 3) == 0;
    for (auto& v : X) v = std::isfinite(v) ? std::fmod(v, 2.0) : 0.0;
    const vk::LogisticParams lr = vk::make_logistic_params(X.data(), y.data(), 23, dim, 1.5);
    const auto& t = mc::table();
    auto guarded = [&](auto run) { try { run(); } catch (const std::exception&) {} };   // refusals and the throwing Progress
    guarded([&] { t.run_gaussian(gp, cfg, out); });
    if (dim >= 2) guarded([&] { t.run_banana(vk::make_banana_params(0.1, 10.0, dim), cfg, out); });
    guarded([&] { t.run_logistic(lr, cfg, out); });
    NormalBatch batch(chains, dim);
    guarded([&] { t.run_batch(batch, cfg, out); });
    // the targets' own evaluation (Target.log_prob_and_grad), with and without the gradient
    std::vector<double> elp(static_cast<size_t>(chains)), eg(static_cast<size_t>(chains * dim));
    for (double* g : {eg.data(), static_cast<double*>(nullptr)}) {
        t.evaluate_gaussian(gp, chains, x0.data(), elp.data(), g);
        if (dim >= 2) t.evaluate_banana(vk::make_banana_params(0.1, 10.0, dim), chains, x0.data(), elp.data(), g);
        t.evaluate_logistic(lr, chains, x0.data(), elp.data(), g);
    }
}

// An MLP forward and backward (the built-in GEMM, every activation) over edge shapes, including widths
// across the 8-column block alignment and enough work for several blocks per GEMM.
template <class T>
void run_mlp(int64_t rows, std::vector<int64_t> sizes, int act, bool params, bool want_dx) {
    const int n = static_cast<int>(sizes.size()) - 1;
    std::vector<std::vector<T>> W, b, h, dh, dW, db;
    for (int i = 0; i < n; ++i) {
        W.push_back(values<T>(sizes[i] * sizes[i + 1], 11 + i));
        b.push_back(values<T>(sizes[i + 1], 21 + i));
        h.emplace_back(static_cast<size_t>(rows * sizes[i + 1]));
        dh.emplace_back(static_cast<size_t>(rows * sizes[i + 1]));
        dW.emplace_back(static_cast<size_t>(sizes[i] * sizes[i + 1]));
        db.emplace_back(static_cast<size_t>(sizes[i + 1]));
    }
    std::vector<T> x = values<T>(rows * sizes[0], 5), dx(static_cast<size_t>(rows * sizes[0]));
    std::vector<const T*> Wp, bp, hp;
    std::vector<T*> op, dhp, dWp, dbp;
    for (int i = 0; i < n; ++i) {
        Wp.push_back(W[i].data()); bp.push_back(b[i].data()); hp.push_back(h[i].data()); op.push_back(h[i].data());
        dhp.push_back(dh[i].data()); dWp.push_back(dW[i].data()); dbp.push_back(db[i].data());
    }
    vk::cpu::MlpForward<T> f{rows, n, sizes.data(), act, x.data(), Wp.data(), bp.data(), op.data()};
    vk::cpu::mlp_forward<T>(f);
    std::vector<T> dout = values<T>(rows * sizes[n], 9);
    vk::cpu::MlpBackward<T> g{rows, n, sizes.data(), act, x.data(), Wp.data(), hp.data(), dout.data(), dhp.data(),
                              params ? dWp.data() : nullptr, params ? dbp.data() : nullptr,
                              want_dx ? dx.data() : nullptr, T(-0.01)};
    vk::cpu::mlp_backward<T>(g);
    vk::cpu::bias_activation<T>(rows, sizes[1], h[0].data(), b[0].data(), act);
    vk::cpu::activation_grad<T>(rows, sizes[1], dh[0].data(), h[0].data(), db[0].data(), act, T(2));
}

}  // namespace

int main() {
    const vk::cpu::Kernels* levels[] = {&vk::cpu::kernels_isa_scalar(), &vk::cpu::kernels_isa_baseline()};
    const uint64_t top = std::numeric_limits<uint64_t>::max();
    for (const vk::cpu::Kernels* k : levels) {
        for (int64_t rows : {0, 1, 3, 17})
            for (int64_t cols : {0, 1, 2, 15, 16, 17, 1023, 1025, 2049})
                for (uint64_t offset : {uint64_t(0), uint64_t(3), uint64_t(0xFFFFFFFFull)})
                    for (int64_t samples : {1, 3}) {
                        run_kernels(k->f32, rows, cols, offset, samples);
                        run_kernels(k->f64, rows, cols, offset, samples);
                    }
        // above the parallel threshold (kParallelMin), and at the very end of the stream
        run_kernels(k->f32, 300, 257, top - uint64_t(3) * 300 * 257, 3);
        run_kernels(k->f64, 300, 257, top - uint64_t(3) * 300 * 257, 3);
    }
    std::vector<uint32_t> ctr(4 * 9, 0xFFFFFFFFu), key(2 * 9, 7u), out(4 * 9);
    vk::Philox4x32_10Args ph; ph.n = 9; ph.counters = ctr.data(); ph.keys = key.data(); ph.out = out.data();
    vk::cpu::philox4x32_10(ph);

    StopAfter stop(0);
    for (int64_t chains : {1, 5, 17, 33})
        for (int64_t dim : {1, 2, 3, 4, 5, 7})
            for (int variant = 0; variant < 6; ++variant) {
                stop.left = 0;
                const mc::Proposal proposal = variant == 1 ? mc::Proposal::kIndependent
                                            : variant == 4 ? mc::Proposal::kMala
                                            : variant == 5 ? mc::Proposal::kHmc : mc::Proposal::kRandomWalk;
                run_sampler(chains, dim, proposal, variant == 2, variant == 3 ? 3 : 1,
                            variant == 3 ? static_cast<mc::Progress*>(&stop) : nullptr);
            }
    for (int act = 0; act < 6; ++act)
        for (int64_t rows : {0, 1, 7, 100})
            for (bool params : {true, false}) {
                run_mlp<float>(rows, {3, 9, 17, 2}, act, params, !params || act % 2 == 0);
                run_mlp<double>(rows, {33, 1, 64}, act, params, true);
            }
    run_mlp<float>(300, {200, 300, 50}, 1, true, true);   // several blocks per GEMM, both split directions
    run_mlp<float>(30, {400, 300, 500}, 2, true, true);
    std::puts("sanitized run complete");
    return 0;
}
