// fake_cuda.hpp: just enough of CUDA for g++ to compile and run the vaekernels kernels on the host.
//
// Each CUDA thread of a launch is a std::thread (blockIdx/threadIdx thread-local); a block's threads run
// concurrently so that __shfl_down_sync can exchange values within each warp through a barrier. This
// checks the kernels' index logic, grid-stride loops, stream positions and reduction order against the
// CPU kernels without a GPU. The arithmetic is the host's (the VK_HD functions take their host branch),
// so it says nothing about nvcc's code generation; tests/test_cuda.py covers that when a GPU is present.
#pragma once

#include <barrier>
#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

#define VK_CUDA_EMULATION 1
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline

using cudaStream_t = void*;
using cudaError_t = int;

struct uint3 { unsigned x = 0, y = 0, z = 0; };
struct dim3 { unsigned x = 1, y = 1, z = 1; };

inline thread_local uint3 threadIdx, blockIdx;
inline dim3 blockDim, gridDim;   // set before a launch, read-only during it

namespace emu {
struct Warp {
    std::barrier<> bar{32};
    uint64_t slot[32];
};
inline thread_local Warp* t_warp = nullptr;
inline thread_local int t_lane = 0;
}  // namespace emu

// __shfl_down_sync on the full mask: lane l gets lane l + delta's value when that lane is in l's segment of
// `width` lanes, else its own (CUDA's semantics). Every lane of the warp must call it (as on the GPU,
// where a missing lane is undefined behaviour; here it deadlocks, and the test's timeout reports it).
template <class T>
T __shfl_down_sync(unsigned, T v, int delta, int width = 32) {
    static_assert(sizeof(T) <= sizeof(uint64_t));
    emu::Warp& w = *emu::t_warp;
    std::memcpy(&w.slot[emu::t_lane], &v, sizeof(T));
    w.bar.arrive_and_wait();
    const int src = emu::t_lane + delta;
    T r = v;
    if (src < (emu::t_lane / width + 1) * width) std::memcpy(&r, &w.slot[src], sizeof(T));
    w.bar.arrive_and_wait();
    return r;
}

namespace emu {
// Runs kernel(args...) on a grid of `grid` blocks of `block` threads (block a multiple of 32).
template <class Kernel, class... Args>
void launch(unsigned grid, unsigned block, Kernel kernel, Args... args) {
    gridDim = dim3{grid, 1, 1};
    blockDim = dim3{block, 1, 1};
    for (unsigned b = 0; b < grid; ++b) {
        std::vector<Warp> warps(block / 32);
        std::vector<std::thread> threads;
        threads.reserve(block);
        for (unsigned t = 0; t < block; ++t)
            threads.emplace_back([&, b, t] {
                blockIdx = uint3{b, 0, 0};
                threadIdx = uint3{t, 0, 0};
                t_warp = &warps[t / 32];
                t_lane = static_cast<int>(t % 32);
                kernel(args...);
            });
        for (auto& th : threads) th.join();
    }
}
}  // namespace emu
