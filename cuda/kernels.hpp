// kernels.hpp: the host-side interface of the CUDA kernels (the launchers), for the bindings.
//
// Each launcher enqueues one kernel on `stream` and returns without synchronising; it throws
// vk::gpu::CudaError if the launch fails (no usable device, bad configuration). The records hold device
// pointers to C-contiguous data, (rows, cols) row-major, with the same layouts, stream positions and
// formulas as the CPU kernels (cpp/src/kernels.hpp). Zero-size work returns before launching anything.
#pragma once

#if !defined(VK_CUDA_EMULATION)
#include <cuda_runtime_api.h>
#endif

#include <cstdint>
#include <stdexcept>
#include <string>

#include "vaekernels/kernel_args.hpp"
#include "vaekernels/kernel_tables.hpp"
#include "vaekernels/targets.hpp"

namespace vk::gpu {

struct CudaError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// True for the error codes that mean "there is no usable GPU here" (no driver, no device, ...).
bool is_no_device_error(cudaError_t e);
// "no CUDA device is usable (<code>: <text>)" for those, "<what>: <code>: <text>" otherwise.
std::string error_message(cudaError_t e, const char* what);


// One launcher per kernel of the table, taking the kernel's argument record (kernel_args.hpp).
#define VK_GPU_LAUNCHER(name, Args) template <class T> void name(const Args<T>& a, cudaStream_t s);
VK_FLOAT_KERNELS(VK_GPU_LAUNCHER)
#undef VK_GPU_LAUNCHER
void philox4x32_10(const Philox4x32_10Args& a, cudaStream_t s);

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
