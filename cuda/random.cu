// random.cu: the raw Philox4x32-10 block function, randn, rand and reparameterize on the GPU.
//
// Stream positions are those of the CPU (cpp/include/vaekernels/random.hpp): number j of stream `seed`
// comes from Philox block j/4 (float32) or j/2 (float64), so out[k] is position offset + k and the
// output is the CPU's bit for bit. One thread per Philox block (common.cuh, for_each_random).
#include "common.cuh"
#include "vaekernels/gaussian.hpp"

namespace vk::gpu {

// ----------------------------------------------------------------------------
// kernels

// out[i] = Philox4x32-10(counter = counters[i], key = keys[i]); (n, 4), (n, 2) -> (n, 4) uint32
__global__ void philox4x32_10_kernel(const uint32_t* counters, const uint32_t* keys, int64_t n, uint32_t* out) {
    for (int64_t i = global_thread(); i < n; i += grid_threads()) {
        uint32_t c0 = counters[4 * i], c1 = counters[4 * i + 1], c2 = counters[4 * i + 2], c3 = counters[4 * i + 3];
        Philox4x32x10::block(c0, c1, c2, c3, keys[2 * i], keys[2 * i + 1]);
        out[4 * i] = c0; out[4 * i + 1] = c1; out[4 * i + 2] = c2; out[4 * i + 3] = c3;
    }
}

template <class T>
__global__ void randn_kernel(uint64_t seed, uint64_t offset, int64_t n, T* out) {
    for_each_random<true, T>(seed, offset, n, [&](int64_t k, T e) { out[k] = e; });
}

template <class T>
__global__ void rand_kernel(uint64_t seed, uint64_t offset, int64_t n, T* out) {
    for_each_random<false, T>(seed, offset, n, [&](int64_t k, T u) { out[k] = u; });
}

// z[s, i] = mu[i] + exp(lv[i] / 2) eps[offset + s n + i]; mu, lv (n,), z (n_samples, n)
template <class T>
__global__ void reparameterize_kernel(const T* mu, const T* lv, int64_t n, int64_t n_samples, uint64_t seed,
                                      uint64_t offset, T* z) {
    for_each_random<true, T>(seed, offset, n * n_samples, [&](int64_t k, T e) {
        const int64_t i = k % n;
        z[k] = reparameterize_term(mu[i], lv[i], e);
    });
}

// ----------------------------------------------------------------------------
// launchers
#if !defined(VK_CUDA_EMULATION)  // the host emulation in tests/cuda_emulation runs the kernels only

void philox4x32_10(const uint32_t* counters, const uint32_t* keys, int64_t n, uint32_t* out, cudaStream_t s) {
    if (n <= 0) return;
    philox4x32_10_kernel<<<grid_for(n, kThreads), kThreads, 0, s>>>(counters, keys, n, out);
    check_launch("philox4x32_10_kernel");
}

template <class T>
void randn(uint64_t seed, uint64_t offset, int64_t n, T* out, cudaStream_t s) {
    if (n <= 0) return;
    randn_kernel<T><<<grid_for(blocks_touched<T>(offset, n), kThreads), kThreads, 0, s>>>(seed, offset, n, out);
    check_launch("randn_kernel");
}

template <class T>
void rand(uint64_t seed, uint64_t offset, int64_t n, T* out, cudaStream_t s) {
    if (n <= 0) return;
    rand_kernel<T><<<grid_for(blocks_touched<T>(offset, n), kThreads), kThreads, 0, s>>>(seed, offset, n, out);
    check_launch("rand_kernel");
}

template <class T>
void reparameterize(const T* mu, const T* lv, int64_t n, int64_t n_samples, uint64_t seed, uint64_t offset, T* z,
                    cudaStream_t s) {
    if (n <= 0 || n_samples <= 0) return;
    const unsigned grid = grid_for(blocks_touched<T>(offset, n * n_samples), kThreads);
    reparameterize_kernel<T><<<grid, kThreads, 0, s>>>(mu, lv, n, n_samples, seed, offset, z);
    check_launch("reparameterize_kernel");
}

#define VK_INSTANTIATE(T)                                                                                      \
    template void randn<T>(uint64_t, uint64_t, int64_t, T*, cudaStream_t);                                      \
    template void rand<T>(uint64_t, uint64_t, int64_t, T*, cudaStream_t);                                       \
    template void reparameterize<T>(const T*, const T*, int64_t, int64_t, uint64_t, uint64_t, T*, cudaStream_t);
VK_INSTANTIATE(float)
VK_INSTANTIATE(double)
#undef VK_INSTANTIATE

#endif  // !VK_CUDA_EMULATION

}  // namespace vk::gpu
