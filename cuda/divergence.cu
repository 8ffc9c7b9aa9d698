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
__global__ void kl_standard_normal_kernel(const T* mu, const T* lv, int64_t rows, int64_t cols, T* kl) {
    row_reduce<T>(rows, cols, kl, [&](int64_t r, int64_t j) {
        const int64_t i = r * cols + j;
        return kl_standard_normal_term(mu[i], lv[i]);
    });
}

// dmu = g[r] mu, dlv = g[r] (e^lv - 1) / 2; grad (rows,), the rest (rows, cols)
template <class T>
__global__ void kl_standard_normal_backward_kernel(const T* grad, const T* mu, const T* lv, int64_t rows,
                                                   int64_t cols, T* dmu, T* dlv) {
    row_map(rows, cols, [&](int64_t r, int64_t j) {
        const int64_t i = r * cols + j;
        const T g = grad[r];
        T a, b;
        kl_standard_normal_grad(mu[i], lv[i], a, b);
        dmu[i] = g * a;
        dlv[i] = g * b;
    });
}

template <class T>
__global__ void kl_normal_kernel(const T* mq, const T* lq, const T* mp, const T* lp, int64_t rows, int64_t cols,
                                 T* kl) {
    row_reduce<T>(rows, cols, kl, [&](int64_t r, int64_t j) {
        const int64_t i = r * cols + j;
        return kl_normal_term(mq[i], lq[i], mp[i], lp[i]);
    });
}

template <class T>
__global__ void kl_normal_backward_kernel(const T* grad, const T* mq, const T* lq, const T* mp, const T* lp,
                                          int64_t rows, int64_t cols, T* dmq, T* dlq, T* dmp, T* dlp) {
    row_map(rows, cols, [&](int64_t r, int64_t j) {
        const int64_t i = r * cols + j;
        const T g = grad[r];
        T a, b, c, d;
        kl_normal_grad(mq[i], lq[i], mp[i], lp[i], a, b, c, d);
        dmq[i] = g * a; dlq[i] = g * b; dmp[i] = g * c; dlp[i] = g * d;
    });
}

// ----------------------------------------------------------------------------
// launchers
#if !defined(VK_CUDA_EMULATION)  // the host emulation in tests/cuda_emulation runs the kernels only

template <class T>
void kl_standard_normal(const T* mu, const T* lv, int64_t rows, int64_t cols, T* kl, cudaStream_t s) {
    if (rows <= 0) return;
    kl_standard_normal_kernel<T><<<grid_rows(rows), kThreads, 0, s>>>(mu, lv, rows, cols, kl);
    check_launch("kl_standard_normal_kernel");
}

template <class T>
void kl_standard_normal_backward(const T* grad, const T* mu, const T* lv, int64_t rows, int64_t cols, T* dmu,
                                 T* dlv, cudaStream_t s) {
    if (rows <= 0 || cols <= 0) return;
    kl_standard_normal_backward_kernel<T><<<grid_rows(rows), kThreads, 0, s>>>(grad, mu, lv, rows, cols, dmu, dlv);
    check_launch("kl_standard_normal_backward_kernel");
}

template <class T>
void kl_normal(const T* mq, const T* lq, const T* mp, const T* lp, int64_t rows, int64_t cols, T* kl,
               cudaStream_t s) {
    if (rows <= 0) return;
    kl_normal_kernel<T><<<grid_rows(rows), kThreads, 0, s>>>(mq, lq, mp, lp, rows, cols, kl);
    check_launch("kl_normal_kernel");
}

template <class T>
void kl_normal_backward(const T* grad, const T* mq, const T* lq, const T* mp, const T* lp, int64_t rows,
                        int64_t cols, T* dmq, T* dlq, T* dmp, T* dlp, cudaStream_t s) {
    if (rows <= 0 || cols <= 0) return;
    kl_normal_backward_kernel<T><<<grid_rows(rows), kThreads, 0, s>>>(grad, mq, lq, mp, lp, rows, cols, dmq, dlq,
                                                                      dmp, dlp);
    check_launch("kl_normal_backward_kernel");
}

#define VK_INSTANTIATE(T)                                                                                        \
    template void kl_standard_normal<T>(const T*, const T*, int64_t, int64_t, T*, cudaStream_t);                  \
    template void kl_standard_normal_backward<T>(const T*, const T*, const T*, int64_t, int64_t, T*, T*,          \
                                                 cudaStream_t);                                                   \
    template void kl_normal<T>(const T*, const T*, const T*, const T*, int64_t, int64_t, T*, cudaStream_t);       \
    template void kl_normal_backward<T>(const T*, const T*, const T*, const T*, const T*, int64_t, int64_t, T*,   \
                                        T*, T*, T*, cudaStream_t);
VK_INSTANTIATE(float)
VK_INSTANTIATE(double)
#undef VK_INSTANTIATE

#endif  // !VK_CUDA_EMULATION

}  // namespace vk::gpu
