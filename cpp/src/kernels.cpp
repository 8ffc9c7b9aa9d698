// kernels.cpp: the CPU kernels. This one file is compiled once per instruction-set level (CMake sets
// VK_ISA_NAMESPACE and the -m flags); the loops are written so the compiler vectorises them, and every
// floating-point operation is an explicit IEEE operation with contraction off, so all levels agree to
// the bit. Row reductions use a fixed 16-lane partition (column j goes to lane j % 16, lanes summed in a
// fixed tree), which is what keeps sums identical across vector widths and thread counts.
#include "kernels.hpp"
#include "parallel.hpp"

#include <algorithm>
#include <climits>

#if defined(__AVX2__)
#include <immintrin.h>
#endif

#include "vaekernels/adam.hpp"
#include "vaekernels/gaussian.hpp"
#include "vaekernels/random.hpp"

#define VK_CAT2(a, b) a##b
#define VK_CAT(a, b) VK_CAT2(a, b)

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

// ---------------------------------------------------------------------------------------------
// Kernels: one per entry of the kernel table, each taking its argument record (kernel_args.hpp).
// Pointers are copied into locals first: inside a task lambda, members of a captured record are
// loads that the stores might alias, and GCC then refuses to vectorise ("complicated access pattern").
// ---------------------------------------------------------------------------------------------
template <class T>
void randn_kernel(const RandnArgs<T>& a) {
    const uint64_t seed = a.seed, offset = a.offset;
    T* out = a.out;
    elementwise(a.n, [=](int64_t b, int64_t len) { normal_fill(seed, offset + b, len, out + b); });
}

template <class T>
void rand_kernel(const RandArgs<T>& a) {
    const uint64_t seed = a.seed, offset = a.offset;
    T* out = a.out;
    elementwise(a.n, [=](int64_t b, int64_t len) { uniform_fill(seed, offset + b, len, out + b); });
}

// z[s, i] = mu[i] + exp(lv[i]/2) eps[offset + s n + i], s < n_samples, i < n.
template <class T>
void reparameterize_kernel(const ReparameterizeArgs<T>& a) {
    const T* mu = a.mu;
    const T* lv = a.logvar;
    T* z = a.z;
    const int64_t n = a.n;
    const uint64_t seed = a.seed, offset = a.offset;
    elementwise(n * a.n_samples, [=](int64_t b, int64_t len) {
        alignas(64) T eps[kChunk];
        normal_fill(seed, offset + b, len, eps);
        // A chunk may straddle two samples: i runs over the flat (sample, element) index.
        int64_t i = b % n;
        T* zo = z + b;
        for (int64_t k = 0; k < len;) {
            const int64_t run = std::min(len - k, n - i);
            const T* m = mu + i;
            const T* l = lv + i;
            const T* e = eps + k;
            T* o = zo + k;
            for (int64_t j = 0; j < run; ++j) o[j] = reparameterize_term(m[j], l[j], e[j]);
            k += run;
            i = 0;
        }
    });
}

template <class T>
void kl_standard_normal_kernel(const KlStandardNormalArgs<T>& a) {
    const T* mu = a.mu;
    const T* lv = a.logvar;
    row_reduce<T>(a.rows, a.cols, a.kl, [=](int64_t b, int64_t n, T* t) {
        for (int64_t j = 0; j < n; ++j) t[j] = kl_standard_normal_term(mu[b + j], lv[b + j]);
    });
}

// The per-row backward kernels: one row at a time, restrict-qualified (GCC's runtime alias checks give up
// beyond a few pointers), rows split across threads by for_each_row.
template <class T>
void kl_standard_normal_backward_row(T g, const T* __restrict m, const T* __restrict l, int64_t n,
                                     T* __restrict o1, T* __restrict o2) {
    for (int64_t j = 0; j < n; ++j) {
        T x, y;
        kl_standard_normal_grad(m[j], l[j], x, y);
        o1[j] = g * x;
        o2[j] = g * y;
    }
}

