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

#include "vaekernels/kernel_tables.hpp"

namespace vk::cpu {

template <class T>
using KernelTable = CpuKernels<T>;

struct Kernels {
    const char* name;
    KernelTable<float> f32;
    KernelTable<double> f64;
};

// Whether work may go to OpenMP threads. false in a child process forked after this process started its
// OpenMP thread pool: libgomp's pool does not survive a fork, and the child's first parallel region would
// wait forever for threads that do not exist. The kernels then run on the calling thread, with the same
// bits. Evaluate it only when about to go parallel (it records that the pool has started).
bool openmp_allowed();

// The number of threads a parallel region starts: set_team_size(n) (n >= 1), or OpenMP's default
// (OMP_NUM_THREADS) after set_team_size(0). Process-wide; results do not depend on it.
int team_size();
void set_team_size(int n);

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

}  // namespace vk::cpu
