// dense.cpp: multi-layer perceptrons (vaekernels.nn.MLP) forward and backward, every GEMM split into a fixed
// set of blocks that the thread team (parallel.hpp) runs, each block on a single-threaded BLAS GEMM with its
// epilogue (bias + activation forward; activation derivative + bias-gradient column sums backward) applied
// while the block is still in cache.
//
// Determinism: the blocks depend on the matrix shapes only, never on the number of threads, and no block
// reduces across another (the weight gradient is split by its columns, the input gradient by rows or
// columns of its own), so the bits are the same for any team size. Which BLAS: the GEMM of NumPy's own
// OpenBLAS, whose address the Python layer hands over (vaekernels/_blas.py); without one, a plain built-in
// GEMM (correct, slower). The BLAS must run one thread per call (the Python layer pins it during training
// and evaluation), or a block's bits would depend on the BLAS's thread count.
#include "dense.hpp"

#include <algorithm>
#include <atomic>

#include "kernels.hpp"
#include "parallel.hpp"

namespace vk::cpu {

namespace {

enum : int { kRowMajor = 101, kNoTrans = 111, kTrans = 112 };
using SgemmIlp64 = void (*)(int, int, int, int64_t, int64_t, int64_t, float, const float*, int64_t, const float*,
                            int64_t, float, float*, int64_t);
using DgemmIlp64 = void (*)(int, int, int, int64_t, int64_t, int64_t, double, const double*, int64_t,
                            const double*, int64_t, double, double*, int64_t);
using SgemmLp64 = void (*)(int, int, int, int, int, int, float, const float*, int, const float*, int, float, float*,
                           int);
using DgemmLp64 = void (*)(int, int, int, int, int, int, double, const double*, int, const double*, int, double,
                           double*, int);

struct Blas {
    void* sgemm = nullptr;
    void* dgemm = nullptr;
    bool ilp64 = true;
};
std::atomic<const Blas*> g_blas{nullptr};

// C (m, n) = op(A) op(B) with op(A) (m, k), op(B) (k, n), row-major with leading dimensions: the built-in
// GEMM, used when no BLAS was handed over. Sums over k in order.
template <class T>
void builtin_gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const T* a, int64_t lda, const T* b,
                  int64_t ldb, T* c, int64_t ldc) {
    for (int64_t i = 0; i < m; ++i) {
        T* __restrict ci = c + i * ldc;
        for (int64_t j = 0; j < n; ++j) ci[j] = T(0);
        for (int64_t p = 0; p < k; ++p) {
            const T aip = ta ? a[p * lda + i] : a[i * lda + p];
            if (!tb) {
                const T* __restrict bp = b + p * ldb;
                for (int64_t j = 0; j < n; ++j) ci[j] += aip * bp[j];
            } else {
                for (int64_t j = 0; j < n; ++j) ci[j] += aip * b[j * ldb + p];
            }
        }
    }
}

template <class T>
void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const T* a, int64_t lda, const T* b, int64_t ldb, T* c,
          int64_t ldc) {
    if (m == 0 || n == 0) return;
    const Blas* blas = g_blas.load(std::memory_order_acquire);
    void* fn = blas == nullptr ? nullptr : (std::is_same_v<T, float> ? blas->sgemm : blas->dgemm);
    if (fn == nullptr || k == 0) {
        builtin_gemm(ta, tb, m, n, k, a, lda, b, ldb, c, ldc);
        return;
    }
    const int tA = ta ? kTrans : kNoTrans, tB = tb ? kTrans : kNoTrans;
    if (blas->ilp64) {
        if constexpr (std::is_same_v<T, float>)
            reinterpret_cast<SgemmIlp64>(fn)(kRowMajor, tA, tB, m, n, k, 1.0f, a, lda, b, ldb, 0.0f, c, ldc);
        else
            reinterpret_cast<DgemmIlp64>(fn)(kRowMajor, tA, tB, m, n, k, 1.0, a, lda, b, ldb, 0.0, c, ldc);
    } else {
        const auto i = [](int64_t v) { return static_cast<int>(v); };   // dense_checks bound every size by 2^31
        if constexpr (std::is_same_v<T, float>)
            reinterpret_cast<SgemmLp64>(fn)(kRowMajor, tA, tB, i(m), i(n), i(k), 1.0f, a, i(lda), b, i(ldb), 0.0f,
                                            c, i(ldc));
        else
            reinterpret_cast<DgemmLp64>(fn)(kRowMajor, tA, tB, i(m), i(n), i(k), 1.0, a, i(lda), b, i(ldb), 0.0, c,
                                            i(ldc));
    }
}