template <class T>
void kl_standard_normal_backward_kernel(const KlStandardNormalBackwardArgs<T>& a) {
    const T* grad = a.grad;
    const T* mu = a.mu;
    const T* lv = a.logvar;
    T* dmu = a.dmu;
    T* dlv = a.dlogvar;
    const int64_t cols = a.cols;
    for_each_row(a.rows, cols, [=](int64_t r) {
        const int64_t o = r * cols;
        kl_standard_normal_backward_row(grad[r], mu + o, lv + o, cols, dmu + o, dlv + o);
    });
}

template <class T>
void kl_normal_kernel(const KlNormalArgs<T>& a) {
    const T* mq = a.mu_q;
    const T* lq = a.logvar_q;
    const T* mp = a.mu_p;
    const T* lp = a.logvar_p;
    row_reduce<T>(a.rows, a.cols, a.kl, [=](int64_t b, int64_t n, T* t) {
        for (int64_t j = 0; j < n; ++j) t[j] = kl_normal_term(mq[b + j], lq[b + j], mp[b + j], lp[b + j]);
    });
}

template <class T>
void kl_normal_backward_row(T g, const T* __restrict a, const T* __restrict b, const T* __restrict c,
                            const T* __restrict d, int64_t n, T* __restrict o1, T* __restrict o2,
                            T* __restrict o3, T* __restrict o4) {
    for (int64_t j = 0; j < n; ++j) {
        T g1, g2, g3, g4;
        kl_normal_grad(a[j], b[j], c[j], d[j], g1, g2, g3, g4);
        o1[j] = g * g1; o2[j] = g * g2; o3[j] = g * g3; o4[j] = g * g4;
    }
}

template <class T>
void kl_normal_backward_kernel(const KlNormalBackwardArgs<T>& a) {
    const KlNormalBackwardArgs<T> c = a;       // by value into the lambda: see the note above the kernels
    for_each_row(a.rows, a.cols, [=](int64_t r) {
        const int64_t o = r * c.cols;
        kl_normal_backward_row(c.grad[r], c.mu_q + o, c.logvar_q + o, c.mu_p + o, c.logvar_p + o, c.cols,
                               c.dmu_q + o, c.dlogvar_q + o, c.dmu_p + o, c.dlogvar_p + o);
    });
}

template <class T>
void bernoulli_log_prob_kernel(const BernoulliLogProbArgs<T>& a) {
    const T* x = a.x;
    const T* logits = a.logits;
    row_reduce<T>(a.rows, a.cols, a.log_prob, [=](int64_t b, int64_t n, T* t) {
        for (int64_t j = 0; j < n; ++j) t[j] = bernoulli_log_prob_term(x[b + j], logits[b + j]);
    });
}

template <class T>
void bernoulli_log_prob_and_grad_kernel(const BernoulliLogProbAndGradArgs<T>& a) {
    const T* x = a.x;
    const T* logits = a.logits;
    T* dlogits = a.dlogits;
    row_reduce<T>(a.rows, a.cols, a.log_prob, [=](int64_t b, int64_t n, T* t) {
        for (int64_t j = 0; j < n; ++j) t[j] = bernoulli_log_prob_term_grad(x[b + j], logits[b + j], dlogits[b + j]);
    });
}

template <class T>
void bernoulli_log_prob_backward_row(T g, const T* __restrict x, const T* __restrict l, int64_t n,
                                     T* __restrict o) {
    for (int64_t j = 0; j < n; ++j) o[j] = g * bernoulli_log_prob_grad(x[j], l[j]);
}

template <class T>
void bernoulli_log_prob_backward_kernel(const BernoulliLogProbBackwardArgs<T>& a) {
    const T* grad = a.grad;
    const T* x = a.x;
    const T* logits = a.logits;
    T* dlogits = a.dlogits;
    const int64_t cols = a.cols;
    for_each_row(a.rows, cols, [=](int64_t r) {
        const int64_t o = r * cols;
        bernoulli_log_prob_backward_row(grad[r], x + o, logits + o, cols, dlogits + o);
    });
}

