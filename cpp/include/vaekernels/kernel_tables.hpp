// kernel_tables.hpp: the kernels of a build as tables of function pointers, one per element type, expanded
// from the X-macro lists of kernel_args.hpp. The CPU tables are what _core dispatches through (one per
// instruction-set level); they and the CUDA launchers are also handed, as capsules, to the XLA FFI handlers
// of _jax, so each kernel is compiled once and every front end runs the same code.
#pragma once

#include "kernel_args.hpp"

namespace vk {

template <class T>
struct CpuKernels {
#define VK_CPU_POINTER(name, Args) void (*name)(const Args<T>&);
    VK_FLOAT_KERNELS(VK_CPU_POINTER)
#undef VK_CPU_POINTER
};

// The CUDA launchers; the stream is a cudaStream_t (void* here, so that users of the table need no CUDA).
template <class T>
struct GpuLaunchers {
#define VK_GPU_POINTER(name, Args) void (*name)(const Args<T>&, void* stream);
    VK_FLOAT_KERNELS(VK_GPU_POINTER)
#undef VK_GPU_POINTER
};

// What a capsule carries between extension modules (version-checked by its name).
struct CpuKernelSet {
    const char* level;
    CpuKernels<float> f32;
    CpuKernels<double> f64;
    void (*philox4x32_10)(const Philox4x32_10Args&);
};

struct GpuLauncherSet {
    GpuLaunchers<float> f32;
    GpuLaunchers<double> f64;
    void (*philox4x32_10)(const Philox4x32_10Args&, void* stream);
};

constexpr const char* kCpuKernelSetCapsule = "vaekernels.CpuKernelSet.v1";
constexpr const char* kGpuLauncherSetCapsule = "vaekernels.GpuLauncherSet.v1";

}  // namespace vk