// A fixed split of [0, len) into parts: a power of two as large as the work supports (one part per
// kFlopsPerPart), at most kMaxParts, each a multiple of `align` long except the last. A function of the shape
// only. Every part repacks the other GEMM operand (OpenBLAS copies its inputs into panels per call), so
// parts are few and large: at most 4 (the PyTorch-examples VAE, 784-400-20, took 2.48 s per epoch on two
// threads with 8 parts of its large layers and 1.84-2.31 s with 4: benchmarks/bench_vae.py --datasets
// mnist-relu); a power of two splits evenly over 1, 2 or 4 threads.
constexpr double kFlopsPerPart = 4e6;     // ~0.1 ms of single-threaded GEMM
constexpr int64_t kMaxParts = 4;
constexpr double kEpilogueFlops = 20.0;   // an epilogue element against GEMM flops, for the split

// Regions with less work than this (about 50 us) run their tasks on the caller (the same tasks: the same
// bits): handing less to another core costs about what it saves.
constexpr double kParallelFlops = 4e6;

template <class F>
void run_blocks(int64_t n, double flops, F&& f) {
    if (flops < kParallelFlops) {
        for (int64_t t = 0; t < n; ++t) f(t);
    } else {
        parallel_tasks(n, f);
    }
}

struct Split {
    int64_t step, n;
    int64_t begin(int64_t p) const { return p * step; }
    int64_t end(int64_t p, int64_t len) const { return std::min(len, (p + 1) * step); }
};

Split split(int64_t len, double flops, int64_t align) {
    int64_t parts = 1;
    while (parts < kMaxParts && static_cast<double>(parts * 2) * kFlopsPerPart <= flops) parts *= 2;
    int64_t step = (len + parts - 1) / parts;
    step = std::max<int64_t>(align, (step + align - 1) / align * align);
    return Split{step, len == 0 ? 0 : (len + step - 1) / step};
}

// C (m, n) = A (m, k) op(B) [+ epilogue on the block], the blocks along whichever side of C repacks the
// smaller operand: split the columns of C when A is the smaller (each block packs all of A and its slice of
// B), else the rows. tb: B is stored (n, k) and used transposed.
template <class T, class Epilogue>
void gemm_blocks(int64_t m, int64_t n, int64_t k, const T* a, const T* b, bool tb, T* c, Epilogue epilogue) {
    const double flops = 2.0 * static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k);
    const int64_t ldb = tb ? k : n;
    if (m <= n) {
        const Split s = split(n, flops, 8);
        run_blocks(s.n, flops, [&](int64_t p) {
            const int64_t c0 = s.begin(p), c1 = s.end(p, n);
            gemm<T>(false, tb, m, c1 - c0, k, a, k, tb ? b + c0 * ldb : b + c0, ldb, c + c0, n);
            epilogue(int64_t{0}, m, c0, c1);
        });
    } else {
        const Split s = split(m, flops, 8);
        run_blocks(s.n, flops, [&](int64_t p) {
            const int64_t r0 = s.begin(p), r1 = s.end(p, m);
            gemm<T>(false, tb, r1 - r0, n, k, a + r0 * k, k, b, ldb, c + r0 * n, n);
            epilogue(r0, r1, int64_t{0}, n);
        });
    }
}

}  // namespace

