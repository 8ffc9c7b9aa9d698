// layer_kernels.cpp: the dense-layer epilogues of vaekernels.nn's MLPs (dense.cpp runs them on the block of a
// GEMM it has just written, still in cache), on the formulas of activations.hpp. Compiled once per
// instruction-set level like kernels.cpp, and identical in bits across levels: explicit IEEE operations,
// contraction off, and column sums added row by row (the same order for every vector width).
#include "kernels.hpp"
#include "vaekernels/activations.hpp"

VK_BEGIN_NAMESPACE
namespace {

// y[r, c] = activation(y[r, c] + b[c]) over a (rows, cols) block with row stride ld (b null: no bias).
template <class T, int A>
void bias_activation_block(T* y, const T* __restrict b, int64_t rows, int64_t cols, int64_t ld) {
    for (int64_t r = 0; r < rows; ++r) {
        T* __restrict yr = y + r * ld;
        if (b == nullptr) for (int64_t c = 0; c < cols; ++c) yr[c] = activate(A, yr[c]);
        else for (int64_t c = 0; c < cols; ++c) yr[c] = activate(A, yr[c] + b[c]);
    }
}

// d[r, c] = (d[r, c] scale) activation'(y[r, c]) (scale == 1: no multiplication), and db[c] = sum over r of
// the new d[r, c], rows added in order (the same bits for any vector width); db may be null.
template <class T, int A>
void activation_grad_block(T* d, const T* y, T* db, int64_t rows, int64_t cols, int64_t ld, T scale) {
    const bool scaled = scale != T(1);
    for (int64_t r = 0; r < rows; ++r) {
        T* __restrict dr = d + r * ld;
        const T* __restrict yr = y + r * ld;
        if (A == kLinear) {
            if (scaled) for (int64_t c = 0; c < cols; ++c) dr[c] = dr[c] * scale;
        } else if (scaled) {
            for (int64_t c = 0; c < cols; ++c) dr[c] = (dr[c] * scale) * activation_slope(A, yr[c]);
        } else {
            for (int64_t c = 0; c < cols; ++c) dr[c] = dr[c] * activation_slope(A, yr[c]);
        }
    }
    if (db == nullptr) return;
    T* __restrict sum = db;
    for (int64_t c = 0; c < cols; ++c) sum[c] = T(0);
    for (int64_t r = 0; r < rows; ++r) {
        const T* __restrict dr = d + r * ld;
        for (int64_t c = 0; c < cols; ++c) sum[c] += dr[c];
    }
}

template <class T, template <class, int> class Block, class... Args>
void by_activation(int act, Args... args) {
    switch (act) {
        case kTanh: Block<T, kTanh>::run(args...); break;
        case kRelu: Block<T, kRelu>::run(args...); break;
        case kSigmoid: Block<T, kSigmoid>::run(args...); break;
        case kSoftplus: Block<T, kSoftplus>::run(args...); break;
        case kElu: Block<T, kElu>::run(args...); break;
        default: Block<T, kLinear>::run(args...); break;
    }
}
template <class T, int A> struct BiasActivation {
    static void run(T* y, const T* b, int64_t rows, int64_t cols, int64_t ld) {
        bias_activation_block<T, A>(y, b, rows, cols, ld);
    }
};
template <class T, int A> struct ActivationGrad {
    static void run(T* d, const T* y, T* db, int64_t rows, int64_t cols, int64_t ld, T scale) {
        activation_grad_block<T, A>(d, y, db, rows, cols, ld, scale);
    }
};

template <class T>
void bias_activation(T* y, const T* b, int64_t rows, int64_t cols, int64_t ld, int act) {
    by_activation<T, BiasActivation>(act, y, b, rows, cols, ld);
}
template <class T>
void activation_grad(T* d, const T* y, T* db, int64_t rows, int64_t cols, int64_t ld, int act, T scale) {
    by_activation<T, ActivationGrad>(act, d, y, db, rows, cols, ld, scale);
}

}  // namespace

template <class T>
cpu::LayerKernels<T> make_layer_kernels() {
    return cpu::LayerKernels<T>{bias_activation<T>, activation_grad<T>};
}
template cpu::LayerKernels<float> make_layer_kernels<float>();
template cpu::LayerKernels<double> make_layer_kernels<double>();

VK_END_NAMESPACE
