// likelihood.cu: Bernoulli-with-logits, diagonal Gaussian and standard normal log-likelihoods summed per
// row, and the fused value-and-gradient versions (one pass: the gradient is written while the row sums).
//
// Terms from cpp/include/vaekernels/gaussian.hpp; row sums in the CPU's order (common.cuh).
#include "common.cuh"
#include "vaekernels/gaussian.hpp"

namespace vk::gpu {

// ----------------------------------------------------------------------------
// kernels

// out[r] = sum_j x l - softplus(l); x, logits (rows, cols), out (rows,)
template <class T>
__global__ void bernoulli_log_prob_kernel(const T* x, const T* logits, int64_t rows, int64_t cols, T* out) {
    row_reduce<T>(rows, cols, out, [&](int64_t r, int64_t j) {
        const int64_t i = r * cols + j;
        return bernoulli_log_prob_term(x[i], logits[i]);
    });
}

// ... and dlogits = x - sigmoid(l), (rows, cols)
template <class T>
__global__ void bernoulli_log_prob_and_grad_kernel(const T* x, const T* logits, int64_t rows, int64_t cols, T* out,
                                                   T* dlogits) {
    row_reduce<T>(rows, cols, out, [&](int64_t r, int64_t j) {
        const int64_t i = r * cols + j;
        T d;
        const T t = bernoulli_log_prob_term_grad(x[i], logits[i], d);
        dlogits[i] = d;
        return t;
    });
}

// out[r] = -0.5 sum_j (log 2 pi + lv + (x - m)^2 e^-lv)
template <class T>
__global__ void normal_log_prob_kernel(const T* x, const T* mean, const T* lv, int64_t rows, int64_t cols, T* out) {
    row_reduce<T>(rows, cols, out, [&](int64_t r, int64_t j) {
        const int64_t i = r * cols + j;
        return normal_log_prob_term(x[i], mean[i], lv[i]);
    });
}

template <class T>
__global__ void normal_log_prob_and_grad_kernel(const T* x, const T* mean, const T* lv, int64_t rows, int64_t cols,
                                                T* out, T* dmean, T* dlv) {
    row_reduce<T>(rows, cols, out, [&](int64_t r, int64_t j) {
        const int64_t i = r * cols + j;
        T dm, dl;
        const T t = normal_log_prob_term_grad(x[i], mean[i], lv[i], dm, dl);
        dmean[i] = dm;
        dlv[i] = dl;
        return t;
    });
}

template <class T>
__global__ void standard_normal_log_prob_kernel(const T* z, int64_t rows, int64_t cols, T* out) {
    row_reduce<T>(rows, cols, out, [&](int64_t r, int64_t j) { return standard_normal_log_prob_term(z[r * cols + j]); });
}

template <class T>
__global__ void standard_normal_log_prob_and_grad_kernel(const T* z, int64_t rows, int64_t cols, T* out, T* dz) {
    row_reduce<T>(rows, cols, out, [&](int64_t r, int64_t j) {
        const int64_t i = r * cols + j;
        const T v = z[i];
        dz[i] = -v;
        return standard_normal_log_prob_term(v);
    });
}

// ----------------------------------------------------------------------------
// launchers
#if !defined(VK_CUDA_EMULATION)  // the host emulation in tests/cuda_emulation runs the kernels only

template <class T>
void bernoulli_log_prob(const T* x, const T* logits, int64_t rows, int64_t cols, T* out, cudaStream_t s) {
    if (rows <= 0) return;
    bernoulli_log_prob_kernel<T><<<grid_rows(rows), kThreads, 0, s>>>(x, logits, rows, cols, out);
    check_launch("bernoulli_log_prob_kernel");
}

template <class T>
void bernoulli_log_prob_and_grad(const T* x, const T* logits, int64_t rows, int64_t cols, T* out, T* dlogits,
                                 cudaStream_t s) {
    if (rows <= 0) return;
    bernoulli_log_prob_and_grad_kernel<T><<<grid_rows(rows), kThreads, 0, s>>>(x, logits, rows, cols, out, dlogits);
    check_launch("bernoulli_log_prob_and_grad_kernel");
}

template <class T>
void normal_log_prob(const T* x, const T* mean, const T* lv, int64_t rows, int64_t cols, T* out, cudaStream_t s) {
    if (rows <= 0) return;
    normal_log_prob_kernel<T><<<grid_rows(rows), kThreads, 0, s>>>(x, mean, lv, rows, cols, out);
    check_launch("normal_log_prob_kernel");
}

template <class T>
void normal_log_prob_and_grad(const T* x, const T* mean, const T* lv, int64_t rows, int64_t cols, T* out, T* dmean,
                              T* dlv, cudaStream_t s) {
    if (rows <= 0) return;
    normal_log_prob_and_grad_kernel<T><<<grid_rows(rows), kThreads, 0, s>>>(x, mean, lv, rows, cols, out, dmean, dlv);
    check_launch("normal_log_prob_and_grad_kernel");
}

template <class T>
void standard_normal_log_prob(const T* z, int64_t rows, int64_t cols, T* out, cudaStream_t s) {
    if (rows <= 0) return;
    standard_normal_log_prob_kernel<T><<<grid_rows(rows), kThreads, 0, s>>>(z, rows, cols, out);
    check_launch("standard_normal_log_prob_kernel");
}

template <class T>
void standard_normal_log_prob_and_grad(const T* z, int64_t rows, int64_t cols, T* out, T* dz, cudaStream_t s) {
    if (rows <= 0) return;
    standard_normal_log_prob_and_grad_kernel<T><<<grid_rows(rows), kThreads, 0, s>>>(z, rows, cols, out, dz);
    check_launch("standard_normal_log_prob_and_grad_kernel");
}

#define VK_INSTANTIATE(T)                                                                                        \
    template void bernoulli_log_prob<T>(const T*, const T*, int64_t, int64_t, T*, cudaStream_t);                  \
    template void bernoulli_log_prob_and_grad<T>(const T*, const T*, int64_t, int64_t, T*, T*, cudaStream_t);      \
    template void normal_log_prob<T>(const T*, const T*, const T*, int64_t, int64_t, T*, cudaStream_t);           \
    template void normal_log_prob_and_grad<T>(const T*, const T*, const T*, int64_t, int64_t, T*, T*, T*,         \
                                              cudaStream_t);                                                      \
    template void standard_normal_log_prob<T>(const T*, int64_t, int64_t, T*, cudaStream_t);                      \
    template void standard_normal_log_prob_and_grad<T>(const T*, int64_t, int64_t, T*, T*, cudaStream_t);
VK_INSTANTIATE(float)
VK_INSTANTIATE(double)
#undef VK_INSTANTIATE

#endif  // !VK_CUDA_EMULATION

}  // namespace vk::gpu
