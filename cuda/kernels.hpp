// kernels.hpp: the host-side interface of the CUDA kernels (the launchers), for the bindings.
//
// Each launcher enqueues one kernel on `stream` and returns without synchronising; it throws
// vk::gpu::CudaError if the launch fails (no usable device, bad configuration). Arrays are device
// pointers to C-contiguous data, (rows, cols) row-major, with the same layouts, stream positions and
// formulas as the CPU kernels (cpp/src/kernels.hpp). Zero-size work returns before launching anything.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <stdexcept>
#include <string>

namespace vk::gpu {

struct CudaError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// True for the error codes that mean "there is no usable GPU here" (no driver, no device, ...).
bool is_no_device_error(cudaError_t e);
// "no CUDA device is usable (<code>: <text>)" for those, "<what>: <code>: <text>" otherwise.
std::string error_message(cudaError_t e, const char* what);

struct AdamHyper {
    double beta1, beta2, eps;
    double decay_factor;   // 1 - lr * weight_decay
    double step_size;      // lr / (1 - beta1^t)
    double bc2_sqrt;       // sqrt(1 - beta2^t)
};

void philox4x32_10(const uint32_t* counters, const uint32_t* keys, int64_t n, uint32_t* out, cudaStream_t s);

template <class T> void randn(uint64_t seed, uint64_t offset, int64_t n, T* out, cudaStream_t s);
template <class T> void rand(uint64_t seed, uint64_t offset, int64_t n, T* out, cudaStream_t s);
template <class T>
void reparameterize(const T* mu, const T* lv, int64_t n, int64_t n_samples, uint64_t seed, uint64_t offset, T* z,
                    cudaStream_t s);

template <class T>
void kl_standard_normal(const T* mu, const T* lv, int64_t rows, int64_t cols, T* kl, cudaStream_t s);
template <class T>
void kl_standard_normal_backward(const T* grad, const T* mu, const T* lv, int64_t rows, int64_t cols, T* dmu,
                                 T* dlv, cudaStream_t s);
template <class T>
void kl_normal(const T* mq, const T* lq, const T* mp, const T* lp, int64_t rows, int64_t cols, T* kl,
               cudaStream_t s);
template <class T>
void kl_normal_backward(const T* grad, const T* mq, const T* lq, const T* mp, const T* lp, int64_t rows,
                        int64_t cols, T* dmq, T* dlq, T* dmp, T* dlp, cudaStream_t s);

template <class T>
void bernoulli_log_prob(const T* x, const T* logits, int64_t rows, int64_t cols, T* out, cudaStream_t s);
template <class T>
void bernoulli_log_prob_and_grad(const T* x, const T* logits, int64_t rows, int64_t cols, T* out, T* dlogits,
                                 cudaStream_t s);
template <class T>
void normal_log_prob(const T* x, const T* mean, const T* lv, int64_t rows, int64_t cols, T* out, cudaStream_t s);
template <class T>
void normal_log_prob_and_grad(const T* x, const T* mean, const T* lv, int64_t rows, int64_t cols, T* out, T* dmean,
                              T* dlv, cudaStream_t s);
template <class T>
void standard_normal_log_prob(const T* z, int64_t rows, int64_t cols, T* out, cudaStream_t s);
template <class T>
void standard_normal_log_prob_and_grad(const T* z, int64_t rows, int64_t cols, T* out, T* dz, cudaStream_t s);

template <class T>
void latent_forward(const T* mu, const T* lv, int64_t rows, int64_t cols, uint64_t seed, uint64_t offset, T* z,
                    T* kl, cudaStream_t s);
template <class T>
void latent_backward(const T* dz, const T* mu, const T* lv, int64_t rows, int64_t cols, uint64_t seed,
                     uint64_t offset, T kl_weight, T* dmu, T* dlv, cudaStream_t s);

template <class T>
void adam_step(T* param, const T* grad, T* m, T* v, int64_t n, const AdamHyper& h, cudaStream_t s);

}  // namespace vk::gpu
