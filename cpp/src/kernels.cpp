// kernels.cpp: the CPU kernels. This one file is compiled once per instruction-set level (CMake sets
// VK_ISA_NAMESPACE and the -m flags); the loops are written so the compiler vectorises them, and every
// floating-point operation is an explicit IEEE operation with contraction off, so all levels agree to
// the bit. Row reductions use a fixed 16-lane partition (column j goes to lane j % 16, lanes summed in a
// fixed tree), which is what keeps sums identical across vector widths and thread counts.
#include "kernels.hpp"
#include "kernel_loops.hpp"
#include "parallel.hpp"

#include <algorithm>

#include "vaekernels/adam.hpp"
#include "vaekernels/gaussian.hpp"
#include "vaekernels/random.hpp"

#define VK_CAT2(a, b) a##b
#define VK_CAT(a, b) VK_CAT2(a, b)

VK_BEGIN_NAMESPACE
namespace {   // (the same unnamed namespace as kernel_loops.hpp's: its helpers are visible here)

// ---------------------------------------------------------------------------------------------
// Kernels: one per entry of the kernel table, each taking its argument record (kernel_args.hpp).
// Pointers are copied into locals first: inside a task lambda, members of a captured record are
// loads that the stores might alias, and GCC then refuses to vectorise ("complicated access pattern").
// ---------------------------------------------------------------------------------------------
template <class T>
void randn_kernel(const RandnArgs<T>& a) {
    const uint64_t seed = a.seed, offset = a.offset;
    T* out = a.out;
    elementwise(a.n, [=](int64_t b, int64_t len) { normal_fill(seed, offset + b, len, out + b); });
}

template <class T>
void rand_kernel(const RandArgs<T>& a) {
    const uint64_t seed = a.seed, offset = a.offset;
    T* out = a.out;
    elementwise(a.n, [=](int64_t b, int64_t len) { uniform_fill(seed, offset + b, len, out + b); });
}

// z[s, i] = mu[i] + exp(lv[i]/2) eps[offset + s n + i], s < n_samples, i < n.
template <class T>
void reparameterize_kernel(const ReparameterizeArgs<T>& a) {
    const T* mu = a.mu;
    const T* lv = a.logvar;
    T* z = a.z;
    const int64_t n = a.n;
    const uint64_t seed = a.seed, offset = a.offset;
    elementwise(n * a.n_samples, [=](int64_t b, int64_t len) {
        alignas(64) T eps[kChunk];
        normal_fill(seed, offset + b, len, eps);
        // A chunk may straddle two samples: i runs over the flat (sample, element) index.
        int64_t i = b % n;
        T* zo = z + b;
        for (int64_t k = 0; k < len;) {
            const int64_t run = std::min(len - k, n - i);
            const T* m = mu + i;
            const T* l = lv + i;
            const T* e = eps + k;
            T* o = zo + k;
            for (int64_t j = 0; j < run; ++j) o[j] = reparameterize_term(m[j], l[j], e[j]);
            k += run;
            i = 0;
        }
    });
}

template <class T>
void kl_standard_normal_kernel(const KlStandardNormalArgs<T>& a) {
    const T* mu = a.mu;
    const T* lv = a.logvar;
    row_reduce<T>(a.rows, a.cols, a.kl, [=](int64_t b, int64_t n, T* t) {
        for (int64_t j = 0; j < n; ++j) t[j] = kl_standard_normal_term(mu[b + j], lv[b + j]);
    });
}

// The per-row backward kernels: one row at a time, restrict-qualified (GCC's runtime alias checks give up
// beyond a few pointers), rows split across threads by for_each_row.
template <class T>
void kl_standard_normal_backward_row(T g, const T* __restrict m, const T* __restrict l, int64_t n,
                                     T* __restrict o1, T* __restrict o2) {
    for (int64_t j = 0; j < n; ++j) {
        T x, y;
        kl_standard_normal_grad(m[j], l[j], x, y);
        o1[j] = g * x;
        o2[j] = g * y;
    }
}

template <class T>
void kl_standard_normal_backward_kernel(const KlStandardNormalBackwardArgs<T>& a) {
    const T* grad = a.grad;
    const T* mu = a.mu;
    const T* lv = a.logvar;
    T* dmu = a.dmu;
    T* dlv = a.dlogvar;
    const int64_t cols = a.cols;
    for_each_row(a.rows, cols, [=](int64_t r) {
        const int64_t o = r * cols;
        kl_standard_normal_backward_row(grad[r], mu + o, lv + o, cols, dmu + o, dlv + o);
    });
}

template <class T>
void kl_normal_kernel(const KlNormalArgs<T>& a) {
    const T* mq = a.mu_q;
    const T* lq = a.logvar_q;
    const T* mp = a.mu_p;
    const T* lp = a.logvar_p;
    row_reduce<T>(a.rows, a.cols, a.kl, [=](int64_t b, int64_t n, T* t) {
        for (int64_t j = 0; j < n; ++j) t[j] = kl_normal_term(mq[b + j], lq[b + j], mp[b + j], lp[b + j]);
    });
}

template <class T>
void kl_normal_backward_row(T g, const T* __restrict a, const T* __restrict b, const T* __restrict c,
                            const T* __restrict d, int64_t n, T* __restrict o1, T* __restrict o2,
                            T* __restrict o3, T* __restrict o4) {
    for (int64_t j = 0; j < n; ++j) {
        T g1, g2, g3, g4;
        kl_normal_grad(a[j], b[j], c[j], d[j], g1, g2, g3, g4);
        o1[j] = g * g1; o2[j] = g * g2; o3[j] = g * g3; o4[j] = g * g4;
    }
}

template <class T>
void kl_normal_backward_kernel(const KlNormalBackwardArgs<T>& a) {
    const KlNormalBackwardArgs<T> c = a;       // by value into the lambda: see the note above the kernels
    for_each_row(a.rows, a.cols, [=](int64_t r) {
        const int64_t o = r * c.cols;
        kl_normal_backward_row(c.grad[r], c.mu_q + o, c.logvar_q + o, c.mu_p + o, c.logvar_p + o, c.cols,
                               c.dmu_q + o, c.dlogvar_q + o, c.dmu_p + o, c.dlogvar_p + o);
    });
}

template <class T>
void bernoulli_log_prob_kernel(const BernoulliLogProbArgs<T>& a) {
    const T* x = a.x;
    const T* logits = a.logits;
    row_reduce<T>(a.rows, a.cols, a.log_prob, [=](int64_t b, int64_t n, T* t) {
        for (int64_t j = 0; j < n; ++j) t[j] = bernoulli_log_prob_term(x[b + j], logits[b + j]);
    });
}

template <class T>
void bernoulli_log_prob_and_grad_kernel(const BernoulliLogProbAndGradArgs<T>& a) {
    const T* x = a.x;
    const T* logits = a.logits;
    T* dlogits = a.dlogits;
    row_reduce<T>(a.rows, a.cols, a.log_prob, [=](int64_t b, int64_t n, T* t) {
        for (int64_t j = 0; j < n; ++j) t[j] = bernoulli_log_prob_term_grad(x[b + j], logits[b + j], dlogits[b + j]);
    });
}

template <class T>
void bernoulli_log_prob_backward_row(T g, const T* __restrict x, const T* __restrict l, int64_t n,
                                     T* __restrict o) {
    for (int64_t j = 0; j < n; ++j) o[j] = g * bernoulli_log_prob_grad(x[j], l[j]);
}

template <class T>
void bernoulli_log_prob_backward_kernel(const BernoulliLogProbBackwardArgs<T>& a) {
    const T* grad = a.grad;
    const T* x = a.x;
    const T* logits = a.logits;
    T* dlogits = a.dlogits;
    const int64_t cols = a.cols;
    for_each_row(a.rows, cols, [=](int64_t r) {
        const int64_t o = r * cols;
        bernoulli_log_prob_backward_row(grad[r], x + o, logits + o, cols, dlogits + o);
    });
}

template <class T>
void normal_log_prob_kernel(const NormalLogProbArgs<T>& a) {
    const T* x = a.x;
    const T* mean = a.mean;
    const T* lv = a.logvar;
    row_reduce<T>(a.rows, a.cols, a.log_prob, [=](int64_t b, int64_t n, T* t) {
        for (int64_t j = 0; j < n; ++j) t[j] = normal_log_prob_term(x[b + j], mean[b + j], lv[b + j]);
    });
}

template <class T>
void normal_log_prob_and_grad_kernel(const NormalLogProbAndGradArgs<T>& a) {
    const T* x = a.x;
    const T* mean = a.mean;
    const T* lv = a.logvar;
    T* dmean = a.dmean;
    T* dlv = a.dlogvar;
    row_reduce<T>(a.rows, a.cols, a.log_prob, [=](int64_t b, int64_t n, T* t) {
        for (int64_t j = 0; j < n; ++j)
            t[j] = normal_log_prob_term_grad(x[b + j], mean[b + j], lv[b + j], dmean[b + j], dlv[b + j]);
    });
}

template <class T>
void normal_log_prob_backward_row(T g, const T* __restrict x, const T* __restrict m, const T* __restrict lv,
                                  int64_t n, T* __restrict o1, T* __restrict o2) {
    for (int64_t j = 0; j < n; ++j) {
        T dm, dl;
        normal_log_prob_grad(x[j], m[j], lv[j], dm, dl);
        o1[j] = g * dm;
        o2[j] = g * dl;
    }
}

template <class T>
void normal_log_prob_backward_kernel(const NormalLogProbBackwardArgs<T>& a) {
    const NormalLogProbBackwardArgs<T> c = a;
    for_each_row(a.rows, a.cols, [=](int64_t r) {
        const int64_t o = r * c.cols;
        normal_log_prob_backward_row(c.grad[r], c.x + o, c.mean + o, c.logvar + o, c.cols, c.dmean + o, c.dlogvar + o);
    });
}

template <class T>
void standard_normal_log_prob_kernel(const StandardNormalLogProbArgs<T>& a) {
    const T* z = a.z;
    row_reduce<T>(a.rows, a.cols, a.log_prob, [=](int64_t b, int64_t n, T* t) {
        for (int64_t j = 0; j < n; ++j) t[j] = standard_normal_log_prob_term(z[b + j]);
    });
}

template <class T>
void standard_normal_log_prob_and_grad_kernel(const StandardNormalLogProbAndGradArgs<T>& a) {
    const T* z = a.z;
    T* dz = a.dz;
    row_reduce<T>(a.rows, a.cols, a.log_prob, [=](int64_t b, int64_t n, T* t) {
        for (int64_t j = 0; j < n; ++j) {
            t[j] = standard_normal_log_prob_term(z[b + j]);
            dz[b + j] = -z[b + j];
        }
    });
}

// z = mu + e^(lv/2) eps and kl = KL(q || N(0, I)) per row, in one pass; eps never leaves L1.
template <class T>
void latent_forward_kernel(const LatentForwardArgs<T>& a) {
    const T* mu = a.mu;
    const T* lv = a.logvar;
    T* z = a.z;
    const uint64_t seed = a.seed, offset = a.offset;
    row_reduce<T>(a.rows, a.cols, a.kl, [=](int64_t b, int64_t n, T* t) {
        alignas(64) T eps[kChunk];
        normal_fill(seed, offset + static_cast<uint64_t>(b), n, eps);
        for (int64_t j = 0; j < n; ++j) {
            const T m = mu[b + j], l = lv[b + j];
            z[b + j] = reparameterize_term(m, l, eps[j]);
            t[j] = kl_standard_normal_term(m, l);
        }
    });
}

// Gradient of sum(dz * z) + w sum(kl) with eps regenerated from (seed, offset) (latent_backward_term).
template <class T>
void latent_backward_kernel(const LatentBackwardArgs<T>& a) {
    const T* dz = a.dz;
    const T* mu = a.mu;
    const T* lv = a.logvar;
    T* dmu = a.dmu;
    T* dlv = a.dlogvar;
    const uint64_t seed = a.seed, offset = a.offset;
    const T w = T(a.kl_weight);
    elementwise(a.rows * a.cols, [=](int64_t b, int64_t n) {
        alignas(64) T eps[kChunk];
        normal_fill(seed, offset + static_cast<uint64_t>(b), n, eps);
        for (int64_t j = 0; j < n; ++j) latent_backward_term(dz[b + j], mu[b + j], lv[b + j], eps[j], w, dmu[b + j], dlv[b + j]);
    });
}

// A run of elements in one row (weight w); restrict-qualified, seven pointers being past GCC's alias checks.
template <class T>
void latent_vjp_run(T w, const T* __restrict dz, const T* __restrict mu, const T* __restrict lv,
                    const T* __restrict eps, int64_t n, T* __restrict dmu, T* __restrict dlv) {
    for (int64_t j = 0; j < n; ++j) latent_backward_term(dz[j], mu[j], lv[j], eps[j], w, dmu[j], dlv[j]);
}

// latent_backward with the KL weight of each row taken from dkl. A chunk of elementwise() may span rows:
// it is cut into runs, one per row.
template <class T>
void latent_vjp_kernel(const LatentVjpArgs<T>& a) {
    const T* dz = a.dz;
    const T* dkl = a.dkl;
    const T* mu = a.mu;
    const T* lv = a.logvar;
    T* dmu = a.dmu;
    T* dlv = a.dlogvar;
    const uint64_t seed = a.seed, offset = a.offset;
    const int64_t cols = a.cols;
    if (cols == 0) return;
    elementwise(a.rows * cols, [=](int64_t b, int64_t n) {
        alignas(64) T eps[kChunk];
        normal_fill(seed, offset + static_cast<uint64_t>(b), n, eps);
        int64_t r = b / cols, j0 = b - r * cols;
        for (int64_t k = 0; k < n; ++r, j0 = 0) {
            const int64_t run = std::min(n - k, cols - j0), i = b + k;
            latent_vjp_run(dkl[r], dz + i, mu + i, lv + i, eps + k, run, dmu + i, dlv + i);
            k += run;
        }
    });
}

template <class T>
void adam_step_kernel(const AdamStepArgs<T>& a) {
    const AdamConstants<T> c =
        AdamConstants<T>::from(AdamHyper::make(a.step, a.lr, a.beta1, a.beta2, a.eps, a.weight_decay));
    T* p = a.param;
    const T* g = a.grad;
    T* m = a.m;
    T* v = a.v;
    // Captured by value: by-reference captures make the pointers themselves loads that the stores might alias.
    elementwise(a.n, [=](int64_t b, int64_t len) {
        for (int64_t j = b; j < b + len; ++j) adam_update(p[j], g[j], m[j], v[j], c);
    });
}

template <class T>
cpu::KernelTable<T> make_table() {
    cpu::KernelTable<T> t;
#define VK_KERNEL_ENTRY(name, Args) t.name = name##_kernel<T>;
    VK_FLOAT_KERNELS(VK_KERNEL_ENTRY)
#undef VK_KERNEL_ENTRY
    return t;
}

}  // namespace

// The dense-layer epilogues of this level (layer_kernels.cpp).
template <class T>
cpu::LayerKernels<T> make_layer_kernels();
VK_END_NAMESPACE

namespace vk::cpu {
// One getter per compiled level, e.g. kernels_isa_avx2(); dispatch.cpp declares them.
const Kernels& VK_CAT(kernels_, VK_ISA_NAMESPACE)() {
    static const Kernels k{VK_ISA_LEVEL_NAME, vk::make_table<float>(), vk::make_table<double>(),
                           vk::make_layer_kernels<float>(), vk::make_layer_kernels<double>()};
    return k;
}
}  // namespace vk::cpu
