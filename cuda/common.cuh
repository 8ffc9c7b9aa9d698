// common.cuh: what every vaekernels CUDA kernel shares: launch-error checks, grid sizing, the per-block
// random-number helpers and the row reduction that reproduces the CPU's summation order.
//
// Numerics: the kernels call the same VK_HD functions as the CPU (cpp/include/vaekernels). The CUDA
// sources are compiled with --fmad=false --prec-div=true --prec-sqrt=true --ftz=false and no fast-math,
// and the headers use only +, -, *, /, correctly rounded sqrt and integer bit operations, so every
// element-wise result is the CPU's result bit for bit. Row sums follow the CPU's order too (see
// row_sum_16 below), which makes every kernel's output bitwise equal to the CPU's.
#pragma once

#if !defined(VK_CUDA_EMULATION)
#include <cuda_runtime.h>
#endif

#include <cstdint>

#include "kernels.hpp"
#include "vaekernels/random.hpp"

namespace vk::gpu {

constexpr int kThreads = 256;                    // threads per block for every kernel
constexpr int kLanes = 16;                       // threads per row in row reductions (= the CPU's lane count)
constexpr int kRowsPerBlock = kThreads / kLanes;
constexpr int64_t kMaxBlocks = int64_t(1) << 20; // grid-stride loops cover anything beyond

__host__ __device__ inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Blocks for `work` items at `per_block` items per block (at least 1, capped; kernels grid-stride).
inline unsigned grid_for(int64_t work, int64_t per_block) {
    const int64_t b = ceil_div(work, per_block);
    return static_cast<unsigned>(b < 1 ? 1 : (b > kMaxBlocks ? kMaxBlocks : b));
}

// Turns the error of the launch just made into an exception (pybind11 maps it to RuntimeError).
void check_launch(const char* kernel_name);

// Explicit instantiations of a launcher (kernels.hpp) for both element types, in the .cu that defines it.
#define VK_INSTANTIATE_LAUNCHER(name, Args)                                \
    template void name<float>(const Args<float>&, cudaStream_t);          \
    template void name<double>(const Args<double>&, cudaStream_t);

// ---------------------------------------------------------------------------------------------
// Random numbers, one Philox block per thread
// ---------------------------------------------------------------------------------------------
// A Philox4x32-10 block gives 4 float32 or 2 float64 numbers; computing a whole block per thread costs
// one Philox evaluation and one log/sqrt per pair instead of repeating them for every element.
template <class T> struct PerBlock { static constexpr int value = 4; };
template <> struct PerBlock<double> { static constexpr int value = 2; };

// The normals at stream positions kPer*b .. kPer*b + kPer - 1 (the same words and transform as
// vk::normal_at: positions 4b, 4b+1 from (w0, w1), 4b+2, 4b+3 from (w2, w3); float64: 2b, 2b+1).
__device__ __forceinline__ void normals_of_block(uint64_t seed, uint64_t b, float* z) {
    const PhiloxWords w = philox_stream_block(seed, b, kTagNormal, 0);
    box_muller_f32(w.w0, w.w1, z[0], z[1]);
    box_muller_f32(w.w2, w.w3, z[2], z[3]);
}
__device__ __forceinline__ void normals_of_block(uint64_t seed, uint64_t b, double* z) {
    const PhiloxWords w = philox_stream_block(seed, b, kTagNormal, 0);
    box_muller_f64(w.w0, w.w1, w.w2, w.w3, z[0], z[1]);
}
// The uniforms at the same positions of the uniform stream (vk::uniform_at).
__device__ __forceinline__ void uniforms_of_block(uint64_t seed, uint64_t b, float* u) {
    const PhiloxWords w = philox_stream_block(seed, b, kTagUniform, 0);
    u[0] = uniform_open_f32(w.w0); u[1] = uniform_open_f32(w.w1);
    u[2] = uniform_open_f32(w.w2); u[3] = uniform_open_f32(w.w3);
}
__device__ __forceinline__ void uniforms_of_block(uint64_t seed, uint64_t b, double* u) {
    const PhiloxWords w = philox_stream_block(seed, b, kTagUniform, 0);
    u[0] = uniform_open_f64(w.w0, w.w1);
    u[1] = uniform_open_f64(w.w2, w.w3);
}

// Number of Philox blocks that stream positions [offset, offset + total) touch (total > 0).
template <class T>
__host__ __device__ __forceinline__ uint64_t blocks_touched(uint64_t offset, int64_t total) {
    constexpr uint64_t kPer = PerBlock<T>::value;
    return (offset + static_cast<uint64_t>(total) - 1) / kPer - offset / kPer + 1;
}

// Calls fn(k, x) for every k in [0, total) with x = number offset + k of the normal (kNormal) or uniform
// stream; thread t of the grid handles Philox blocks t, t + grid size, ... of the range. The caller
// launches grid_for(blocks_touched<T>(offset, total), kThreads) blocks. (offset + total <= 2^64 is
// checked in Python, so no position wraps.)
template <bool kNormal, class T, class Fn>
__device__ __forceinline__ void for_each_random(uint64_t seed, uint64_t offset, int64_t total, Fn fn) {
    constexpr int kPer = PerBlock<T>::value;
    if (total <= 0) return;
    const uint64_t b0 = offset / kPer;
    const uint64_t nb = blocks_touched<T>(offset, total);
    const uint64_t stride = static_cast<uint64_t>(gridDim.x) * blockDim.x;
    for (uint64_t t = static_cast<uint64_t>(blockIdx.x) * blockDim.x + threadIdx.x; t < nb; t += stride) {
        T x[kPer];
        if (kNormal) normals_of_block(seed, b0 + t, x); else uniforms_of_block(seed, b0 + t, x);
#pragma unroll
        for (int q = 0; q < kPer; ++q) {
            const uint64_t pos = (b0 + t) * kPer + q;
            // pos - offset wraps to a huge value below offset, so one comparison tests both ends.
            const uint64_t k = pos - offset;
            if (k < static_cast<uint64_t>(total)) fn(static_cast<int64_t>(k), x[q]);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Row reductions in the CPU's order
// ---------------------------------------------------------------------------------------------
// The CPU (cpp/src/kernels.cpp, LaneSum) sums a row's terms into 16 lanes, lane l taking columns
// l, l+16, l+32, ... in order, then combines lanes in the tree acc[l] += acc[l+w], w = 8, 4, 2, 1.
// Here the 16 lanes are 16 threads of a half-warp: each accumulates its columns sequentially and the
// tree is four shuffles. Same additions in the same order: the GPU's row sums equal the CPU's bit for
// bit, with no atomics and no dependence on the grid size.
//
// Thread layout of a row kernel: kRowsPerBlock rows per block, kLanes consecutive threads per row,
// row groups grid-strided. All 32 threads of a warp reach the shuffles (rows past the end carry 0).
template <class T>
__device__ __forceinline__ T row_sum_16(T acc) {
#pragma unroll
    for (int w = kLanes / 2; w > 0; w /= 2) acc += __shfl_down_sync(0xffffffffu, acc, w, kLanes);
    return acc;  // the row's sum, in lane 0
}

// Runs term(row, j) -> T over every row and column and writes each row's sum to row_out[row].
// term may also write per-element side outputs (gradients) for (row, j).
template <class T, class Term>
__device__ __forceinline__ void row_reduce(int64_t rows, int64_t cols, T* row_out, Term term) {
    const int lane = threadIdx.x % kLanes;
    const int64_t n_groups = ceil_div(rows, kRowsPerBlock);
    for (int64_t g = blockIdx.x; g < n_groups; g += gridDim.x) {   // uniform across the block
        const int64_t row = g * kRowsPerBlock + threadIdx.x / kLanes;
        T acc = T(0);
        if (row < rows)
            for (int64_t j = lane; j < cols; j += kLanes) acc += term(row, j);
        acc = row_sum_16(acc);
        if (row < rows && lane == 0) row_out[row] = acc;
    }
}

// Runs fn(row, j) over every row and column with the same layout (no reduction): for backward kernels
// that scale per-element gradients by a per-row upstream gradient, read once per thread.
template <class Fn>
__device__ __forceinline__ void row_map(int64_t rows, int64_t cols, Fn fn) {
    const int lane = threadIdx.x % kLanes;
    const int64_t n_groups = ceil_div(rows, kRowsPerBlock);
    for (int64_t g = blockIdx.x; g < n_groups; g += gridDim.x) {
        const int64_t row = g * kRowsPerBlock + threadIdx.x / kLanes;
        if (row < rows)
            for (int64_t j = lane; j < cols; j += kLanes) fn(row, j);
    }
}

// Blocks for a row kernel over `rows` rows.
inline unsigned grid_rows(int64_t rows) { return grid_for(rows, kRowsPerBlock); }

// The launcher of a row kernel name##_kernel (one 16-lane group per row, grid-strided) and its
// instantiations; nothing is launched for zero rows.
#define VK_ROW_LAUNCHER(name, Args)                                    \
    template <class T>                                                 \
    void name(const Args<T>& a, cudaStream_t s) {                      \
        if (a.rows <= 0) return;                                       \
        name##_kernel<T><<<grid_rows(a.rows), kThreads, 0, s>>>(a);    \
        check_launch(#name "_kernel");                                 \
    }                                                                  \
    VK_INSTANTIATE_LAUNCHER(name, Args)

__device__ __forceinline__ int64_t global_thread() {
    return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ int64_t grid_threads() {
    return static_cast<int64_t>(gridDim.x) * blockDim.x;
}

}  // namespace vk::gpu
