// latent.cu: the fused VAE latent pair. latent_forward draws z = mu + e^(lv/2) eps and sums the KL to
// N(0, I) per row in one launch; latent_backward (one KL weight) and latent_vjp (a KL weight per row)
// regenerate eps from (seed, offset) instead of reading a stored copy. Element k of the (rows, cols) batch uses stream position offset + k, as on the CPU.
#include "common.cuh"
#include "vaekernels/gaussian.hpp"

namespace vk::gpu {

// ----------------------------------------------------------------------------
// kernels

// z = mu + e^(lv/2) eps and kl[r] = KL(q_r || N(0, I)); mu, lv, z (rows, cols), kl (rows,).
// Two index spaces in one launch: z with one Philox block per thread (4 float / 2 double normals per
// evaluation, as randn), kl with the 16-lane row layout that reproduces the CPU's row sums. A row layout
// for z would need a separate Philox evaluation per element (columns j, j+16, ... of a thread lie in
// different blocks), which makes the kernel compute-bound. The second read of mu, lv mostly hits L2.
template <class T>
__global__ void latent_forward_kernel(LatentForwardArgs<T> a) {
    for_each_random<true, T>(a.seed, a.offset, a.rows * a.cols, [&](int64_t k, T e) {
        a.z[k] = reparameterize_term(a.mu[k], a.logvar[k], e);
    });
    row_reduce<T>(a.rows, a.cols, a.kl, [&](int64_t r, int64_t j) {
        const int64_t i = r * a.cols + j;
        return kl_standard_normal_term(a.mu[i], a.logvar[i]);
    });
}

// Gradient of sum(dz z) + w sum(kl): dmu = dz + w mu, dlv = dz eps e^(lv/2) / 2 + w (e^lv - 1) / 2.
// All (rows, cols), handled as flat arrays of rows * cols elements, one Philox block per thread.
template <class T>
__global__ void latent_backward_kernel(LatentBackwardArgs<T> a) {
    const T w = T(a.kl_weight);
    for_each_random<true, T>(a.seed, a.offset, a.rows * a.cols, [&](int64_t k, T e) {
        latent_backward_term(a.dz[k], a.mu[k], a.logvar[k], e, w, a.dmu[k], a.dlogvar[k]);
    });
}

// latent_backward with the KL weight of row k / cols taken from dkl.
template <class T>
__global__ void latent_vjp_kernel(LatentVjpArgs<T> a) {
    for_each_random<true, T>(a.seed, a.offset, a.rows * a.cols, [&](int64_t k, T e) {
        latent_backward_term(a.dz[k], a.mu[k], a.logvar[k], e, a.dkl[k / a.cols], a.dmu[k], a.dlogvar[k]);
    });
}

// ----------------------------------------------------------------------------
// launchers
#if !defined(VK_CUDA_EMULATION)  // the host emulation in tests/cuda_emulation runs the kernels only

template <class T>
void latent_forward(const LatentForwardArgs<T>& a, cudaStream_t s) {
    if (a.rows <= 0) return;
    const int64_t n = a.rows * a.cols;
    const unsigned grid_z = n > 0 ? grid_for(blocks_touched<T>(a.offset, n), kThreads) : 1;
    const unsigned grid = grid_z > grid_rows(a.rows) ? grid_z : grid_rows(a.rows);
    latent_forward_kernel<T><<<grid, kThreads, 0, s>>>(a);
    check_launch("latent_forward_kernel");
}

template <class T>
void latent_backward(const LatentBackwardArgs<T>& a, cudaStream_t s) {
    const int64_t n = a.rows * a.cols;
    if (n <= 0) return;
    latent_backward_kernel<T><<<grid_for(blocks_touched<T>(a.offset, n), kThreads), kThreads, 0, s>>>(a);
    check_launch("latent_backward_kernel");
}

template <class T>
void latent_vjp(const LatentVjpArgs<T>& a, cudaStream_t s) {
    const int64_t n = a.rows * a.cols;
    if (n <= 0) return;
    latent_vjp_kernel<T><<<grid_for(blocks_touched<T>(a.offset, n), kThreads), kThreads, 0, s>>>(a);
    check_launch("latent_vjp_kernel");
}

VK_INSTANTIATE_LAUNCHER(latent_forward, LatentForwardArgs)
VK_INSTANTIATE_LAUNCHER(latent_backward, LatentBackwardArgs)
VK_INSTANTIATE_LAUNCHER(latent_vjp, LatentVjpArgs)

#endif  // !VK_CUDA_EMULATION

}  // namespace vk::gpu