void set_blas(void* sgemm, void* dgemm, bool ilp64) {
    static Blas slots[2];          // alternated so a concurrent reader never sees a half-written record
    static std::atomic<int> which{0};
    if (sgemm == nullptr && dgemm == nullptr) {
        g_blas.store(nullptr, std::memory_order_release);
        return;
    }
    Blas& b = slots[which.fetch_add(1) & 1];
    b.sgemm = sgemm;
    b.dgemm = dgemm;
    b.ilp64 = ilp64;
    g_blas.store(&b, std::memory_order_release);
}

bool have_blas() { return g_blas.load(std::memory_order_acquire) != nullptr; }

template <class T>
void mlp_forward(const MlpForward<T>& a) {
    const LayerKernels<T>& lk = layer_kernels<T>(kernels());
    const T* in = a.x;
    for (int i = 0; i < a.n_layers; ++i) {
        const int64_t k = a.sizes[i], n = a.sizes[i + 1];
        T* y = a.out[i];
        const T* bias = a.b[i];
        const int act = i + 1 < a.n_layers ? a.activation : 0;
        gemm_blocks<T>(a.rows, n, k, in, a.W[i], false, y, [&](int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
            lk.bias_activation(y + r0 * n + c0, bias + c0, r1 - r0, c1 - c0, n, act);
        });
        in = y;
    }
}

// Whether every value of the (rows, cols) block with row stride ld is finite (x - x is 0 only then).
template <class T>
bool all_finite(const T* x, int64_t rows, int64_t cols, int64_t ld) {
    int bad = 0;   // an integer OR: vectorises, where a floating-point sum would stay sequential
    for (int64_t r = 0; r < rows; ++r) {
        const T* xr = x + r * ld;
        for (int64_t c = 0; c < cols; ++c) bad |= !(xr[c] - xr[c] == T(0));
    }
    return bad == 0;
}

