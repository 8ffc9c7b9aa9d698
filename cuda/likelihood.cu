// likelihood.cu: Bernoulli-with-logits, diagonal Gaussian and standard normal log-likelihoods summed per
// row, the fused value-and-gradient versions (one pass: the gradient is written while the row sums), and
// the backward kernels that scale the gradient by an upstream value per row.
//
// Terms from cpp/include/vaekernels/gaussian.hpp; row sums in the CPU's order (common.cuh).
#include "common.cuh"
#include "vaekernels/gaussian.hpp"

namespace vk::gpu {

// ----------------------------------------------------------------------------
// kernels

// log_prob[r] = sum_j x l - softplus(l); x, logits (rows, cols), log_prob (rows,)
template <class T>
__global__ void bernoulli_log_prob_kernel(BernoulliLogProbArgs<T> a) {
    row_reduce<T>(a.rows, a.cols, a.log_prob, [&](int64_t r, int64_t j) {
        const int64_t i = r * a.cols + j;
        return bernoulli_log_prob_term(a.x[i], a.logits[i]);
    });
}

// ... and dlogits = x - sigmoid(l), (rows, cols)
template <class T>
__global__ void bernoulli_log_prob_and_grad_kernel(BernoulliLogProbAndGradArgs<T> a) {
    row_reduce<T>(a.rows, a.cols, a.log_prob, [&](int64_t r, int64_t j) {
        const int64_t i = r * a.cols + j;
        T d;
        const T t = bernoulli_log_prob_term_grad(a.x[i], a.logits[i], d);
        a.dlogits[i] = d;
        return t;
    });
}

// dlogits = g[r] (x - sigmoid(l)); grad (rows,), the rest (rows, cols)
template <class T>
__global__ void bernoulli_log_prob_backward_kernel(BernoulliLogProbBackwardArgs<T> a) {
    row_map(a.rows, a.cols, [&](int64_t r, int64_t j) {
        const int64_t i = r * a.cols + j;
        a.dlogits[i] = a.grad[r] * bernoulli_log_prob_grad(a.x[i], a.logits[i]);
    });
}

// log_prob[r] = -0.5 sum_j (log 2 pi + lv + (x - m)^2 e^-lv)
template <class T>
__global__ void normal_log_prob_kernel(NormalLogProbArgs<T> a) {
    row_reduce<T>(a.rows, a.cols, a.log_prob, [&](int64_t r, int64_t j) {
        const int64_t i = r * a.cols + j;
        return normal_log_prob_term(a.x[i], a.mean[i], a.logvar[i]);
    });
}

template <class T>
__global__ void normal_log_prob_and_grad_kernel(NormalLogProbAndGradArgs<T> a) {
    row_reduce<T>(a.rows, a.cols, a.log_prob, [&](int64_t r, int64_t j) {
        const int64_t i = r * a.cols + j;
        T dm, dl;
        const T t = normal_log_prob_term_grad(a.x[i], a.mean[i], a.logvar[i], dm, dl);
        a.dmean[i] = dm;
        a.dlogvar[i] = dl;
        return t;
    });
}

// dmean = g[r] (x - m) e^-lv, dlogvar = g[r] ((x - m)^2 e^-lv - 1) / 2
template <class T>
__global__ void normal_log_prob_backward_kernel(NormalLogProbBackwardArgs<T> a) {
    row_map(a.rows, a.cols, [&](int64_t r, int64_t j) {
        const int64_t i = r * a.cols + j;
        const T g = a.grad[r];
        T dm, dl;
        normal_log_prob_grad(a.x[i], a.mean[i], a.logvar[i], dm, dl);
        a.dmean[i] = g * dm;
        a.dlogvar[i] = g * dl;
    });
}

template <class T>
__global__ void standard_normal_log_prob_kernel(StandardNormalLogProbArgs<T> a) {
    row_reduce<T>(a.rows, a.cols, a.log_prob, [&](int64_t r, int64_t j) {
        return standard_normal_log_prob_term(a.z[r * a.cols + j]);
    });
}

template <class T>
__global__ void standard_normal_log_prob_and_grad_kernel(StandardNormalLogProbAndGradArgs<T> a) {
    row_reduce<T>(a.rows, a.cols, a.log_prob, [&](int64_t r, int64_t j) {
        const int64_t i = r * a.cols + j;
        const T v = a.z[i];
        a.dz[i] = -v;
        return standard_normal_log_prob_term(v);
    });
}

// ----------------------------------------------------------------------------
// launchers
#if !defined(VK_CUDA_EMULATION)  // the host emulation in tests/cuda_emulation runs the kernels only

VK_ROW_LAUNCHER(bernoulli_log_prob, BernoulliLogProbArgs)
VK_ROW_LAUNCHER(bernoulli_log_prob_and_grad, BernoulliLogProbAndGradArgs)
VK_ROW_LAUNCHER(bernoulli_log_prob_backward, BernoulliLogProbBackwardArgs)
VK_ROW_LAUNCHER(normal_log_prob, NormalLogProbArgs)
VK_ROW_LAUNCHER(normal_log_prob_and_grad, NormalLogProbAndGradArgs)
VK_ROW_LAUNCHER(normal_log_prob_backward, NormalLogProbBackwardArgs)
VK_ROW_LAUNCHER(standard_normal_log_prob, StandardNormalLogProbArgs)
VK_ROW_LAUNCHER(standard_normal_log_prob_and_grad, StandardNormalLogProbAndGradArgs)

#endif  // !VK_CUDA_EMULATION

}  // namespace vk::gpu
