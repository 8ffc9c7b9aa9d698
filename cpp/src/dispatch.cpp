// dispatch.cpp: picks the kernel table for this CPU once, and the raw Philox block function.
//
// Levels, worst to best: "scalar" (vectorisation disabled: the reference path, closest to the GPU's
// one-element-per-thread code), "baseline" (SSE2 on x86-64, NEON on aarch64), "avx2", "avx512".
// All give identical bits (tests/test_simd_levels.py). VAEKERNELS_SIMD=<level> overrides the choice.
#include <atomic>
#include <cstdlib>

#if defined(_OPENMP)
#include <omp.h>
#endif
#include <stdexcept>

#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#endif

#include "kernels.hpp"
#include "vaekernels/philox.hpp"

namespace vk::cpu {

const Kernels& kernels_isa_scalar();
const Kernels& kernels_isa_baseline();
#if defined(VK_HAVE_AVX2)
const Kernels& kernels_isa_avx2();
#endif
#if defined(VK_HAVE_AVX512)
const Kernels& kernels_isa_avx512();
#endif

namespace {
bool cpu_has(const char* level) {
    const std::string l(level);
    if (l == "scalar" || l == "baseline") return true;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (l == "avx2") return __builtin_cpu_supports("avx2");
    if (l == "avx512")
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
               __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
#endif
    return false;
}

const Kernels* compiled(const std::string& level) {
    if (level == "scalar") return &kernels_isa_scalar();
    if (level == "baseline") return &kernels_isa_baseline();
#if defined(VK_HAVE_AVX2)
    if (level == "avx2") return &kernels_isa_avx2();
#endif
#if defined(VK_HAVE_AVX512)
    if (level == "avx512") return &kernels_isa_avx512();
#endif
    return nullptr;
}

const char* const kLevels[] = {"scalar", "baseline", "avx2", "avx512"};

const Kernels& select() {
    if (const char* env = std::getenv("VAEKERNELS_SIMD"); env != nullptr && *env != '\0') {
        const Kernels* k = kernels_for(env);
        if (k == nullptr)
            throw std::runtime_error(std::string("VAEKERNELS_SIMD=") + env +
                                     " is not a level this build and CPU support (use one of: scalar, baseline, "
                                     "avx2, avx512, as listed by vaekernels.simd_levels())");
        return *k;
    }
    const Kernels* best = nullptr;
    for (const char* l : kLevels)
        if (const Kernels* k = kernels_for(l)) best = k;
    return *best;
}
}  // namespace

namespace {
std::atomic<bool> g_pool_started{false};   // a parallel region has run in this process
std::atomic<bool> g_fork_child{false};     // this process was forked after that: no OpenMP here

void after_fork_in_child() {
    if (g_pool_started.load(std::memory_order_relaxed)) g_fork_child.store(true, std::memory_order_relaxed);
}

#if defined(__unix__) || defined(__APPLE__)
const int g_atfork = pthread_atfork(nullptr, nullptr, after_fork_in_child);   // registered at load
#endif
}  // namespace

namespace {
std::atomic<int> g_team_size{0};   // 0: OpenMP's default
}  // namespace

int team_size() {
    const int n = g_team_size.load(std::memory_order_relaxed);
#if defined(_OPENMP)
    return n > 0 ? n : omp_get_max_threads();
#else
    return n > 0 ? n : 1;
#endif
}

void set_team_size(int n) { g_team_size.store(n < 0 ? 0 : n, std::memory_order_relaxed); }

bool openmp_allowed() {
    if (g_fork_child.load(std::memory_order_relaxed)) return false;
    g_pool_started.store(true, std::memory_order_relaxed);
    return true;
}

const Kernels* kernels_for(const std::string& level) {
    return cpu_has(level.c_str()) ? compiled(level) : nullptr;
}

std::vector<std::string> available_levels() {
    std::vector<std::string> out;
    for (const char* l : kLevels)
        if (kernels_for(l) != nullptr) out.emplace_back(l);
    return out;
}

const Kernels& kernels() {
    static const Kernels& k = select();
    return k;
}

void philox4x32_10(const Philox4x32_10Args& a) {
    const uint32_t* counters = a.counters;
    const uint32_t* keys = a.keys;
    uint32_t* out = a.out;
    for (int64_t i = 0; i < a.n; ++i) {
        uint32_t c0 = counters[4 * i], c1 = counters[4 * i + 1], c2 = counters[4 * i + 2], c3 = counters[4 * i + 3];
        Philox4x32x10::block(c0, c1, c2, c3, keys[2 * i], keys[2 * i + 1]);
        out[4 * i] = c0; out[4 * i + 1] = c1; out[4 * i + 2] = c2; out[4 * i + 3] = c3;
    }
}

}  // namespace vk::cpu
