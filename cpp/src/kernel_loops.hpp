// kernel_loops.hpp: the loops and stream helpers the CPU kernels (kernels.cpp) are written with: the fixed
// 16-lane row sums, the split of work over the thread team, and the vectorised Philox/Box-Muller stream
// bodies. Included by kernels.cpp only, inside its per-instruction-set namespace (VK_BEGIN_NAMESPACE), so
// every level compiles its own copy.
#pragma once

#include <algorithm>
#include <climits>
#include <cstdint>

#if defined(__AVX2__)
#include <immintrin.h>
#endif

#include "parallel.hpp"
#include "vaekernels/random.hpp"

VK_BEGIN_NAMESPACE
namespace {

using std::int64_t;
using std::uint64_t;

constexpr int kLanes = 16;
constexpr int64_t kChunk = 1024;               // elements per work buffer (fits L1 with a few buffers)
constexpr int64_t kParallelMin = 65536;        // below this many elements one thread is faster

// ---------------------------------------------------------------------------------------------
// Row-sum helpers: fixed lane partition, fixed combination tree
// ---------------------------------------------------------------------------------------------
template <class T>
struct LaneSum {
    T acc[kLanes];
    LaneSum() { for (int l = 0; l < kLanes; ++l) acc[l] = T(0); }
    // Adds t[0..n) to lanes 0, 1, ..., starting at a column that is a multiple of kLanes.
    void add(const T* t, int64_t n) {
        int64_t j = 0;
        for (; j + kLanes <= n; j += kLanes)
            for (int l = 0; l < kLanes; ++l) acc[l] += t[j + l];
        for (int l = 0; j + l < n; ++l) acc[l] += t[j + l];
    }
    T total() {
        for (int w = kLanes / 2; w > 0; w /= 2)
            for (int l = 0; l < w; ++l) acc[l] += acc[l + w];
        return acc[0];
    }
};

// Calls item(i) for every i in [0, n_items) (work: the elements they touch in all). Small problems run on
// the calling thread; larger ones go to the team (parallel.hpp) in tasks of consecutive items of about
// kTaskWork elements, claimed dynamically. Each item computes the same bits wherever it runs.
constexpr int64_t kTaskWork = 16384;

template <class Item>
void for_tasks(int64_t n_items, int64_t work, Item&& item) {
    if (n_items <= 0) return;
    if (work < kParallelMin || cpu::team_size() == 1) {
        for (int64_t i = 0; i < n_items; ++i) item(i);
        return;
    }
    const int64_t per_task = std::max<int64_t>(1, n_items / std::max<int64_t>(1, work / kTaskWork));
    const int64_t n_tasks = (n_items + per_task - 1) / per_task;
    cpu::parallel_tasks(n_tasks, [&](int64_t t) {
        const int64_t end = std::min(n_items, (t + 1) * per_task);
        for (int64_t i = t * per_task; i < end; ++i) item(i);
    });
}

// Calls fn(flat_begin, n, terms) over row blocks and sums terms per row into row_out. fn computes the
// elementwise part (and any side outputs) for flat positions [flat_begin, flat_begin + n) and writes one
// term per element. Rows are split across threads; each row's sum is independent of the split.
template <class T, class Fn>
void row_reduce(int64_t rows, int64_t cols, T* row_out, Fn fn) {
    if (rows <= 0) return;
    if (cols == 0) { std::fill(row_out, row_out + rows, T(0)); return; }
    const int64_t rows_per_block = cols >= kChunk ? 1 : kChunk / cols;
    const int64_t n_blocks = (rows + rows_per_block - 1) / rows_per_block;
    for_tasks(n_blocks, rows * cols, [&](int64_t blk) {
        alignas(64) T terms[kChunk];
        const int64_t r0 = blk * rows_per_block;
        const int64_t r1 = std::min(rows, r0 + rows_per_block);
        if (cols < kChunk) {
            fn(r0 * cols, (r1 - r0) * cols, terms);
            for (int64_t r = r0; r < r1; ++r) {
                LaneSum<T> s;
                s.add(terms + (r - r0) * cols, cols);
                row_out[r] = s.total();
            }
        } else {
            LaneSum<T> s;
            for (int64_t c0 = 0; c0 < cols; c0 += kChunk) {
                const int64_t n = std::min(kChunk, cols - c0);
                fn(r0 * cols + c0, n, terms);
                s.add(terms, n);
            }
            row_out[r0] = s.total();
        }
    });
}

// Calls fn(begin, n) over [0, total) in chunks, in parallel when large.
template <class Fn>
void elementwise(int64_t total, Fn fn) {
    if (total <= 0) return;
    const int64_t n_chunks = (total + kChunk - 1) / kChunk;
    for_tasks(n_chunks, total, [&](int64_t c) {
        const int64_t b = c * kChunk;
        fn(b, std::min(kChunk, total - b));
    });
}

// Calls fn(r) for every row r of a (rows, cols) batch, rows split across threads when large.
template <class Fn>
void for_each_row(int64_t rows, int64_t cols, Fn fn) {
    for_tasks(rows, rows * cols, fn);
}

// ---------------------------------------------------------------------------------------------
// Random streams: the vectorised body matches normal_at / uniform_at (random.hpp) bit for bit
// ---------------------------------------------------------------------------------------------
constexpr int64_t kBlocks = 256;  // Philox blocks per inner batch

#if defined(__AVX2__)
// Eight Philox blocks per vector. GCC vectorises the portable loop below with 64-bit lanes and shuffles
// (~35 cycles a block); splitting each 32x32->64 product into even and odd lanes by hand is ~2.7x faster.
// Integer arithmetic only, so the words are those of Philox4x32x10::block, bit for bit.
inline void mul_hi_lo(__m256i a, __m256i m, __m256i& hi, __m256i& lo) {
    const __m256i even = _mm256_mul_epu32(a, m);                          // products of lanes 0, 2, 4, 6
    const __m256i odd = _mm256_mul_epu32(_mm256_srli_epi64(a, 32), m);    // lanes 1, 3, 5, 7
    lo = _mm256_blend_epi32(even, _mm256_slli_epi64(odd, 32), 0xAA);
    hi = _mm256_blend_epi32(_mm256_srli_epi64(even, 32), odd, 0xAA);
}

// The first whole groups of eight of blocks [b0, b0 + nb); returns how many blocks it wrote.
int64_t philox_words_avx2(uint64_t seed, uint64_t b0, int64_t nb, uint32_t tag, uint32_t* w0, uint32_t* w1,
                          uint32_t* w2, uint32_t* w3) {
    const __m256i mul0 = _mm256_set1_epi64x(Philox4x32x10::kMul0), mul1 = _mm256_set1_epi64x(Philox4x32x10::kMul1);
    const __m256i sign = _mm256_set1_epi32(INT32_MIN), lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    int64_t i = 0;
    for (; i + 8 <= nb; i += 8) {
        const uint64_t b = b0 + static_cast<uint64_t>(i);
        const __m256i base = _mm256_set1_epi32(static_cast<int32_t>(static_cast<uint32_t>(b)));
        __m256i c0 = _mm256_add_epi32(base, lane);
        // the high counter word: + 1 in the lanes whose low word wrapped (unsigned base > c0; cmpgt gives -1)
        const __m256i wrapped = _mm256_cmpgt_epi32(_mm256_xor_si256(base, sign), _mm256_xor_si256(c0, sign));
        __m256i c1 = _mm256_sub_epi32(_mm256_set1_epi32(static_cast<int32_t>(static_cast<uint32_t>(b >> 32))), wrapped);
        __m256i c2 = _mm256_set1_epi32(static_cast<int32_t>(tag)), c3 = _mm256_setzero_si256();
        uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
        for (int r = 0; r < 10; ++r) {
            __m256i hi0, lo0, hi1, lo1;
            mul_hi_lo(c0, mul0, hi0, lo0);
            mul_hi_lo(c2, mul1, hi1, lo1);
            c0 = _mm256_xor_si256(_mm256_xor_si256(hi1, c1), _mm256_set1_epi32(static_cast<int32_t>(k0)));
            c1 = lo1;
            c2 = _mm256_xor_si256(_mm256_xor_si256(hi0, c3), _mm256_set1_epi32(static_cast<int32_t>(k1)));
            c3 = lo0;
            k0 += Philox4x32x10::kWeyl0;
            k1 += Philox4x32x10::kWeyl1;
        }
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(w0 + i), c0);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(w1 + i), c1);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(w2 + i), c2);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(w3 + i), c3);
    }
    return i;
}
#endif

