// kernels.hpp: the CPU kernel interface. One table of function pointers per instruction-set level
// (scalar, baseline, AVX2, AVX-512), one entry per kernel of the table (python/vaekernels/kernels/table.py),
// each taking that kernel's argument record (cpp/include/vaekernels/kernel_args.hpp); every level computes
// the same bits, and dispatch.cpp picks the best level the CPU supports once, at load. No Python types here.
//
// Layout: every array is C-contiguous; (rows, cols) arrays are row-major; reductions run over cols.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "parallel.hpp"
#include "vaekernels/kernel_tables.hpp"

namespace vk::cpu {

template <class T>
using KernelTable = CpuKernels<T>;

// The dense-layer epilogues (activations.hpp codes; layer_kernels.cpp), run by dense.cpp on blocks of a
// layer's output: serial (dense.cpp parallelises over blocks); y and b, d and db never overlap.
template <class T>
struct LayerKernels {
    // y = activation(y + b) on a (rows, cols) block with row stride ld (b null: no bias).
    void (*bias_activation)(T* y, const T* b, int64_t rows, int64_t cols, int64_t ld, int act);
    // d = (d scale) activation'(y) on a block (y unused for the linear activation); db[c] = sum_r d[r, c]
    // unless db is null.
    void (*activation_grad)(T* d, const T* y, T* db, int64_t rows, int64_t cols, int64_t ld, int act, T scale);
};

struct Kernels {
    const char* name;
    KernelTable<float> f32;
    KernelTable<double> f64;
    LayerKernels<float> layer_f32;
    LayerKernels<double> layer_f64;
};

// The raw Philox4x32-10 block function over n (counter, key) pairs (one build: it has no vector loop).
void philox4x32_10(const Philox4x32_10Args& a);

// The level in use: the best the CPU supports, or the one named by VAEKERNELS_SIMD at load.
const Kernels& kernels();
// Levels compiled into this build and usable on this CPU, best last (for tests and diagnostics).
std::vector<std::string> available_levels();
// A specific level, or nullptr if it is not compiled or not supported by this CPU.
const Kernels* kernels_for(const std::string& level);

template <class T> const KernelTable<T>& table(const Kernels& k);
template <> inline const KernelTable<float>& table<float>(const Kernels& k) { return k.f32; }
template <> inline const KernelTable<double>& table<double>(const Kernels& k) { return k.f64; }
template <class T> const LayerKernels<T>& layer_kernels(const Kernels& k);
template <> inline const LayerKernels<float>& layer_kernels<float>(const Kernels& k) { return k.layer_f32; }
template <> inline const LayerKernels<double>& layer_kernels<double>(const Kernels& k) { return k.layer_f64; }

}  // namespace vk::cpu
