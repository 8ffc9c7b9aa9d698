// emulate.cpp: runs the CUDA kernels of cuda/*.cu on the host (fake_cuda.hpp) over inputs written by
// tests/test_cuda.py, and writes their outputs for comparison with the CPU kernels. Usage: emulate DIR.
//
// Every launch uses 2 blocks of 256 threads, far fewer than the work needs, so every grid-stride loop
// runs several rounds and row groups wrap around the grid. Shapes and parameters are fixed here and in
// the test (R x C batch, seeds, offsets): change both together.
#include "fake_cuda.hpp"

#include <cmath>
#include <cstdio>
#include <fstream>
#include <stdexcept>
#include <string>

#include "random.cu"
#include "divergence.cu"
#include "likelihood.cu"
#include "latent.cu"
#include "optim.cu"
#include "mcmc.cu"

namespace {

constexpr int64_t R = 37, C = 53, N = R * C, kSamples = 3;
constexpr uint64_t kSeed = 0x0123456789ABCDEFull, kOffset = 7;   // odd: unaligned in both dtypes
constexpr unsigned kGrid = 2, kBlock = 256;
constexpr int64_t kChains = 40, kSteps = 6;
constexpr uint64_t kMhSeed = 2024, kChainOffset = 9;

std::string dir;

template <class T>
std::vector<T> load(const std::string& name, int64_t n) {
    std::vector<T> v(static_cast<size_t>(n));
    std::ifstream f(dir + "/" + name, std::ios::binary);
    if (!f.read(reinterpret_cast<char*>(v.data()), static_cast<std::streamsize>(n * sizeof(T))))
        throw std::runtime_error("cannot read " + name);
    return v;
}

template <class T>
void save(const std::string& name, const std::vector<T>& v) {
    std::ofstream f(dir + "/" + name, std::ios::binary);
    f.write(reinterpret_cast<const char*>(v.data()), static_cast<std::streamsize>(v.size() * sizeof(T)));
}

template <class A>
A rows_args() {
    A a;
    a.rows = R;
    a.cols = C;
    return a;
}

template <class T>
void run_kernels(const std::string& dt) {
    using namespace vk::gpu;
    auto a = load<T>(dt + "_a.bin", N), b = load<T>(dt + "_b.bin", N), c = load<T>(dt + "_c.bin", N),
         d = load<T>(dt + "_d.bin", N), e = load<T>(dt + "_e.bin", N), x01 = load<T>(dt + "_x01.bin", N),
         g = load<T>(dt + "_g.bin", R);
    std::vector<T> o1(N), o2(N), o3(N), o4(N), row(R), z(N * kSamples);
    auto out = [&](const char* name, const std::vector<T>& v) { save(dt + "_" + name + ".bin", v); };

    vk::RandnArgs<T> rn;
    rn.n = N; rn.seed = kSeed; rn.offset = kOffset; rn.out = o1.data();
    emu::launch(kGrid, kBlock, randn_kernel<T>, rn);
    out("randn", o1);
    vk::RandArgs<T> ru;
    ru.n = N; ru.seed = kSeed; ru.offset = kOffset; ru.out = o1.data();
    emu::launch(kGrid, kBlock, rand_kernel<T>, ru);
    out("rand", o1);
    vk::ReparameterizeArgs<T> rp;
    rp.n = N; rp.mu = a.data(); rp.logvar = b.data(); rp.seed = kSeed; rp.offset = kOffset; rp.n_samples = kSamples;
    rp.z = z.data();
    emu::launch(kGrid, kBlock, reparameterize_kernel<T>, rp);
    out("reparameterize", z);

    auto ks = rows_args<vk::KlStandardNormalArgs<T>>();
    ks.mu = a.data(); ks.logvar = b.data(); ks.kl = row.data();
    emu::launch(kGrid, kBlock, kl_standard_normal_kernel<T>, ks);
    out("kl_standard_normal", row);
    auto ksb = rows_args<vk::KlStandardNormalBackwardArgs<T>>();
    ksb.grad = g.data(); ksb.mu = a.data(); ksb.logvar = b.data(); ksb.dmu = o1.data(); ksb.dlogvar = o2.data();
    emu::launch(kGrid, kBlock, kl_standard_normal_backward_kernel<T>, ksb);
    out("kl_standard_normal_backward_0", o1); out("kl_standard_normal_backward_1", o2);
    auto kn = rows_args<vk::KlNormalArgs<T>>();
    kn.mu_q = a.data(); kn.logvar_q = b.data(); kn.mu_p = c.data(); kn.logvar_p = d.data(); kn.kl = row.data();
    emu::launch(kGrid, kBlock, kl_normal_kernel<T>, kn);
    out("kl_normal", row);
    auto knb = rows_args<vk::KlNormalBackwardArgs<T>>();
    knb.grad = g.data(); knb.mu_q = a.data(); knb.logvar_q = b.data(); knb.mu_p = c.data(); knb.logvar_p = d.data();
    knb.dmu_q = o1.data(); knb.dlogvar_q = o2.data(); knb.dmu_p = o3.data(); knb.dlogvar_p = o4.data();
    emu::launch(kGrid, kBlock, kl_normal_backward_kernel<T>, knb);
    out("kl_normal_backward_0", o1); out("kl_normal_backward_1", o2);
    out("kl_normal_backward_2", o3); out("kl_normal_backward_3", o4);

    auto bl = rows_args<vk::BernoulliLogProbArgs<T>>();
    bl.x = x01.data(); bl.logits = a.data(); bl.log_prob = row.data();
    emu::launch(kGrid, kBlock, bernoulli_log_prob_kernel<T>, bl);
    out("bernoulli_log_prob", row);
    auto blg = rows_args<vk::BernoulliLogProbAndGradArgs<T>>();
    blg.x = x01.data(); blg.logits = a.data(); blg.log_prob = row.data(); blg.dlogits = o1.data();
    emu::launch(kGrid, kBlock, bernoulli_log_prob_and_grad_kernel<T>, blg);
    out("bernoulli_log_prob_and_grad_0", row); out("bernoulli_log_prob_and_grad_1", o1);
    auto blb = rows_args<vk::BernoulliLogProbBackwardArgs<T>>();
    blb.grad = g.data(); blb.x = x01.data(); blb.logits = a.data(); blb.dlogits = o1.data();
    emu::launch(kGrid, kBlock, bernoulli_log_prob_backward_kernel<T>, blb);
    out("bernoulli_log_prob_backward", o1);
    auto nl = rows_args<vk::NormalLogProbArgs<T>>();
    nl.x = a.data(); nl.mean = b.data(); nl.logvar = c.data(); nl.log_prob = row.data();
    emu::launch(kGrid, kBlock, normal_log_prob_kernel<T>, nl);
    out("normal_log_prob", row);
    auto nlg = rows_args<vk::NormalLogProbAndGradArgs<T>>();
    nlg.x = a.data(); nlg.mean = b.data(); nlg.logvar = c.data(); nlg.log_prob = row.data(); nlg.dmean = o1.data();
    nlg.dlogvar = o2.data();
    emu::launch(kGrid, kBlock, normal_log_prob_and_grad_kernel<T>, nlg);
    out("normal_log_prob_and_grad_0", row); out("normal_log_prob_and_grad_1", o1); out("normal_log_prob_and_grad_2", o2);
    auto nlb = rows_args<vk::NormalLogProbBackwardArgs<T>>();
    nlb.grad = g.data(); nlb.x = a.data(); nlb.mean = b.data(); nlb.logvar = c.data(); nlb.dmean = o1.data();
    nlb.dlogvar = o2.data();
    emu::launch(kGrid, kBlock, normal_log_prob_backward_kernel<T>, nlb);
    out("normal_log_prob_backward_0", o1); out("normal_log_prob_backward_1", o2);
    auto sl = rows_args<vk::StandardNormalLogProbArgs<T>>();
    sl.z = a.data(); sl.log_prob = row.data();
    emu::launch(kGrid, kBlock, standard_normal_log_prob_kernel<T>, sl);
    out("standard_normal_log_prob", row);
    auto slg = rows_args<vk::StandardNormalLogProbAndGradArgs<T>>();
    slg.z = a.data(); slg.log_prob = row.data(); slg.dz = o1.data();
    emu::launch(kGrid, kBlock, standard_normal_log_prob_and_grad_kernel<T>, slg);
    out("standard_normal_log_prob_and_grad_0", row); out("standard_normal_log_prob_and_grad_1", o1);

    auto lf = rows_args<vk::LatentForwardArgs<T>>();
    lf.mu = a.data(); lf.logvar = b.data(); lf.seed = kSeed; lf.offset = kOffset; lf.z = o1.data(); lf.kl = row.data();
    emu::launch(kGrid, kBlock, latent_forward_kernel<T>, lf);
    out("latent_forward_0", o1); out("latent_forward_1", row);
    auto lb = rows_args<vk::LatentBackwardArgs<T>>();
    lb.dz = e.data(); lb.mu = a.data(); lb.logvar = b.data(); lb.seed = kSeed; lb.offset = kOffset; lb.kl_weight = 0.25;
    lb.dmu = o1.data(); lb.dlogvar = o2.data();
    emu::launch(kGrid, kBlock, latent_backward_kernel<T>, lb);
    out("latent_backward_0", o1); out("latent_backward_1", o2);
    auto lv = rows_args<vk::LatentVjpArgs<T>>();
    lv.dz = e.data(); lv.dkl = g.data(); lv.mu = a.data(); lv.logvar = b.data(); lv.seed = kSeed; lv.offset = kOffset;
    lv.dmu = o1.data(); lv.dlogvar = o2.data();
    emu::launch(kGrid, kBlock, latent_vjp_kernel<T>, lv);
    out("latent_vjp_0", o1); out("latent_vjp_1", o2);

    // AdamW step 3, lr 0.01, weight decay 0.1, default betas and eps; constants as the launcher (optim.cu).
    std::vector<T> p = a, m = c, v(N);
    for (int64_t i = 0; i < N; ++i) v[i] = d[i] < T(0) ? -d[i] : d[i];
    vk::AdamStepArgs<T> ad;
    ad.n = N; ad.param = p.data(); ad.grad = b.data(); ad.m = m.data(); ad.v = v.data(); ad.step = 3; ad.lr = 0.01;
    ad.beta1 = 0.9; ad.beta2 = 0.999; ad.eps = 1e-8; ad.weight_decay = 0.1;
    const auto constants = vk::AdamConstants<T>::from(
        vk::AdamHyper::make(ad.step, ad.lr, ad.beta1, ad.beta2, ad.eps, ad.weight_decay));
    emu::launch(kGrid, kBlock, adam_step_kernel<T>, ad, constants);
    out("adam_step_0", p); out("adam_step_1", m); out("adam_step_2", v);

    // Rows of zero columns: the row sums are 0 and nothing else is touched (the z loop has no work).
    std::vector<T> kl0(R, T(-1));
    auto lf0 = rows_args<vk::LatentForwardArgs<T>>();
    lf0.cols = 0; lf0.mu = a.data(); lf0.logvar = b.data(); lf0.seed = kSeed; lf0.offset = kOffset; lf0.z = o1.data();
    lf0.kl = kl0.data();
    emu::launch(kGrid, kBlock, latent_forward_kernel<T>, lf0);
    out("latent_forward_empty_rows", kl0);
}

// kSteps MH steps from x0 (chains, dim) row-major; writes the states (steps, chains, dim) and log p (steps, chains).
template <class Target>
void run_mh(const std::string& name, const Target& target, int64_t dim, double step) {
    using namespace vk::gpu;
    const auto x0 = load<double>("mh_" + name + "_x0.bin", kChains * dim);
    std::vector<double> x(kChains * dim), xp(kChains * dim), scratch(kChains * dim), lp(kChains), ss(kChains, step);
    std::vector<int64_t> acc(kChains, 0), nan(kChains, 0);
    for (int64_t c = 0; c < kChains; ++c)
        for (int64_t j = 0; j < dim; ++j) x[j * kChains + c] = x0[c * dim + j];   // (dim, chains)
    emu::launch(kGrid, kBlock, target_log_prob_kernel<Target>, target, x.data(), kChains, dim, scratch.data(), lp.data());
    std::vector<double> states, lps;
    for (int64_t s = 0; s < kSteps; ++s) {
        emu::launch(kGrid, kBlock, mh_step_kernel<Target>, target, x.data(), lp.data(), ss.data(),
                    static_cast<const double*>(nullptr), kChains, dim, kMhSeed, static_cast<uint64_t>(s), kChainOffset,
                    xp.data(), scratch.data(), acc.data(), nan.data());
        for (int64_t c = 0; c < kChains; ++c)
            for (int64_t j = 0; j < dim; ++j) states.push_back(x[j * kChains + c]);
        lps.insert(lps.end(), lp.begin(), lp.end());
    }
    save("mh_" + name + "_states.bin", states);
    save("mh_" + name + "_lp.bin", lps);
    save("mh_" + name + "_accepted.bin", acc);
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) { std::fprintf(stderr, "usage: emulate DIR\n"); return 2; }
    dir = argv[1];
    try {
        run_kernels<float>("f32");
        run_kernels<double>("f64");
        const auto banana = [](int64_t d) { return vk::make_banana_params(0.1, 10.0, d); };
        // dims 2, 4, 5 (gaussian), 3 (logistic): dim % 4 = 2, 0, 1, 3, every place of the acceptance uniform
        run_mh("banana", vk::gpu::BananaTarget{banana(2)}, 2, 3.0);
        run_mh("banana4", vk::gpu::BananaTarget{banana(4)}, 4, 1.5);
        const int64_t gd = 5;
        const auto mean = load<double>("mh_gaussian_mean.bin", gd);
        const auto inv_chol = load<double>("mh_gaussian_inv_chol.bin", gd * gd);
        const auto log_norm = load<double>("mh_gaussian_log_norm.bin", 1);
        run_mh("gaussian", vk::gpu::GaussianTarget{vk::GaussianParams{mean.data(), inv_chol.data(), log_norm[0], gd}},
               gd, 0.6);
        // Logistic regression, 40 observations, 3 coefficients, prior scale 2 (as tests/test_cuda.py).
        const int64_t n_obs = 40, ld = 3;
        const double prior_scale = 2.0;
        const auto X = load<double>("mh_logistic_X.bin", n_obs * ld);
        const auto y = load<double>("mh_logistic_y.bin", n_obs);
        const vk::LogisticParams lr = vk::make_logistic_params(X.data(), y.data(), n_obs, ld, prior_scale);
        run_mh("logistic", vk::gpu::LogisticTarget{lr}, ld, 0.3);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "emulate: %s\n", e.what());
        return 1;
    }
    return 0;
}