template <class T>
void normal_log_prob_kernel(const NormalLogProbArgs<T>& a) {
    const T* x = a.x;
    const T* mean = a.mean;
    const T* lv = a.logvar;
    row_reduce<T>(a.rows, a.cols, a.log_prob, [=](int64_t b, int64_t n, T* t) {
        for (int64_t j = 0; j < n; ++j) t[j] = normal_log_prob_term(x[b + j], mean[b + j], lv[b + j]);
    });
}

template <class T>
void normal_log_prob_and_grad_kernel(const NormalLogProbAndGradArgs<T>& a) {
    const T* x = a.x;
    const T* mean = a.mean;
    const T* lv = a.logvar;
    T* dmean = a.dmean;
    T* dlv = a.dlogvar;
    row_reduce<T>(a.rows, a.cols, a.log_prob, [=](int64_t b, int64_t n, T* t) {
        for (int64_t j = 0; j < n; ++j)
            t[j] = normal_log_prob_term_grad(x[b + j], mean[b + j], lv[b + j], dmean[b + j], dlv[b + j]);
    });
}

template <class T>
void normal_log_prob_backward_row(T g, const T* __restrict x, const T* __restrict m, const T* __restrict lv,
                                  int64_t n, T* __restrict o1, T* __restrict o2) {
    for (int64_t j = 0; j < n; ++j) {
        T dm, dl;
        normal_log_prob_grad(x[j], m[j], lv[j], dm, dl);
        o1[j] = g * dm;
        o2[j] = g * dl;
    }
}

template <class T>
void normal_log_prob_backward_kernel(const NormalLogProbBackwardArgs<T>& a) {
    const NormalLogProbBackwardArgs<T> c = a;
    for_each_row(a.rows, a.cols, [=](int64_t r) {
        const int64_t o = r * c.cols;
        normal_log_prob_backward_row(c.grad[r], c.x + o, c.mean + o, c.logvar + o, c.cols, c.dmean + o, c.dlogvar + o);
    });
}

template <class T>
void standard_normal_log_prob_kernel(const StandardNormalLogProbArgs<T>& a) {
    const T* z = a.z;
    row_reduce<T>(a.rows, a.cols, a.log_prob, [=](int64_t b, int64_t n, T* t) {
        for (int64_t j = 0; j < n; ++j) t[j] = standard_normal_log_prob_term(z[b + j]);
    });
}

template <class T>
void standard_normal_log_prob_and_grad_kernel(const StandardNormalLogProbAndGradArgs<T>& a) {
    const T* z = a.z;
    T* dz = a.dz;
    row_reduce<T>(a.rows, a.cols, a.log_prob, [=](int64_t b, int64_t n, T* t) {
        for (int64_t j = 0; j < n; ++j) {
            t[j] = standard_normal_log_prob_term(z[b + j]);
            dz[b + j] = -z[b + j];
        }
    });
}

// z = mu + e^(lv/2) eps and kl = KL(q || N(0, I)) per row, in one pass; eps never leaves L1.
template <class T>
void latent_forward_kernel(const LatentForwardArgs<T>& a) {
    const T* mu = a.mu;
    const T* lv = a.logvar;
    T* z = a.z;
    const uint64_t seed = a.seed, offset = a.offset;
    row_reduce<T>(a.rows, a.cols, a.kl, [=](int64_t b, int64_t n, T* t) {
        alignas(64) T eps[kChunk];
        normal_fill(seed, offset + static_cast<uint64_t>(b), n, eps);
        for (int64_t j = 0; j < n; ++j) {
            const T m = mu[b + j], l = lv[b + j];
            z[b + j] = reparameterize_term(m, l, eps[j]);
            t[j] = kl_standard_normal_term(m, l);
        }
    });
}

