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

template <class T>
void run_kernels(const std::string& dt) {
    using namespace vk::gpu;
    const auto a = load<T>(dt + "_a.bin", N), b = load<T>(dt + "_b.bin", N), c = load<T>(dt + "_c.bin", N),
               d = load<T>(dt + "_d.bin", N), e = load<T>(dt + "_e.bin", N), x01 = load<T>(dt + "_x01.bin", N),
               g = load<T>(dt + "_g.bin", R);
    std::vector<T> o1(N), o2(N), o3(N), o4(N), row(R), z(N * kSamples);
    auto out = [&](const char* name, const std::vector<T>& v) { save(dt + "_" + name + ".bin", v); };

    emu::launch(kGrid, kBlock, randn_kernel<T>, kSeed, kOffset, N, o1.data());
    out("randn", o1);
    emu::launch(kGrid, kBlock, rand_kernel<T>, kSeed, kOffset, N, o1.data());
    out("rand", o1);
    emu::launch(kGrid, kBlock, reparameterize_kernel<T>, a.data(), b.data(), N, kSamples, kSeed, kOffset, z.data());
    out("reparameterize", z);

    emu::launch(kGrid, kBlock, kl_standard_normal_kernel<T>, a.data(), b.data(), R, C, row.data());
    out("kl_standard_normal", row);
    emu::launch(kGrid, kBlock, kl_standard_normal_backward_kernel<T>, g.data(), a.data(), b.data(), R, C, o1.data(),
                o2.data());
    out("kl_standard_normal_backward_0", o1); out("kl_standard_normal_backward_1", o2);
    emu::launch(kGrid, kBlock, kl_normal_kernel<T>, a.data(), b.data(), c.data(), d.data(), R, C, row.data());
    out("kl_normal", row);
    emu::launch(kGrid, kBlock, kl_normal_backward_kernel<T>, g.data(), a.data(), b.data(), c.data(), d.data(), R, C,
                o1.data(), o2.data(), o3.data(), o4.data());
    out("kl_normal_backward_0", o1); out("kl_normal_backward_1", o2);
    out("kl_normal_backward_2", o3); out("kl_normal_backward_3", o4);

    emu::launch(kGrid, kBlock, bernoulli_log_prob_kernel<T>, x01.data(), a.data(), R, C, row.data());
    out("bernoulli_log_prob", row);
    emu::launch(kGrid, kBlock, bernoulli_log_prob_and_grad_kernel<T>, x01.data(), a.data(), R, C, row.data(), o1.data());
    out("bernoulli_log_prob_and_grad_0", row); out("bernoulli_log_prob_and_grad_1", o1);
    emu::launch(kGrid, kBlock, normal_log_prob_kernel<T>, a.data(), b.data(), c.data(), R, C, row.data());
    out("normal_log_prob", row);
    emu::launch(kGrid, kBlock, normal_log_prob_and_grad_kernel<T>, a.data(), b.data(), c.data(), R, C, row.data(),
                o1.data(), o2.data());
    out("normal_log_prob_and_grad_0", row); out("normal_log_prob_and_grad_1", o1); out("normal_log_prob_and_grad_2", o2);
    emu::launch(kGrid, kBlock, standard_normal_log_prob_kernel<T>, a.data(), R, C, row.data());
    out("standard_normal_log_prob", row);
    emu::launch(kGrid, kBlock, standard_normal_log_prob_and_grad_kernel<T>, a.data(), R, C, row.data(), o1.data());
    out("standard_normal_log_prob_and_grad_0", row); out("standard_normal_log_prob_and_grad_1", o1);

    emu::launch(kGrid, kBlock, latent_forward_kernel<T>, a.data(), b.data(), R, C, kSeed, kOffset, o1.data(), row.data());
    out("latent_forward_0", o1); out("latent_forward_1", row);
    emu::launch(kGrid, kBlock, latent_backward_kernel<T>, e.data(), a.data(), b.data(), N, kSeed, kOffset, T(0.25),
                o1.data(), o2.data());
    out("latent_backward_0", o1); out("latent_backward_1", o2);

    // AdamW step 3, lr 0.01, weight decay 0.1, default betas and eps; hyper-parameters as cuda/module.cpp.
    std::vector<T> p = a, m = c, v(N);
    for (int64_t i = 0; i < N; ++i) v[i] = d[i] < T(0) ? -d[i] : d[i];
    const double lr = 0.01, b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 0.1;
    const double step_size = lr / (1.0 - std::pow(b1, 3.0)), inv_bc2 = 1.0 / std::sqrt(1.0 - std::pow(b2, 3.0));
    emu::launch(kGrid, kBlock, adam_step_kernel<T>, p.data(), b.data(), m.data(), v.data(), N, T(b1), T(1.0 - b1),
                T(b2), T(1.0 - b2), T(eps), T(1.0 - lr * wd), T(step_size), T(inv_bc2));
    out("adam_step_0", p); out("adam_step_1", m); out("adam_step_2", v);

    // Rows of zero columns: the row sums are 0 and nothing else is touched (the z loop has no work).
    std::vector<T> kl0(R, T(-1));
    emu::launch(kGrid, kBlock, latent_forward_kernel<T>, a.data(), b.data(), R, int64_t(0), kSeed, kOffset, o1.data(),
                kl0.data());
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
        const double b = 0.1, sigma1 = 10.0;
        const auto banana = [&](int64_t d) {
            return vk::BananaParams{b, 0.5 / (sigma1 * sigma1), b * sigma1 * sigma1,
                                    -std::log(sigma1) - 0.5 * static_cast<double>(d) * vk::kLog2Pi, d};
        };
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
        const vk::LogisticParams lr{X.data(), y.data(), n_obs, ld, 0.5 / (prior_scale * prior_scale),
                                    -static_cast<double>(ld) * (std::log(prior_scale) + 0.5 * vk::kLog2Pi)};
        run_mh("logistic", vk::gpu::LogisticTarget{lr}, ld, 0.3);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "emulate: %s\n", e.what());
        return 1;
    }
    return 0;
}
