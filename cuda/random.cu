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
__global__ void philox4x32_10_kernel(Philox4x32_10Args a) {
    for (int64_t i = global_thread(); i < a.n; i += grid_threads()) {
        uint32_t c0 = a.counters[4 * i], c1 = a.counters[4 * i + 1], c2 = a.counters[4 * i + 2],
                 c3 = a.counters[4 * i + 3];
        Philox4x32x10::block(c0, c1, c2, c3, a.keys[2 * i], a.keys[2 * i + 1]);
        a.out[4 * i] = c0; a.out[4 * i + 1] = c1; a.out[4 * i + 2] = c2; a.out[4 * i + 3] = c3;
    }
}

template <class T>
__global__ void randn_kernel(RandnArgs<T> a) {
    for_each_random<true, T>(a.seed, a.offset, a.n, [&](int64_t k, T e) { a.out[k] = e; });
}

template <class T>
__global__ void rand_kernel(RandArgs<T> a) {
    for_each_random<false, T>(a.seed, a.offset, a.n, [&](int64_t k, T u) { a.out[k] = u; });
}

// z[s, i] = mu[i] + exp(lv[i] / 2) eps[offset + s n + i]; mu, lv (n,), z (n_samples, n)
template <class T>
__global__ void reparameterize_kernel(ReparameterizeArgs<T> a) {
    for_each_random<true, T>(a.seed, a.offset, a.n * a.n_samples, [&](int64_t k, T e) {
        const int64_t i = k % a.n;
        a.z[k] = reparameterize_term(a.mu[i], a.logvar[i], e);
    });
}

// ----------------------------------------------------------------------------
// launchers
#if !defined(VK_CUDA_EMULATION)  // the host emulation in tests/cuda_emulation runs the kernels only

void philox4x32_10(const Philox4x32_10Args& a, cudaStream_t s) {
    if (a.n <= 0) return;
    philox4x32_10_kernel<<<grid_for(a.n, kThreads), kThreads, 0, s>>>(a);
    check_launch("philox4x32_10_kernel");
}

template <class T>
void randn(const RandnArgs<T>& a, cudaStream_t s) {
    if (a.n <= 0) return;
    randn_kernel<T><<<grid_for(blocks_touched<T>(a.offset, a.n), kThreads), kThreads, 0, s>>>(a);
    check_launch("randn_kernel");
}

template <class T>
void rand(const RandArgs<T>& a, cudaStream_t s) {
    if (a.n <= 0) return;
    rand_kernel<T><<<grid_for(blocks_touched<T>(a.offset, a.n), kThreads), kThreads, 0, s>>>(a);
    check_launch("rand_kernel");
}

template <class T>
void reparameterize(const ReparameterizeArgs<T>& a, cudaStream_t s) {
    if (a.n <= 0 || a.n_samples <= 0) return;
    const unsigned grid = grid_for(blocks_touched<T>(a.offset, a.n * a.n_samples), kThreads);
    reparameterize_kernel<T><<<grid, kThreads, 0, s>>>(a);
    check_launch("reparameterize_kernel");
}

VK_INSTANTIATE_LAUNCHER(randn, RandnArgs)
VK_INSTANTIATE_LAUNCHER(rand, RandArgs)
VK_INSTANTIATE_LAUNCHER(reparameterize, ReparameterizeArgs)

#endif  // !VK_CUDA_EMULATION

}  // namespace vk::gpu