// Gradient of sum(dz * z) + w sum(kl) with eps regenerated from (seed, offset) (latent_backward_term).
template <class T>
void latent_backward_kernel(const LatentBackwardArgs<T>& a) {
    const T* dz = a.dz;
    const T* mu = a.mu;
    const T* lv = a.logvar;
    T* dmu = a.dmu;
    T* dlv = a.dlogvar;
    const uint64_t seed = a.seed, offset = a.offset;
    const T w = T(a.kl_weight);
    elementwise(a.rows * a.cols, [=](int64_t b, int64_t n) {
        alignas(64) T eps[kChunk];
        normal_fill(seed, offset + static_cast<uint64_t>(b), n, eps);
        for (int64_t j = 0; j < n; ++j) latent_backward_term(dz[b + j], mu[b + j], lv[b + j], eps[j], w, dmu[b + j], dlv[b + j]);
    });
}

// A run of elements in one row (weight w); restrict-qualified, seven pointers being past GCC's alias checks.
template <class T>
void latent_vjp_run(T w, const T* __restrict dz, const T* __restrict mu, const T* __restrict lv,
                    const T* __restrict eps, int64_t n, T* __restrict dmu, T* __restrict dlv) {
    for (int64_t j = 0; j < n; ++j) latent_backward_term(dz[j], mu[j], lv[j], eps[j], w, dmu[j], dlv[j]);
}

// latent_backward with the KL weight of each row taken from dkl. A chunk of elementwise() may span rows:
// it is cut into runs, one per row.
template <class T>
void latent_vjp_kernel(const LatentVjpArgs<T>& a) {
    const T* dz = a.dz;
    const T* dkl = a.dkl;
    const T* mu = a.mu;
    const T* lv = a.logvar;
    T* dmu = a.dmu;
    T* dlv = a.dlogvar;
    const uint64_t seed = a.seed, offset = a.offset;
    const int64_t cols = a.cols;
    if (cols == 0) return;
    elementwise(a.rows * cols, [=](int64_t b, int64_t n) {
        alignas(64) T eps[kChunk];
        normal_fill(seed, offset + static_cast<uint64_t>(b), n, eps);
        int64_t r = b / cols, j0 = b - r * cols;
        for (int64_t k = 0; k < n; ++r, j0 = 0) {
            const int64_t run = std::min(n - k, cols - j0), i = b + k;
            latent_vjp_run(dkl[r], dz + i, mu + i, lv + i, eps + k, run, dmu + i, dlv + i);
            k += run;
        }
    });
}

template <class T>
void adam_step_kernel(const AdamStepArgs<T>& a) {
    const AdamConstants<T> c =
        AdamConstants<T>::from(AdamHyper::make(a.step, a.lr, a.beta1, a.beta2, a.eps, a.weight_decay));
    T* p = a.param;
    const T* g = a.grad;
    T* m = a.m;
    T* v = a.v;
    // Captured by value: by-reference captures make the pointers themselves loads that the stores might alias.
    elementwise(a.n, [=](int64_t b, int64_t len) {
        for (int64_t j = b; j < b + len; ++j) adam_update(p[j], g[j], m[j], v[j], c);
    });
}

template <class T>
cpu::KernelTable<T> make_table() {
    cpu::KernelTable<T> t;
#define VK_KERNEL_ENTRY(name, Args) t.name = name##_kernel<T>;
    VK_FLOAT_KERNELS(VK_KERNEL_ENTRY)
#undef VK_KERNEL_ENTRY
    return t;
}

}  // namespace

// The dense-layer epilogues of this level (layer_kernels.cpp).
template <class T>
cpu::LayerKernels<T> make_layer_kernels();
VK_END_NAMESPACE

namespace vk::cpu {
// One getter per compiled level, e.g. kernels_isa_avx2(); dispatch.cpp declares them.
const Kernels& VK_CAT(kernels_, VK_ISA_NAMESPACE)() {
    static const Kernels k{VK_ISA_LEVEL_NAME, vk::make_table<float>(), vk::make_table<double>(),
                           vk::make_layer_kernels<float>(), vk::make_layer_kernels<double>()};
    return k;
}
}  // namespace vk::cpu
