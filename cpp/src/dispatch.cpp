// dispatch.cpp: picks the kernel table for this CPU once, and the raw Philox block function.
//
// Levels, worst to best: "scalar" (vectorisation disabled: the reference path, closest to the GPU's
// one-element-per-thread code), "baseline" (SSE2 on x86-64, NEON on aarch64), "avx2", "avx512".
// All give identical bits (tests/test_simd_levels.py). VAEKERNELS_SIMD=<level> overrides the choice.
#include <cstdlib>

#include <stdexcept>


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