// Philox words of blocks [b0, b0 + nb) in structure-of-arrays form.
void philox_words(uint64_t seed, uint64_t b0, int64_t nb, uint32_t tag, uint32_t* w0, uint32_t* w1,
                  uint32_t* w2, uint32_t* w3) {
    const uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
    int64_t i = 0;
#if defined(__AVX2__)
    i = philox_words_avx2(seed, b0, nb, tag, w0, w1, w2, w3);
#endif
    for (; i < nb; ++i) {
        const uint64_t b = b0 + static_cast<uint64_t>(i);
        uint32_t c0 = static_cast<uint32_t>(b), c1 = static_cast<uint32_t>(b >> 32), c2 = tag, c3 = 0;
        Philox4x32x10::block(c0, c1, c2, c3, k0, k1);
        w0[i] = c0; w1[i] = c1; w2[i] = c2; w3[i] = c3;
    }
}

// Normals at stream positions [pos, pos + n) into out.
void normal_fill(uint64_t seed, uint64_t pos, int64_t n, float* out) {
    while (n > 0 && (pos & 3u) != 0) { *out++ = normal_at_f32(seed, pos++); --n; }
    alignas(64) uint32_t w0[kBlocks], w1[kBlocks], w2[kBlocks], w3[kBlocks];
    alignas(64) float a[kBlocks], b[kBlocks], c[kBlocks], d[kBlocks];
    while (n >= 4) {
        const int64_t nb = std::min<int64_t>(kBlocks, n / 4);
        philox_words(seed, pos >> 2, nb, kTagNormal, w0, w1, w2, w3);
        for (int64_t i = 0; i < nb; ++i) {
            box_muller_f32(w0[i], w1[i], a[i], b[i]);
            box_muller_f32(w2[i], w3[i], c[i], d[i]);
        }
        for (int64_t i = 0; i < nb; ++i) {
            out[4 * i] = a[i]; out[4 * i + 1] = b[i]; out[4 * i + 2] = c[i]; out[4 * i + 3] = d[i];
        }
        out += 4 * nb; pos += 4 * static_cast<uint64_t>(nb); n -= 4 * nb;
    }
    while (n > 0) { *out++ = normal_at_f32(seed, pos++); --n; }
}

