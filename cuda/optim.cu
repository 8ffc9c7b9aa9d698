// optim.cu: the fused AdamW step, in place on param, m and v (the update of gaussian.hpp, adam_update).
#include "common.cuh"
#include "vaekernels/gaussian.hpp"

namespace vk::gpu {

// ----------------------------------------------------------------------------
// kernels

// Hyper-parameters arrive already rounded to T, exactly as the CPU kernel rounds them (cpp/src/kernels.cpp,
// adam_step_kernel): 1 - beta in double, then to T.
template <class T>
__global__ void adam_step_kernel(T* p, const T* g, T* m, T* v, int64_t n, T b1, T omb1, T b2, T omb2, T eps, T decay,
                                 T step, T inv_bc2) {
    for (int64_t i = global_thread(); i < n; i += grid_threads()) {
        T pi = p[i], mi = m[i], vi = v[i];
        adam_update(pi, g[i], mi, vi, b1, omb1, b2, omb2, eps, decay, step, inv_bc2);
        p[i] = pi; m[i] = mi; v[i] = vi;
    }
}

// ----------------------------------------------------------------------------
// launchers
#if !defined(VK_CUDA_EMULATION)  // the host emulation in tests/cuda_emulation runs the kernels only

template <class T>
void adam_step(T* param, const T* grad, T* m, T* v, int64_t n, const cpu::AdamHyper& h, cudaStream_t s) {
    if (n <= 0) return;
    adam_step_kernel<T><<<grid_for(n, kThreads), kThreads, 0, s>>>(
        param, grad, m, v, n, T(h.beta1), T(1.0 - h.beta1), T(h.beta2), T(1.0 - h.beta2), T(h.eps), T(h.decay_factor),
        T(h.step_size), T(h.inv_bc2_sqrt));
    check_launch("adam_step_kernel");
}

template void adam_step<float>(float*, const float*, float*, float*, int64_t, const cpu::AdamHyper&, cudaStream_t);
template void adam_step<double>(double*, const double*, double*, double*, int64_t, const cpu::AdamHyper&, cudaStream_t);

#endif  // !VK_CUDA_EMULATION

}  // namespace vk::gpu
