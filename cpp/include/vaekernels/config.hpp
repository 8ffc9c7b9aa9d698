// config.hpp: portability macros shared by the CPU build (g++/clang) and the CUDA build (nvcc).
//
// VK_HD marks the scalar math that both devices run. Every function in these headers is force-inlined
// and lives in an inline namespace named after the instruction set its translation unit is built for
// (VK_ISA_NAMESPACE), so the AVX2, AVX-512 and baseline copies of the CPU kernels never share an
// out-of-line symbol (an ODR violation that could run AVX-512 code on a CPU without it).
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define VK_HD __host__ __device__ __forceinline__
#elif defined(_MSC_VER)
#define VK_HD __forceinline
#else
#define VK_HD inline __attribute__((always_inline))
#endif

#ifndef VK_ISA_NAMESPACE
#define VK_ISA_NAMESPACE isa_default
#endif

#define VK_BEGIN_NAMESPACE namespace vk { inline namespace VK_ISA_NAMESPACE {
#define VK_END_NAMESPACE } }

VK_BEGIN_NAMESPACE

// ---------------------------------------------------------------------------------------------
// Bit casts (memcpy is the portable, optimisable form on the host; intrinsics on the device)
// ---------------------------------------------------------------------------------------------
VK_HD uint32_t bits_of(float x) {
#if defined(__CUDA_ARCH__)
    return __float_as_uint(x);
#else
    uint32_t u; std::memcpy(&u, &x, sizeof u); return u;
#endif
}
VK_HD uint64_t bits_of(double x) {
#if defined(__CUDA_ARCH__)
    return static_cast<uint64_t>(__double_as_longlong(x));
#else
    uint64_t u; std::memcpy(&u, &x, sizeof u); return u;
#endif
}
VK_HD float float_from_bits(uint32_t u) {
#if defined(__CUDA_ARCH__)
    return __uint_as_float(u);
#else
    float x; std::memcpy(&x, &u, sizeof x); return x;
#endif
}
VK_HD double double_from_bits(uint64_t u) {
#if defined(__CUDA_ARCH__)
    return __longlong_as_double(static_cast<long long>(u));
#else
    double x; std::memcpy(&x, &u, sizeof x); return x;
#endif
}

VK_END_NAMESPACE
