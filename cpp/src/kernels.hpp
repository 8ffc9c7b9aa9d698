// kernels.hpp: the CPU kernel interface. One table of function pointers per instruction-set level
// (scalar, baseline, AVX2, AVX-512); every level computes the same bits, and dispatch.cpp picks the best
// level the CPU supports once, at load. No Python types here: raw pointers, sizes, seeds.
//
// Layout: every array is C-contiguous; (rows, cols) arrays are row-major; reductions run over cols.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

namespace vk::cpu {

// AdamW hyper-parameters for step t, with the bias corrections folded in once, in double, by make().
struct AdamHyper {
    double beta1, beta2, eps;
    double decay_factor;   // 1 - lr * weight_decay
    double step_size;      // lr / (1 - beta1^t)
    double inv_bc2_sqrt;   // 1 / sqrt(1 - beta2^t)

    static AdamHyper make(int64_t step, double lr, double beta1, double beta2, double eps, double weight_decay) {
        const double t = static_cast<double>(step);
        return AdamHyper{beta1, beta2, eps, 1.0 - lr * weight_decay, lr / (1.0 - std::pow(beta1, t)),
                         1.0 / std::sqrt(1.0 - std::pow(beta2, t))};
    }
};

template <class T>
struct KernelTable {
    // Stream positions [offset, offset + n) of seed (see cpp/include/vaekernels/random.hpp).
    void (*randn)(uint64_t seed, uint64_t offset, int64_t n, T* out);
    void (*rand)(uint64_t seed, uint64_t offset, int64_t n, T* out);
    // z[s, i] = mu[i] + exp(lv[i]/2) eps[offset + s n + i], s < n_samples, i < n.
    void (*reparameterize)(const T* mu, const T* lv, int64_t n, int64_t n_samples, uint64_t seed,
                           uint64_t offset, T* z);
    void (*kl_standard_normal)(const T* mu, const T* lv, int64_t rows, int64_t cols, T* kl);
    void (*kl_standard_normal_backward)(const T* grad, const T* mu, const T* lv, int64_t rows, int64_t cols,
                                        T* dmu, T* dlv);
    void (*kl_normal)(const T* mq, const T* lq, const T* mp, const T* lp, int64_t rows, int64_t cols, T* kl);
    void (*kl_normal_backward)(const T* grad, const T* mq, const T* lq, const T* mp, const T* lp, int64_t rows,
                               int64_t cols, T* dmq, T* dlq, T* dmp, T* dlp);
    void (*bernoulli_log_prob)(const T* x, const T* logits, int64_t rows, int64_t cols, T* out);
    void (*bernoulli_log_prob_and_grad)(const T* x, const T* logits, int64_t rows, int64_t cols, T* out,
                                        T* dlogits);
    void (*normal_log_prob)(const T* x, const T* mean, const T* lv, int64_t rows, int64_t cols, T* out);
    void (*normal_log_prob_and_grad)(const T* x, const T* mean, const T* lv, int64_t rows, int64_t cols, T* out,
                                     T* dmean, T* dlv);
    void (*standard_normal_log_prob)(const T* z, int64_t rows, int64_t cols, T* out);
    void (*standard_normal_log_prob_and_grad)(const T* z, int64_t rows, int64_t cols, T* out, T* dz);
    void (*latent_forward)(const T* mu, const T* lv, int64_t rows, int64_t cols, uint64_t seed, uint64_t offset,
                           T* z, T* kl);
    void (*latent_backward)(const T* dz, const T* mu, const T* lv, int64_t rows, int64_t cols, uint64_t seed,
                            uint64_t offset, T kl_weight, T* dmu, T* dlv);
    void (*adam_step)(T* param, const T* grad, T* m, T* v, int64_t n, const AdamHyper& hyper);
};

struct Kernels {
    const char* name;
    KernelTable<float> f32;
    KernelTable<double> f64;
};

// The raw Philox4x32-10 block function over n (counter, key) pairs.
void philox4x32_10(const uint32_t* counters, const uint32_t* keys, int64_t n, uint32_t* out);

// The level in use: the best the CPU supports, or the one named by VAEKERNELS_SIMD at load.
const Kernels& kernels();
// Levels compiled into this build and usable on this CPU, best last (for tests and diagnostics).
std::vector<std::string> available_levels();
// A specific level, or nullptr if it is not compiled or not supported by this CPU.
const Kernels* kernels_for(const std::string& level);

template <class T> const KernelTable<T>& table(const Kernels& k);
template <> inline const KernelTable<float>& table<float>(const Kernels& k) { return k.f32; }
template <> inline const KernelTable<double>& table<double>(const Kernels& k) { return k.f64; }

}  // namespace vk::cpu
