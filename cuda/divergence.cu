// divergence.cu: KL(q || N(0, I)) and KL(q || p) between diagonal Gaussians, per row, and their gradients.
//
// Per-coordinate terms and derivatives come from cpp/include/vaekernels/gaussian.hpp; rows are summed
// in the CPU's order (common.cuh, row_reduce), so results equal the CPU's bit for bit.
#include "common.cuh"
#include "vaekernels/gaussian.hpp"

namespace vk::gpu {

// ----------------------------------------------------------------------------
// kernels

// kl[r] = sum_j 0.5 (mu^2 + e^lv - 1 - lv); mu, lv (rows, cols), kl (rows,)
template <class T>
__global__ void kl_standard_normal_kernel(KlStandardNormalArgs<T> a) {
    row_reduce<T>(a.rows, a.cols, a.kl, [&](int64_t r, int64_t j) {
        const int64_t i = r * a.cols + j;
        return kl_standard_normal_term(a.mu[i], a.logvar[i]);
    });
}

// dmu = g[r] mu, dlv = g[r] (e^lv - 1) / 2; grad (rows,), the rest (rows, cols)
template <class T>
__global__ void kl_standard_normal_backward_kernel(KlStandardNormalBackwardArgs<T> a) {
    row_map(a.rows, a.cols, [&](int64_t r, int64_t j) {
        const int64_t i = r * a.cols + j;
        const T g = a.grad[r];
        T x, y;
        kl_standard_normal_grad(a.mu[i], a.logvar[i], x, y);
        a.dmu[i] = g * x;
        a.dlogvar[i] = g * y;
    });
}

template <class T>
__global__ void kl_normal_kernel(KlNormalArgs<T> a) {
    row_reduce<T>(a.rows, a.cols, a.kl, [&](int64_t r, int64_t j) {
        const int64_t i = r * a.cols + j;
        return kl_normal_term(a.mu_q[i], a.logvar_q[i], a.mu_p[i], a.logvar_p[i]);
    });
}

template <class T>
__global__ void kl_normal_backward_kernel(KlNormalBackwardArgs<T> a) {
    row_map(a.rows, a.cols, [&](int64_t r, int64_t j) {
        const int64_t i = r * a.cols + j;
        const T g = a.grad[r];
        T g1, g2, g3, g4;
        kl_normal_grad(a.mu_q[i], a.logvar_q[i], a.mu_p[i], a.logvar_p[i], g1, g2, g3, g4);
        a.dmu_q[i] = g * g1;
        a.dlogvar_q[i] = g * g2;
        a.dmu_p[i] = g * g3;
        a.dlogvar_p[i] = g * g4;
    });
}

// ----------------------------------------------------------------------------
// launchers
#if !defined(VK_CUDA_EMULATION)  // the host emulation in tests/cuda_emulation runs the kernels only

VK_ROW_LAUNCHER(kl_standard_normal, KlStandardNormalArgs)
VK_ROW_LAUNCHER(kl_standard_normal_backward, KlStandardNormalBackwardArgs)
VK_ROW_LAUNCHER(kl_normal, KlNormalArgs)
VK_ROW_LAUNCHER(kl_normal_backward, KlNormalBackwardArgs)

#endif  // !VK_CUDA_EMULATION

}  // namespace vk::gpu