void normal_fill(uint64_t seed, uint64_t pos, int64_t n, double* out) {
    if (n > 0 && (pos & 1u) != 0) { *out++ = normal_at_f64(seed, pos++); --n; }
    alignas(64) uint32_t w0[kBlocks], w1[kBlocks], w2[kBlocks], w3[kBlocks];
    alignas(64) double a[kBlocks], b[kBlocks];
    while (n >= 2) {
        const int64_t nb = std::min<int64_t>(kBlocks, n / 2);
        philox_words(seed, pos >> 1, nb, kTagNormal, w0, w1, w2, w3);
        for (int64_t i = 0; i < nb; ++i) box_muller_f64(w0[i], w1[i], w2[i], w3[i], a[i], b[i]);
        for (int64_t i = 0; i < nb; ++i) { out[2 * i] = a[i]; out[2 * i + 1] = b[i]; }
        out += 2 * nb; pos += 2 * static_cast<uint64_t>(nb); n -= 2 * nb;
    }
    if (n > 0) *out = normal_at_f64(seed, pos);
}

void uniform_fill(uint64_t seed, uint64_t pos, int64_t n, float* out) {
    while (n > 0 && (pos & 3u) != 0) { *out++ = uniform_at_f32(seed, pos++); --n; }
    alignas(64) uint32_t w0[kBlocks], w1[kBlocks], w2[kBlocks], w3[kBlocks];
    while (n >= 4) {
        const int64_t nb = std::min<int64_t>(kBlocks, n / 4);
        philox_words(seed, pos >> 2, nb, kTagUniform, w0, w1, w2, w3);
        for (int64_t i = 0; i < nb; ++i) {
            out[4 * i] = uniform_open_f32(w0[i]); out[4 * i + 1] = uniform_open_f32(w1[i]);
            out[4 * i + 2] = uniform_open_f32(w2[i]); out[4 * i + 3] = uniform_open_f32(w3[i]);
        }
        out += 4 * nb; pos += 4 * static_cast<uint64_t>(nb); n -= 4 * nb;
    }
    while (n > 0) { *out++ = uniform_at_f32(seed, pos++); --n; }
}

void uniform_fill(uint64_t seed, uint64_t pos, int64_t n, double* out) {
    if (n > 0 && (pos & 1u) != 0) { *out++ = uniform_at_f64(seed, pos++); --n; }
    alignas(64) uint32_t w0[kBlocks], w1[kBlocks], w2[kBlocks], w3[kBlocks];
    while (n >= 2) {
        const int64_t nb = std::min<int64_t>(kBlocks, n / 2);
        philox_words(seed, pos >> 1, nb, kTagUniform, w0, w1, w2, w3);
        for (int64_t i = 0; i < nb; ++i) {
            out[2 * i] = uniform_open_f64(w0[i], w1[i]);
            out[2 * i + 1] = uniform_open_f64(w2[i], w3[i]);
        }
        out += 2 * nb; pos += 2 * static_cast<uint64_t>(nb); n -= 2 * nb;
    }
    if (n > 0) *out = uniform_at_f64(seed, pos);
}

}  // namespace
VK_END_NAMESPACE
