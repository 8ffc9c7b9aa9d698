// optim.cu: the fused AdamW step, in place on param, m and v (the update of vaekernels/adam.hpp).
#include "common.cuh"
#include "vaekernels/adam.hpp"

namespace vk::gpu {

// ----------------------------------------------------------------------------
// kernels

// The constants arrive rounded to T on the host exactly as the CPU kernel rounds them (AdamConstants).
template <class T>
__global__ void adam_step_kernel(AdamStepArgs<T> a, AdamConstants<T> c) {
    for (int64_t i = global_thread(); i < a.n; i += grid_threads()) {
        T p = a.param[i], m = a.m[i], v = a.v[i];
        adam_update(p, a.grad[i], m, v, c);
        a.param[i] = p; a.m[i] = m; a.v[i] = v;
    }
}

// ----------------------------------------------------------------------------
// launchers
#if !defined(VK_CUDA_EMULATION)  // the host emulation in tests/cuda_emulation runs the kernels only

template <class T>
void adam_step(const AdamStepArgs<T>& a, cudaStream_t s) {
    if (a.n <= 0) return;
    const AdamConstants<T> c =
        AdamConstants<T>::from(AdamHyper::make(a.step, a.lr, a.beta1, a.beta2, a.eps, a.weight_decay));
    adam_step_kernel<T><<<grid_for(a.n, kThreads), kThreads, 0, s>>>(a, c);
    check_launch("adam_step_kernel");
}

VK_INSTANTIATE_LAUNCHER(adam_step, AdamStepArgs)

#endif  // !VK_CUDA_EMULATION

}  // namespace vk::gpu