// Backward, one parallel region per layer: the weight-gradient blocks (by columns of d, each with the
// bias-gradient sums of its columns) and the input-gradient blocks (each followed, below the first layer,
// by the previous layer's activation derivative on the block it wrote) are independent tasks of the same
// region, so small layers run side by side and a layer costs one wait, not two.
template <class T>
bool mlp_backward(const MlpBackward<T>& a) {
    const LayerKernels<T>& lk = layer_kernels<T>(kernels());
    const int64_t rows = a.rows;
    const bool params = a.dW != nullptr;
    std::atomic<bool> finite{true};
    {   // the output layer's gradient, scaled once (no activation after the last layer)
        const int64_t n = a.sizes[a.n_layers];
        const double work = kEpilogueFlops * static_cast<double>(rows * n);
        const Split s = split(rows, work, 8);
        run_blocks(s.n, work, [&](int64_t p) {
            const int64_t r0 = s.begin(p), r1 = s.end(p, rows);
            lk.activation_grad(a.dout + r0 * n, nullptr, nullptr, r1 - r0, n, n, 0, a.scale);
        });
    }
    for (int i = a.n_layers - 1; i >= 0; --i) {
        const int64_t k = a.sizes[i], n = a.sizes[i + 1];
        T* d = i + 1 == a.n_layers ? a.dout : a.dh[i];          // d loss / d (pre-activation of layer i)
        const T* in = i == 0 ? a.x : a.h[i - 1];
        T* dx = i == 0 ? a.dx : a.dh[i - 1];
        const T* y_in = i == 0 ? nullptr : a.h[i - 1];          // the activation whose derivative dx needs
        const double flops = 2.0 * static_cast<double>(rows) * static_cast<double>(n) * static_cast<double>(k);
        const Split sw = params ? split(n, flops, 8) : Split{1, 0};
        const bool dx_by_cols = rows <= k;                      // as in gemm_blocks: repack the smaller operand
        const Split sx = dx == nullptr ? Split{1, 0} : split(dx_by_cols ? k : rows, flops, 8);
        const T* W = a.W[i];
        run_blocks(sw.n + sx.n, (sw.n > 0 ? flops : 0.0) + (sx.n > 0 ? flops : 0.0), [&](int64_t p) {
            if (p < sw.n) {        // db and dW = in^T d for columns [c0, c1)
                const int64_t c0 = sw.begin(p), c1 = sw.end(p, n);
                T* dW = a.dW[i];
                lk.activation_grad(d + c0, nullptr, a.db[i] + c0, rows, c1 - c0, n, 0, T(1));
                gemm<T>(true, false, k, c1 - c0, rows, in, k, d + c0, n, dW + c0, n);
                if (!all_finite(dW + c0, k, c1 - c0, n) || !all_finite(a.db[i] + c0, 1, c1 - c0, n))
                    finite.store(false, std::memory_order_relaxed);
            } else if (dx_by_cols) {   // dx[:, k0:k1] = d W[k0:k1, :]^T, then the activation derivative
                const int64_t q = p - sw.n, k0 = sx.begin(q), k1 = sx.end(q, k);
                gemm<T>(false, true, rows, k1 - k0, n, d, n, W + k0 * n, n, dx + k0, k);
                if (y_in != nullptr) lk.activation_grad(dx + k0, y_in + k0, nullptr, rows, k1 - k0, k, a.activation, T(1));
            } else {                   // dx[r0:r1, :] likewise, by rows
                const int64_t q = p - sw.n, r0 = sx.begin(q), r1 = sx.end(q, rows);
                gemm<T>(false, true, r1 - r0, k, n, d + r0 * n, n, W, n, dx + r0 * k, k);
                if (y_in != nullptr)
                    lk.activation_grad(dx + r0 * k, y_in + r0 * k, nullptr, r1 - r0, k, k, a.activation, T(1));
            }
        });
    }
    return finite.load();
}

template <class T>
void bias_activation(int64_t rows, int64_t cols, T* y, const T* b, int act) {
    const LayerKernels<T>& lk = layer_kernels<T>(kernels());
    const double work = kEpilogueFlops * static_cast<double>(rows) * static_cast<double>(cols);
    const Split s = split(rows, work, 8);
    run_blocks(s.n, work, [&](int64_t p) {
        const int64_t r0 = s.begin(p), r1 = s.end(p, rows);
        lk.bias_activation(y + r0 * cols, b, r1 - r0, cols, cols, act);
    });
}

template <class T>
void activation_grad(int64_t rows, int64_t cols, T* d, const T* y, T* db, int act, T scale) {
    const LayerKernels<T>& lk = layer_kernels<T>(kernels());
    const double work = kEpilogueFlops * static_cast<double>(rows) * static_cast<double>(cols);
    const Split s = split(cols, work, 8);
    run_blocks(s.n, work, [&](int64_t p) {
        const int64_t c0 = s.begin(p), c1 = s.end(p, cols);
        lk.activation_grad(d + c0, y == nullptr ? nullptr : y + c0, db == nullptr ? nullptr : db + c0, rows,
                           c1 - c0, cols, act, scale);
    });
}

template void bias_activation<float>(int64_t, int64_t, float*, const float*, int);
template void bias_activation<double>(int64_t, int64_t, double*, const double*, int);
template void activation_grad<float>(int64_t, int64_t, float*, const float*, float*, int, float);
template void activation_grad<double>(int64_t, int64_t, double*, const double*, double*, int, double);
template void mlp_forward<float>(const MlpForward<float>&);
template void mlp_forward<double>(const MlpForward<double>&);
template bool mlp_backward<float>(const MlpBackward<float>&);
template bool mlp_backward<double>(const MlpBackward<double>&);

}  // namespace vk::cpu
