// kernels.hpp: the host-side interface of the CUDA kernels (the launchers), for the bindings.
//
// Each launcher enqueues one kernel on `stream` and returns without synchronising; it throws
// vk::gpu::CudaError if the launch fails (no usable device, bad configuration). Arrays are device
// pointers to C-contiguous data, (rows, cols) row-major, with the same layouts, stream positions and
// formulas as the CPU kernels (cpp/src/kernels.hpp). Zero-size work returns before launching anything.
#pragma once

#if !defined(VK_CUDA_EMULATION)
#include <cuda_runtime_api.h>
#endif

#include <cstdint>
#include <stdexcept>
#include <string>

#include "../cpp/src/kernels.hpp"   // cpu::AdamHyper: the same hyper-parameter record as the CPU kernel
#include "vaekernels/targets.hpp"

namespace vk::gpu {

struct CudaError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// True for the error codes that mean "there is no usable GPU here" (no driver, no device, ...).
bool is_no_device_error(cudaError_t e);
// "no CUDA device is usable (<code>: <text>)" for those, "<what>: <code>: <text>" otherwise.
std::string error_message(cudaError_t e, const char* what);


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
void adam_step(T* param, const T* grad, T* m, T* v, int64_t n, const cpu::AdamHyper& h, cudaStream_t s);

// ---- MCMC (mcmc.cu): built-in targets, one thread per chain ----------------------------------------
// x, xp (dim, chains); lp, step_size, accepted, n_nan (chains,); scratch (chains, dim); chol (dim, dim) or null.
struct MhState {
    double* x;
    double* lp;
    const double* step_size;
    const double* chol;
    int64_t chains, dim;
    uint64_t seed, step, chain_offset;
    double* xp;
    double* scratch;
    int64_t* accepted;
    int64_t* n_nan;
};

void target_log_prob_gaussian(const GaussianParams& p, const double* x, int64_t chains, double* scratch, double* lp,
                              cudaStream_t s);
void target_log_prob_banana(const BananaParams& p, const double* x, int64_t chains, double* scratch, double* lp,
                            cudaStream_t s);
void target_log_prob_logistic(const LogisticParams& p, const double* x, int64_t chains, double* scratch, double* lp,
                              cudaStream_t s);
void mh_step_gaussian(const GaussianParams& p, const MhState& st, cudaStream_t s);
void mh_step_banana(const BananaParams& p, const MhState& st, cudaStream_t s);
void mh_step_logistic(const LogisticParams& p, const MhState& st, cudaStream_t s);

}  // namespace vk::gpu
