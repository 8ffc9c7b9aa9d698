// latent.cu: the fused VAE latent pair. latent_forward draws z = mu + e^(lv/2) eps and sums the KL to
// N(0, I) per row in one launch; latent_backward regenerates eps from (seed, offset) instead of reading a
// stored copy. Element k of the (rows, cols) batch uses stream position offset + k, as on the CPU.
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
__global__ void latent_forward_kernel(const T* mu, const T* lv, int64_t rows, int64_t cols, uint64_t seed,
                                      uint64_t offset, T* z, T* kl) {
    for_each_random<true, T>(seed, offset, rows * cols, [&](int64_t k, T e) {
        z[k] = reparameterize_term(mu[k], lv[k], e);
    });
    row_reduce<T>(rows, cols, kl, [&](int64_t r, int64_t j) {
        const int64_t i = r * cols + j;
        return kl_standard_normal_term(mu[i], lv[i]);
    });
}

// Gradient of sum(dz z) + w sum(kl): dmu = dz + w mu, dlv = dz eps e^(lv/2) / 2 + w (e^lv - 1) / 2.
// All (rows, cols), handled as flat arrays of rows * cols elements, one Philox block per thread.
template <class T>
__global__ void latent_backward_kernel(const T* dz, const T* mu, const T* lv, int64_t n, uint64_t seed,
                                       uint64_t offset, T w, T* dmu, T* dlv) {
    for_each_random<true, T>(seed, offset, n, [&](int64_t k, T e) {
        latent_backward_term(dz[k], mu[k], lv[k], e, w, dmu[k], dlv[k]);
    });
}

// ----------------------------------------------------------------------------
// launchers
#if !defined(VK_CUDA_EMULATION)  // the host emulation in tests/cuda_emulation runs the kernels only

template <class T>
void latent_forward(const T* mu, const T* lv, int64_t rows, int64_t cols, uint64_t seed, uint64_t offset, T* z,
                    T* kl, cudaStream_t s) {
    if (rows <= 0) return;
    const int64_t n = rows * cols;
    const unsigned grid_z = n > 0 ? grid_for(blocks_touched<T>(offset, n), kThreads) : 1;
    const unsigned grid = grid_z > grid_rows(rows) ? grid_z : grid_rows(rows);
    latent_forward_kernel<T><<<grid, kThreads, 0, s>>>(mu, lv, rows, cols, seed, offset, z, kl);
    check_launch("latent_forward_kernel");
}

template <class T>
void latent_backward(const T* dz, const T* mu, const T* lv, int64_t rows, int64_t cols, uint64_t seed,
                     uint64_t offset, T kl_weight, T* dmu, T* dlv, cudaStream_t s) {
    const int64_t n = rows * cols;
    if (n <= 0) return;
    const unsigned grid = grid_for(blocks_touched<T>(offset, n), kThreads);
    latent_backward_kernel<T><<<grid, kThreads, 0, s>>>(dz, mu, lv, n, seed, offset, kl_weight, dmu, dlv);
    check_launch("latent_backward_kernel");
}

#define VK_INSTANTIATE(T)                                                                                        \
    template void latent_forward<T>(const T*, const T*, int64_t, int64_t, uint64_t, uint64_t, T*, T*,             \
                                    cudaStream_t);                                                                \
    template void latent_backward<T>(const T*, const T*, const T*, int64_t, int64_t, uint64_t, uint64_t, T, T*,   \
                                     T*, cudaStream_t);
VK_INSTANTIATE(float)
VK_INSTANTIATE(double)
#undef VK_INSTANTIATE

#endif  // !VK_CUDA_EMULATION

}  // namespace vk::gpu
